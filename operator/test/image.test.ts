import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { OPERATOR_NODE_FLAGS } from '../bench/loopback-operator';

describe("the operator's image", () => {
  it('starts node with the flags the tests and benchmarks start operator.js with', () => {
    const dockerfile = readFileSync(path.join(__dirname, '..', 'Dockerfile'), 'utf8');
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
    assert.ok(entrypoint !== undefined, 'an ENTRYPOINT in exec form');
    assert.deepEqual(JSON.parse(entrypoint) as string[], ['node', ...OPERATOR_NODE_FLAGS, '/app/operator.js']);
    // V8 sized for a controller (operator README, "Figures at scale").
    assert.ok(OPERATOR_NODE_FLAGS.includes('--heap-growing-percent=50'));
  });

  it('has flags node accepts (an unknown one would stop the operator before it starts)', () => {
    const out = execFileSync(process.execPath, [...OPERATOR_NODE_FLAGS, '-p', "require('node:v8').getHeapStatistics().total_heap_size > 0"], { encoding: 'utf8' });
    assert.equal(out.trim(), 'true');
  });
});
