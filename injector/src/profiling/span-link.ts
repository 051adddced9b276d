/**
 * Span linking, as every official Pyroscope integration does it: sampled
 * local-root spans carry `pyroscope.profile.id` (their own span id), and CPU
 * samples taken while such a span is active are labelled `span_id` with that
 * same id. Grafana's "Profiles for this span" link is built from the attribute
 * and resolved by Pyroscope from the label.
 */
import { type Context, type Span as ApiSpan, SpanKind, TraceFlags, isSpanContextValid, trace } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';

export const PROFILE_ID_ATTRIBUTE = 'pyroscope.profile.id';
/** @opentelemetry/core's context key for RPC metadata (createContextKey is Symbol.for, so every copy shares it). */
const RPC_METADATA_KEY = Symbol.for('OpenTelemetry SDK Context Key RPC_METADATA');
/** Marks a span processor that links spans to profiles (of any copy of this code), so none is added twice. */
export const SPAN_PROCESSOR_MARK = Symbol.for('spanprofiling.io/span-processor');

/** What a span's resource says about the service, as Grafana's traces-to-profiles query uses it. */
export interface ServiceIdentity {
  name: string | undefined;
  namespace: string | undefined;
}

export interface SpanLinkOptions {
  rootSpanOnly: boolean;
  addSpanName: boolean;
  addTraceId: boolean;
}

/** What an HTTP server instrumentation shares with the framework's, in the request's context. */
type HttpRpcMetadata = { type?: unknown; span?: unknown; route?: unknown };

/**
 * What the profiler records with each sample: one object per labelled span,
 * shared by every sample taken under it. The span name is read when the
 * profile is serialized (or, once the span ended, the name it ended with), so
 * a name set late is the one that lands in the profile. An HTTP server span is named `GET` until it ends, when the HTTP
 * instrumentation renames it `GET /orders/:id` from the route the framework's
 * instrumentation (express, koa's router) left in the request's RPC metadata;
 * a request still running at a collection gets that same name from the
 * metadata. A framework that reports its route on a server span of its own
 * (Next.js: `GET /api/users/[id]`, a child of the HTTP span) hands it over the
 * same way: the `http.route` it is given becomes the request's route (and the
 * HTTP span's name when it ends), where no framework instrumentation set one.
 */
export class SpanLabels {
  /** The request's RPC metadata, once a context carrying it for this span was seen. */
  rpc: HttpRpcMetadata | undefined;
  /** The span's own name when it ended, and the route its request's metadata had then. */
  private endedName: unknown;
  private endedRoute: unknown;

  constructor(
    readonly spanId: string,
    readonly traceId: string,
    private span: ApiSpan | undefined,
  ) {}

  /** A route a framework's own server span reported, for a request whose metadata has none. */
  childRoute: string | undefined;

  owns(span: unknown): boolean {
    return this.span !== undefined && this.span === span;
  }

  /**
   * The span ended: its name is final, and the labels let go of it and of the request's metadata
   * (a framework's span may still report the route later, as Next.js's does). The processor keeps
   * these labels in a WeakMap by span; a value that points back at its key kept the whole request
   * alive through young-generation collections (V8 treats the values of an old-generation WeakMap
   * as live there), until a full collection.
   */
  end(): void {
    this.endedName = (this.span as unknown as { name?: unknown }).name;
    this.endedRoute = this.rpc?.route;
    this.span = undefined;
    this.rpc = undefined;
  }

  get spanName(): string {
    const ended = this.span === undefined;
    const name = (ended ? this.endedName : (this.span as unknown as { name?: unknown }).name) as string;
    const route = (ended ? this.endedRoute : this.rpc?.route) ?? this.childRoute;
    // Not yet renamed (a bare method): the name the span will have when it ends.
    if (typeof route === 'string' && route !== '' && typeof name === 'string' && name !== '' && !name.includes(' ')) return `${name} ${route}`;
    return name;
  }
}

export type PprofLabels = Record<string, string>;

export class SpanProfileLinker implements SpanProcessor {
  readonly [SPAN_PROCESSOR_MARK] = true;
  /** Span -> the labels samples taken under it get. Weak: ended spans are collected. */
  private readonly labelsBySpan = new WeakMap<object, SpanLabels>();
  /** The resource of the last span seen, so each new one is reported once. */
  private lastResource: object | undefined;

  /**
   * `active`: whether samples taken while a span runs will carry its labels
   * (the profiler runs and follows the registered context manager); spans
   * started otherwise are not linked, so no `pyroscope.profile.id` promises a
   * profile that cannot exist. `onResource`: each time a span with another
   * resource than the last one taken starts; true when it was taken.
   */
  constructor(
    private readonly options: SpanLinkOptions,
    private readonly active: () => boolean = () => true,
    private readonly onResource?: (resource: object) => boolean,
  ) {}

  onStart(span: Span, parentContext: Context): void {
    // First in the app's provider, whose span start does not guard its processors: nothing may escape.
    try {
      this.link(span, parentContext);
    } catch {
      // the span goes on unlinked
    }
  }

