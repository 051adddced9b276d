/**
 * The library form, for apps that set up OpenTelemetry in code (the npm
 * package built from this directory): a span processor to add to the app's
 * own tracer provider, and one call that starts the profiler and the upload.
 *
 *   const { SpanProfilingProcessor, startProfiling } = require('@span-profiling/node');
 *   const sdk = new NodeSDK({ spanProcessors: [new SpanProfilingProcessor(), new BatchSpanProcessor(exporter)], ... });
 *   sdk.start();
 *   const profiling = startProfiling({ serverAddress: 'http://pyroscope:4040' });
 *
 * It uses the app's `@opentelemetry/api` (a peer dependency) and follows
 * whichever context manager the app registers. When the zero-code agent is
 * preloaded too, both share the agent's profiler.
 */
import { readConfig, type AgentConfig, type LogLevel } from './config';
import { createLogger } from './log';
import { loadNativeProfiler } from './native/load';
import { ForwardingSpanProcessor, SpanProfilingRuntime, sharedRuntime } from './runtime';

/** Add to the app's tracer provider: marks local-root spans and labels the samples taken under them. */
export class SpanProfilingProcessor extends ForwardingSpanProcessor {}

export interface ProfilingOptions {
  /** Pyroscope URL; default PYROSCOPE_SERVER_ADDRESS. */
  serverAddress?: string;
  /** The application in Pyroscope; default: the spans' service.name, else PYROSCOPE_APPLICATION_NAME or OTEL_SERVICE_NAME. */
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
  logLevel?: LogLevel;
  /** Where unset options are read from; default process.env (the same PYROSCOPE_* / OTEL_PYROSCOPE_* variables as the agent). */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface ProfilingHandle {
  /** Whether this process is being profiled (by this call or by the agent). */
  readonly running: boolean;
  /** Collects the profile so far and queues it for upload. */
  flush(): void;
  /** Uploads the last profile (bounded by PYROSCOPE_SHUTDOWN_TIMEOUT_MS) and stops. */
  stop(): Promise<void>;
}

const defined = <T extends object>(values: T): Partial<T> =>
  Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>;

/** Starts profiling this process and uploading to Pyroscope. Never throws: problems are logged to stderr. */
export function startProfiling(options: ProfilingOptions = {}): ProfilingHandle {
  const { config: fromEnv, warnings } = readConfig(options.env ?? process.env);
  const log = createLogger(options.logLevel ?? fromEnv.logLevel);
  for (const warning of warnings) log.warn(warning);
  const config: AgentConfig = {
    ...fromEnv,
    spanLink: { ...fromEnv.spanLink, ...defined({ rootSpanOnly: options.rootSpanOnly, addSpanName: options.addSpanName, addTraceId: options.addTraceId }) },
    profiling: {
      ...fromEnv.profiling,
      ...defined({
        authToken: options.authToken,
        basicAuthUser: options.basicAuthUser,
        basicAuthPassword: options.basicAuthPassword,
        tenantId: options.tenantId,
        headers: options.headers,
        uploadIntervalMs: options.uploadIntervalMs,
        samplingIntervalMicros: options.samplingIntervalMicros,
        collectCpuTime: options.collectCpuTime,
        heapSamplingIntervalBytes: options.heapSamplingIntervalBytes,
      }),
      labels: { ...fromEnv.profiling.labels, ...options.labels },
    },
  };
  if (options.applicationName !== undefined) {
    config.profiling.applicationName = options.applicationName;
    config.profiling.applicationNameExplicit = true;
  }
  if (options.serverAddress !== undefined) {
    const valid = /^https?:\/\/[^\s/]+/.test(options.serverAddress);
    if (!valid) log.warn(`serverAddress ${JSON.stringify(options.serverAddress)} is not an http(s) URL; profiles will not be uploaded`);
    config.profiling.serverAddress = valid ? options.serverAddress.replace(/\/+$/, '') : undefined;
    config.profiling.enabled = valid;
  }

  const existing = sharedRuntime();
  if (existing !== undefined) {
    log.info(`this process is already profiled by the span-profiling ${existing.owner}; its spans are linked through it`);
    return { running: true, flush: () => undefined, stop: () => Promise.resolve() };
  }
  if (config.disabled || !config.profiling.enabled) {
    if (config.profiling.serverAddress === undefined) log.warn('no Pyroscope server address (serverAddress or PYROSCOPE_SERVER_ADDRESS): not profiling');
    return { running: false, flush: () => undefined, stop: () => Promise.resolve() };
  }

  const runtime = new SpanProfilingRuntime(config, { loadNativeProfiler }, log, 'library');
  runtime.start();
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= runtime.stop().catch(() => undefined));
  // A natural end uploads the last profile; on signals the app's own shutdown calls stop().
  process.once('beforeExit', () => void stop());
  return {
    get running() {
      return runtime.running;
    },
    flush: () => runtime.flush(),
    stop,
  };
}
