/**
 * The batch span processor for OTLP over protobuf (http/protobuf, grpc): each
 * span is encoded when it ends, and only its bytes wait for the batch.
 *
 * OpenTelemetry's BatchSpanProcessor keeps every ended span, with its
 * attributes, events and times, until its batch is exported (up to 5 s, or 512
 * spans). At a few hundred requests a second those objects outlive two
 * young-generation collections and are promoted: the agent's largest
 * per-request survivor once its contexts no longer were (tracing/otel-context.ts). V8
 * grows the young generation by what survives, so every scavenge then paused
 * twice as long as without the agent. Here a span's bytes go into a buffer
 * outside the JavaScript heap, and the span dies young.
 *
 * Same behaviour as the batch processor it replaces: sampled spans only; a
 * span whose resource still waits for a detector is encoded once it settled;
 * OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_EXPORT_BATCH_SIZE and
 * OTEL_BSP_MAX_QUEUE_SIZE (spans past a full queue are dropped, and said so);
 * one request per batch, with one ResourceSpans per resource and one
 * ScopeSpans per instrumentation scope, as OpenTelemetry's serializer writes
 * them. The bytes of each span are that serializer's: the first span of a
 * resource and instrumentation scope is taken out of the one-span request it
 * makes, and the next ones are its span writer's record of the span alone
 * (spanRecordWriter), without their resource written and parsed again.
 */
import { diag, TraceFlags } from '@opentelemetry/api';
import { getNumberFromEnv } from '@opentelemetry/core';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';

/** A batch already encoded: the exporter's serializer answers `bytes` for it (see acceptEncoded). */
export class EncodedBatch {
  constructor(
    readonly bytes: Uint8Array,
    /** Spans in it (the exporter counts items by length). */
    readonly length: number,
  ) {}
}

export interface SpanSerializer {
  serializeRequest(items: ReadableSpan[]): Uint8Array | undefined;
}

/** Makes `serializer` answer an EncodedBatch's bytes as they are; answers its own encoding of other items. */
export function acceptEncoded(serializer: SpanSerializer): (spans: ReadableSpan[]) => Uint8Array | undefined {
  const own = serializer.serializeRequest.bind(serializer);
  const accepting = (items: ReadableSpan[] | EncodedBatch): Uint8Array | undefined => (items instanceof EncodedBatch ? items.bytes : own(items));
  serializer.serializeRequest = accepting as SpanSerializer['serializeRequest'];
  return own;
}

const CHUNK_BYTES = 64 * 1024;

/** Bytes appended to buffers outside the JavaScript heap, a chunk at a time. */
class ByteQueue {
  private readonly chunks: Buffer[] = [];
  private used = 0;
  size = 0;

  push(bytes: Uint8Array, start: number, end: number): void {
    let from = start;
    while (from < end) {
      let last = this.chunks[this.chunks.length - 1];
      if (last === undefined || this.used === last.length) {
        // Not from Node's shared pool: the chunk's memory is its own, outside the heap.
        last = Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, end - from));
        this.chunks.push(last);
        this.used = 0;
      }
      const n = Math.min(end - from, last.length - this.used);
      last.set(bytes.subarray(from, from + n), this.used);
      this.used += n;
      from += n;
    }
    this.size += end - start;
  }

  copyTo(target: Buffer, at: number): number {
    let offset = at;
    this.chunks.forEach((chunk, i) => {
      const n = i === this.chunks.length - 1 ? this.used : chunk.length;
      chunk.copy(target, offset, 0, n);
      offset += n;
    });
    return offset;
  }

  clear(): void {
    // One chunk stays for the next batch.
    this.chunks.length = Math.min(this.chunks.length, 1);
    this.used = 0;
    this.size = 0;
  }
}

/** The fields of a protobuf message's bytes: [field number, start of its record, start of its value, end]. */
function* records(buf: Uint8Array, start: number, end: number): Generator<[number, number, number, number]> {
  let pos = start;
  while (pos < end) {
    const recordStart = pos;
    let tag: number;
    [tag, pos] = varint(buf, pos);
    const wire = tag & 7;
    let valueStart = pos;
    if (wire === 0) [, pos] = varint(buf, pos);
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      let length: number;
      [length, valueStart] = varint(buf, pos);
      pos = valueStart + length;
    } else throw new Error(`protobuf wire type ${wire} not expected in a trace request`);
    if (pos > end) throw new Error('protobuf record past the end of its message');
    yield [tag >>> 3, recordStart, valueStart, pos];
  }
}

function varint(buf: Uint8Array, at: number): [number, number] {
  let value = 0;
  let shift = 0;
  let pos = at;
  for (;;) {
    const byte = buf[pos++];
    if (byte === undefined) throw new Error('protobuf varint past the end');
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, pos];
    shift += 7;
  }
}

function varintLength(n: number): number {
  let length = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 128)) length++;
  return length;
}

