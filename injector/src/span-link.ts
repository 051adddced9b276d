/**
 * Span linking, as every official Pyroscope integration does it: sampled
 * local-root spans carry `pyroscope.profile.id` (their own span id), and CPU
 * samples taken while such a span is active are labelled `span_id` with that
 * same id. Grafana's "Profiles for this span" link is built from the attribute
 * and resolved by Pyroscope from the label.
 */
import { type Context, type Span as ApiSpan, TraceFlags, isSpanContextValid, trace } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';

export const PROFILE_ID_ATTRIBUTE = 'pyroscope.profile.id';

export interface SpanLinkOptions {
  rootSpanOnly: boolean;
  addSpanName: boolean;
  addTraceId: boolean;
}

/**
 * What the profiler records with each sample: one object per labelled span,
 * shared by every sample taken under it. The span name is read when the
 * profile is serialized, so a name set late (an HTTP route known only after
 * routing) is the one that lands in the profile.
 */
export class SpanLabels {
  constructor(
    readonly spanId: string,
    readonly traceId: string,
    private readonly span: ApiSpan,
  ) {}

  get spanName(): string {
    return (this.span as unknown as { name?: unknown }).name as string;
  }
}

export type PprofLabels = Record<string, string>;

export class SpanProfileLinker implements SpanProcessor {
  /** Span -> the labels samples taken under it get. Weak: ended spans are collected. */
  private readonly labelsBySpan = new WeakMap<object, SpanLabels>();

  /** `active`: whether profiles are being taken; spans started otherwise are not linked. */
  constructor(
    private readonly options: SpanLinkOptions,
    private readonly active: () => boolean = () => true,
  ) {}

  onStart(span: Span, parentContext: Context): void {
    if (!this.active()) return;
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
    }
    if (labels !== undefined) this.labelsBySpan.set(span, labels);
  }

  onEnd(_span: ReadableSpan): void {}

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }

  /** The labels for the span active in a context, or undefined when no sampled span is. */
  labelsFor(context: Context): SpanLabels | undefined {
    const span = trace.getSpan(context);
    return span === undefined ? undefined : this.labelsBySpan.get(span);
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
