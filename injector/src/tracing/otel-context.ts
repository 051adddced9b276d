/**
 * The OpenTelemetry API's context values, as the agent bundles them
 * (build.mjs puts this module in place of the API's `context/context.js`).
 * The contract is the API's: `createContextKey(description)` is
 * `Symbol.for(description)`; `ROOT_CONTEXT` is empty; a context never changes,
 * and `getValue`, `setValue` and `deleteValue` are its own properties,
 * callable detached from it, the last two answering a new context.
 *
 * Why not the API's own: its constructor assigns each of the three functions
 * to a property as it creates them, and V8 allocates a function literal
 * written that way straight in the old generation (it expects such functions
 * to live long). Every context made per request (its span, RPC metadata) then
 * had three old closures pointing at young objects: the context, its values,
 * the span and its attributes. A young-generation collection treats such old
 * objects as live, dead or not, so each request's span outlived two of them
 * and was promoted: about 1.9 kB a request, ten times what the app alone
 * promoted, which made V8 grow the young generation twice as soon and each
 * of its pauses twice as long. Here each function is made by a small factory
 * and returned (no function literal in that assignment), so it is allocated
 * young and dies with its request.
 */
import type { Context } from '@opentelemetry/api';

export function createContextKey(description: string): symbol {
  // The same key for the same description, whichever copy of the API asks (the API's contract).
  return Symbol.for(description);
}

class ImmutableContext implements Context {
  /** The API's name for it (some tools read it). */
  private readonly _currentContext: Map<symbol, unknown>;
  readonly getValue: Context['getValue'];
  readonly setValue: Context['setValue'];
  readonly deleteValue: Context['deleteValue'];

  constructor(parent?: ReadonlyMap<symbol, unknown>) {
    const values = new Map(parent);
    this._currentContext = values;
    this.getValue = ImmutableContext.getter(values);
    this.setValue = ImmutableContext.setter(values);
    this.deleteValue = ImmutableContext.deleter(values);
  }

  // A context's three functions are made by these and not as named locals of the constructor: the
  // build keeps every function's name (keepNames), and a named local that the bundle had renamed
  // (`getValue2`) was given its name back by redefining `name` on each new function: a call into
  // the runtime and a property dictionary per function, three for every context made (several a
  // request). The functions made here have no name to keep, as the API's own have none, and are
  // allocated young (returned, not written as a literal in the assignment above).
  private static getter(values: ReadonlyMap<symbol, unknown>): Context['getValue'] {
    return (key) => values.get(key);
  }

  private static setter(values: ReadonlyMap<symbol, unknown>): Context['setValue'] {
    return (key, value) => {
      const next = new ImmutableContext(values);
      next._currentContext.set(key, value);
      return next;
    };
  }

  private static deleter(values: ReadonlyMap<symbol, unknown>): Context['deleteValue'] {
    return (key) => {
      const next = new ImmutableContext(values);
      next._currentContext.delete(key);
      return next;
    };
  }
}

export const ROOT_CONTEXT: Context = new ImmutableContext();
