/**
 * ES module apps: OpenTelemetry instruments `import`ed packages through
 * import-in-the-middle's loader hook, which must be registered before the
 * app's entry module loads. From a --require preload that is early enough.
 *
 * import-in-the-middle is shipped as real files beside the bundle (not
 * bundled): the loader's generated wrappers and the instrumentations' Hook()
 * calls must share one copy of its registry module.
 */
import * as nodeModule from 'node:module';
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
