/**
 * Worker threads, the worker's side: loaded by the preload in a worker thread
 * when the main thread's agent profiles (it left its settings in
 * worker_threads' environment data). Runs the native time profiler in this
 * thread, labels its samples with the span that dispatched the message being
 * handled, and sends its profiles to the main thread, which uploads them.
 *
 * Attribution: a thread starts in the span that created it (the main thread
 * leaves the creating span's labels in the environment data the new thread is
 * given: a `new Worker(file, { workerData })` per request is that request's
 * work). Every message the main thread posts to a profiled thread is preceded
 * on its port by a task marker (main-side.ts) with the posting span's labels, or
 * none. The marker is taken out here, before the app's listeners or
 * `receiveMessageOnPort` could see it, and the next message on that port makes
 * the marker's span the thread's profiler context until another marked message
 * arrives. An unmarked message (posted before the main thread heard this
 * thread's hello, or by another thread) leaves the context as it is: a pool
 * thread started for a task keeps that task's span. A worker that handles one
 * message at a time (a plain `Worker` loop, piscina's one task per worker) has
 * each task's CPU on the span that dispatched it.
 *
 * Collection runs on an unref'd timer, and also when a message arrives and an
 * interval has passed: piscina's workers wait for tasks in `Atomics.wait`,
 * where no timer ever fires. The profile goes to the main thread unshaped and
 * is merged into the process's own at its next upload. The last interval is
 * sent when the thread exits on its own; a thread ended by
 * `worker.terminate()` runs no exit listener, so the main thread asks it to
 * send its last interval first, through the inspector (main-side.ts), which
 * reaches a thread even while it computes or waits in `Atomics.wait`.
 */
import * as workerThreads from 'node:worker_threads';
import { syncBuiltinESMExports } from 'node:module';
import type { Profile } from 'pprof-format';
import { encodeProfile } from '../pprof-encode';
import { findSampleType } from '../pprof-shape';
import { SpanProfiler } from '../profiler';
import type { NativeProfiler } from '../loop';
import { WORKER_FLUSH, WORKER_PROFILING_KEY, WORKER_SPAN_KEY, isTaskMarker, type WorkerMessage, type WorkerProfilingSettings } from './main-side';

const HYBRID_DISPATCH = Symbol.for('nodejs.internal.kHybridDispatch');

type Labels = Record<string, string>;
type Dispatch = (this: workerThreads.MessagePort, data: unknown, type: string, event: unknown) => unknown;

export interface WorkerProfilingHandle {
  /** Collects and sends what was sampled so far. */
  flush(): void;
  stop(): void;
}

/** Starts profiling this worker thread; undefined when the main thread does not profile, or it cannot start. */
export function startWorkerProfiling(loadNativeProfiler: () => NativeProfiler): WorkerProfilingHandle | undefined {
  if (workerThreads.isMainThread) return undefined;
  const settings = workerThreads.getEnvironmentData(WORKER_PROFILING_KEY) as WorkerProfilingSettings | undefined;
  if (settings === undefined || settings === null || settings.version !== 1) return undefined;
  return new WorkerProfiling(settings, loadNativeProfiler).start();
}

class WorkerProfiling implements WorkerProfilingHandle {
  private profiler: SpanProfiler | undefined;
  private timer: NodeJS.Timeout | undefined;
  private nextCollect = 0;
  /** The marker that arrived last on each port, for the message that follows it (null: no span). */
  private readonly pending = new WeakMap<object, Labels | null>();
  private current: Labels | undefined;
  private readonly threadName: string;
  private readonly restore: (() => void)[] = [];

  constructor(
    private readonly settings: WorkerProfilingSettings,
    private readonly loadNativeProfiler: () => NativeProfiler,
  ) {
    const named = (workerThreads as { threadName?: unknown }).threadName;
    this.threadName = typeof named === 'string' && named !== '' && named !== 'WorkerThread' ? named : 'worker';
  }

  start(): this | undefined {
    const native = this.loadNativeProfiler();
    // One global context per thread (no async context frames): a worker's context is the task it handles.
    const profiler = new SpanProfiler(native.pprof, { samplingIntervalMicros: this.settings.samplingIntervalMicros, collectCpuTime: this.settings.collectCpuTime, heapSamplingIntervalBytes: 0, mode: 'hooks', collectEveryMs: this.settings.uploadIntervalMs }, (value) => value as Labels);
    this.filterMarkers();
    profiler.start();
    this.profiler = profiler;
    this.enter(creatingSpan());
    this.nextCollect = Date.now() + this.settings.uploadIntervalMs;
    // What the main thread calls through the inspector before it terminates this thread, and at its own end.
    Object.defineProperty(globalThis, WORKER_FLUSH, { configurable: true, enumerable: false, writable: true, value: (final: boolean) => (final ? this.last() : this.flush()) });
    this.restore.push(() => delete (globalThis as Record<symbol, unknown>)[WORKER_FLUSH]);
    this.post({ kind: 'hello', threadId: workerThreads.threadId });
    this.timer = setInterval(() => this.flush(), this.settings.uploadIntervalMs);
    this.timer.unref();
    // Before @datadog/pprof's own exit listener stops the profiler (without the last profile).
    process.prependOnceListener('exit', () => this.stop());
    return this;
  }

