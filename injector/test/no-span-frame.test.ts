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
import { decodePprof, readSamples } from './harness/pyroscope-receiver';

const PPROF = path.join(REPO_ROOT, 'injector/dist/pprof/out/src/index.js');

interface Result {
  cped: boolean;
  holdersBefore?: number;
  holdersDuring?: number;
  profile?: string;
}

/** Sampled time per work function and the span it carries ('-' for none), as `outerWork:outer`. */
function countsOf(profile: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const sample of readSamples(decodePprof(Buffer.from(profile, 'base64')).profile)) {
    const work = sample.stack.find((name) => name === 'outerWork' || name === 'innerWork');
    if (work === undefined) continue;
    const key = `${work}:${sample.labels['span'] ?? '-'}`;
    // Samples of one stack and labels come merged: the first value is how many.
    counts[key] = (counts[key] ?? 0) + (sample.values[0] ?? 0);
  }
  return counts;
}

describe('frames without a span (CPED)', () => {
  // Node 24 and later keep AsyncLocalStorage in AsyncContextFrame; older ones use hooks mode, where this does not apply.
  for (const node of testNodes().filter((n) => n.major >= 24)) {
    it(`${node.label}: make no native holder, carry no span, and leave the outer frame's span as it was`, () => {
      const result = JSON.parse(execFileSync(node.bin, [path.join(FIXTURES, 'no-span-frame.js'), PPROF], { encoding: 'utf8' })) as Result;
      assert.equal(result.cped, true, 'AsyncContextFrame is active');
      // 40 frames without a span ran inside the outer one while it was counted: only the outer's holder lives.
      assert.equal(result.holdersDuring! - result.holdersBefore!, 1);
      const counts = countsOf(result.profile!);
      assert.ok((counts['innerWork:-'] ?? 0) >= 20, `the work in frames without a span was sampled: ${JSON.stringify(counts)}`);
      assert.equal(counts['innerWork:outer'], undefined, `none of it carries the outer span: ${JSON.stringify(counts)}`);
      assert.ok((counts['outerWork:outer'] ?? 0) >= 20, `the outer frame's work carries its span, after them too: ${JSON.stringify(counts)}`);
      assert.equal(counts['outerWork:-'], undefined);
    });
  }
});
