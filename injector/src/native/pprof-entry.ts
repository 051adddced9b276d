/**
 * The native profiler as one file of its own in the agent bundle. It sits at
 * `pprof/out/src/index.js` next to `pprof/prebuilds/`, the layout
 * @datadog/pprof's loader expects, so it finds the `.node` file for this
 * runtime without the app's node_modules.
 */
export * from '@datadog/pprof';
export { isAsyncContextFrameActive } from '@datadog/pprof/out/src/async-context-frame';
