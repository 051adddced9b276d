/**
 * Entry point: `node --require <agent>/register.js app.js`.
 *
 * Loads once per process even when required twice (NODE_OPTIONS and the
 * command line may both name it), and never lets an error escape into the app.
 */
import { isMainThread } from 'node:worker_threads';
import { startAgent, type AgentHandle, type NativeProfiler } from './agent';
import type { PprofModule } from './profiler';

const LOADED = Symbol.for('spanprofiling.io/agent');
type Global = typeof globalThis & { [LOADED]?: AgentHandle | 'failed' };

function loadNativeProfiler(): NativeProfiler {
  // Required lazily: on a runtime with no matching prebuild this throws and the agent falls back to tracing only.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pprof = require('@datadog/pprof') as PprofModule;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const acf = require('@datadog/pprof/out/src/async-context-frame') as { isAsyncContextFrameActive(): boolean };
  return { pprof, asyncContextFrameActive: () => acf.isAsyncContextFrameActive() };
}

const g = globalThis as Global;
// Preloads also run in worker threads, Node's own module-loader thread among them; the agent serves the main thread.
if (g[LOADED] === undefined && isMainThread) {
  try {
    g[LOADED] = startAgent({ env: process.env, loadNativeProfiler });
  } catch (err) {
    g[LOADED] = 'failed';
    try {
      process.stderr.write(`[span-profiling] error: the agent did not start, the app runs without it: ${err instanceof Error ? err.stack : String(err)}\n`);
    } catch {
      // nothing left to report to
    }
  }
}
