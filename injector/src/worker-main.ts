/** The worker threads' entry (dist/worker.js): a profiler for this thread, when the main thread's agent asked for one. */
import { loadNativeProfiler } from './profiling/native/load';
import { startWorkerProfiling, type WorkerProfilingHandle } from './profiling/workers/worker-side';

export function start(): WorkerProfilingHandle | undefined {
  return startWorkerProfiling(loadNativeProfiler);
}
