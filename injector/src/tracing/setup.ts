/**
 * OpenTelemetry tracing from the standard OTEL_* environment, composed here
 * from the SDK's parts rather than through NodeSDK, so that only what is
 * configured gets loaded (start-up time is part of the agent's cost):
 *
 * - exporters: OTEL_TRACES_EXPORTER (otlp, console, zipkin, none); OTLP over
 *   OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL grpc, http/protobuf (default) or
 *   http/json, each exporter reading its own endpoint/headers/timeout env;
 * - sampler, span limits and batch settings: read by the SDK from env;
 * - propagators: OTEL_PROPAGATORS (tracecontext, baggage, b3, b3multi, jaeger, none);
 * - resource: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES plus local detectors
 *   (OTEL_NODE_RESOURCE_DETECTORS picks among env, host, os, process,
 *   serviceinstance, container);
 * - instrumentations: see instrumentations.ts.
 *
 * Metrics and logs are not set up: this agent is about traces and profiles.
 */
import { ROOT_CONTEXT, context, diag, DiagLogLevel, propagation, trace, type Context, type DiagLogger, type Span, type SpanOptions, type TextMapPropagator, type Tracer, type TracerOptions, type TracerProvider } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { bindWithDeclaredLength } from './bind-function';
import { CompositePropagator, ExportResultCode, suppressTracing, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { registerInstrumentations, type Instrumentation } from '@opentelemetry/instrumentation';
import { defaultResource, detectResources, envDetector, hostDetector, osDetector, processDetector, serviceInstanceIdDetector, type ResourceDetector } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, type ReadableSpan, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { agentFactory } from '../export/bounded-retry';
import { acceptEncoded, EncodedBatchProcessor, spanRecordWriter, type SpanRecordWriter } from '../export/encoded-batches';
import { instrumentationGate } from './gated-shimmer';
import { apiRegistry } from '../shared/otel-api';
import { INSTRUMENTATIONS, selectInstrumentations } from './instrumentations';
import { INSTRUMENTED_PACKAGES, makeOnFirstRequire } from './lazy-instrumentations';
import type { Logger } from '../shared/log';
import { describeError } from '../shared/log';

export interface Tracing {
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
  /**
   * The app registered its own tracer provider: spans from every tracer the
   * agent's provider handed out go to `provider` from now on, the agent's
   * instrumentations stand down (inert wherever the app's wrap them), and the
   * agent's own provider and exporters shut down.
   */
  handOver(provider: TracerProvider): void;
  /** The app registered its own context manager: the agent's stops. */
  releaseContext(): void;
}

/** Registers with the OpenTelemetry API (through the registry watcher, so that the agent knows what is its own). */
export type Register = <T>(register: () => T) => T;

/**
 * The provider the agent registers: its tracers forward to the agent's own
 * provider until the app registers one, and to the app's after that. Tracers
 * taken early (the app's own instrumentations bind to the global provider
 * before its SDK registers its provider) so end up in the app's provider.
 */
class HandOverTracerProvider implements TracerProvider {
  target: TracerProvider;
  constructor(readonly own: TracerProvider) {
    this.target = own;
  }
  getTracer(name: string, version?: string, options?: TracerOptions): Tracer {
    return new HandOverTracer(this, name, version, options);
  }
}

class HandOverTracer implements Tracer {
  private target: TracerProvider | undefined;
  private targetTracer: Tracer | undefined;
  constructor(
    private readonly provider: HandOverTracerProvider,
    private readonly name: string,
    private readonly version: string | undefined,
    private readonly options: TracerOptions | undefined,
  ) {}
  private current(): Tracer {
    if (this.target !== this.provider.target || this.targetTracer === undefined) {
      this.target = this.provider.target;
      this.targetTracer = this.target.getTracer(this.name, this.version, this.options);
    }
    return this.targetTracer;
  }
  /**
   * An app that wrapped the global provider (the agent's) and registered the
   * wrapper leads back here: such a loop ends at the agent's own provider.
   */
  private tracer(): Tracer {
    return forwarding ? this.provider.own.getTracer(this.name, this.version, this.options) : this.current();
  }
  startSpan(name: string, options?: SpanOptions, ctx?: Context): Span {
    const tracer = this.tracer();
    const outer = forwarding;
    forwarding = true;
    try {
      return tracer.startSpan(name, options, ctx);
    } finally {
      forwarding = outer;
    }
  }
  startActiveSpan(...args: unknown[]): unknown {
    const tracer = this.tracer();
    const fnAt = args.findIndex((a) => typeof a === 'function');
    if (fnAt >= 0) {
      const fn = args[fnAt] as (...a: unknown[]) => unknown;
      // The app's callback runs outside the loop guard.
      args[fnAt] = (...a: unknown[]): unknown => {
        const outer = forwarding;
        forwarding = false;
        try {
          return fn(...a);
        } finally {
          forwarding = outer;
        }
      };
    }
    const outer = forwarding;
    forwarding = true;
    try {
      return (tracer.startActiveSpan as (...a: unknown[]) => unknown).apply(tracer, args);
    } finally {
      forwarding = outer;
    }
  }
}

/** Set while a span start is being forwarded, to tell a loop back into the agent's provider. */
let forwarding = false;

type Env = Readonly<Record<string, string | undefined>>;

/** Batches waiting while one is being sent; beyond this the oldest is dropped. */
const MAX_QUEUED_BATCHES = 4;

/**
 * The OTLP exporter as the batch processor sees it:
 * - the real exporter (and its transport) is created at the first export,
 *   after the first batch delay, so loading it stays off the app's start-up;
 * - batches are sent one at a time from a small queue of its own, and the
 *   processor is answered at once: its export timer is a ref'd timeout that,
 *   while a batch waited on a backend that never answers, kept a process that
 *   had finished alive for the export timeout (30 s). Failures are reported
 *   here instead (OpenTelemetry's diagnostics, once a minute per message);
 * - forceFlush and shutdown wait for the queue (the agent bounds that wait).
 */
class DeferredExporter implements SpanExporter {
  private exporter: SpanExporter | undefined;
  private readonly queue: Parameters<SpanExporter['export']>[0][] = [];
  private sending: Promise<void> | undefined;
  constructor(private readonly create: () => SpanExporter) {}
  private get real(): SpanExporter {
    return (this.exporter ??= this.create());
  }
  export(spans: Parameters<SpanExporter['export']>[0], done: Parameters<SpanExporter['export']>[1]): void {
    this.queue.push(spans);
    if (this.queue.length > MAX_QUEUED_BATCHES) {
      const dropped = this.queue.shift()!;
      diag.error(`span export: the backend is not keeping up; dropped a batch of ${dropped.length} span(s)`);
    }
    done({ code: ExportResultCode.SUCCESS });
    // The batch timer runs in the context of the span that ended when it was set: encoding and
    // sending are the agent's work, never that request's (nor traced, as the batch processor wants).
    this.sending ??= context.with(suppressTracing(ROOT_CONTEXT), () => this.drain());
  }
  private async drain(): Promise<void> {
    try {
      for (let batch = this.queue.shift(); batch !== undefined; batch = this.queue.shift()) {
        const spans = batch;
        const result = await new Promise<{ code: ExportResultCode; error?: Error }>((resolve) => {
          try {
            this.real.export(spans, resolve);
          } catch (err) {
            resolve({ code: ExportResultCode.FAILED, error: err instanceof Error ? err : new Error(String(err)) });
          }
        });
        if (result.code !== ExportResultCode.SUCCESS) diag.error(`span export failed: ${describeError(result.error ?? 'no reason given')}`);
      }
    } finally {
      this.sending = undefined;
    }
  }
  async forceFlush(): Promise<void> {
    while (this.sending !== undefined) await this.sending;
    await this.exporter?.forceFlush?.();
  }
  async shutdown(): Promise<void> {
    await this.forceFlush();
    await this.exporter?.shutdown();
  }
}

/* eslint-disable @typescript-eslint/no-require-imports */
type OtlpExporter = new (config?: { httpAgentOptions?: typeof agentFactory }) => SpanExporter;
// Endpoint, headers, timeout and compression come from the OTEL_EXPORTER_OTLP_* env; HTTP sockets from agentFactory (export/bounded-retry.ts).
const OTLP_EXPORTERS: Record<string, () => SpanExporter> = {
  grpc: () => new (require('@opentelemetry/exporter-trace-otlp-grpc') as { OTLPTraceExporter: OtlpExporter }).OTLPTraceExporter(),
  'http/protobuf': () => new (require('@opentelemetry/exporter-trace-otlp-proto') as { OTLPTraceExporter: OtlpExporter }).OTLPTraceExporter({ httpAgentOptions: agentFactory }),
  'http/json': () => new (require('@opentelemetry/exporter-trace-otlp-http') as { OTLPTraceExporter: OtlpExporter }).OTLPTraceExporter({ httpAgentOptions: agentFactory }),
};

const PROPAGATORS: Record<string, () => TextMapPropagator> = {
  tracecontext: () => new W3CTraceContextPropagator(),
  baggage: () => new W3CBaggagePropagator(),
  b3: () => {
    const b3 = require('@opentelemetry/propagator-b3') as typeof import('@opentelemetry/propagator-b3');
    return new b3.B3Propagator();
  },
  b3multi: () => {
    const b3 = require('@opentelemetry/propagator-b3') as typeof import('@opentelemetry/propagator-b3');
    return new b3.B3Propagator({ injectEncoding: b3.B3InjectEncoding.MULTI_HEADER });
  },
  jaeger: () => new (require('@opentelemetry/propagator-jaeger') as typeof import('@opentelemetry/propagator-jaeger')).JaegerPropagator(),
};

const DETECTORS: Record<string, () => ResourceDetector> = {
  env: () => envDetector,
  host: () => hostDetector,
  os: () => osDetector,
  process: () => processDetector,
  serviceinstance: () => serviceInstanceIdDetector,
  container: () => (require('@opentelemetry/resource-detector-container') as typeof import('@opentelemetry/resource-detector-container')).containerDetector,
};
/* eslint-enable @typescript-eslint/no-require-imports */

/** Comma-separated names from env, or the default; unknown names are reported and skipped. */
function names(env: Env, variable: string, known: Record<string, unknown>, fallback: string[], log: Logger, extra: string[] = []): string[] {
  const raw = env[variable]?.trim();
  const list = raw === undefined || raw === '' ? fallback : raw.split(',').map((n) => n.trim()).filter((n) => n !== '');
  const unknown = list.filter((n) => !(n in known) && !extra.includes(n));
  if (unknown.length > 0) log.warn(`${variable}: ignoring unsupported value(s) ${unknown.join(', ')}; supported: ${[...Object.keys(known), ...extra].join(', ')}`);
  return list.filter((n) => !unknown.includes(n));
}

/** One span as OTLP protobuf: OpenTelemetry's serializer, loaded at the first span that ends, made to pass encoded batches through. */
let encodeProtobuf: ((spans: ReadableSpan[]) => Uint8Array | undefined) | undefined;
const protobufSpans = (spans: ReadableSpan[]): Uint8Array | undefined =>
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (encodeProtobuf ??= acceptEncoded((require('@opentelemetry/otlp-transformer') as typeof import('@opentelemetry/otlp-transformer')).ProtobufTraceSerializer))(spans);

/**
 * That serializer's span writer: its `serializeSpan`, which the agent's bundle exports beside the
 * request serializer (serializeSpanExport in injector/added-exports.mjs), with its ProtobufWriter. None outside the
 * bundle, or from a serializer without it: each span is then taken out of its one-span request.
 */
let spanRecords: SpanRecordWriter | null | undefined;
function protobufSpanRecords(): SpanRecordWriter | undefined {
  if (spanRecords === undefined) {
    spanRecords = null;
    try {
      /* eslint-disable @typescript-eslint/no-require-imports */
      const { serializeSpan } = require('@opentelemetry/otlp-transformer/build/src/trace/protobuf/trace-serializer') as { serializeSpan?: unknown };
      const { ProtobufWriter } = require('@opentelemetry/otlp-transformer/build/src/common/protobuf/protobuf-writer') as { ProtobufWriter?: unknown };
      /* eslint-enable @typescript-eslint/no-require-imports */
      if (typeof serializeSpan === 'function' && typeof ProtobufWriter === 'function') {
        spanRecords = spanRecordWriter(serializeSpan as Parameters<typeof spanRecordWriter>[0], ProtobufWriter as Parameters<typeof spanRecordWriter>[1]);
      }
    } catch {
      // the request serializer alone
    }
  }
  return spanRecords ?? undefined;
}

/** A processor per exporter: OTLP over protobuf encodes spans as they end (export/encoded-batches.ts), the console prints each at once. */
function spanProcessors(env: Env, log: Logger): SpanProcessor[] {
  const selected = names(env, 'OTEL_TRACES_EXPORTER', { otlp: 1, console: 1, zipkin: 1 }, ['otlp'], log, ['none']);
  if (selected.includes('none')) return [];
  return selected.flatMap((name): SpanProcessor[] => {
    try {
      if (name === 'console') return [new SimpleSpanProcessor(new ConsoleSpanExporter())];
      if (name === 'zipkin') {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        return [new BatchSpanProcessor(new (require('@opentelemetry/exporter-zipkin') as typeof import('@opentelemetry/exporter-zipkin')).ZipkinExporter())];
      }
      let protocol = (env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'] || env['OTEL_EXPORTER_OTLP_PROTOCOL'] || 'http/protobuf').trim();
      if (OTLP_EXPORTERS[protocol] === undefined) {
        log.warn(`OTLP protocol ${JSON.stringify(protocol)} is not one of grpc, http/protobuf, http/json; using http/protobuf`);
        protocol = 'http/protobuf';
      }
      const exporter = new DeferredExporter(OTLP_EXPORTERS[protocol]!);
      return [protocol === 'http/json' ? new BatchSpanProcessor(exporter) : new EncodedBatchProcessor(exporter, protobufSpans, undefined, protobufSpanRecords)];
    } catch (err) {
      log.error(`trace exporter ${name} could not be created: ${describeError(err)}`);
      return [];
    }
  });
}

function propagator(env: Env, log: Logger): TextMapPropagator | undefined {
  const selected = names(env, 'OTEL_PROPAGATORS', PROPAGATORS, ['tracecontext', 'baggage'], log, ['none']);
  if (selected.includes('none')) return undefined;
  return new CompositePropagator({ propagators: [...new Set(selected)].map((n) => PROPAGATORS[n]!()) });
}

const DIAG_REPEAT_WINDOW_MS = 60_000;

/** An exception the SDK logged as JSON (its global error handler): its message, without the stack. */
function plainError(message: string): string {
  if (!message.startsWith('{')) return message;
  try {
    const parsed = JSON.parse(message) as { message?: unknown; code?: unknown };
    return typeof parsed.message === 'string' ? parsed.message : message;
  } catch {
    return message;
  }
}

/** OpenTelemetry's own diagnostics go to the agent's log, at OTEL_LOG_LEVEL (default: errors only). */
function routeDiagnostics(env: Env, log: Logger): void {
  const levels: Record<string, DiagLogLevel> = { NONE: DiagLogLevel.NONE, ERROR: DiagLogLevel.ERROR, WARN: DiagLogLevel.WARN, INFO: DiagLogLevel.INFO, DEBUG: DiagLogLevel.DEBUG, VERBOSE: DiagLogLevel.VERBOSE, ALL: DiagLogLevel.ALL };
  const level = levels[(env['OTEL_LOG_LEVEL'] ?? 'ERROR').toUpperCase()] ?? DiagLogLevel.ERROR;
  // A trace backend that is down fails every batch the same way: one line per minute for each
  // message, not one per batch with its stack.
  const lastSaid = new Map<string, { at: number; repeats: number }>();
  const write = (at: 'debug' | 'info' | 'warn' | 'error') => (message: string, ...args: unknown[]) => {
    const text = [plainError(message), ...args.map((a) => describeError(a))].join(' ');
    if (at === 'error' || at === 'warn') {
      const now = Date.now();
      const last = lastSaid.get(text);
      if (last !== undefined && now - last.at < DIAG_REPEAT_WINDOW_MS) {
        last.repeats++;
        return;
      }
      if (lastSaid.size > 100) lastSaid.clear();
      lastSaid.set(text, { at: now, repeats: 0 });
      const repeated = last !== undefined && last.repeats > 0 ? ` (and ${last.repeats} more time(s) since it was last logged)` : '';
      log[at](`opentelemetry: ${text}${repeated}`);
      return;
    }
    log[at](`opentelemetry: ${text}`);
  };
  const logger: DiagLogger = { error: write('error'), warn: write('warn'), info: write('info'), debug: write('debug'), verbose: write('debug') };
  diag.setLogger(logger, { logLevel: level, suppressOverrideMessage: true });
}

export interface TracingOptions {
  /** Make npm packages' instrumentations at their first require (lazy-instrumentations.ts). */
  lazy: boolean;
}

export function startTracing(env: Env, linker: SpanProcessor | undefined, register: Register, log: Logger, options: TracingOptions = { lazy: false }): Tracing {
  // What the app registered before the agent loaded stays: the agent never attempts a duplicate registration.
  const registered = apiRegistry();
  if (registered?.diag === undefined) register(() => routeDiagnostics(env, log));
  const selection = selectInstrumentations(env);
  for (const warning of selection.warnings) log.warn(warning);

  const processors = spanProcessors(env, log);
  const detectors = names(env, 'OTEL_NODE_RESOURCE_DETECTORS', DETECTORS, Object.keys(DETECTORS), log, ['none']).filter((n) => n !== 'none').map((n) => DETECTORS[n]!());
  const resource = defaultResource().merge(detectResources({ detectors }));
  const own = new BasicTracerProvider({
    resource,
    spanProcessors: processors.length > 0 && linker !== undefined ? [linker, ...processors] : processors,
  });
  const provider = new HandOverTracerProvider(own);

  const contextManager = new AsyncLocalStorageContextManager();
  bindWithDeclaredLength(contextManager);
  register(() => {
    if (registered?.context === undefined) context.setGlobalContextManager(contextManager.enable());
    const p = registered?.propagation === undefined ? propagator(env, log) : undefined;
    if (p !== undefined) propagation.setGlobalPropagator(p);
    trace.setGlobalTracerProvider(provider);
  });

  let handedOver = false;
  const instrumentations: Instrumentation[] = [];
  const tried = new Set<string>();
  /** Makes an instrumentation once, whoever asks first (start-up, or the first require of its module). */
  const make = (name: string): void => {
    if (handedOver || tried.has(name)) return;
    tried.add(name);
    try {
      const instrumentation = INSTRUMENTATIONS[name]!();
      instrumentations.push(instrumentation);
      registerInstrumentations({ instrumentations: [instrumentation], tracerProvider: provider });
    } catch (err) {
      log.warn(`instrumentation ${name} is off: ${describeError(err)}`);
    }
  };
  // Those that hook modules when a module is first required (CommonJS apps); the rest now.
  const table = options.lazy ? INSTRUMENTED_PACKAGES : undefined;
  const later = table === undefined ? [] : selection.names.filter((n) => table[n] !== undefined);
  const now = selection.names.filter((n) => !later.includes(n));
  if (table !== undefined && later.length > 0 && now.length > 0) makeOnFirstRequire(later, table, make);
  for (const name of now) make(name);
  // Nothing made now (none selected, or it failed): no require hook sits outside the lazy one, so make the rest now too.
  if (instrumentations.length === 0) for (const name of later) make(name);

  return {
    forceFlush: () => (handedOver ? Promise.resolve() : own.forceFlush()),
    shutdown: () => own.shutdown(),
    handOver(appProvider: TracerProvider): void {
      if (handedOver) return;
      handedOver = true;
      provider.target = appProvider;
      contextManager.disable();
      instrumentationGate.open = false;
      for (const instrumentation of instrumentations) {
        try {
          instrumentation.disable();
        } catch {
          // an instrumentation that cannot come off stays inert behind the closed gate
        }
      }
      void own.shutdown().catch(() => undefined);
    },
    releaseContext(): void {
      contextManager.disable();
    },
  };
}
