/**
 * Carries the active span into profiler samples across `await`, timers,
 * event emitters and promise chains.
 *
 * Two mechanisms, chosen at run time:
 * - `cped`: the runtime keeps AsyncLocalStorage in AsyncContextFrame
 *   (Node 24+, Node 22 with --experimental-async-context-frame). The profiler
 *   reads its context from the continuation-preserved embedder data, so it is
 *   enough to open a profiler frame whenever OpenTelemetry activates a context
 *   with different labels; continuations inherit it.
 * - `hooks`: older runtimes. There is one global profiler context, refreshed
 *   from the active OpenTelemetry context before every async callback runs.
 */
import { createHook, type AsyncHook } from 'node:async_hooks';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import type { Context } from '@opentelemetry/api';

export type ContextMode = 'cped' | 'hooks';

/** The profiler operations this module needs (see profiler.ts). */
export interface ProfilerContextTarget {
  /** Whether samples are being taken now; context calls are skipped otherwise. */
  readonly running: boolean;
  setContext(labels: object | undefined): void;
  runWithContext<R>(labels: object | undefined, fn: () => R): R;
}

export type LabelsOf = (context: Context) => object | undefined;

/**
 * An OpenTelemetry context manager that keeps the profiler's context in step
 * with the active span. Until `connectProfiler` is called it behaves exactly like the
 * stock AsyncLocalStorageContextManager.
 */
export class ProfilingContextManager extends AsyncLocalStorageContextManager {
  private target: ProfilerContextTarget | undefined;
  private mode: ContextMode = 'hooks';
  private hook: AsyncHook | undefined;
  /** hooks mode: what the global profiler context holds now, to skip redundant native calls. */
  private current: object | undefined;

  constructor(private readonly labelsOf: LabelsOf) {
    super();
  }

  connectProfiler(target: ProfilerContextTarget, mode: ContextMode): void {
    this.target = target;
    this.mode = mode;
    if (mode === 'hooks') {
      this.current = undefined;
      this.hook = createHook({ before: () => this.refresh() });
      this.hook.enable();
    }
  }

  disconnectProfiler(): void {
    this.hook?.disable();
    this.hook = undefined;
    this.target = undefined;
  }

  override disable(): this {
    this.disconnectProfiler();
    return super.disable();
  }

  override with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    context: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    const target = this.target;
    if (target === undefined || !target.running) return super.with(context, fn, thisArg, ...args);
    const labels = this.labelsOf(context);

    if (this.mode === 'cped') {
      // A child span under the same local root keeps the inherited frame: no new frame, no allocation.
      if (labels === this.labelsOf(this.active())) return super.with(context, fn, thisArg, ...args);
      return super.with(context, () => target.runWithContext(labels, () => fn.apply(thisArg, args)));
    }

    const previous = this.current;
    this.set(target, labels);
    try {
      return super.with(context, fn, thisArg, ...args);
    } finally {
      this.set(target, previous);
    }
  }

  /** hooks mode: an async callback is about to run in its own context. */
  private refresh(): void {
    // A throw inside an async hook would end the process: nothing may escape.
    try {
      const target = this.target;
      if (target === undefined || !target.running) return;
      this.set(target, this.labelsOf(this.active()));
    } catch {
      // the sample keeps the previous context
    }
  }

  private set(target: ProfilerContextTarget, labels: object | undefined): void {
    if (labels === this.current) return;
    this.current = labels;
    try {
      target.setContext(labels);
    } catch {
      // The profiler stopped between the check and the call: the sample is lost, the app is not.
    }
  }
}
