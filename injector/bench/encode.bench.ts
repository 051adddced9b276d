/**
 * `npm run bench:encode`: what encoding a span as it ends costs (src/export/encoded-batches.ts),
 * both ways side by side in one run, interleaved round by round, medians reported:
 *   request   each span through OpenTelemetry's request serializer (its resource written twice,
 *             the size estimate and the bytes), then taken out of that one-span request
 *   records   a span of a resource and scope seen before written alone by OpenTelemetry's span
 *             writer into a reused buffer (what the agent's bundle does)
 * Spans as the HTTP server instrumentation ends them, with a resource of 18 attributes (a pod's:
 * service, host, process, Kubernetes, container, SDK). Figures: microseconds per span, and
 * young-generation collections per 10,000 spans (what the garbage costs the app).
 *
 * Options (env): BENCH_SPANS (spans per round, default 2000), BENCH_ROUNDS (default 7).
 */
import { GCProfiler } from 'node:v8';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { EncodedSpans, type SpanRecordWriter } from '../src/export/encoded-batches';
import { otelSpanRecords } from '../test/harness/otel-span-records';

const SPANS = Number(process.env['BENCH_SPANS'] ?? 2000);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 7);
const REPEAT = 10;

function serverSpans(n: number): ReadableSpan[] {
  const ended: ReadableSpan[] = [];
  const collect: SpanProcessor = { onStart: () => undefined, onEnd: (s) => void ended.push(s), forceFlush: async () => undefined, shutdown: async () => undefined };
  const keys = ['service.name', 'service.version', 'service.instance.id', 'host.name', 'host.arch', 'os.type', 'os.version', 'process.pid', 'process.executable.name',
    'process.command', 'process.runtime.name', 'process.runtime.version', 'k8s.pod.name', 'k8s.namespace.name', 'k8s.node.name', 'container.id', 'telemetry.sdk.name', 'telemetry.sdk.version'];
  const resource = resourceFromAttributes(Object.fromEntries(keys.map((k) => [k, `${k}-of-the-shop-pod-7f9c`])));
  const tracer = new BasicTracerProvider({ resource, spanProcessors: [collect] }).getTracer('@opentelemetry/instrumentation-http', '0.208.0');
  for (let i = 0; i < n; i++) {
    tracer.startSpan('GET /work', {
      kind: 1,
      attributes: {
        'http.url': `http://10.0.3.7:8080/work?item=${i}`, 'http.host': '10.0.3.7:8080', 'net.host.name': '10.0.3.7', 'http.method': 'GET', 'http.scheme': 'http',
        'http.target': `/work?item=${i}`, 'http.user_agent': 'k6/0.52', 'http.flavor': '1.1', 'net.transport': 'ip_tcp', 'net.host.ip': '10.0.3.7', 'net.host.port': 8080,
        'net.peer.ip': '10.0.1.12', 'net.peer.port': 40000 + i, 'http.status_code': 200, 'http.status_text': 'OK', 'http.route': '/work',
      },
    }).end();
  }
  return ended;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const spans = serverSpans(SPANS);
  const records = await otelSpanRecords();
  const encode = (s: ReadableSpan[]): Uint8Array | undefined => ProtobufTraceSerializer.serializeRequest(s);
  const ways: Record<string, SpanRecordWriter | undefined> = { request: undefined, records };
  const results: Record<string, { us: number[]; gcs: number[] }> = { request: { us: [], gcs: [] }, records: { us: [], gcs: [] } };
  for (let round = 0; round <= ROUNDS; round++) {
    for (const [way, writer] of Object.entries(ways)) {
      const encoded = new EncodedSpans();
      const gcs = new GCProfiler();
      gcs.start();
      const start = process.hrtime.bigint();
      for (let r = 0; r < REPEAT; r++) {
        for (const span of spans) encoded.addSpan(span, encode, writer);
        encoded.take();
      }
      const ns = Number(process.hrtime.bigint() - start);
      const scavenges = (gcs.stop()?.statistics ?? []).filter((s) => s.gcType === 'Scavenge').length;
      // Round 0 warms up.
      if (round === 0) continue;
      results[way]!.us.push(ns / 1000 / (REPEAT * spans.length));
      results[way]!.gcs.push((scavenges * 10_000) / (REPEAT * spans.length));
    }
  }
  console.log(`Encoding ended spans (${SPANS} spans x ${REPEAT} per round, ${ROUNDS} rounds, medians; Node ${process.version})`);
  console.log(`${'way'.padEnd(10)}${'us per span'.padStart(14)}${'scavenges per 10k spans'.padStart(26)}`);
  for (const [way, r] of Object.entries(results)) console.log(`${way.padEnd(10)}${median(r.us).toFixed(2).padStart(14)}${median(r.gcs).toFixed(1).padStart(26)}`);
  console.log(`records / request: ${(median(results['records']!.us) / median(results['request']!.us)).toFixed(2)}x the time`);
}

void main();
