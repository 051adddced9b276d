/**
 * Guards around upstream instrumentations the agent turns on by default, where
 * their patches change what the app observes. Each guard keeps the span the
 * instrumentation makes and restores the app's behaviour:
 *
 * - express: a middleware gets the instrumentation's wrapper of `next`, while
 *   express hands `req.next` (the router's own) to `res.format` callbacks and
 *   error paths, so `next === req.next` no longer held. The guard makes
 *   `req.next` the same wrapper while the layer runs. And a layer called with
 *   a plain object as `res` (router tests, serverless adapters) made the
 *   instrumentation throw `res.once is not a function` from a later tick: such
 *   calls go to the app's function untouched.
 * - router: the same plain-`res` guard (the instrumentation is off by default,
 *   see instrumentations.ts).
 * - koa: `app.use(x)` with something that is not a function threw
 *   `Cannot read properties of null (reading 'router')` from the patch instead
 *   of koa's own "middleware must be a function!": such calls go to koa.
 *
 * The guards override methods of the instrumentation instances (not of the
 * frameworks), so they come and go with the instrumentation.
 */
import type { Instrumentation } from '@opentelemetry/instrumentation';

type Fn = (this: unknown, ...args: unknown[]) => unknown;

/** An EventEmitter-like response, as the instrumentations assume. */
const isEmitter = (res: unknown): boolean =>
  res !== null && typeof res === 'object' && typeof (res as { once?: unknown }).once === 'function' && typeof (res as { removeListener?: unknown }).removeListener === 'function';

/** `wrapper` with the arity of `original` (frameworks read `fn.length`) and its properties (a mounted router's `stack`, ...). */
function like(original: Fn, wrapper: Fn): Fn {
  Object.defineProperty(wrapper, 'length', { value: original.length, configurable: true });
  Object.defineProperty(wrapper, 'name', { value: original.name, configurable: true });
  for (const key in original) {
    Object.defineProperty(wrapper, key, {
      configurable: true,
      enumerable: true,
      get: () => (original as unknown as Record<string, unknown>)[key],
      set: (value: unknown) => {
        (original as unknown as Record<string, unknown>)[key] = value;
      },
    });
  }
  return wrapper;
}

const GUARDED = Symbol('spanprofiling.guarded');

/** The `next` the router handed to the layer now running, by layer call (a layer may call into nested routers). */
let routerNext: unknown;
/** Wrappers of `next` the instrumentation made, to the router's `next` each wraps. */
const wrapperOf = new WeakMap<object, unknown>();

interface Layer {
  handle?: unknown;
  [GUARDED]?: boolean;
}

export function guardExpress<T extends Instrumentation>(instrumentation: T): T {
  const target = instrumentation as unknown as { _applyPatch?: (this: unknown, layer: Layer, layerPath?: unknown) => void };
  const applyPatch = target._applyPatch;
  if (typeof applyPatch !== 'function') return instrumentation;
  target._applyPatch = function (this: unknown, layer: Layer, layerPath?: unknown): void {
    const handle = layer?.handle;
    if (typeof handle !== 'function' || layer[GUARDED] === true) {
      applyPatch.call(this, layer, layerPath);
      return;
    }
    const app = handle as Fn;
    // Innermost, called by the instrumentation with its wrapper of next: req.next is that wrapper too.
    const inner = like(app, function (this: unknown, ...args: unknown[]): unknown {
      const [req, , next] = args as [Record<string, unknown> | undefined, unknown, unknown];
      if (typeof next === 'function' && req !== null && typeof req === 'object' && routerNext !== undefined) {
        const current = req['next'];
        const ours = current === routerNext || (typeof current === 'function' && wrapperOf.get(current) === routerNext);
        if (ours && next !== routerNext) {
          wrapperOf.set(next, routerNext);
          req['next'] = next;
        } else if (ours) {
          // Not wrapped this time (no active span): req.next is the router's own again, not an earlier layer's wrapper.
          req['next'] = routerNext;
        }
      }
      return app.apply(this, args);
    });
    layer.handle = inner;
    applyPatch.call(this, layer, layerPath);
    const patched = layer.handle as Fn;
    if (patched === inner) {
      // Not wrapped (the instrumentation declined the layer): the app's own function again.
      layer.handle = app;
      return;
    }
    layer[GUARDED] = true;
    layer.handle = like(app, function (this: unknown, ...args: unknown[]): unknown {
      if (!isEmitter(args[1])) return app.apply(this, args);
      const outer = routerNext;
      routerNext = typeof args[2] === 'function' ? args[2] : undefined;
      try {
        return patched.apply(this, args);
      } finally {
        routerNext = outer;
      }
    });
  };
  return instrumentation;
}

export function guardRouter<T extends Instrumentation>(instrumentation: T): T {
  const target = instrumentation as unknown as Record<'_requestHandlerPatcher' | '_errorHandlerPatcher', ((original: Fn) => Fn) | undefined>;
  for (const [method, resAt] of [['_requestHandlerPatcher', 1], ['_errorHandlerPatcher', 2]] as const) {
    const patcher = target[method];
    if (typeof patcher !== 'function') continue;
    target[method] = function (this: unknown, original: Fn): Fn {
      const patched = patcher.call(this, original);
      return like(original, function (this: unknown, ...args: unknown[]): unknown {
        return (isEmitter(args[resAt]) ? patched : original).apply(this, args);
      });
    };
  }
  return instrumentation;
}

export function guardKoa<T extends Instrumentation>(instrumentation: T): T {
  const target = instrumentation as unknown as { _getKoaUsePatch?: (this: unknown, original: Fn) => Fn };
  const usePatch = target._getKoaUsePatch;
  if (typeof usePatch !== 'function') return instrumentation;
  target._getKoaUsePatch = function (this: unknown, original: Fn): Fn {
    const patched = usePatch.call(this, original);
    return like(original, function (this: unknown, ...args: unknown[]): unknown {
      // Koa says what is wrong with a middleware that is not a function.
      return (typeof args[0] === 'function' ? patched : original).apply(this, args);
    });
  };
  return instrumentation;
}
