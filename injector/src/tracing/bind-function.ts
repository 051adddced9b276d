/**
 * The context manager's binding of a function, with the wrapper's `length`
 * made by its parameter list rather than redefined on each wrapper.
 *
 * @opentelemetry/context-async-hooks wraps every function it binds and then
 * redefines the wrapper's `length` to the target's with `defineProperty`. The
 * HTTP instrumentation binds each request and response, so every listener
 * added to them later (by Node, the instrumentation or the app) is bound: a
 * few per request. Measured on Node 24 (the allocating server fixture, 280
 * req/s, `bench/heap-spaces.js`, sampler always_off): those `defineProperty`
 * calls made the old generation grow by about 50 kB/s, against 25 kB/s for the
 * whole app alone, which brought a full collection every 30 s. Without them
 * the growth was the app's own.
 *
 * Here the wrapper for a target of length n (0 to 8) is a function declared
 * with n parameters, so its `length` is the target's by construction; it
 * passes on every argument it gets, as the original does. A target whose
 * length is anything else (more parameters, or a length redefined to a
 * non-integer) is bound by the original.
 */
import type { Context } from '@opentelemetry/api';

type Fn = (this: unknown, ...args: unknown[]) => unknown;
interface Manager {
  with<A extends unknown[], R>(context: Context, fn: (...args: A) => R, thisArg?: unknown, ...args: A): R;
}
type Wrap = (manager: Manager, context: Context, target: Fn) => Fn;

/** One per length: the parameters, unused, make each wrapper's `length`. */
const WRAPS: Wrap[] = [
  (m, c, t) => function (this: unknown) { return m.with(c, () => t.apply(this, arguments as unknown as unknown[])); },
  (m, c, t) => function (this: unknown, _a: unknown) { return m.with(c, () => t.apply(this, arguments as unknown as unknown[])); },
  (m, c, t) => function (this: unknown, _a: unknown, _b: unknown) { return m.with(c, () => t.apply(this, arguments as unknown as unknown[])); },
  (m, c, t) => function (this: unknown, _a: unknown, _b: unknown, _c: unknown) { return m.with(c, () => t.apply(this, arguments as unknown as unknown[])); },
  (m, c, t) => function (this: unknown, _a: unknown, _b: unknown, _c: unknown, _d: unknown) { return m.with(c, () => t.apply(this, arguments as unknown as unknown[])); },
  (m, c, t) => function (this: unknown, _a: unknown, _b: unknown, _c: unknown, _d: unknown, _e: unknown) { return m.with(c, () => t.apply(this, arguments as unknown as unknown[])); },
  (m, c, t) => function (this: unknown, _a: unknown, _b: unknown, _c: unknown, _d: unknown, _e: unknown, _f: unknown) { return m.with(c, () => t.apply(this, arguments as unknown as unknown[])); },
  (m, c, t) => function (this: unknown, _a: unknown, _b: unknown, _c: unknown, _d: unknown, _e: unknown, _f: unknown, _g: unknown) { return m.with(c, () => t.apply(this, arguments as unknown as unknown[])); },
  (m, c, t) => function (this: unknown, _a: unknown, _b: unknown, _c: unknown, _d: unknown, _e: unknown, _f: unknown, _g: unknown, _h: unknown) { return m.with(c, () => t.apply(this, arguments as unknown as unknown[])); },
];

/**
 * Gives the agent's own context manager this binding. A context manager
 * without the method it replaces (another version) is left as it is.
 */
export function bindWithDeclaredLength(manager: object): void {
  const m = manager as Manager & { _bindFunction?: (context: Context, target: Fn) => Fn };
  const original = m._bindFunction;
  if (typeof original !== 'function') return;
  m._bindFunction = function (this: Manager, context: Context, target: Fn): Fn {
    const length = target.length;
    const wrap = Number.isInteger(length) ? WRAPS[length] : undefined;
    return wrap === undefined ? original.call(this, context, target) : wrap(this, context, target);
  };
}
