/**
 * Spans encoded as they end (src/export/encoded-batches.ts): a batch of them is the
 * request OpenTelemetry's own serializer makes of the same spans, and the
 * processor batches as OpenTelemetry's batch processor does.
 */
import { strict as assert } from 'node:assert';
import { SpanStatusCode, TraceFlags, type Span as ApiSpan } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, type ReadableSpan, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { EncodedBatch, EncodedBatchProcessor, EncodedSpans, type EncodedBatchConfig } from '../src/export/encoded-batches';
import { otelSpanRecords } from './harness/otel-span-records';
import { decodeProtobuf } from './harness/otlp-receiver';

const encodeOne = (span: ReadableSpan): Uint8Array => ProtobufTraceSerializer.serializeRequest([span])!;

/** Ended spans of two instrumentation scopes, with what spans carry: attributes of every type, events, links, status. */
function endedSpans(n: number): ReadableSpan[] {
  const ended: ReadableSpan[] = [];
  const collect: SpanProcessor = { onStart: () => undefined, onEnd: (s) => void ended.push(s), forceFlush: async () => undefined, shutdown: async () => undefined };
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'shop', 'host.name': 'node-1', 'process.pid': 42 }), spanProcessors: [collect] });
  const scopes = [provider.getTracer('@opentelemetry/instrumentation-http', '0.1.0'), provider.getTracer('checkout')];
  let previous: ApiSpan | undefined;
  for (let i = 0; i < n; i++) {
    const span = scopes[i % 2]!.startSpan(`GET /item/${i}`, {
      attributes: { 'http.route': '/item/:id', 'http.status_code': 200 + i, ratio: i / 3, cached: i % 2 === 0, tags: ['a', `b${i}`], 'zürich.straße': 'ü€😀' },
      ...(previous !== undefined ? { links: [{ context: previous.spanContext(), attributes: { why: 'retry' } }] } : {}),
    });
    span.addEvent('picked', { count: i });
    if (i % 3 === 0) span.setStatus({ code: SpanStatusCode.ERROR, message: `failed ${i}` });
    span.end();
    previous = span;
  }
  return ended;
}

const byId = (a: { spanId: string }, b: { spanId: string }): number => (a.spanId < b.spanId ? -1 : 1);

/** The request serializer, counting its calls. */
function countingEncoder(): { encode: (spans: ReadableSpan[]) => Uint8Array | undefined; calls: number } {
  const counter = { calls: 0, encode: (spans: ReadableSpan[]) => (counter.calls++, ProtobufTraceSerializer.serializeRequest(spans)) };
  return counter;
}

/** Our batch and OpenTelemetry's request of the same spans: the same spans, and the same bytes in another order. */
function assertSameRequest(batch: EncodedBatch, spans: ReadableSpan[]): void {
  const theirs = Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!);
  const ours = Buffer.from(batch.bytes);
  assert.equal(batch.length, spans.length);
  assert.deepEqual(decodeProtobuf(ours).sort(byId), decodeProtobuf(theirs).sort(byId));
  assert.equal(ours.length, theirs.length);
  assert.deepEqual([...ours].sort(), [...theirs].sort());
}

