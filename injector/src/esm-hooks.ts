/**
 * ES module apps: OpenTelemetry instruments `import`ed packages through
 * import-in-the-middle's loader hook, which must be registered before the
 * app's entry module loads. From a --require preload that is early enough.
 *
 * The loader runs in a thread of its own that costs a few hundred milliseconds
 * of start-up, so by default it is registered only for apps whose entry point
 * is an ES module (`.mjs`, or `.js` under `"type": "module"`).
 * SPANPROFILING_ESM_HOOKS=true|false overrides the guess.
 *
 * import-in-the-middle is shipped as real files beside the bundle (not
 * bundled): the loader's generated wrappers and the instrumentations' Hook()
 * calls must share one copy of its registry module.
 */
import { readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from './log';
import { describeError } from './log';

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

/** Whether the entry script is an ES module, as Node decides it: by extension, then the nearest package.json "type". */
export function isEsModuleEntry(entry: string | undefined, readFile: (file: string) => string = (f) => readFileSync(f, 'utf8')): boolean {
  if (entry === undefined || entry === '') return false;
  const ext = path.extname(entry);
  if (ext === '.mjs' || ext === '.mts') return true;
  if (ext === '.cjs' || ext === '.cts') return false;
  for (let dir = path.dirname(path.resolve(entry)); ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFile(path.join(dir, 'package.json'))) as { type?: unknown };
      return pkg.type === 'module';
    } catch {
      // no (readable) package.json here: look further up
    }
    if (path.dirname(dir) === dir) return false;
  }
}
