/**
 * The agent proper, bundled as dist/agent.js and loaded by dist/register.js
 * in the main thread only (see register.ts).
 */
import { startAgent, type AgentHandle } from './agent';
import { loadNativeProfiler } from './profiling/native/load';

export function start(): AgentHandle {
  return startAgent({ env: process.env, loadNativeProfiler });
}