describe('spans encoded as they end', () => {
  it("make, batch by batch, the request OpenTelemetry's serializer makes of the same spans", () => {
    const spans = endedSpans(40);
    const encoded = new EncodedSpans();
    for (const [first, last] of [[0, 25], [25, 40]] as const) {
      for (const span of spans.slice(first, last)) encoded.add(encodeOne(span));
      assert.equal(encoded.count, last - first);
      const batch = encoded.take();
      assert.equal(encoded.count, 0);
      assert.equal(batch.length, last - first);
      const theirs = Buffer.from(ProtobufTraceSerializer.serializeRequest(spans.slice(first, last))!);
      const ours = Buffer.from(batch.bytes);
      assert.deepEqual(decodeProtobuf(ours).sort(byId), decodeProtobuf(theirs).sort(byId));
      // The same bytes, fields aside: the resource and each scope written once per batch, as the serializer writes them.
      assert.equal(ours.length, theirs.length);
      assert.deepEqual([...ours].sort(), [...theirs].sort());
    }
  });

  it("write a span of a resource and scope seen before alone, with OpenTelemetry's span writer, to the same request", async () => {
    const records = await otelSpanRecords();
    const spans = endedSpans(40);
    const encoder = countingEncoder();
    const encoded = new EncodedSpans();
    for (const [first, last] of [[0, 25], [25, 40]] as const) {
      for (const span of spans.slice(first, last)) encoded.addSpan(span, encoder.encode, records);
      assertSameRequest(encoded.take(), spans.slice(first, last));
    }
    assert.equal(encoder.calls, 2, 'the request serializer wrote the first span of each of the two scopes, and no other');
  });

  it('take a span of a resource or scope not seen before out of its one-span request, and group it with spans of the same bytes', async () => {
    const records = await otelSpanRecords();
    // Two providers: resource objects of their own, one with the same attributes as the first.
    const spans = [...endedSpans(6), ...endedSpans(6), ...endedSpans(4).map((s) => ({ ...s, resource: resourceFromAttributes({ 'service.name': 'other' }), spanContext: () => s.spanContext() }) as ReadableSpan)];
    const encoder = countingEncoder();
    const encoded = new EncodedSpans();
    for (const span of spans) encoded.addSpan(span, encoder.encode, records);
    assert.equal(encoder.calls, 2 + 2 + 4, 'one request per (resource, scope) pair of objects; the copied spans have a resource object each');
    // OpenTelemetry's serializer writes a resource once per object, the batch once per bytes: the two
    // providers' equal resources are one here, so only the spans compare.
    const batch = encoded.take();
    assert.equal(batch.length, spans.length);
    assert.deepEqual(decodeProtobuf(Buffer.from(batch.bytes)).sort(byId), decodeProtobuf(Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!)).sort(byId));
  });

  it('write a span larger than the buffer it keeps, and the spans after it, whole', async () => {
    const records = await otelSpanRecords();
    const spans = endedSpans(4);
    const large = { ...spans[1]!, attributes: { ...spans[1]!.attributes, body: 'x'.repeat(200_000) }, spanContext: () => spans[1]!.spanContext(), resource: spans[1]!.resource, instrumentationScope: spans[1]!.instrumentationScope } as ReadableSpan;
    const sequence = [spans[0]!, spans[1]!, large, spans[2]!, spans[3]!];
    const encoded = new EncodedSpans();
    for (const span of sequence) encoded.addSpan(span, countingEncoder().encode, records);
    const batch = encoded.take();
    const decoded = decodeProtobuf(Buffer.from(batch.bytes));
    assert.equal(decoded.length, 5);
    assert.equal(decoded.filter((s) => s.attributes['body'] === 'x'.repeat(200_000)).length, 1);
    assertSameRequest(batch, sequence);
  });

  it('answers nothing more than its spans: an empty take is an empty request', () => {
    const batch = new EncodedSpans().take();
    assert.equal(batch.length, 0);
    assert.equal(batch.bytes.length, 0);
  });
});

