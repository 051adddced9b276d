/**
 * OpenTelemetry tracing from the standard OTEL_* environment, as the upstream
 * auto-instrumentation register script sets it up, plus two things of ours:
 * the span linker as the first span processor, and the context manager that
 * keeps the profiler's context in step with the active span.
 */
import { NodeSDK } from '@opentelemetry/sdk-node';
import { getNodeAutoInstrumentations, getResourceDetectors } from '@opentelemetry/auto-instrumentations-node';
import { getSpanProcessorsFromEnv } from '@opentelemetry/sdk-node/build/src/utils';
import { containerDetector } from '@opentelemetry/resource-detector-container';
import { envDetector, hostDetector, osDetector, processDetector, serviceInstanceIdDetector } from '@opentelemetry/resources';
import type { ContextManager } from '@opentelemetry/api';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';

export interface Tracing {
  /** False when no trace exporter is configured: spans are not exported, so none are linked. */
  readonly exporting: boolean;
  shutdown(): Promise<void>;
}

type Env = Readonly<Record<string, string | undefined>>;

export function startTracing(env: Env, linker: SpanProcessor | undefined, contextManager: ContextManager): Tracing {
  const exporters = getSpanProcessorsFromEnv(undefined);
  const sdk = new NodeSDK({
    instrumentations: [getNodeAutoInstrumentations()],
    resourceDetectors: resourceDetectors(env),
    contextManager,
    spanProcessors: exporters.length > 0 && linker !== undefined ? [linker, ...exporters] : exporters,
    // Metrics and logs go over OTLP only when asked for: this agent is about traces and
    // profiles, and trace backends rarely accept the other two.
    ...(env['OTEL_METRICS_EXPORTER'] === undefined ? { metricReaders: [] } : {}),
    ...(env['OTEL_LOGS_EXPORTER'] === undefined ? { logRecordProcessors: [] } : {}),
  });
  sdk.start();
  return { exporting: exporters.length > 0, shutdown: () => sdk.shutdown() };
}

/**
 * The upstream default ("all") queries cloud metadata endpoints at start-up.
 * In a pod, the operator passes the Kubernetes attributes in
 * OTEL_RESOURCE_ATTRIBUTES, so by default only local detectors run.
 */
function resourceDetectors(env: Env) {
  if (env['OTEL_NODE_RESOURCE_DETECTORS'] !== undefined) return getResourceDetectors();
  return [envDetector, hostDetector, osDetector, processDetector, serviceInstanceIdDetector, containerDetector];
}
