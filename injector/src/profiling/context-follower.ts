/**
 * Carries the active span into profiler samples across `await`, timers,
 * event emitters and promise chains, following whichever OpenTelemetry
 * context manager is registered: the agent's own, or the app's.
 *
 * Two mechanisms, chosen at run time:
 * - `cped`: the runtime keeps AsyncLocalStorage in AsyncContextFrame
 *   (Node 24+, Node 22 with --experimental-async-context-frame). The profiler
 *   reads its context from the continuation-preserved embedder data, so it is
 *   enough to open a profiler frame whenever the context manager activates a
 *   context with different labels; continuations inherit it.
 * - `hooks`: older runtimes. There is one global profiler context, refreshed
 *   from the context manager's active context before every async callback runs.
 *
 * Both need to see the context manager's `with()`: the follower puts a thin
 * `with` on the manager instance (its own `bind()` goes through it too) and
 * takes it off again when it detaches.
 */
import { createHook, type AsyncHook } from 'node:async_hooks';
import type { Context, ContextManager } from '@opentelemetry/api';

export type ContextMode = 'cped' | 'hooks';

/** The profiler operations this module needs (see profiler.ts). */
export interface ProfilerContextTarget {
  /** Whether samples are being taken now; context calls are skipped otherwise. */
  readonly running: boolean;
  setContext(labels: object | undefined): void;
  runWithContext<R>(labels: object | undefined, fn: () => R): R;
}

export type LabelsOf = (context: Context) => object | undefined;

type With = ContextManager['with'];
type Fn = (...args: unknown[]) => unknown;
type UntypedWith = (this: ContextManager, context: Context, fn: Fn, thisArg?: unknown, ...args: unknown[]) => unknown;
const FOLLOWED = Symbol.for('spanprofiling.io/followed-with');

export class ProfilerContextFollower {
  private target: ProfilerContextTarget | undefined;
  private mode: ContextMode = 'hooks';
  private hook: AsyncHook | undefined;
  private manager: ContextManager | undefined;
  private originalWith: With | undefined;
  /** hooks mode: what the global profiler context holds now, to skip redundant native calls. */
  private current: object | undefined;

  constructor(private readonly labelsOf: LabelsOf) {}

  /** The context manager followed now. */
  get following(): ContextManager | undefined {
    return this.manager;
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

  /** Follows `manager` from now on (and stops following the previous one). */
  attach(manager: ContextManager): void {
    if (manager === this.manager) return;
    this.detach();
    const own = Object.getOwnPropertyDescriptor(manager, 'with');
    const original = manager.with;
    if (typeof original !== 'function') return;
    // Another follower (a second copy of this code) already wraps it: wrapping twice would label twice.
    if ((original as { [FOLLOWED]?: boolean })[FOLLOWED] === true) return;
    const follower = this;
    const followed = function (this: ContextManager, context: Context, fn: Fn, thisArg?: unknown, ...args: unknown[]): unknown {
      return follower.with(this, original as unknown as UntypedWith, context, fn, thisArg, args);
    };
    Object.defineProperty(followed, FOLLOWED, { value: true });
    Object.defineProperty(manager, 'with', { value: followed, configurable: true, writable: true, enumerable: false });
    this.manager = manager;
    this.originalWith = own === undefined ? undefined : (own.value as With);
  }

  /** Stops following: the manager's `with` is what it was before. */
  detach(): void {
    const manager = this.manager;
    if (manager === undefined) return;
    this.manager = undefined;
    const current = (manager as { with?: { [FOLLOWED]?: boolean } }).with;
    // Someone wrapped it after us: taking ours out would take theirs too; it passes through once detached.
    if (current?.[FOLLOWED] === true) {
      if (this.originalWith !== undefined) Object.defineProperty(manager, 'with', { value: this.originalWith, configurable: true, writable: true, enumerable: false });
      else delete (manager as { with?: With }).with;
    }
    this.originalWith = undefined;
  }

  private with(manager: ContextManager, original: UntypedWith, context: Context, fn: Fn, thisArg: unknown, args: unknown[]): unknown {
    const target = this.target;
    if (target === undefined || !target.running || manager !== this.manager) return original.call(manager, context, fn, thisArg, ...args);
    const labels = this.labelsOf(context);

    if (this.mode === 'cped') {
      // A child span under the same local root keeps the inherited frame: no new frame, no allocation.
      if (labels === this.labelsOf(manager.active())) return original.call(manager, context, fn, thisArg, ...args);
      return original.call(manager, context, () => target.runWithContext(labels, () => fn.apply(thisArg, args)));
    }

    const previous = this.current;
    this.set(target, labels);
    try {
      return original.call(manager, context, fn, thisArg, ...args);
    } finally {
      this.set(target, previous);
    }
  }

  /** hooks mode: an async callback is about to run in its own context. */
  private refresh(): void {
    // A throw inside an async hook would end the process: nothing may escape.
    try {
      const target = this.target;
      const manager = this.manager;
      if (target === undefined || manager === undefined || !target.running) return;
      this.set(target, this.labelsOf(manager.active()));
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
