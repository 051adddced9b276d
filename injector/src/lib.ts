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
import type { ProfilingHandle, ProfilingOptions, SpanProfilingProcessor as DeclaredProcessor } from '../package/index';
import { readConfig, type AgentConfig } from './shared/config';
import { createLogger } from './shared/log';
import { loadNativeProfiler } from './profiling/native/load';
import { ForwardingSpanProcessor, SpanProfilingRuntime, sharedRuntime } from './profiling/runtime';

/** Add to the app's tracer provider: marks local-root spans and labels the samples taken under them. */
export class SpanProfilingProcessor extends ForwardingSpanProcessor {}

// The package's public types are written once, in package/index.d.ts; this is what implements them.
export type { ProfilingHandle, ProfilingOptions };
const _declared: new () => DeclaredProcessor = SpanProfilingProcessor;
void _declared;

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