  private link(span: Span, parentContext: Context): void {
    if (!this.active()) return;
    const resource = (span as { resource?: object }).resource;
    if (resource !== undefined && resource !== this.lastResource && this.onResource !== undefined && this.onResource(resource)) this.lastResource = resource;
    const own = span.spanContext();
    if ((own.traceFlags & TraceFlags.SAMPLED) === 0) return;
    const parent = trace.getSpan(parentContext);
    const parentSpanContext = parent?.spanContext();
    const isLocalRoot = parentSpanContext === undefined || parentSpanContext.isRemote === true || !isSpanContextValid(parentSpanContext);

    let labels: SpanLabels | undefined;
    if (isLocalRoot || !this.options.rootSpanOnly) {
      labels = new SpanLabels(own.spanId, own.traceId, span);
      span.setAttribute(PROFILE_ID_ATTRIBUTE, own.spanId);
    } else if (parent !== undefined) {
      labels = this.labelsBySpan.get(parent);
      if (labels !== undefined && span.kind === SpanKind.SERVER) {
        this.noteRpc(labels, parentContext);
        this.followRoute(span, labels);
      }
    }
    if (labels !== undefined) this.labelsBySpan.set(span, labels);
  }

  onEnd(span: ReadableSpan): void {
    try {
      const labels = this.labelsBySpan.get(span);
      if (labels?.owns(span) === true) labels.end();
    } catch {
      // the labels keep the span until it is collected
    }
  }

  /**
   * A framework's own server span inside a request (Next.js names it with the route and gives it
   * `http.route` once the route is known, before the request ends): the route is the request's.
   */
  private followRoute(span: Span, labels: SpanLabels): void {
    const take = (route: unknown): void => {
      if (typeof route !== 'string' || route === '') return;
      if (labels.rpc !== undefined && labels.rpc.route === undefined) labels.rpc.route = route;
      labels.childRoute ??= route;
    };
    take(span.attributes?.['http.route']);
    const own = span as unknown as { setAttribute: Span['setAttribute']; setAttributes: Span['setAttributes'] };
    const originalSetAttribute = own.setAttribute;
    const originalSetAttributes = own.setAttributes;
    // Locals first: V8 allocates a function literal assigned straight to a property in the old
    // generation, where it would keep this request's labels through young collections (tracing/otel-context.ts).
    const setAttribute: Span['setAttribute'] = function (this: Span, key, value) {
      if (key === 'http.route') take(value);
      return originalSetAttribute.call(this, key, value);
    };
    const setAttributes: Span['setAttributes'] = function (this: Span, attributes) {
      take(attributes?.['http.route']);
      return originalSetAttributes.call(this, attributes);
    };
    own.setAttribute = setAttribute;
    own.setAttributes = setAttributes;
  }

  /** Keeps the request's RPC metadata (the HTTP instrumentation's, a key shared by every copy) with its labels. */
  private noteRpc(labels: SpanLabels, context: Context): void {
    if (labels.rpc !== undefined) return;
    const rpc = context.getValue(RPC_METADATA_KEY) as HttpRpcMetadata | undefined;
    if (rpc !== undefined && rpc.type === 'http' && labels.owns(rpc.span)) labels.rpc = rpc;
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }

  /** The labels for the span active in a context, or undefined when no sampled span is. */
  labelsFor(context: Context): SpanLabels | undefined {
    const span = trace.getSpan(context);
    if (span === undefined) return undefined;
    const labels = this.labelsBySpan.get(span);
    if (labels !== undefined) this.noteRpc(labels, context);
    return labels;
  }

  /** Turns what the profiler recorded into pprof labels (names match Pyroscope's `[a-z_]+` rule). */
  toPprofLabels(labels: SpanLabels): PprofLabels {
    const out: PprofLabels = { span_id: labels.spanId };
    if (this.options.addSpanName) {
      const name = labels.spanName;
      if (typeof name === 'string' && name !== '') out['span_name'] = name;
    }
    if (this.options.addTraceId) out['trace_id'] = labels.traceId;
    return out;
  }
}

/** The service a span resource names; undefined while that is still being detected. */
export function serviceOf(resource: object | undefined): ServiceIdentity | undefined {
  const r = resource as { attributes?: Record<string, unknown>; asyncAttributesPending?: boolean; _rawAttributes?: unknown } | undefined;
  if (r === undefined) return undefined;
  let attributes: Record<string, unknown> | undefined;
  if (r.asyncAttributesPending !== true) {
    attributes = r.attributes;
  } else if (Array.isArray(r._rawAttributes)) {
    // Other detectors still running (a host id): the settled entries, first value winning as the SDK merges them,
    // read without the SDK's complaint about reading attributes early.
    attributes = {};
    for (const entry of r._rawAttributes as unknown[]) {
      if (!Array.isArray(entry)) continue;
      const [key, value] = entry as [string, unknown];
      if (value !== null && value !== undefined && typeof (value as { then?: unknown }).then !== 'function') attributes[key] ??= value;
    }
    if (attributes['service.name'] === undefined) return undefined;
  } else {
    return undefined;
  }
  const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);
  return { name: text(attributes?.['service.name']), namespace: text(attributes?.['service.namespace']) };
}
