/**
 * Entry point: `node --require <agent>/register.js app.js`.
 *
 * Deliberately tiny. Preloads also run in worker threads (Node's own ES module
 * loader thread among them), and this file decides, before anything large is
 * parsed, whether the agent (agent.js, the bundle) loads at all: once per
 * process, in the main thread. No error escapes into the app.
 */
import { isMainThread } from 'node:worker_threads';
import type { AgentHandle } from './agent';

const LOADED = Symbol.for('spanprofiling.io/agent');
type Global = typeof globalThis & { [LOADED]?: AgentHandle | 'failed' };

const g = globalThis as Global;
if (g[LOADED] === undefined && isMainThread) {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const agent = require('./agent.js') as typeof import('./main');
    g[LOADED] = agent.start();
  } catch (err) {
    g[LOADED] = 'failed';
    try {
      process.stderr.write(`[span-profiling] error: the agent did not start, the app runs without it: ${err instanceof Error ? err.stack : String(err)}\n`);
    } catch {
      // nothing left to report to
    }
  }
}
