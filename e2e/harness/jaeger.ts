/**
 * A real Jaeger (v2, the OpenTelemetry-collector based binary) with in-memory
 * storage: OTLP in, the query API out, all on loopback ports.
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { freePort, httpOk, ManagedProcess, tempDir } from './processes';
import { tool } from './toolchain';

export interface Jaeger {
  otlpHttpUrl: string;
  otlpGrpcUrl: string;
  queryUrl: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export interface JaegerPorts {
  otlpGrpc: number;
  otlpHttp: number;
  queryHttp: number;
  queryGrpc: number;
  health: number;
}

/** Jaeger v2 config: OTLP in, in-memory storage, the query API; shared by the test process and the in-cluster Deployment. */
export function jaegerConfig(host: string, ports: JaegerPorts): string {
  return `
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: ${host}:${ports.health}
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: ${host}:${ports.queryHttp}
    grpc:
      endpoint: ${host}:${ports.queryGrpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${host}:${ports.otlpGrpc}
      http:
        endpoint: ${host}:${ports.otlpHttp}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`;
}

export async function startJaeger(logDir = tempDir('jaeger')): Promise<Jaeger> {
  const [otlpGrpc, otlpHttp, queryHttp, queryGrpc, health] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const config = jaegerConfig('127.0.0.1', { otlpGrpc, otlpHttp, queryHttp, queryGrpc, health });
  const file = path.join(logDir, 'jaeger.yaml');
  writeFileSync(file, config);
  // Jaeger would otherwise trace itself to localhost:4317.
  const process = new ManagedProcess('jaeger', tool('jaeger'), ['--config', file], { logDir, env: { ...globalThis.process.env, OTEL_TRACES_EXPORTER: 'none' } });
  const queryUrl = `http://127.0.0.1:${queryHttp}`;
  await process.waitUntil('the query API answers', () => httpOk(`${queryUrl}/api/services`), 60_000);
  return { otlpHttpUrl: `http://127.0.0.1:${otlpHttp}`, otlpGrpcUrl: `http://127.0.0.1:${otlpGrpc}`, queryUrl, process, stop: () => process.stop() };
}

export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references?: { refType: string; spanID: string; traceID: string }[];
  tags: { key: string; type: string; value: unknown }[];
  /** Microseconds since the epoch, and microseconds. */
  startTime: number;
  duration: number;
  processID?: string;
  /** The resource's service.namespace (from the trace's process), when it has one. */
  serviceNamespace?: string;
}

export async function jaegerTraces(queryUrl: string, service: string, limit = 1000): Promise<{ traceID: string; spans: JaegerSpan[] }[]> {
  const res = await fetch(`${queryUrl}/api/traces?service=${encodeURIComponent(service)}&limit=${limit}&lookback=1h`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`jaeger query: HTTP ${res.status} ${await res.text()}`);
  type Process = { tags?: { key: string; value: unknown }[] };
  const traces = ((await res.json()) as { data: { traceID: string; spans: JaegerSpan[]; processes?: Record<string, Process> }[] }).data ?? [];
  for (const t of traces) {
    for (const s of t.spans) {
      const ns = t.processes?.[s.processID ?? '']?.tags?.find((tag) => tag.key === 'service.namespace')?.value;
      if (typeof ns === 'string') s.serviceNamespace = ns;
    }
  }
  return traces;
}

export const tagOf = (span: JaegerSpan, key: string): unknown => span.tags.find((t) => t.key === key)?.value;

export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  /** processID -> its service name. */
  services: Record<string, string>;
}

/** One trace, whole, with the service of each span's process. */
export async function jaegerTrace(queryUrl: string, traceId: string): Promise<JaegerTrace> {
  const res = await fetch(`${queryUrl}/api/traces/${traceId}`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`jaeger query: HTTP ${res.status} ${await res.text()}`);
  const [trace] = ((await res.json()) as { data?: { traceID: string; spans: JaegerSpan[]; processes?: Record<string, { serviceName?: string }> }[] }).data ?? [];
  if (trace === undefined) throw new Error(`jaeger query: no trace ${traceId}`);
  const services: Record<string, string> = {};
  for (const [id, p] of Object.entries(trace.processes ?? {})) services[id] = p.serviceName ?? '?';
  return { traceID: trace.traceID, spans: trace.spans, services };
}
