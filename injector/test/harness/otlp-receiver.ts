/**
 * An OTLP trace receiver for tests: http/json, http/protobuf and grpc, all
 * decoded into the same plain span records.
 */
import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { serveBodies, type LoopbackServer } from './loopback-server';

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startNanos: bigint;
  endNanos: bigint;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
}

// The fields of the OTLP trace protocol these tests read (field numbers from the OTLP spec).
const OTLP_TRACE_PROTO = `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { repeated Span spans = 2; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; int32 kind = 6;
  fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9;
}
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; bytes bytes_value = 7; }
}
`;
const root = protobuf.parse(OTLP_TRACE_PROTO, { keepCase: false }).root;
const ExportRequest = root.lookupType('otlp.ExportTraceServiceRequest');

interface JsonKeyValue {
  key: string;
  value?: Record<string, unknown>;
}
interface JsonSpan {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name?: string;
  kind?: number;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: JsonKeyValue[];
}
interface JsonRequest {
  resourceSpans?: { resource?: { attributes?: JsonKeyValue[] }; scopeSpans?: { spans?: JsonSpan[] }[] }[];
}

function anyValue(value: Record<string, unknown> | undefined): unknown {
  if (value === undefined) return undefined;
  for (const key of ['stringValue', 'boolValue', 'intValue', 'doubleValue', 'bytesValue']) {
    if (value[key] !== undefined && value[key] !== null) return key === 'intValue' ? Number(value[key]) : value[key];
  }
  return undefined;
}

function attributes(list: JsonKeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of list ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

/** Ids arrive as hex (OTLP/JSON) or base64 (protobufjs's JSON view of bytes). */
function hexId(id: unknown, bytes: number): string {
  if (typeof id !== 'string' || id === '') return '';
  if (/^[0-9a-f]+$/i.test(id) && id.length === bytes * 2) return id.toLowerCase();
  return Buffer.from(id, 'base64').toString('hex');
}

function spansOf(request: JsonRequest): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const rs of request.resourceSpans ?? []) {
    const resource = attributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        spans.push({
          traceId: hexId(s.traceId, 16),
          spanId: hexId(s.spanId, 8),
          parentSpanId: hexId(s.parentSpanId, 8),
          name: s.name ?? '',
          kind: Number(s.kind ?? 0),
          startNanos: BigInt(s.startTimeUnixNano ?? 0),
          endNanos: BigInt(s.endTimeUnixNano ?? 0),
          attributes: attributes(s.attributes),
          resource,
        });
      }
    }
  }
  return spans;
}

/** The spans of an ExportTraceServiceRequest in protobuf. */
export function decodeProtobuf(body: Buffer): ReceivedSpan[] {
  const message = ExportRequest.decode(body);
  return spansOf(ExportRequest.toObject(message, { longs: String, bytes: String, defaults: false }) as JsonRequest);
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** Content types seen, to check which protocol the exporter used. */
  readonly protocols = new Set<string>();
  private httpServer: LoopbackServer | undefined;
  private grpcServer: grpc.Server | undefined;
  httpUrl = '';
  grpcUrl = '';

  async start(): Promise<this> {
    this.httpServer = await serveBodies((req, body, res) => {
      if (req.url !== '/v1/traces') {
        res.statusCode = 404;
        res.end();
        return;
      }
      try {
        if ((req.headers['content-type'] ?? '').includes('json')) {
          this.protocols.add('http/json');
          this.spans.push(...spansOf(JSON.parse(body.toString('utf8')) as JsonRequest));
          res.setHeader('content-type', 'application/json');
          res.end('{}');
        } else {
          this.protocols.add('http/protobuf');
          this.spans.push(...decodeProtobuf(body));
          res.setHeader('content-type', 'application/x-protobuf');
          res.end();
        }
      } catch (err) {
        res.statusCode = 400;
        res.end(String(err));
      }
    });
    this.httpUrl = this.httpServer.url;

    this.grpcServer = new grpc.Server();
    this.grpcServer.addService(
      {
        export: {
          path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
          requestStream: false,
          responseStream: false,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: () => Buffer.alloc(0),
          responseDeserialize: (b: Buffer) => b,
        },
      },
      {
        export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          this.protocols.add('grpc');
          try {
            this.spans.push(...decodeProtobuf(call.request));
            callback(null, Buffer.alloc(0));
          } catch (err) {
            callback({ code: grpc.status.INVALID_ARGUMENT, details: String(err) });
          }
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      this.grpcServer!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.grpcUrl = `http://127.0.0.1:${port}`;
    return this;
  }

  async close(): Promise<void> {
    await this.httpServer?.close();
    this.grpcServer?.forceShutdown();
  }
}