function writeVarint(target: Buffer, at: number, n: number): number {
  let pos = at;
  let v = n;
  while (v >= 0x80) {
    target[pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  target[pos++] = v;
  return pos;
}

/** A length-delimited field's tag (wire type 2) for field numbers below 16: one byte. */
const lengthDelimited = (field: number): number => (field << 3) | 2;

/** A ResourceSpans or ScopeSpans: its fields other than its children (resource or scope, schema URL), and its children's bytes. */
interface Group<C> {
  head: Buffer;
  children: C;
}
type ScopeGroup = Group<ByteQueue>;
type ResourceGroup = Group<Map<string, ScopeGroup>>;

/** Encoded spans, grouped as an ExportTraceServiceRequest groups them. */
export class EncodedSpans {
  private readonly resources = new Map<string, ResourceGroup>();
  count = 0;

  /** Each (resource, instrumentation scope) pair's group, once a span of theirs was added. */
  private readonly groupOf = new WeakMap<object, WeakMap<object, ScopeGroup>>();

  /**
   * Adds an ended span: only its record (`writeRecord`) when a span of the same resource and
   * instrumentation scope objects was added before, its one-span request (`encode`) otherwise.
   */
  addSpan(span: ReadableSpan, encode: (spans: ReadableSpan[]) => Uint8Array | undefined, writeRecord?: SpanRecordWriter): void {
    const resource = span.resource as object | undefined;
    const scope = span.instrumentationScope as object | undefined;
    const known = writeRecord === undefined || resource == null || scope == null ? undefined : this.groupOf.get(resource)?.get(scope);
    if (known !== undefined) {
      const record = writeRecord!(span);
      known.children.push(record, 0, record.length);
      this.count++;
      return;
    }
    const request = encode([span]);
    if (request === undefined) return;
    const group = this.add(request);
    if (writeRecord === undefined || group === undefined || resource == null || scope == null) return;
    let scopes = this.groupOf.get(resource);
    if (scopes === undefined) this.groupOf.set(resource, (scopes = new WeakMap()));
    scopes.set(scope, group);
  }

  /** Adds the span of a one-span ExportTraceServiceRequest; answers the group it went to (of the last span, for a request of several). */
  add(request: Uint8Array): ScopeGroup | undefined {
    let last: ScopeGroup | undefined;
    for (const [field, , rsStart, rsEnd] of records(request, 0, request.length)) {
      if (field !== 1) continue;
      // ResourceSpans: resource = 1, scope_spans = 2, schema_url = 3.
      const [rsHead, scopeSpans] = split(request, rsStart, rsEnd, 2);
      const resource = getOrAdd(this.resources, rsHead, () => new Map<string, ScopeGroup>());
      for (const [, ssStart, ssEnd] of scopeSpans) {
        // ScopeSpans: scope = 1, spans = 2, schema_url = 3. A span's record is copied whole.
        const [ssHead, spans] = split(request, ssStart, ssEnd, 2);
        const scope = getOrAdd(resource.children, ssHead, () => new ByteQueue());
        for (const [recordStart, , recordEnd] of spans) {
          scope.children.push(request, recordStart, recordEnd);
          this.count++;
          last = scope;
        }
      }
    }
    return last;
  }

  /** The request of every span added since the last take; empties the groups. */
  take(): EncodedBatch {
    const sized = [...this.resources.values()].map((resource) => {
      const scopes = [...resource.children.values()].filter((s) => s.children.size > 0).map((s) => ({ scope: s, length: s.head.length + s.children.size }));
      const length = resource.head.length + scopes.reduce((n, s) => n + 1 + varintLength(s.length) + s.length, 0);
      return { resource, scopes, length };
    }).filter((r) => r.scopes.length > 0);
    const total = sized.reduce((n, r) => n + 1 + varintLength(r.length) + r.length, 0);
    const out = Buffer.allocUnsafeSlow(total);
    let at = 0;
    for (const r of sized) {
      out[at++] = lengthDelimited(1);
      at = writeVarint(out, at, r.length);
      at += r.resource.head.copy(out, at);
      for (const s of r.scopes) {
        out[at++] = lengthDelimited(2);
        at = writeVarint(out, at, s.length);
        at += s.scope.head.copy(out, at);
        at = s.scope.children.copyTo(out, at);
        s.scope.children.clear();
      }
    }
    const batch = new EncodedBatch(out, this.count);
    this.count = 0;
    return batch;
  }
}

/** A message's records of field `childField` ([record start, value start, end] each), and the rest of its bytes as they were. */
function split(buf: Uint8Array, start: number, end: number, childField: number): [Buffer, [number, number, number][]] {
  const head: Uint8Array[] = [];
  const children: [number, number, number][] = [];
  for (const [field, recordStart, valueStart, recordEnd] of records(buf, start, end)) {
    if (field === childField) children.push([recordStart, valueStart, recordEnd]);
    else head.push(buf.subarray(recordStart, recordEnd));
  }
  return [Buffer.concat(head), children];
}

function getOrAdd<C>(groups: Map<string, Group<C>>, head: Buffer, make: () => C): Group<C> {
  const key = head.toString('latin1');
  let group = groups.get(key);
  if (group === undefined) groups.set(key, (group = { head: Buffer.from(head), children: make() }));
  return group;
}

/** A span's record as a ScopeSpans holds it (field 2: tag, length, Span); the bytes are valid until the next call. */
export type SpanRecordWriter = (span: ReadableSpan) => Uint8Array;

/** OpenTelemetry's ProtobufWriter, as the span writer uses it. */
interface ProtobufWriterLike {
  pos: number;
  writeTag(field: number, wireType: number): void;
  finish(): Uint8Array;
}

/** A buffer that grew past this for a large span is let go of after it. */
const KEPT_WRITER_BYTES = 64 * 1024;

/**
 * OpenTelemetry's own span serializer (`serializeSpan`, the function its request serializer writes
 * each span with) writing into one buffer, reused from span to span: no resource, no size estimate,
 * no parsing back.
 */
export function spanRecordWriter(
  serializeSpan: (writer: ProtobufWriterLike, span: ReadableSpan) => void,
  Writer: new (estimatedSize: number) => ProtobufWriterLike,
): SpanRecordWriter {
  let writer: ProtobufWriterLike | undefined;
  return (span) => {
    const w = (writer ??= new Writer(4096));
    w.pos = 0;
    // ScopeSpans.spans is field 2, length-delimited.
    w.writeTag(2, 2);
    serializeSpan(w, span);
    const bytes = w.finish();
    if (bytes.buffer.byteLength > KEPT_WRITER_BYTES) writer = undefined;
    return bytes;
  };
}

export interface EncodedBatchConfig {
  scheduledDelayMillis: number;
  maxExportBatchSize: number;
  maxQueueSize: number;
}

/** OTEL_BSP_* as OpenTelemetry's batch processor reads them, with its defaults. */
export function batchConfigFromEnv(): EncodedBatchConfig {
  const maxQueueSize = getNumberFromEnv('OTEL_BSP_MAX_QUEUE_SIZE') ?? 2048;
  const maxExportBatchSize = getNumberFromEnv('OTEL_BSP_MAX_EXPORT_BATCH_SIZE') ?? 512;
  return {
    scheduledDelayMillis: getNumberFromEnv('OTEL_BSP_SCHEDULE_DELAY') ?? 5000,
    maxQueueSize,
    // A batch larger than the queue cannot fill: the batch processor takes the queue's size then.
    maxExportBatchSize: Math.min(maxExportBatchSize, maxQueueSize),
  };
}

type SettlingResource = { asyncAttributesPending?: boolean; waitForAsyncAttributes?: () => Promise<void> };

export class EncodedBatchProcessor implements SpanProcessor {
  private readonly pending = new EncodedSpans();
  /** Spans whose resource still waits for detectors (a process's first moments): encoded once it settled, as the batch processor waits before exporting. */
  private readonly settling = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private shut = false;
  private dropped = 0;
  private failedEncoding = false;

  constructor(
    private readonly exporter: SpanExporter,
    /** One span as an ExportTraceServiceRequest (OpenTelemetry's protobuf serializer). */
    private readonly encode: (spans: ReadableSpan[]) => Uint8Array | undefined,
    private readonly config: EncodedBatchConfig = batchConfigFromEnv(),
    /** The span writer of that serializer, when there is one (asked at the first span that ends). */
    private readonly spanRecords: () => SpanRecordWriter | undefined = () => undefined,
  ) {}

  onStart(_span: Span): void {}

  onEnd(span: ReadableSpan): void {
    if (this.shut || (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.pending.count + this.settling.size >= this.config.maxQueueSize) {
      if (this.dropped++ === 0) diag.warn('span export: the queue is full; dropping spans until it empties');
      return;
    }
    const resource = span.resource as SettlingResource | undefined;
    if (resource?.asyncAttributesPending === true && typeof resource.waitForAsyncAttributes === 'function') {
      const settled: Promise<void> = resource
        .waitForAsyncAttributes()
        .catch(() => undefined)
        .then(() => {
          this.settling.delete(settled);
          if (!this.shut) this.add(span);
        });
      this.settling.add(settled);
      return;
    }
    this.add(span);
  }

  private add(span: ReadableSpan): void {
    try {
      this.pending.addSpan(span, this.encode, this.spanRecords());
    } catch (err) {
      if (!this.failedEncoding) diag.error(`span export: a span could not be encoded and was dropped: ${err instanceof Error ? err.message : String(err)}`);
      this.failedEncoding = true;
      return;
    }
    if (this.pending.count >= this.config.maxExportBatchSize) this.send();
    else this.timer ??= setTimeout(() => this.send(), this.config.scheduledDelayMillis).unref();
  }

  private send(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.count === 0) return;
    if (this.dropped > 0) diag.warn(`span export: dropped ${this.dropped} span(s) while the queue was full`);
    this.dropped = 0;
    const batch = this.pending.take();
    this.exporter.export(batch as unknown as ReadableSpan[], () => undefined);
  }

  async forceFlush(): Promise<void> {
    await Promise.all(this.settling);
    this.send();
    await this.exporter.forceFlush?.();
  }

  async shutdown(): Promise<void> {
    if (this.shut) return;
    await this.forceFlush();
    this.shut = true;
    await this.exporter.shutdown();
  }
}
