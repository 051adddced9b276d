/**
 * Prometheus metrics in the text exposition format: the few counters, gauges
 * and histograms the operator exports, without a client library.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

type Labels = Record<string, string>;

const key = (labels: Labels): string =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]!.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');

abstract class Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge' | 'histogram',
  ) {}
  abstract lines(): string[];
  render(): string {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`, ...this.lines()].join('\n');
  }
}

export class Counter extends Metric {
  private readonly values = new Map<string, number>();
  constructor(name: string, help: string) {
    super(name, help, 'counter');
  }
  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number {
    return this.values.get(key(labels)) ?? 0;
  }
  lines(): string[] {
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ''} ${v}`);
  }
}

export class Gauge extends Metric {
  private readonly values = new Map<string, number>();
  constructor(name: string, help: string) {
    super(name, help, 'gauge');
  }
  set(labels: Labels, value: number): void {
    this.values.set(key(labels), value);
  }
  /** Forgets every series whose labels include these (a deleted SpanProfiling's). */
  deleteMatching(labels: Labels): void {
    const part = key(labels);
    for (const k of [...this.values.keys()]) if (k.split(',').includes(part)) this.values.delete(k);
  }
  lines(): string[] {
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ''} ${v}`);
  }
}

export class Histogram extends Metric {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(
    name: string,
    help: string,
    private readonly buckets: number[],
  ) {
    super(name, help, 'histogram');
    this.counts = buckets.map(() => 0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) this.counts[i]!++;
  }
  lines(): string[] {
    return [
      ...this.buckets.map((b, i) => `${this.name}_bucket{le="${b}"} ${this.counts[i]}`),
      `${this.name}_bucket{le="+Inf"} ${this.count}`,
      `${this.name}_sum ${this.sum}`,
      `${this.name}_count ${this.count}`,
    ];
  }
}

const EVENT_LOOP_RESOLUTION_MS = 10;

/**
 * How late the event loop ran its callbacks since the last scrape (p50, p99, max, in seconds).
 * Node's monitor records the time between its timer's runs, every `resolution` ms: what is late is
 * that time less the resolution (an idle loop is 0, not 10 ms).
 */
export class EventLoopDelay extends Metric {
  private readonly histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  constructor(name: string, help: string) {
    super(name, help, 'gauge');
    this.histogram.enable();
  }
  lines(): string[] {
    const h = this.histogram;
    const seconds = (nanos: number): number => (Number.isFinite(nanos) ? Math.max(0, nanos / 1e6 - EVENT_LOOP_RESOLUTION_MS) / 1e3 : 0);
    const lines = [
      `${this.name}{quantile="0.5"} ${seconds(h.percentile(50))}`,
      `${this.name}{quantile="0.99"} ${seconds(h.percentile(99))}`,
      `${this.name}{quantile="1"} ${seconds(h.max)}`,
    ];
    h.reset();
    return lines;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];
  register<M extends Metric>(metric: M): M {
    this.metrics.push(metric);
    return metric;
  }
  render(): string {
    return `${this.metrics.map((m) => m.render()).join('\n')}\n`;
  }
}

export function operatorMetrics(registry = new Registry()) {
  return {
    registry,
    mutations: registry.register(new Counter('spanprofiling_webhook_mutations_total', 'Pods seen by the webhook, by status (injected, skipped, error, internal-error) and reason code.')),
    reusedAnswers: registry.register(new Counter('spanprofiling_webhook_answers_reused_total', "Pods answered with the answer kept for their template (the same pod and the same objects the webhook reads), not computed anew.")),
    latency: registry.register(new Histogram('spanprofiling_webhook_duration_seconds', 'Time to answer an AdmissionReview.', [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1])),
    reconciles: registry.register(new Counter('spanprofiling_reconciles_total', 'Reconciliations of SpanProfilings, by result.')),
    leader: registry.register(new Gauge('spanprofiling_leader', '1 when this replica holds the leader lease.')),
    pods: registry.register(new Gauge('spanprofiling_pods', "Running pods of a SpanProfiling (namespace/name), by state: injected, outdated (an older configuration or agent image), missed (running without the agent). The leader's.")),
    restarts: registry.register(new Counter('spanprofiling_rollout_restarts_total', 'Workloads the rollout restarted, by SpanProfiling and kind.')),
    eventLoopDelay: registry.register(new EventLoopDelay('spanprofiling_event_loop_delay_seconds', "How late the operator's main event loop (the controller's) ran, since the last scrape.")),
  };
}

export type OperatorMetrics = ReturnType<typeof operatorMetrics>;
