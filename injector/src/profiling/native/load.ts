/**
 * Loads the native profiler. The agent's build maps `@datadog/pprof` to its
 * own bundle beside agent.js (see pprof-entry.ts); the npm package's build
 * maps it to the same entry, which then loads the installed @datadog/pprof.
 */
import type { NativeProfiler } from '../loop';
import type { PprofModule } from '../profiler';

type PprofEntry = typeof import('./pprof-entry');

/** Throws when no prebuild fits this runtime (the caller then goes on without profiling). */
export function loadNativeProfiler(): NativeProfiler {
  // Required lazily: on a runtime with no matching prebuild this throws.
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
