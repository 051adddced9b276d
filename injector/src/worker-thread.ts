/**
 * Worker threads, the worker's side: loaded by the preload in a worker thread
 * when the main thread's agent profiles (it left its settings in
 * worker_threads' environment data). Runs the native time profiler in this
 * thread, labels its samples with the span that dispatched the message being
 * handled, and sends its profiles to the main thread, which uploads them.
 *
 * Attribution: a message the main thread posted while a span was active is
 * preceded on its port by a task marker (workers.ts). The marker is taken out
 * here, before the app's listeners or `receiveMessageOnPort` could see it, and
 * the next message on that port makes the marker's span the thread's profiler
 * context until another message arrives. A worker that handles one message at
 * a time (a plain `Worker` loop, piscina's default of one task per worker) has
 * each task's CPU on the span that dispatched it.
 *
 * Collection runs on an unref'd timer, and also when a message arrives and an
 * interval has passed: piscina's workers wait for tasks in `Atomics.wait`,
 * where no timer ever fires. The last interval is sent when the thread exits
 * on its own; `worker.terminate()` ends a thread without its exit listeners,
 * so that interval is lost.
 */
import * as workerThreads from 'node:worker_threads';
import { syncBuiltinESMExports } from 'node:module';
import type { Profile } from 'pprof-format';
import { isAgentCode, shapeTimeProfile } from './pprof-shape';
import { SpanProfiler } from './profiler';
import type { NativeProfiler } from './profiling-loop';
import { WORKER_PROFILING_KEY, isTaskMarker, type WorkerMessage, type WorkerProfilingSettings } from './workers';

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
  private windowStart = Date.now();
  private nextCollect = 0;
  /** The marker that arrived last on each port, for the message that follows it. */
  private readonly pending = new WeakMap<object, Labels>();
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
    this.windowStart = Date.now();
    this.nextCollect = this.windowStart + this.settings.uploadIntervalMs;
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
        if (labels !== null && typeof labels === 'object') this.pending.set(port, labels);
        return true;
      }
      const labels = this.pending.get(port);
      if (labels !== undefined) this.pending.delete(port);
      this.enter(labels);
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
      this.ship(profiler.collect());
    } catch {
      // one interval lost
    }
  }

  stop(): void {
    const profiler = this.profiler;
    this.profiler = undefined;
    clearInterval(this.timer);
    try {
      if (profiler?.running) this.ship(profiler.stop());
    } catch {
      // the last interval lost
    }
    for (const undo of this.restore.splice(0)) undo();
  }

  private ship(time: Profile | undefined): void {
    const untilMs = Date.now();
    const fromMs = this.windowStart;
    this.windowStart = untilMs;
    this.nextCollect = untilMs + this.settings.uploadIntervalMs;
    if (time === undefined) return;
    const shaped = shapeTimeProfile(time, { ownCode: isAgentCode, labels: { thread_name: this.threadName } });
    let cpuNanos = 0;
    for (const part of shaped.cpu) for (const sample of part.sample) cpuNanos += Number(sample.value[0] ?? 0);
    const pprofs = [...shaped.cpu, ...shaped.wall].map((part) => part.encode());
    if (pprofs.length === 0) return;
    this.post({ kind: 'profile', threadId: workerThreads.threadId, pprofs, fromMs, untilMs, cpuNanos });
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