describe('the encoded batch processor', () => {
  /** An exporter that keeps what it was given. */
  function keeping(): SpanExporter & { batches: EncodedBatch[]; flushed: number; shut: boolean } {
    const exporter = {
      batches: [] as EncodedBatch[],
      flushed: 0,
      shut: false,
      export(items: ReadableSpan[], done: (r: { code: ExportResultCode }) => void): void {
        exporter.batches.push(items as unknown as EncodedBatch);
        done({ code: ExportResultCode.SUCCESS });
      },
      async forceFlush(): Promise<void> {
        exporter.flushed++;
      },
      async shutdown(): Promise<void> {
        exporter.shut = true;
      },
    };
    return exporter;
  }
  const config = (c: Partial<EncodedBatchConfig>): EncodedBatchConfig => ({ scheduledDelayMillis: 60_000, maxExportBatchSize: 512, maxQueueSize: 2048, ...c });
  /** The span ids of the batches, sorted (a batch groups its spans by scope). */
  const spansOf = (batches: EncodedBatch[]): string[] => batches.flatMap((b) => decodeProtobuf(Buffer.from(b.bytes)).map((s) => s.spanId)).sort();
  const idsOf = (spans: ReadableSpan[]): string[] => spans.map((s) => s.spanContext().spanId).sort();

  it('exports a batch as soon as it is full, the rest after the scheduled delay', async () => {
    const exporter = keeping();
    const processor = new EncodedBatchProcessor(exporter, (s) => ProtobufTraceSerializer.serializeRequest(s), config({ maxExportBatchSize: 10, scheduledDelayMillis: 20 }));
    const spans = endedSpans(25);
    for (const span of spans) processor.onEnd(span);
    assert.deepEqual(exporter.batches.map((b) => b.length), [10, 10]);
    const waited = Date.now();
    while (exporter.batches.length < 3) {
      assert.ok(Date.now() - waited < 30_000, 'the last batch never left');
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(exporter.batches.map((b) => b.length), [10, 10, 5]);
    assert.deepEqual(spansOf(exporter.batches), idsOf(spans));
    await processor.shutdown();
  });

  it('drops spans past a full queue and unsampled ones; forceFlush and shutdown export what waits', async () => {
    const exporter = keeping();
    const processor = new EncodedBatchProcessor(exporter, (s) => ProtobufTraceSerializer.serializeRequest(s), config({ maxQueueSize: 4, maxExportBatchSize: 8 }));
    const spans = endedSpans(9);
    const unsampled = { ...spans[0]!, spanContext: () => ({ ...spans[0]!.spanContext(), traceFlags: TraceFlags.NONE }) } as ReadableSpan;
    processor.onEnd(unsampled);
    for (const span of spans.slice(0, 6)) processor.onEnd(span);
    assert.equal(exporter.batches.length, 0);
    await processor.forceFlush();
    assert.deepEqual(spansOf(exporter.batches), idsOf(spans.slice(0, 4)));
    assert.equal(exporter.flushed, 1);
    for (const span of spans.slice(6)) processor.onEnd(span);
    await processor.shutdown();
    assert.deepEqual(exporter.batches.map((b) => b.length), [4, 3]);
    assert.ok(exporter.shut);
    processor.onEnd(spans[0]!);
    assert.equal(exporter.batches.length, 2, 'a span ended after shutdown is not exported');
  });

  it("encodes a span whose resource still waits for a detector once it settled, with the detector's attributes", async () => {
    const exporter = keeping();
    const processor = new EncodedBatchProcessor(exporter, (s) => ProtobufTraceSerializer.serializeRequest(s), config({}));
    let settle!: (id: string) => void;
    const hostId = new Promise<string>((resolve) => (settle = resolve));
    const ended: ReadableSpan[] = [];
    const collect: SpanProcessor = { onStart: () => undefined, onEnd: (s) => void ended.push(s), forceFlush: async () => undefined, shutdown: async () => undefined };
    const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'shop', 'host.id': hostId }), spanProcessors: [collect] });
    provider.getTracer('t').startSpan('GET').end();
    processor.onEnd(ended[0]!);
    const flushed = processor.forceFlush();
    assert.equal(exporter.batches.length, 0, 'encoded before the resource settled');
    settle('host-1');
    await flushed;
    const [span] = decodeProtobuf(Buffer.from(exporter.batches[0]!.bytes));
    assert.equal(span!.resource['host.id'], 'host-1');
    assert.equal(span!.resource['service.name'], 'shop');
  });

  it('drops a span it cannot encode, and goes on', async () => {
    const exporter = keeping();
    let calls = 0;
    const processor = new EncodedBatchProcessor(
      exporter,
      (s) => {
        if (calls++ === 0) throw new Error('cannot encode');
        return ProtobufTraceSerializer.serializeRequest(s);
      },
      config({}),
    );
    for (const span of endedSpans(3)) processor.onEnd(span);
    await processor.forceFlush();
    assert.deepEqual(exporter.batches.map((b) => b.length), [2]);
  });
});
