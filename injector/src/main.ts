/**
 * The agent proper, bundled as dist/agent.js and loaded by dist/register.js
 * in the main thread only (see register.ts).
 */
import { startAgent, type AgentHandle, type NativeProfiler } from './agent';
import type { PprofModule } from './profiler';

function loadNativeProfiler(): NativeProfiler {
  // Required lazily: on a runtime with no matching prebuild this throws and the agent falls back to tracing only.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pprof = require('@datadog/pprof') as PprofModule & { isAsyncContextFrameActive?: () => boolean };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const acf = require('@datadog/pprof/out/src/async-context-frame') as { isAsyncContextFrameActive(): boolean };
  return { pprof, asyncContextFrameActive: () => acf.isAsyncContextFrameActive() };
}

export function start(): AgentHandle {
  return startAgent({ env: process.env, loadNativeProfiler });
}
