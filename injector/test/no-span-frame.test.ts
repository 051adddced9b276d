/**
 * A frame with no span, in CPED mode, as the agent's bundled native profiler runs it: no native
 * context holder is made for it (each is an object with two V8 global handles, and one per request
 * made every scavenge's weak callbacks slower), its samples carry no span, and the frame around it
 * keeps its own.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { FIXTURES, REPO_ROOT, testNodes } from './harness/app-process';

const PPROF = path.join(REPO_ROOT, 'injector/dist/pprof/out/src/index.js');

interface Result {
  cped: boolean;
  holdersBefore?: number;
  holdersDuring?: number;
  counts?: Record<string, number>;
}

describe('frames without a span (CPED)', () => {
  const nodes = testNodes().filter((n) => n.major >= 24);

  before(function () {
    // Node 24 and later keep AsyncLocalStorage in AsyncContextFrame; older ones use hooks mode, where this does not apply.
    if (nodes.length === 0) this.skip();
  });

  for (const node of nodes) {
    it(`${node.label}: make no native holder, carry no span, and leave the outer frame's span as it was`, () => {
      const result = JSON.parse(execFileSync(node.bin, [path.join(FIXTURES, 'no-span-frame.js'), PPROF], { encoding: 'utf8' })) as Result;
      assert.equal(result.cped, true, 'AsyncContextFrame is active');
      // 40 frames without a span ran inside the outer one while it was counted: only the outer's holder lives.
      assert.equal(result.holdersDuring! - result.holdersBefore!, 1);
      const counts = result.counts!;
      assert.ok((counts['innerWork:-'] ?? 0) >= 20, `the work in frames without a span was sampled: ${JSON.stringify(counts)}`);
      assert.equal(counts['innerWork:outer'], undefined, `none of it carries the outer span: ${JSON.stringify(counts)}`);
      assert.ok((counts['outerWork:outer'] ?? 0) >= 20, `the outer frame's work carries its span, after them too: ${JSON.stringify(counts)}`);
      assert.equal(counts['outerWork:-'], undefined);
    });
  }
});
