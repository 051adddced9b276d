/**
 * ES module apps: OpenTelemetry instruments `import`ed packages through
 * import-in-the-middle's loader hook, which must be registered before the
 * app's entry module loads. From a --require preload that is early enough.
 *
 * The loader runs in a thread of its own that costs a few hundred milliseconds
 * of start-up, so by default it is registered only for apps that load ES
 * modules: an entry point that is one (`.mjs`, or `.js` under `"type":
 * "module"`), or a CommonJS app one of whose dependencies is an ES module
 * package (NestJS 12 is one: its express adapter `import`s express, which
 * then never passes through `require` and is not instrumented without the
 * hook). SPANPROFILING_ESM_HOOKS=true|false overrides the guess.
 *
 * import-in-the-middle is shipped as real files beside the bundle (not
 * bundled): the loader's generated wrappers and the instrumentations' Hook()
 * calls must share one copy of its registry module.
 */
import { readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from '../shared/log';
import { describeError } from '../shared/log';

type Register = (specifier: string, parentURL: string) => void;

export function registerEsmHooks(log: Logger): boolean {
  const register = (nodeModule as unknown as { register?: Register }).register;
  if (typeof register !== 'function') {
    log.debug(`Node ${process.version} has no module.register: ES module packages are not instrumented (CommonJS ones are)`);
    return false;
  }
  try {
    const hook = require.resolve('import-in-the-middle/hook.mjs');
    register(pathToFileURL(hook).href, pathToFileURL(__filename).href);
    return true;
  } catch (err) {
    log.warn(`ES module instrumentation is off: ${describeError(err)}`);
    return false;
  }
}

type ReadFile = (file: string) => string;
const readUtf8: ReadFile = (f) => readFileSync(f, 'utf8');
/** Dependencies looked at, at most: the check reads one small file per dependency at start-up. */
const MAX_DEPENDENCIES = 300;

/** Whether the entry script is an ES module, as Node decides it: by extension, then the nearest package.json "type". */
export function isEsModuleEntry(entry: string | undefined, readFile: ReadFile = readUtf8): boolean {
  if (entry === undefined || entry === '') return false;
  const ext = path.extname(entry);
  if (ext === '.mjs' || ext === '.mts') return true;
  if (ext === '.cjs' || ext === '.cts') return false;
  return nearestPackage(entry, readFile)?.pkg.type === 'module';
}

/**
 * Why the app loads ES modules, or undefined when nothing says it does: its
 * entry is one, or a dependency its package.json lists is an ES module package
 * (`"type": "module"`, found where Node would: node_modules upwards).
 */
export function esModulesReason(entry: string | undefined, readFile: ReadFile = readUtf8): string | undefined {
  if (isEsModuleEntry(entry, readFile)) return 'its entry is an ES module';
  if (entry === undefined || entry === '') return undefined;
  const app = nearestPackage(entry, readFile);
  const dependencies = app?.pkg.dependencies;
  if (app === undefined || dependencies === null || typeof dependencies !== 'object') return undefined;
  for (const name of Object.keys(dependencies).slice(0, MAX_DEPENDENCIES)) {
    for (let dir = app.dir; ; dir = path.dirname(dir)) {
      const pkg = readJson(path.join(dir, 'node_modules', name, 'package.json'), readFile);
      if (pkg !== undefined) {
        if (pkg.type === 'module') return `its dependency ${name} is an ES module package`;
        break;
      }
      if (path.dirname(dir) === dir) break;
    }
  }
  return undefined;
}

interface PackageJson {
  type?: unknown;
  dependencies?: unknown;
}

function readJson(file: string, readFile: ReadFile): PackageJson | undefined {
  try {
    const pkg = JSON.parse(readFile(file)) as unknown;
    return pkg !== null && typeof pkg === 'object' ? (pkg as PackageJson) : undefined;
  } catch {
    return undefined;
  }
}

/** The nearest (readable) package.json above a file, as Node looks for its "type". */
function nearestPackage(file: string, readFile: ReadFile): { dir: string; pkg: PackageJson } | undefined {
  for (let dir = path.dirname(path.resolve(file)); ; dir = path.dirname(dir)) {
    const pkg = readJson(path.join(dir, 'package.json'), readFile);
    if (pkg !== undefined) return { dir, pkg };
    if (path.dirname(dir) === dir) return undefined;
  }
}
