/**
 * The agent's replacement for @opentelemetry/instrumentation's internal
 * shimmer (the build maps one to the other). Same API, two differences that
 * let the agent step aside when the app brings its own OpenTelemetry SDK:
 *
 * - every wrapper the agent's instrumentations install passes straight
 *   through to the original once `instrumentationGate.open` is false, so a
 *   wrapper that the app's own instrumentations wrapped again (and that can
 *   no longer be removed without also removing theirs) does nothing;
 * - `unwrap` restores the original only while the agent's wrapper is still
 *   the outermost one; it never removes a wrapper someone else put on top.
 */

/** Whether the agent's instrumentations are live. Closed for good when the app's SDK takes over tracing. */
export const instrumentationGate = { open: true };

type Fn = (...args: unknown[]) => unknown;
type Nodule = Record<PropertyKey, unknown>;

const ORIGINAL = '__original';
const UNWRAP = '__unwrap';
const WRAPPED = '__wrapped';
/** The wrappers this module made: only these are ever taken off again. */
const ours = new WeakSet<object>();
const OWN_KEYS_KEPT_BY_DEFINITION = new Set<PropertyKey>(['length', 'name', 'prototype', 'arguments', 'caller']);

/** Sets a property, keeping its enumerability (shimmer's rule). */
function defineProperty(obj: object, name: PropertyKey, value: unknown): void {
  const enumerable = !!(obj as Nodule)[name] && Object.prototype.propertyIsEnumerable.call(obj, name);
  Object.defineProperty(obj, name, { configurable: true, enumerable, writable: true, value });
}

/** A function that runs `active` while the gate is open and `original` once it is closed, shaped like `active`. */
function gated(active: Fn, original: Fn): Fn {
  const wrapped = function (this: unknown, ...args: unknown[]): unknown {
    const fn = instrumentationGate.open ? active : original;
    // `new wrapped()` builds what `fn` builds; a subclass of wrapped keeps its own prototype.
    if (new.target !== undefined) return Reflect.construct(fn, args, new.target === wrapped ? fn : new.target) as unknown;
    return fn.apply(this, args);
  };
  // Frameworks read a function's arity (express tells error handlers by `length === 4`) and its properties.
  Object.defineProperty(wrapped, 'length', { value: active.length, configurable: true });
  Object.defineProperty(wrapped, 'name', { value: active.name, configurable: true });
  for (const key of Reflect.ownKeys(active)) {
    if (OWN_KEYS_KEPT_BY_DEFINITION.has(key)) continue;
    const descriptor = Object.getOwnPropertyDescriptor(active, key);
    if (descriptor !== undefined) Object.defineProperty(wrapped, key, descriptor);
  }
  if (Object.prototype.hasOwnProperty.call(active, 'prototype')) {
    Object.defineProperty(wrapped, 'prototype', { value: (active as { prototype?: unknown }).prototype, writable: true });
  }
  Object.setPrototypeOf(wrapped, Object.getPrototypeOf(active) as object | null);
  return wrapped;
}

export const wrap = (nodule: Nodule | undefined, name: PropertyKey, wrapper: ((original: Fn, name: PropertyKey) => Fn) | undefined): Fn | undefined => {
  if (!nodule || !nodule[name]) return undefined;
  if (typeof wrapper !== 'function') return undefined;
  const original = nodule[name];
  if (typeof original !== 'function') return undefined;
  const active = wrapper(original as Fn, name);
  if (typeof active !== 'function') return undefined;
  const wrapped = gated(active, original as Fn);
  defineProperty(wrapped, ORIGINAL, original);
  defineProperty(wrapped, UNWRAP, () => {
    if (nodule[name] === wrapped) defineProperty(nodule, name, original);
  });
  defineProperty(wrapped, WRAPPED, true);
  ours.add(wrapped);
  defineProperty(nodule, name, wrapped);
  return wrapped;
};

export const unwrap = (nodule: Nodule | undefined, name: PropertyKey): void => {
  const current = nodule?.[name] as { [UNWRAP]?: () => void } | undefined;
  // Only a wrapper of ours that is still outermost comes off; one under someone else's stays (and is inert once the gate closes).
  if (current !== undefined && ours.has(current) && typeof current[UNWRAP] === 'function') current[UNWRAP]();
};

export const massWrap = (nodules: Nodule | Nodule[] | undefined, names: PropertyKey[] | undefined, wrapper: (original: Fn, name: PropertyKey) => Fn): void => {
  if (!nodules || !Array.isArray(names)) return;
  for (const nodule of Array.isArray(nodules) ? nodules : [nodules]) for (const name of names) wrap(nodule, name, wrapper);
};

export const massUnwrap = (nodules: Nodule | Nodule[] | undefined, names: PropertyKey[] | undefined): void => {
  if (!nodules || !Array.isArray(names)) return;
  for (const nodule of Array.isArray(nodules) ? nodules : [nodules]) for (const name of names) unwrap(nodule, name);
};

function shimmer(): void {}
shimmer.wrap = wrap;
shimmer.massWrap = massWrap;
shimmer.unwrap = unwrap;
shimmer.massUnwrap = massUnwrap;
export default shimmer;
