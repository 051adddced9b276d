/**
 * The agent proper, bundled as dist/agent.js and loaded by dist/register.js
 * in the main thread only (see register.ts).
 */
import { startAgent, type AgentHandle, type NativeProfiler } from './agent';
import type { PprofModule } from './profiler';

type PprofEntry = typeof import('./native/pprof-entry');

function loadNativeProfiler(): NativeProfiler {
  // Required lazily: on a runtime with no matching prebuild this throws and the agent falls back to tracing only.
  // The build maps this name to the profiler's own bundle beside agent.js.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const entry = require('@datadog/pprof') as PprofEntry;
  let heap: ReturnType<PprofEntry['loadHeapProfiler']> | undefined;
  const heapProfiler = () => (heap ??= entry.loadHeapProfiler());
  const pprof: PprofModule = {
    time: entry.time as unknown as PprofModule['time'],
    heap: {
      start: (intervalBytes, stackDepth) => heapProfiler().start(intervalBytes, stackDepth),
      stop: () => heapProfiler().stop(),
      profile: () => heapProfiler().profile(),
    },
  };
  return { pprof, asyncContextFrameActive: () => entry.isAsyncContextFrameActive() };
}

export function start(): AgentHandle {
  return startAgent({ env: process.env, loadNativeProfiler });
}
