/**
 * fastify's routes in span names (`GET /orders/:id`), with no patching.
 *
 * The HTTP instrumentation names a server span `GET` and renames it
 * `GET <route>` when the response ends, from the route a framework's
 * instrumentation left in the request's RPC metadata (express and koa's
 * do). OpenTelemetry has no fastify instrumentation any more (fastify's own,
 * @fastify/otel, is registered by the app by hand), so a fastify app's spans
 * stay `GET`. Fastify 5 publishes each request's handler on the diagnostics
 * channel `tracing:fastify.request.handler`, with the matched route; this
 * subscriber copies that route into the RPC metadata, where nothing set one
 * before. It makes no span and changes nothing of the request.
 */
import * as diagnostics from 'node:diagnostics_channel';
import { context, type MeterProvider, type TracerProvider } from '@opentelemetry/api';
import { getRPCMetadata, RPCType } from '@opentelemetry/core';
import type { Instrumentation, InstrumentationConfig } from '@opentelemetry/instrumentation';

export const FASTIFY_HANDLER_START = 'tracing:fastify.request.handler:start';

interface HandlerStart {
  route?: { url?: unknown };
  request?: { routeOptions?: { url?: unknown } };
}

/** Leaves the route of the request being handled in its RPC metadata, when there is one and it has no route yet. */
export function noteFastifyRoute(message: unknown): void {
  try {
    const start = message as HandlerStart | undefined;
    const route = start?.route?.url ?? start?.request?.routeOptions?.url;
    if (typeof route !== 'string' || route === '') return;
    const rpc = getRPCMetadata(context.active());
    if (rpc?.type === RPCType.HTTP && rpc.route === undefined) rpc.route = route;
  } catch {
    // a message of another shape: the span keeps its name
  }
}

export class FastifyRouteInstrumentation implements Instrumentation {
  readonly instrumentationName = 'spanprofiling-fastify-route';
  readonly instrumentationVersion = '1.0.0';
  private config: InstrumentationConfig = { enabled: true };
  private subscribed = false;

  constructor() {
    this.enable();
  }

  enable(): void {
    if (this.subscribed) return;
    diagnostics.subscribe(FASTIFY_HANDLER_START, noteFastifyRoute);
    this.subscribed = true;
  }

  disable(): void {
    if (!this.subscribed) return;
    diagnostics.unsubscribe(FASTIFY_HANDLER_START, noteFastifyRoute);
    this.subscribed = false;
  }

  setTracerProvider(_provider: TracerProvider): void {}
  setMeterProvider(_provider: MeterProvider): void {}
  setConfig(config: InstrumentationConfig): void {
    this.config = config;
  }
  getConfig(): InstrumentationConfig {
    return this.config;
  }
}
