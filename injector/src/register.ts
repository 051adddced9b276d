/**
 * Entry point: `node --require <agent>/register.js app.js`.
 *
 * Deliberately tiny. Preloads also run in worker threads (Node's own ES module
 * loader thread among them) and in package-manager and tool processes (`npm
 * start` runs npm itself under the pod's NODE_OPTIONS), and this file decides,
 * before anything large is parsed, whether the agent (agent.js, the bundle)
 * loads at all: once per process, in the main thread, not in a tool
 * (lifecycle/tools.ts). In a worker thread, only the worker's small profiler loads
 * (worker.js), and only when the main thread's agent profiles (it leaves its
 * settings in worker_threads' environment data for the workers it sees
 * created). No error escapes into the app.
 */
import * as workerThreads from 'node:worker_threads';
import { WORKER_PROFILING_KEY } from './profiling/workers/main-side';
import type { AgentHandle } from './agent';
import { loadWithCodeCache } from './lifecycle/code-cache';
import { toolName } from './lifecycle/tools';

const LOADED = Symbol.for('spanprofiling.io/agent');
type Global = typeof globalThis & { [LOADED]?: AgentHandle | 'failed' | 'skipped' };

const g = globalThis as Global;
if (g[LOADED] === undefined && !workerThreads.isMainThread) {
  try {
    // Node's own threads (the ES module loader's hooks thread) have no parent port: left alone.
    const internal = workerThreads.parentPort === null || (workerThreads as { isInternalThread?: boolean }).isInternalThread === true;
    if (!internal && workerThreads.getEnvironmentData(WORKER_PROFILING_KEY) != null) {
      g[LOADED] = 'skipped';
      (require(require('node:path').join(__dirname, 'worker.js')) as typeof import('./worker-main')).start();
    }
  } catch (err) {
    try {
      process.stderr.write(`[span-profiling] error: this worker thread is not profiled: ${err instanceof Error ? err.message : String(err)}\n`);
    } catch {
      // nothing left to report to
    }
  }
} else if (g[LOADED] === undefined) {
  try {
    const tool = toolName(process.argv[1], process.env);
    if (tool !== undefined) {
      g[LOADED] = 'skipped';
      if (/^debug$/i.test(process.env['PYROSCOPE_LOG_LEVEL'] ?? '')) {
        process.stderr.write(`[span-profiling] debug: not starting in ${tool}, a tool process (SPANPROFILING_SKIP_TOOLS)\n`);
      }
    } else {
      const agent = loadWithCodeCache<typeof import('./main')>(require('node:path').join(__dirname, 'agent.js'), process.env);
      g[LOADED] = agent.start();
    }
  } catch (err) {
    g[LOADED] = 'failed';
    try {
      process.stderr.write(`[span-profiling] error: the agent did not start, the app runs without it: ${err instanceof Error ? err.stack : String(err)}\n`);
    } catch {
      // nothing left to report to
    }
  }
}
