/**
 * The agent's binding of functions (src/tracing/bind-function.ts), which its
 * context manager uses instead of a `defineProperty` per wrapper: the same
 * contract as @opentelemetry/context-async-hooks' own, checked side by side
 * with an unchanged manager, for functions and for bound event emitters.
 */
import { strict as assert } from 'node:assert';
import { EventEmitter } from 'node:events';
import { ROOT_CONTEXT, createContextKey, type Context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { bindWithDeclaredLength } from '../src/tracing/bind-function';

const KEY = createContextKey('spanprofiling bind test');
const BOUND = ROOT_CONTEXT.setValue(KEY, 'bound');
const OTHER = ROOT_CONTEXT.setValue(KEY, 'other');

function managers(): [string, AsyncLocalStorageContextManager][] {
  const agent = new AsyncLocalStorageContextManager().enable();
  bindWithDeclaredLength(agent);
  return [
    ['the agent', agent],
    ['context-async-hooks unchanged', new AsyncLocalStorageContextManager().enable()],
  ];
}

/** A function of `n` declared parameters that reports what it was called with. */
function withParameters(n: number): (...args: unknown[]) => unknown {
  const params = Array.from({ length: n }, (_, i) => `p${i}`);
  return new Function(...params, 'return { self: this, args: [...arguments] };') as (...args: unknown[]) => unknown;
}

describe("the agent's context manager binds functions as context-async-hooks does", () => {
  for (const [name, manager] of managers()) {
    describe(name, () => {
      after(() => manager.disable());

      it('gives the wrapper the length of the function it binds, 0 to 12 parameters', () => {
        for (let n = 0; n <= 12; n++) assert.equal(manager.bind(BOUND, withParameters(n)).length, n, `${n} parameters`);
      });

      it("keeps a function's redefined length, and a non-integer one as it was", () => {
        const redefined = withParameters(1);
        Object.defineProperty(redefined, 'length', { value: 5 });
        assert.equal(manager.bind(BOUND, redefined).length, 5);
        const odd = withParameters(0);
        Object.defineProperty(odd, 'length', { value: 1.5 });
        assert.equal(manager.bind(BOUND, odd).length, 1.5);
      });

      it('runs the function in the bound context with its this and every argument, beyond its parameters too', () => {
        for (const n of [0, 2, 8, 9]) {
          let seen: unknown;
          const target = withParameters(n);
          const bound = manager.bind(BOUND, function (this: unknown, ...args: unknown[]) {
            seen = manager.active().getValue(KEY);
            return target.apply(this, args);
          });
          const self = { me: n };
          const out = manager.with(OTHER, () => bound.call(self, 'a', 'b', 'c')) as { self: unknown; args: unknown[] };
          assert.equal(seen, 'bound');
          assert.equal(out.self, self);
          assert.deepEqual(out.args, ['a', 'b', 'c']);
          assert.equal(manager.active(), ROOT_CONTEXT);
        }
      });

      it("passes on the function's exceptions and leaves the context as it was", () => {
        const bound = manager.bind(BOUND, (_x: unknown) => {
          throw new Error('from the target');
        });
        manager.with(OTHER, () => {
          assert.throws(() => bound(1), /from the target/);
          assert.equal(manager.active().getValue(KEY), 'other');
        });
      });

      it("runs a bound emitter's listeners in its context; off, removeListener and once work with the listener given", () => {
        const emitter = manager.with(BOUND, () => manager.bind(manager.active(), new EventEmitter()));
        const seen: string[] = [];
        const listener = (_value: unknown): void => void seen.push(String(manager.active().getValue(KEY)));
        emitter.on('tick', listener);
        emitter.once('once', (_a: unknown, _b: unknown) => seen.push(`once ${String(manager.active().getValue(KEY))}`));
        manager.with(OTHER, () => {
          emitter.emit('tick', 1);
          emitter.emit('once');
          emitter.emit('once');
        });
        emitter.off('tick', listener);
        emitter.emit('tick', 2);
        emitter.on('tick', listener);
        emitter.removeListener('tick', listener);
        emitter.emit('tick', 3);
        assert.deepEqual(seen, ['bound', 'once bound']);
        assert.equal(emitter.listenerCount('tick'), 0);
      });
    });
  }

  it('the agent makes its wrappers without a defineProperty each, up to 8 parameters; context-async-hooks redefines every one', () => {
    const calls = (manager: AsyncLocalStorageContextManager, n: number): number => {
      const define = Object.defineProperty;
      let count = 0;
      Object.defineProperty = ((...args: Parameters<typeof define>) => {
        count++;
        return define(...args);
      }) as typeof define;
      try {
        manager.bind(BOUND, withParameters(n));
      } finally {
        Object.defineProperty = define;
      }
      return count;
    };
    const [[, agent], [, upstream]] = managers();
    assert.deepEqual([0, 3, 8].map((n) => calls(agent!, n)), [0, 0, 0]);
    assert.equal(calls(agent!, 9), 1, 'more parameters: the original binding');
    assert.deepEqual([0, 3, 8].map((n) => calls(upstream!, n)), [1, 1, 1]);
    agent!.disable();
    upstream!.disable();
  });

  it('leaves a context manager without the method it replaces as it is', () => {
    const other = { with: (_c: Context, fn: () => unknown) => fn() };
    bindWithDeclaredLength(other);
    assert.deepEqual(Object.keys(other), ['with']);
  });
});
