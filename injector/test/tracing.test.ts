/**
 * Tracing from the standard OTEL_* environment: every OTLP protocol, the
 * sampler, instrumentation switches, span-link options, and the
 * AsyncContextFrame path on Node 22 when it is switched on by flag.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { AppProcess, FIXTURES, load, testNodes, waitFor } from './harness/app-process';
import type { OtlpReceiver } from './harness/otlp-receiver';
import { agentEnv, allSamples, receiversPerTest, serverSpans } from './harness/agent-env';
import { attribution } from './harness/attribution';

const SERVER = path.join(FIXTURES, 'server.js');
const EXPRESS = path.join(FIXTURES, 'express-esm.mjs');

describe('tracing and span-link options', function () {
  this.timeout(60_000);
  const bed = receiversPerTest();

  const protocols: [string, (o: OtlpReceiver) => Record<string, string>][] = [
    ['http/json', (o) => ({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_ENDPOINT: o.httpUrl })],
    ['http/protobuf', (o) => ({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_ENDPOINT: o.httpUrl })],
    ['grpc', (o) => ({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_ENDPOINT: o.grpcUrl })],
    ['grpc (traces-specific variables)', (o) => ({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: o.grpcUrl, OTEL_EXPORTER_OTLP_PROTOCOL: '', OTEL_EXPORTER_OTLP_ENDPOINT: '' })],
  ];
  for (const [name, env] of protocols) {
    it(`exports spans with pyroscope.profile.id over OTLP ${name}`, async () => {
      bed.app = await AppProcess.start({ script: SERVER, env: { ...agentEnv(bed.pyroscope, bed.otlp), ...env(bed.otlp) } });
      await load(bed.app!.port, ['/work?rounds=1', '/work?rounds=1', '/work?rounds=1'], 1);
      await waitFor(`spans over ${name}`, () => serverSpans(bed.otlp.spans).length >= 3);
      await bed.app!.stop();
      assert.deepEqual([...bed.otlp.protocols], [name.split(' ')[0]]);
      for (const s of serverSpans(bed.otlp.spans)) assert.equal(s.attributes['pyroscope.profile.id'], s.spanId);
      assert.equal(serverSpans(bed.otlp.spans)[0]!.resource['service.name'], 'agent-test');
    });
  }

  it('puts OTEL_RESOURCE_ATTRIBUTES on the resource', async () => {
    bed.app = await AppProcess.start({ script: SERVER, env: agentEnv(bed.pyroscope, bed.otlp, { OTEL_RESOURCE_ATTRIBUTES: 'k8s.pod.name=shop-abc,k8s.namespace.name=prod' }) });
    await load(bed.app!.port, ['/work?rounds=1'], 1);
    await waitFor('a span', () => serverSpans(bed.otlp.spans).length >= 1);
    await bed.app!.stop();
    const resource = serverSpans(bed.otlp.spans)[0]!.resource;
    assert.equal(resource['k8s.pod.name'], 'shop-abc');
    assert.equal(resource['k8s.namespace.name'], 'prod');
  });

  it('labels no samples with spans the sampler dropped', async () => {
    bed.app = await AppProcess.start({ script: SERVER, env: agentEnv(bed.pyroscope, bed.otlp, { OTEL_TRACES_SAMPLER: 'always_off' }) });
    await load(bed.app!.port, Array.from({ length: 10 }, () => '/work?rounds=4&ms=3'), 2);
    await bed.app!.stop();
    assert.equal(bed.otlp.spans.length, 0);
    const samples = allSamples(bed.pyroscope.cpuProfiles());
    assert.ok(samples.length > 0, 'still profiled');
    assert.ok(samples.every((s) => s.labels['span_id'] === undefined));
  });

  it('switches instrumentations with OTEL_NODE_ENABLED_INSTRUMENTATIONS', async () => {
    bed.app = await AppProcess.start({ script: EXPRESS, env: agentEnv(bed.pyroscope, bed.otlp, { OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http' }) });
    await load(bed.app!.port, ['/orders/1', '/orders/2'], 1);
    await waitFor('spans', () => serverSpans(bed.otlp.spans).length >= 2);
    await bed.app!.stop();
    assert.ok(bed.otlp.spans.every((s) => !s.name.startsWith('request handler')), 'no express spans');
    assert.ok(serverSpans(bed.otlp.spans).every((s) => s.attributes['http.route'] === undefined));
  });

  it('switches instrumentations off with OTEL_NODE_DISABLED_INSTRUMENTATIONS', async () => {
    bed.app = await AppProcess.start({ script: EXPRESS, env: agentEnv(bed.pyroscope, bed.otlp, { OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'express' }) });
    await load(bed.app!.port, ['/orders/1', '/orders/2'], 1);
    await waitFor('server spans', () => serverSpans(bed.otlp.spans).length >= 2);
    await bed.app!.stop();
    assert.deepEqual(bed.otlp.spans.filter((s) => s.name.startsWith('request handler') || s.name.startsWith('middleware')), [], 'no express spans');
  });

  it('with OTEL_PYROSCOPE_ROOT_SPAN_ONLY=false labels samples with the innermost span and marks every span', async () => {
    bed.app = await AppProcess.start({ script: EXPRESS, env: agentEnv(bed.pyroscope, bed.otlp, { OTEL_PYROSCOPE_ROOT_SPAN_ONLY: 'false' }) });
    await load(bed.app!.port, Array.from({ length: 10 }, (_, i) => `/orders/${i}`), 2);
    await waitFor('spans', () => bed.otlp.spans.filter((s) => s.name.startsWith('request handler')).length >= 10);
    await bed.app!.stop();
    for (const s of bed.otlp.spans) assert.equal(s.attributes['pyroscope.profile.id'], s.spanId);
    const handlerIds = new Set(bed.otlp.spans.filter((s) => s.name.startsWith('request handler')).map((s) => s.spanId));
    const hot = allSamples(bed.pyroscope.cpuProfiles()).filter((s) => s.stack.includes('hotEsm'));
    assert.ok(hot.length > 0);
    const onHandler = hot.filter((s) => handlerIds.has(s.labels['span_id']!)).length;
    assert.ok(onHandler / hot.length >= 0.9, `${onHandler}/${hot.length} hot samples on the express handler span`);
  });

  it('adds trace_id only when OTEL_PYROSCOPE_ADD_TRACE_ID is on, and span_name unless switched off', async () => {
    bed.app = await AppProcess.start({ script: SERVER, env: agentEnv(bed.pyroscope, bed.otlp, { OTEL_PYROSCOPE_ADD_TRACE_ID: 'true', OTEL_PYROSCOPE_ADD_SPAN_NAME: 'false' }) });
    await load(bed.app!.port, Array.from({ length: 10 }, () => '/work?rounds=4&ms=3'), 2);
    await waitFor('spans', () => serverSpans(bed.otlp.spans).length >= 10);
    await bed.app!.stop();
    const traceOf = new Map(serverSpans(bed.otlp.spans).map((s) => [s.spanId, s.traceId]));
    const labelled = allSamples(bed.pyroscope.cpuProfiles()).filter((s) => s.labels['span_id'] !== undefined);
    assert.ok(labelled.length > 0);
    for (const s of labelled) {
      assert.equal(s.labels['trace_id'], traceOf.get(s.labels['span_id']!));
      assert.equal(s.labels['span_name'], undefined);
    }
  });

  const node22 = testNodes().find((n) => n.major === 22);
  if (node22 !== undefined) {
    it('uses the AsyncContextFrame path on Node 22 when --experimental-async-context-frame is set', async () => {
      bed.app = await AppProcess.start({ script: SERVER, node: node22.bin, env: { ...agentEnv(bed.pyroscope, bed.otlp), NODE_OPTIONS: '--experimental-async-context-frame' } });
      await load(bed.app!.port, Array.from({ length: 24 }, (_, i) => `/work?fn=${['alpha', 'beta', 'gamma'][i % 3]}&rounds=6&ms=3`), 6);
      await waitFor('spans', () => serverSpans(bed.otlp.spans).length >= 24);
      await bed.app!.stop();
      assert.match(bed.app!.stderr, /span context: cped\)/);
      const fnBySpan = new Map(serverSpans(bed.otlp.spans).map((s) => [s.spanId, new URLSearchParams(String(s.attributes['url.query'] ?? s.attributes['http.target'] ?? '').replace(/^.*\?/, '')).get('fn') ?? '']));
      const result = attribution(allSamples(bed.pyroscope.cpuProfiles()), fnBySpan);
      assert.ok(result.accuracy >= 0.95 && result.coverage >= 0.95, JSON.stringify(result));
    });
  }
});