  /** Takes task markers out of every port's messages, and enters each message's span. */
  private filterMarkers(): void {
    const proto = workerThreads.MessagePort.prototype as unknown as Record<symbol, Dispatch>;
    const dispatch = proto[HYBRID_DISPATCH];
    if (typeof dispatch === 'function') {
      const self = this;
      const own = Object.getOwnPropertyDescriptor(proto, HYBRID_DISPATCH);
      Object.defineProperty(proto, HYBRID_DISPATCH, {
        configurable: true,
        writable: true,
        value: function (this: workerThreads.MessagePort, data: unknown, type: string, event: unknown): unknown {
          if (type === 'message' && self.received(this, data)) return undefined;
          return dispatch.call(this, data, type, event);
        },
      });
      this.restore.push(() => (own === undefined ? delete proto[HYBRID_DISPATCH] : Object.defineProperty(proto, HYBRID_DISPATCH, own)));
    }
    // The module's own exports object (a bundler's namespace copy of it would take the assignment for nothing).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const moduleExports = require('node:worker_threads') as Record<string, unknown>;
    const receive = workerThreads.receiveMessageOnPort;
    const filtered = (port: workerThreads.MessagePort): { message: unknown } | undefined => {
      let entry = receive(port);
      while (entry !== undefined && this.received(port, entry.message)) entry = receive(port);
      return entry;
    };
    try {
      moduleExports['receiveMessageOnPort'] = filtered;
      syncBuiltinESMExports();
      this.restore.push(() => {
        if (moduleExports['receiveMessageOnPort'] === filtered) moduleExports['receiveMessageOnPort'] = receive;
        syncBuiltinESMExports();
      });
    } catch {
      // not writable: messages read this way are not labelled (markers are only sent to threads that said hello)
    }
  }

  /** A message arrived on `port`: true when it was a marker (taken out), otherwise its span is entered. */
  private received(port: object, data: unknown): boolean {
    try {
      if (isTaskMarker(data)) {
        const labels = data.labels;
        this.pending.set(port, labels !== null && typeof labels === 'object' ? labels : null);
        return true;
      }
      const labels = this.pending.get(port);
      if (labels !== undefined) {
        this.pending.delete(port);
        this.enter(labels ?? undefined);
      }
      if (Date.now() >= this.nextCollect) this.flush();
    } catch {
      // the message goes on unlabelled
    }
    return false;
  }

  private enter(labels: Labels | undefined): void {
    if (labels === this.current) return;
    this.current = labels;
    try {
      this.profiler?.setContext(labels);
    } catch {
      // the profiler stopped
    }
  }

  flush(): void {
    try {
      const profiler = this.profiler;
      if (profiler === undefined || !profiler.running) return;
      this.ship(profiler.collect(), false);
    } catch {
      // one interval lost
    }
  }

  /**
   * The last interval, just before the main thread terminates this thread: the profiler stops, and
   * markers are still taken out (the thread may read a message or two before the end comes).
   */
  private last(): void {
    const profiler = this.profiler;
    this.profiler = undefined;
    clearInterval(this.timer);
    try {
      if (profiler?.running) this.ship(profiler.stop(), true);
    } catch {
      // the last interval lost
    }
  }

  stop(): void {
    this.last();
    for (const undo of this.restore.splice(0)) undo();
  }

  private ship(time: Profile | undefined, final: boolean): void {
    this.nextCollect = Date.now() + this.settings.uploadIntervalMs;
    if (time === undefined || time.sample.length === 0) {
      if (final) this.post({ kind: 'bye', threadId: workerThreads.threadId });
      return;
    }
    const cpuIndex = findSampleType(time, 'cpu', 'nanoseconds');
    let cpuNanos = 0;
    if (cpuIndex !== undefined) for (const sample of time.sample) cpuNanos += Number(sample.value[cpuIndex] ?? 0);
    this.post({ kind: 'profile', threadId: workerThreads.threadId, threadName: this.threadName, pprof: encodeProfile(time), cpuNanos, final });
  }

  /**
   * To the main thread. A channel is open only while posting: every open channel of a name gets
   * every message posted to it, so channels left open in each worker would copy all the other
   * workers' profiles into each of them.
   */
  private post(message: WorkerMessage): void {
    let channel: workerThreads.BroadcastChannel | undefined;
    try {
      channel = new workerThreads.BroadcastChannel(this.settings.channel);
      channel.postMessage(message);
    } catch {
      // the main thread is gone
    } finally {
      channel?.close();
    }
  }
}

/** The labels of the span that created this thread, if the main thread left them. */
function creatingSpan(): Labels | undefined {
  try {
    const labels = workerThreads.getEnvironmentData(WORKER_SPAN_KEY) as Labels | undefined;
    return labels !== null && typeof labels === 'object' ? labels : undefined;
  } catch {
    return undefined;
  }
}
