/**
 * The native profiler as one file of its own in the agent bundle. It sits at
 * `pprof/out/src/index.js` next to `pprof/prebuilds/`, the layout
 * @datadog/pprof's loader expects, so it finds the `.node` file for this
 * runtime without the app's node_modules.
 *
 * Only the time profiler loads up front; the heap profiler (and what it pulls
 * in) loads when heap profiling is on.
 */
export * as time from '@datadog/pprof/out/src/time-profiler';
export { isAsyncContextFrameActive } from '@datadog/pprof/out/src/async-context-frame';

export function loadHeapProfiler(): typeof import('@datadog/pprof/out/src/heap-profiler') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('@datadog/pprof/out/src/heap-profiler') as typeof import('@datadog/pprof/out/src/heap-profiler');
}
