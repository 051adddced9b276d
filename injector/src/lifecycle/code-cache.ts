/**
 * Loads agent.js with V8's code cache: compiling the 2 MB bundle is most of
 * what the agent costs a process that ends quickly (a script, a test runner's
 * worker, a CronJob), and the cache makes the second and later processes of
 * a container skip it. The first process writes the cache after the agent has
 * started (so it holds the functions start-up ran, not only the top level).
 *
 * The bundle's source stays off the JavaScript heap: V8 keeps a script's
 * source as long as any of its functions lives, and on the heap its 2 MB
 * would count against the app's heap (its limit, the sizes V8 grows it by).
 * Read as Latin-1 (the bundle is ASCII), a string this large is made by Node
 * as an external string, as Node's own modules' sources are.
 *
 * The cache lives in SPANPROFILING_CODE_CACHE_DIR, by default
 * <tmpdir>/span-profiling-<uid>, a directory of the current user's alone
 * (mode 0700; a directory owned by someone else is not used). One file per
 * agent build and Node.js version. No cache (read-only file system, `off`)
 * means compiling without one.
 */
import * as buffer from 'node:buffer';
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

/** The module wrapper Node's own CommonJS loader uses, on the source's first line (positions in stacks stay the same). */
const WRAPPER = ['(function (exports, require, module, __filename, __dirname) {', '\n})'] as const;

/**
 * The wrapped source, as an external string when it can be one: Node makes a Latin-1 string of
 * more than about 1 MB external, off the JavaScript heap. Only ASCII reads the same in Latin-1 and
 * UTF-8; anything else (or a Node.js without buffer.isAscii) is read as UTF-8, on the heap.
 */
function wrappedSource(file: string): string {
  const bytes = fs.readFileSync(file);
  const isAscii = (buffer as { isAscii?: (input: Uint8Array) => boolean }).isAscii;
  if (isAscii === undefined || !isAscii(bytes)) return `${WRAPPER[0]}${bytes.toString('utf8')}${WRAPPER[1]}`;
  return Buffer.concat([Buffer.from(WRAPPER[0], 'latin1'), bytes, Buffer.from(WRAPPER[1], 'latin1')]).toString('latin1');
}

export function loadWithCodeCache<T>(file: string, env: Env): T {
  const dir = cacheDirectory(env);
  const stat = fs.statSync(file);
  const cacheFile = dir === undefined ? undefined : path.join(dir, `agent-${process.version}-${process.arch}-${stat.size}-${Math.round(stat.mtimeMs)}.cache`);
  let cachedData: Buffer | undefined;
  try {
    // Only a regular file of this user's, not a link.
    const entry = cacheFile === undefined ? undefined : fs.lstatSync(cacheFile);
    if (entry?.isFile() === true && (typeof process.getuid !== 'function' || entry.uid === process.getuid())) cachedData = fs.readFileSync(cacheFile!);
  } catch {
    // first process of this build and Node.js version
  }
  const script = new vm.Script(wrappedSource(file), { filename: file, ...(cachedData !== undefined ? { cachedData } : {}) });
  const module = { exports: {} as T, id: file, filename: file, loaded: false };
  const wrapper = script.runInThisContext() as (exports: T, require: NodeRequire, module: { exports: T }, filename: string, dirname: string) => void;
  wrapper.call(module.exports, module.exports, createRequire(file), module, file, path.dirname(file));
  module.loaded = true;
  if (cacheFile !== undefined && (cachedData === undefined || script.cachedDataRejected === true)) {
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
