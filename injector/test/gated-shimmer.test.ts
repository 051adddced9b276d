/**
 * The agent's instrumentation wrappers: shaped like what they wrap, removed
 * only while outermost, inert under someone else's once the gate closes.
 */
import { strict as assert } from 'node:assert';
import { instrumentationGate, unwrap, wrap } from '../src/tracing/gated-shimmer';

type Fn = (...args: unknown[]) => unknown;

describe('gated instrumentation wrappers', () => {
  afterEach(() => (instrumentationGate.open = true));

  it("keep the wrapped function's arity, name and properties (express tells error handlers by arity)", () => {
    const target: Record<string, unknown> = {
      handle: Object.assign(function errorHandler(_err: unknown, _req: unknown, _res: unknown, _next: unknown) {
        return 'original';
      }, { marker: 1 }),
    };
    wrap(target, 'handle', (original) => Object.assign(function wrapped(this: unknown, ...args: unknown[]) {
      return `wrapped ${String((original as Fn).apply(this, args))}`;
    }, { marker: 1 }) as Fn);
    const handle = target['handle'] as Fn & { marker: number };
    assert.equal(handle.length, 0, 'arity of the instrumentation wrapper, as shimmer leaves it');
    assert.equal(handle.marker, 1);
    assert.equal(handle(1, 2, 3, 4), 'wrapped original');
  });

  it('pass straight through once the gate is closed, for calls and constructors', () => {
    class Original {
      readonly made: string = 'original';
    }
    const target: Record<string, unknown> = { Thing: Original, call: () => 'original' };
    wrap(target, 'Thing', (original) => class extends (original as unknown as typeof Original) {
      override readonly made = 'wrapped';
    } as unknown as Fn);
    wrap(target, 'call', () => () => 'wrapped');
    const Thing = target['Thing'] as unknown as typeof Original;
    assert.equal(new Thing().made, 'wrapped');
    assert.equal((target['call'] as Fn)(), 'wrapped');
    instrumentationGate.open = false;
    assert.equal(new Thing().made, 'original');
    assert.equal((target['call'] as Fn)(), 'original');
  });

  it('come off while outermost, and never take off a wrapper someone else put on top', () => {
    const original = (): string => 'original';
    const target: Record<string, unknown> = { fn: original };
    wrap(target, 'fn', () => () => 'ours');
    unwrap(target, 'fn');
    assert.equal(target['fn'], original, 'ours came off');

    wrap(target, 'fn', () => () => 'ours');
    const ours = target['fn'] as Fn;
    const theirs = (): string => `theirs over ${String(ours())}`;
    target['fn'] = theirs; // the app's own instrumentation wraps ours
    unwrap(target, 'fn');
    assert.equal(target['fn'], theirs, "the app's wrapper stays");
    instrumentationGate.open = false;
    assert.equal((target['fn'] as Fn)(), 'theirs over original', 'ours, under theirs, passes through');
  });
});
