/**
 * The one place that drives @datadog/pprof's native time profiler: start,
 * periodic collect (stop + restart), final stop, and the context calls made
 * while it runs. Every call is guarded so a hook firing after the profiler
 * stopped, or a native error, never reaches the app.
 */
import type { Profile } from 'pprof-format';
import type { ContextMode, ProfilerContextTarget } from './context-follower';

/** The subset of @datadog/pprof this agent uses, so tests and fallbacks can pass their own. */
export interface PprofModule {
  time: {
    start(options: Record<string, unknown>): void;
    stop(restart?: boolean, generateLabels?: (arg: { node: unknown; context?: TimeSampleContext }) => Record<string, string | number>): Profile;
    /** stop() that serialises from inside the native callback, without a JS copy of the V8 profile tree. */
    stopV2?(restart?: boolean, generateLabels?: (arg: { node: unknown; context?: TimeSampleContext }) => Record<string, string | number>): Profile;
    setContext(context?: object): void;
    runWithContext<R>(context: object, fn: () => R): R;
    /** CPED: runs fn in a frame whose samples carry no context, making nothing native (the agent's build adds it; see build.mjs). */
    runWithoutContext?<R>(fn: () => R): R;
    isStarted(): boolean;
    /** After a collection: 1 or 2 when V8's profiler thread looked stuck (the profiler then restarted itself). */
    v8ProfilerStuckEventLoopDetected?(): number;
  };
  heap: {
    start(intervalBytes: number, stackDepth: number): void;
    stop(): void;
    profile(): Profile;
  };
}

interface TimeSampleContext {
  context?: unknown;
}

export interface SpanProfilerOptions {
  samplingIntervalMicros: number;
  collectCpuTime: boolean;
  heapSamplingIntervalBytes: number;
  mode: ContextMode;
  /** How often the profile is collected: the native profiler sizes its buffers from it. */
  collectEveryMs: number;
  /** Told once when V8's profiler thread was seen stuck and the safer, slower collection took over. */
  onV8Bug?: () => void;
}

export type LabelsOfContext = (context: unknown) => Record<string, string>;

const NO_LABELS: Record<string, string> = Object.freeze({}) as Record<string, string>;
/** "No span" in a CPED frame where the profiler has no runWithoutContext: runWithContext needs an object. */
const EMPTY_CONTEXT = Object.freeze({});
const HEAP_STACK_DEPTH = 64;

export class SpanProfiler implements ProfilerContextTarget {
  private started = false;
  private heapStarted = false;
  /**
   * @datadog/pprof's workaround for a V8 bug (its profiler thread stuck in a loop, eating a core,
   * giving empty profiles) waits for a profiler tick before and after each restart: one sampling
   * interval, 10-20 ms at 100 Hz, with the main thread blocked at every collection. Off, a
   * collection blocks under a millisecond in the native part; the profiler still detects the bug
   * at each collection and restarts itself, and from then on this process collects with the
   * workaround on.
   */
  private workaroundV8Bug = false;
  private readonly generateLabels: (arg: { node: unknown; context?: TimeSampleContext }) => Record<string, string>;

  constructor(
    private readonly pprof: PprofModule,
    private readonly options: SpanProfilerOptions,
    labelsOf: LabelsOfContext,
  ) {
    this.generateLabels = ({ context }) => {
      const value = context?.context;
      return value === undefined || value === EMPTY_CONTEXT ? NO_LABELS : labelsOf(value);
    };
  }

  /** Read on every async hop and context switch: a plain field, no call into the native module. */
  get running(): boolean {
    return this.started;
  }

  start(): void {
    if (this.started) return;
    this.startTime();
    this.started = true;
    // @datadog/pprof stops itself in an 'exit' listener; ours runs before every other one, so no
    // context call made by a later exit listener reaches a stopped profiler (which would throw).
    process.prependOnceListener('exit', () => (this.started = false));
    if (this.options.heapSamplingIntervalBytes > 0) {
      this.pprof.heap.start(this.options.heapSamplingIntervalBytes, HEAP_STACK_DEPTH);
      this.heapStarted = true;
    }
  }

  private startTime(): void {
    this.pprof.time.start({
      intervalMicros: this.options.samplingIntervalMicros,
      // Sizes the native profiler's buffers (duration / interval entries): "forever" overflowed into
      // a std::bad_alloc abort at 1 kHz. Twice the collection period leaves room for a late collection.
      durationMillis: Math.max(60_000, 2 * this.options.collectEveryMs),
      withContexts: true,
      collectCpuTime: this.options.collectCpuTime,
      useCPED: this.options.mode === 'cped',
      lineNumbers: false,
      workaroundV8Bug: this.workaroundV8Bug,
    });
  }

  /** The time profile since the last collect; the profiler keeps running. */
  collect(): Profile | undefined {
    if (!this.started) return undefined;
    const time = this.pprof.time;
    // The lazy path serialises without first copying the V8 profile tree into JS objects.
    const profile = time.stopV2 ? time.stopV2(true, this.generateLabels) : time.stop(true, this.generateLabels);
    if (!this.workaroundV8Bug && (time.v8ProfilerStuckEventLoopDetected?.() ?? 0) > 0) {
      this.workaroundV8Bug = true;
      time.stop(false);
      this.startTime();
      this.options.onV8Bug?.();
    }
    return profile;
  }

  /** A heap snapshot of sampled live allocations, when heap profiling is on. */
  heapProfile(): Profile | undefined {
    return this.heapStarted ? this.pprof.heap.profile() : undefined;
  }

  /** The last time profile; context calls made after this are ignored. */
  stop(): Profile | undefined {
    if (!this.started) return undefined;
    this.started = false;
    if (this.heapStarted) {
      this.heapStarted = false;
      this.pprof.heap.stop();
    }
    return this.pprof.time.stop(false, this.generateLabels);
  }

  /**
   * hooks mode. "No span" clears the profiler's context: each object it is given becomes a V8
   * global handle (and a shared pointer) in the native profiler, and "no span" needs none.
   */
  setContext(labels: object | undefined): void {
    if (this.running) this.pprof.time.setContext(labels);
  }

  /** cped mode. "No span" makes no native holder where the profiler can run without one. */
  runWithContext<R>(labels: object | undefined, fn: () => R): R {
    if (!this.running) return fn();
    const time = this.pprof.time;
    if (labels === undefined && time.runWithoutContext !== undefined) return time.runWithoutContext(fn);
    return time.runWithContext(labels ?? EMPTY_CONTEXT, fn);
  }
}
