/**
 * The profiling side of the agent over time: load and start the native
 * profiler, collect and ship a profile every upload interval, and a last one
 * at shutdown. Failures turn profiling off (with one warning) or lose one
 * profile; they never reach the app.
 */
import { ROOT_CONTEXT, context as otelContext } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { Profile } from 'pprof-format';
import type { AgentConfig } from '../shared/config';
import { describeError, type Logger } from '../shared/log';
import { encodeProfile } from './pprof-encode';
import { creditNonJsThreads, emptyTimeProfile, isAgentCode, mergeTimeProfile, shapeHeapProfile, shapeTimeProfile } from './pprof-shape';
import { WorkerDispatch } from './workers/main-side';
import { isMainThread } from 'node:worker_threads';
import { SpanProfiler, type PprofModule } from './profiler';
import type { ContextMode, ProfilerContextFollower } from './context-follower';
import { SpanLabels, type SpanProfileLinker } from './span-link';
import { PyroscopeUploader, type Send } from '../export/pyroscope';

export interface NativeProfiler {
  pprof: PprofModule;
  /** Whether AsyncLocalStorage is backed by AsyncContextFrame in this process. */
  asyncContextFrameActive(): boolean;
}

export interface ProfilingDeps {
  /** Loads the native profiler; throws when no prebuild fits this runtime. */
  loadNativeProfiler: () => NativeProfiler;
  send?: Send;
}

const SHAPE = { ownCode: isAgentCode };

/** A turn of the event loop: profiles the threads posted while answering have arrived. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(() => setImmediate(resolve)));

/** The agent's own work (serialising, uploading) is neither traced nor attributed to a span. */
const quietly = <T>(fn: () => T): T => otelContext.with(suppressTracing(ROOT_CONTEXT), fn);

/**
 * Long enough for the event-loop turns a script's own start-up causes (the
 * resource detectors' file reads) to pass, short against any server's start.
 */
export const PROFILER_START_DELAY_MS = 20;

export class ProfilingLoop {
  private profiler: SpanProfiler | undefined;
  private uploader: PyroscopeUploader | undefined;
  private timer: NodeJS.Timeout | undefined;
  private windowStart = Date.now();
  private stopped = false;
  /** A deferred start not yet made. */
  private pending = false;
  /** Worker threads' profiles and the spans that dispatch work to them (main thread only). */
  private workers: WorkerDispatch | undefined;
  /** What worker threads sent since the last collection, merged into one profile (each sample with its thread's name). */
  private workerTime: Profile | undefined;
  /** CPU worker threads reported since the last collection, to take out of "Non JS threads activity". */
  private workerCpuNanos = 0;
  private workerCpuReported = 0;
  /** The series set before the uploader existed (the profiler starts deferred). */
  private service: { name: string; labels: Record<string, string> } | undefined;

  constructor(
    private readonly config: AgentConfig['profiling'],
    private readonly deps: ProfilingDeps,
    private readonly log: Logger,
    private readonly linker: SpanProfileLinker,
    private readonly follower: ProfilerContextFollower,
  ) {}

  get running(): boolean {
    return this.profiler?.running === true;
  }

  /**
   * Loads and starts the native profiler. Returns false (after one warning) when it cannot.
   * With `deferred`, loading the profiler and starting V8's sampler (together about 35 ms)
   * happen at the first span (startNow()) or a moment after start-up (PROFILER_START_DELAY_MS,
   * an unref'd timer), whichever comes first: a process that ends without either (a script, a
   * package-manager step) never pays for them.
   */
  start(deferred = false): boolean {
    if (this.stopped || this.profiler !== undefined) return this.running;
    // Before the app's code runs, so that the workers it creates at start-up (a pool) are profiled.
    this.startWorkers();
    if (!deferred) return this.begin();
    this.pending = true;
    setTimeout(() => this.startNow(), PROFILER_START_DELAY_MS).unref();
    return true;
  }

  /** Starts a deferred profiler now; whether the profiler runs. */
  startNow(): boolean {
    if (this.pending) {
      this.pending = false;
      try {
        this.begin();
      } catch (err) {
        // From a timer or a span's start: nothing may reach the app.
        this.stopped = true;
        this.stopWorkers();
        this.log.warn(`profiling is off: ${describeError(err)}. Tracing continues.`);
      }
    }
    return this.running;
  }

  private startWorkers(): void {
    const p = this.config;
    if (!p.workerThreads || !isMainThread || this.workers !== undefined) return;
    try {
      const workers = new WorkerDispatch(
        { samplingIntervalMicros: p.workerSamplingIntervalMicros, collectCpuTime: p.collectCpuTime, uploadIntervalMs: p.uploadIntervalMs },
        () => {
          if (this.profiler?.running !== true) return undefined;
          const labels = this.linker.labelsFor(otelContext.active());
          return labels === undefined ? undefined : this.linker.toPprofLabels(labels);
        },
        { profile: (pprof, threadName, cpuNanos) => this.addWorkerProfile(pprof, threadName, cpuNanos) },
        this.log,
      );
      if (workers.install()) this.workers = workers;
    } catch (err) {
      this.log.warn(`worker threads are not profiled: ${describeError(err)}`);
    }
  }

