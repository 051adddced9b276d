/**
 * The agent's context values (src/tracing/otel-context.ts), which the bundle uses in
 * place of the OpenTelemetry API's (build.mjs checks the bundle): the same
 * contract, checked here against the API's own.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as api from '@opentelemetry/api';
import { createContextKey, ROOT_CONTEXT } from '../src/tracing/otel-context';
import { AGENT, testNodes } from './harness/app-process';

const KEY = createContextKey('spanprofiling test key');
const OTHER = createContextKey('spanprofiling other key');

describe("the agent's context values", () => {
  for (const [name, make, root] of [
    ['the agent', createContextKey, ROOT_CONTEXT],
    ["the OpenTelemetry API's", api.createContextKey, api.ROOT_CONTEXT],
  ] as const) {
    it(`${name}: keys are Symbol.for(description), the root is empty, contexts never change and their functions work detached`, () => {
      assert.equal(make('spanprofiling test key'), Symbol.for('spanprofiling test key'));
      assert.equal(root.getValue(KEY), undefined);
      const one = root.setValue(KEY, 1);
      const two = one.setValue(OTHER, 2).setValue(KEY, 3);
      assert.equal(root.getValue(KEY), undefined);
      assert.equal(one.getValue(KEY), 1);
      assert.equal(one.getValue(OTHER), undefined);
      assert.deepEqual([two.getValue(KEY), two.getValue(OTHER)], [3, 2]);
      const gone = two.deleteValue(KEY);
      assert.deepEqual([gone.getValue(KEY), gone.getValue(OTHER), two.getValue(KEY)], [undefined, 2, 3]);
      // Own properties, callable without their context (code copies them off a context).
      const { getValue, setValue, deleteValue } = two;
      assert.deepEqual(Object.keys(two).filter((k) => k !== '_currentContext'), ['getValue', 'setValue', 'deleteValue']);
      assert.equal(getValue(OTHER), 2);
      assert.equal(setValue(OTHER, 4).getValue(OTHER), 4);
      assert.equal(deleteValue(OTHER).getValue(OTHER), undefined);
      assert.equal(two.getValue(OTHER), 2);
    });
  }

  // The build keeps function names (keepNames); a context's functions must not be renamed one by
  // one as each context is made, which left each with a dictionary of properties (and took about
  // 1.2 us a context instead of 0.15).
  for (const node of testNodes()) {
    it(`${node.label}: in the bundle, a new context's functions keep the fast properties every function has`, () => {
      const script = `
        const api = require(${JSON.stringify(require.resolve('@opentelemetry/api'))});
        const made = api.context.active().setValue(api.createContextKey('k'), 1).deleteValue(api.createContextKey('j'));
        const fns = [made.getValue, made.setValue, made.deleteValue];
        process.stdout.write(JSON.stringify({ made: made.constructor.name, value: made.getValue(api.createContextKey('k')), fast: fns.map((f) => %HasFastProperties(f)), control: %HasFastProperties(() => 1) }));
      `;
      const env = { ...process.env, OTEL_TRACES_EXPORTER: 'none', OTEL_PYROSCOPE_START_PROFILING: 'false' };
      const got = JSON.parse(execFileSync(node.bin, ['--allow-natives-syntax', '--require', AGENT, '-e', script], { encoding: 'utf8', env })) as Record<string, unknown>;
      assert.deepEqual(got, { made: 'ImmutableContext', value: 1, fast: [true, true, true], control: true });
    });
  }
});
