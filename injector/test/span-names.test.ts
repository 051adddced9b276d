/**
 * Span names carry the route (`GET /orders/:id`) in traces and in profiles,
 * for express, koa (with @koa/router) and fastify, including the samples of a
 * request that was still running when a profile was collected: until a server
 * span ends, the HTTP instrumentation has named it only `GET`.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { AppProcess, FIXTURES, load, testNodes, waitFor } from './harness/app-process';
import { agentEnv, receiversPerTest, serverSpans } from './harness/agent-env';
import { timeShare } from './harness/attribution';
import type { ReceivedSample } from './harness/pyroscope-receiver';

const ROUTED = path.join(FIXTURES, 'routed.js');
/** Each request computes this long, across a few of the 1 s collections. */
const REQUEST_MS = 1500;

const FRAMEWORKS = [
  { name: 'express', minNode: 18 },
  // @koa/router 14 and fastify 5 need Node 20.
  { name: 'koa', minNode: 20 },
  { name: 'fastify', minNode: 20 },
];

describe('span names carry the route', function () {
  this.timeout(60_000);
  const bed = receiversPerTest();

  for (const node of testNodes()) {
    for (const framework of FRAMEWORKS.filter((f) => node.major >= f.minNode)) {
      it(`${framework.name} on ${node.label}: spans and the profiles of running requests are named GET /orders/:id`, async () => {
        bed.app = await AppProcess.start({ script: ROUTED, node: node.bin, env: agentEnv(bed.pyroscope, bed.otlp, { FRAMEWORK: framework.name }) });
        const results = await load(bed.app.port, [`/orders/1?ms=${REQUEST_MS}`, `/orders/2?ms=${REQUEST_MS}`], 2);
        assert.deepEqual(results.map((r) => r.status), [200, 200]);
        await waitFor('both server spans', () => serverSpans(bed.otlp.spans).length >= 2);
        await bed.app.stop();

        const spans = serverSpans(bed.otlp.spans);
        assert.deepEqual(spans.map((s) => [s.name, s.attributes['http.route']]), [['GET /orders/:id', '/orders/:id'], ['GET /orders/:id', '/orders/:id']]);
        const ids = new Set(spans.map((s) => s.spanId));
        const profiles = bed.pyroscope.cpuProfiles().filter((p) => p.samples.some((s) => s.stack.includes('hotRouted')));
        // The requests ran across collections: some profiles were taken while they were running.
        assert.ok(profiles.length >= 2, `the hot function is in ${profiles.length} profiles`);
        const hot = profiles.flatMap((p) => p.samples).filter((s) => s.stack.includes('hotRouted'));
        const onRequest = (s: ReceivedSample): boolean => ids.has(s.labels['span_id'] ?? '');
        const { share, rest } = timeShare(hot, onRequest);
        assert.ok(share >= 0.9, `hot time on a request's span: ${rest}`);
        const labelled = hot.filter(onRequest);
        const names = new Set(labelled.map((s) => s.labels['span_name']));
        assert.deepEqual([...names], ['GET /orders/:id'], 'every profile names the span with its route');
      });
    }
  }

  it("fastify's routes come from the agent's own subscriber: named fastify, it can be switched off like any instrumentation", async () => {
    const env = agentEnv(bed.pyroscope, bed.otlp, { FRAMEWORK: 'fastify', OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'fastify' });
    bed.app = await AppProcess.start({ script: ROUTED, env });
    await load(bed.app.port, ['/orders/1?ms=5'], 1);
    await waitFor('the server span', () => serverSpans(bed.otlp.spans).length >= 1);
    await bed.app.stop();
    const [span] = serverSpans(bed.otlp.spans);
    assert.equal(span!.name, 'GET');
    assert.equal(span!.attributes['http.route'], undefined);
  });
});
