// Types of @span-profiling/node (the library form of the span-profiling agent; source: injector/src/lib.ts).
import type { Context } from '@opentelemetry/api';

/** The subset of an OpenTelemetry SDK span the processor reads. */
interface SdkSpan {
  spanContext(): { traceId: string; spanId: string; traceFlags: number };
  setAttribute(key: string, value: string): unknown;
}

/**
 * Add to the app's own tracer provider (NodeSDK `spanProcessors`, NodeTracerProvider or
 * BasicTracerProvider `spanProcessors`): sampled local-root spans get `pyroscope.profile.id`
 * and the CPU samples taken while they run are labelled `span_id` / `span_name`.
 */
export declare class SpanProfilingProcessor {
  onStart(span: SdkSpan, parentContext: Context): void;
  onEnd(span: unknown): void;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface ProfilingOptions {
  /** Pyroscope URL; default PYROSCOPE_SERVER_ADDRESS. */
  serverAddress?: string;
  /**
   * The application in Pyroscope until the first linked span is seen (default PYROSCOPE_APPLICATION_NAME or
   * OTEL_SERVICE_NAME); from then on profiles go to the spans' service.name, the series Grafana's link selects.
   */
  applicationName?: string;
  authToken?: string;
  basicAuthUser?: string;
  basicAuthPassword?: string;
  tenantId?: string;
  /** Static series labels (names `[a-z_][a-z0-9_]*`). */
  labels?: Record<string, string>;
  /** Extra HTTP headers on every upload. */
  headers?: Record<string, string>;
  uploadIntervalMs?: number;
  samplingIntervalMicros?: number;
  collectCpuTime?: boolean;
  /** Bytes between heap samples; 0 (the default) turns the heap profile off. */
  heapSamplingIntervalBytes?: number;
  /** Label samples with the local-root span (default) or with the innermost span. */
  rootSpanOnly?: boolean;
  addSpanName?: boolean;
  addTraceId?: boolean;
  logLevel?: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** Where unset options are read from; default process.env (PYROSCOPE_* / OTEL_PYROSCOPE_*). */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface ProfilingHandle {
  /** Whether this process is being profiled (by this call or by the preloaded agent). */
  readonly running: boolean;
  /** Collects the profile so far and queues it for upload. */
  flush(): void;
  /** Uploads the last profile (bounded) and stops. */
  stop(): Promise<void>;
}

/** Starts profiling this process and uploading to Pyroscope. Never throws: problems are logged to stderr. */
export declare function startProfiling(options?: ProfilingOptions): ProfilingHandle;
