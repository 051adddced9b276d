/**
 * Loads agent.js with V8's code cache: compiling the 2 MB bundle is most of
 * what the agent costs a process that ends quickly (a script, a test runner's
 * worker, a CronJob), and the cache makes the second and later processes of
 * a container skip it. The first process writes the cache after the agent has
 * started (so it holds the functions start-up ran, not only the top level).
 *
 * The cache lives in SPANPROFILING_CODE_CACHE_DIR, by default
 * <tmpdir>/span-profiling-<uid>, a directory of the current user's alone
 * (mode 0700; a directory owned by someone else is not used). One file per
 * agent build and Node.js version. No cache (read-only file system, `off`)
 * means a plain load.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';

type Env = Readonly<Record<string, string | undefined>>;

function cacheDirectory(env: Env): string | undefined {
  const configured = env['SPANPROFILING_CODE_CACHE_DIR']?.trim();
  if (configured === 'off') return undefined;
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  const dir = configured !== undefined && configured !== '' ? configured : path.join(os.tmpdir(), `span-profiling-${uid ?? 'user'}`);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // lstat: a symbolic link (which another user could repoint) is not followed.
    const stat = fs.lstatSync(dir);
    if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o022) !== 0) return undefined;
    return dir;
  } catch {
    return undefined;
  }
}

export function loadWithCodeCache<T>(file: string, env: Env): T {
  const dir = cacheDirectory(env);
  if (dir === undefined) return createRequire(file)(file) as T;
  const source = fs.readFileSync(file, 'utf8');
  const stat = fs.statSync(file);
  const cacheFile = path.join(dir, `agent-${process.version}-${process.arch}-${stat.size}-${Math.round(stat.mtimeMs)}.cache`);
  let cachedData: Buffer | undefined;
  try {
    // Only a regular file of this user's, not a link.
    const entry = fs.lstatSync(cacheFile);
    if (entry.isFile() && (typeof process.getuid !== 'function' || entry.uid === process.getuid())) cachedData = fs.readFileSync(cacheFile);
  } catch {
    // first process of this build and Node.js version
  }
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, ...(cachedData !== undefined ? { cachedData } : {}) });
  const module = { exports: {} as T, id: file, filename: file, loaded: false };
  const wrapper = script.runInThisContext() as (exports: T, require: NodeRequire, module: { exports: T }, filename: string, dirname: string) => void;
  wrapper.call(module.exports, module.exports, createRequire(file), module, file, path.dirname(file));
  module.loaded = true;
  if (cachedData === undefined || script.cachedDataRejected === true) {
    // After start-up has run (the cache then holds the functions it compiled): on the next turn of
    // the event loop, or before exit for a process that has none.
    let written = false;
    const write = (): void => {
      if (written) return;
      written = true;
      try {
        // A name of its own (processes of several containers may share the directory), created exclusively.
        const tmp = `${cacheFile}.${process.pid}.${Math.random().toString(36).slice(2)}`;
        fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o600, flag: 'wx' });
        fs.renameSync(tmp, cacheFile);
      } catch {
        // no cache this time
      }
    };
    setTimeout(write, 0).unref();
    process.once('beforeExit', write);
  }
  return module.exports;
}