  private begin(): boolean {
    if (this.stopped || this.profiler !== undefined) return this.running;
    const p = this.config;
    let native: NativeProfiler;
    try {
      native = this.deps.loadNativeProfiler();
    } catch (err) {
      this.log.warn(
        `profiling is off: no native profiler for Node ${process.version} (ABI ${process.versions.modules}, ${process.platform}-${process.arch}): ` +
          `${describeError(err)}. Tracing continues.`,
      );
      this.stopped = true;
      this.stopWorkers();
      return false;
    }
    let mode: ContextMode;
    try {
      mode = native.asyncContextFrameActive() ? 'cped' : 'hooks';
    } catch {
      mode = 'hooks';
    }
    const profiler = new SpanProfiler(
      native.pprof,
      {
        samplingIntervalMicros: p.samplingIntervalMicros,
        collectCpuTime: p.collectCpuTime,
        heapSamplingIntervalBytes: p.heapSamplingIntervalBytes,
        mode,
        collectEveryMs: p.uploadIntervalMs,
        onV8Bug: () => this.log.warn("V8's profiler thread looked stuck: the profiler restarted, and collects with @datadog/pprof's workaround from now on (10-20 ms of main-thread pause per collection)"),
      },
      (value) => (value instanceof SpanLabels ? this.linker.toPprofLabels(value) : {}),
    );
    try {
      profiler.start();
    } catch (err) {
      this.log.warn(`profiling is off: the profiler did not start: ${describeError(err)}. Tracing continues.`);
      this.stopped = true;
      this.stopWorkers();
      return false;
    }
    this.profiler = profiler;
    this.follower.connectProfiler(profiler, mode);
    this.uploader = new PyroscopeUploader({ ...p, serverAddress: p.serverAddress!, sampleRate: Math.round(1e6 / p.samplingIntervalMicros) }, this.log, this.deps.send);
    if (this.service !== undefined) this.uploader.setService(this.service.name, this.service.labels);
    this.windowStart = Date.now();
    this.timer = setInterval(() => this.flush(), p.uploadIntervalMs);
    this.timer.unref();
    this.log.info(`profiling ${p.applicationName} to ${p.serverAddress} every ${p.uploadIntervalMs}ms (span context: ${mode})`);
    return true;
  }

  /** The series profiles are uploaded under from now on: the service the linked spans belong to. */
  setService(name: string, labels: Record<string, string>): void {
    this.service = { name, labels };
    this.uploader?.setService(name, labels);
  }

  private addWorkerProfile(pprof: Uint8Array, threadName: string, cpuNanos: number): void {
    if (this.stopped && this.profiler === undefined) return;
    try {
      const profile = Profile.decode(pprof);
      this.workerTime ??= emptyTimeProfile(profile);
      mergeTimeProfile(this.workerTime, profile, { thread_name: threadName });
      this.workerCpuNanos += cpuNanos;
      this.workerCpuReported += cpuNanos;
    } catch (err) {
      this.log.debug(`a worker thread's profile was lost: ${describeError(err)}`);
    }
  }

  /** Collects the profile of the interval so far and queues it for upload. */
  flush(): void {
    // Threads idle in Atomics.wait never collect on their own: they are asked, and answer for the next upload.
    void this.workers?.flushThreads(2 * this.config.uploadIntervalMs, this.config.uploadIntervalMs);
    quietly(() => {
      try {
        if (!this.profiler?.running) return;
        const started = performance.now();
        const time = this.profiler.collect();
        const collected = performance.now();
        this.ship(time, this.profiler.heapProfile());
        this.log.debug(`profile: collected in ${(collected - started).toFixed(1)}ms, shaped and queued in ${(performance.now() - collected).toFixed(1)}ms`);
      } catch (err) {
        this.log.warn(`could not collect a profile: ${describeError(err)}`);
      }
    });
  }

  private stopWorkers(): void {
    try {
      this.workers?.uninstall();
    } catch {
      // workers created later may still send profiles; nobody uploads them
    }
    this.workers = undefined;
  }

  /** The last profile, uploaded within the shutdown timeout. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const profiler = this.profiler;
    // Every thread's last interval first (a process's end terminates its threads without their exit listeners).
    if (profiler !== undefined) await this.workers?.flushThreads(0, Math.min(500, this.config.shutdownTimeoutMs / 2)).then(settle, () => undefined);
    this.stopWorkers();
    if (profiler === undefined) return;
    this.follower.disconnectProfiler();
    await quietly(async () => {
      try {
        const heap = profiler.heapProfile();
        this.ship(profiler.stop(), heap);
      } catch (err) {
        this.log.warn(`could not collect the last profile: ${describeError(err)}`);
      }
      await this.uploader?.close(this.config.shutdownTimeoutMs);
    });
  }

  private ship(time: Profile | undefined, heap: Profile | undefined): void {
    const untilMs = Date.now();
    const fromMs = this.windowStart;
    this.windowStart = untilMs;
    const parts: Profile[] = [];
    const workers = this.workerTime;
    this.workerTime = undefined;
    if (time !== undefined) {
      // What workers reported is in their own profiles; what is left over waits for the next window, no longer.
      const left = creditNonJsThreads(time, this.workerCpuNanos);
      this.workerCpuNanos = Math.min(left, this.workerCpuReported);
      this.workerCpuReported = 0;
    }
    // One CPU and one wall profile per interval for the whole process, however many threads came and went.
    const all = time === undefined ? workers : workers === undefined ? time : (mergeTimeProfile(time, workers), time);
    if (all !== undefined) {
      const shaped = shapeTimeProfile(all, SHAPE);
      parts.push(...shaped.cpu, ...shaped.wall);
    }
    if (heap !== undefined) parts.push(...shapeHeapProfile(heap, SHAPE));
    // Encoded now, in the collection's own task: a profile kept across later tasks outlives young collections.
    for (const part of parts) this.uploader?.enqueue({ pprof: encodeProfile(part), fromMs, untilMs });
  }
}
