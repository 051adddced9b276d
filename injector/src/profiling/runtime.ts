/**
 * Span profiling proper, the same for the zero-code agent and for the library
 * an app adds to its own OpenTelemetry setup: the span processor that labels
 * local-root spans, the follower that carries the active span into profiler
 * samples through whichever context manager is registered, and the profiling
 * loop that collects and uploads.
 *
 * One runtime per process: the first one started registers itself under a
 * global symbol, and every span-profiling processor (of any copy of this
 * code: the agent's bundle, the npm package) forwards to it.
 */
import type { Context, ContextManager } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { AgentConfig } from '../shared/config';
import type { Logger } from '../shared/log';
import { apiRegistry } from '../shared/otel-api';
import { ProfilerContextFollower } from './context-follower';
import { ProfilingLoop, type ProfilingDeps } from './loop';
import { SPAN_PROCESSOR_MARK, SpanProfileLinker, serviceOf, type ServiceIdentity } from './span-link';

const RUNTIME_KEY = Symbol.for('spanprofiling.io/runtime');

/** What one copy of this code offers the others (keep it backwards compatible). */
export interface SharedRuntime {
  readonly version: 1;
  /** `agent` or `library`: who started it. */
  readonly owner: string;
  readonly processor: Pick<SpanProcessor, 'onStart'>;
}

export function sharedRuntime(): SharedRuntime | undefined {
  const value = (globalThis as Record<symbol, SharedRuntime | undefined>)[RUNTIME_KEY];
  return value !== undefined && value.version === 1 && typeof value.processor?.onStart === 'function' ? value : undefined;
}

export type RuntimeConfig = Pick<AgentConfig, 'spanLink' | 'profiling'>;

export class SpanProfilingRuntime {
  readonly linker: SpanProfileLinker;
  readonly follower: ProfilerContextFollower;
  private profiling: ProfilingLoop | undefined;
  private service: ServiceIdentity | undefined;
  private warnedName = false;
  private readonly awaitedResources = new WeakSet<object>();

  constructor(
    private readonly config: RuntimeConfig,
    private readonly deps: ProfilingDeps,
    private readonly log: Logger,
    private readonly owner: string,
  ) {
    this.linker = new SpanProfileLinker(
      config.spanLink,
      // A span is starting: a profiler still waiting to start (deferred) starts now, so the span is profiled.
      () => this.profiling?.startNow() === true && this.followRegisteredContextManager(),
      (resource) => this.noteResource(resource),
    );
    this.follower = new ProfilerContextFollower((ctx) => this.linker.labelsFor(ctx));
  }

  get running(): boolean {
    return this.profiling?.running === true;
  }

  /** Starts profiling (`deferred`: see ProfilingLoop.start); false (after one log line) when it cannot, or when another runtime already profiles this process. */
  start(deferred = false): boolean {
    if (this.profiling !== undefined) return this.running;
    const other = sharedRuntime();
    if (other !== undefined) {
      this.log.info(`this process is already profiled (by the span-profiling ${other.owner}); spans are linked through it`);
      return false;
    }
    const profiling = new ProfilingLoop(this.config.profiling, this.deps, this.log, this.linker, this.follower);
    if (!profiling.start(deferred)) return false;
    this.profiling = profiling;
    const shared: SharedRuntime = { version: 1, owner: this.owner, processor: this.linker };
    Object.defineProperty(globalThis, RUNTIME_KEY, { value: shared, configurable: true, writable: true, enumerable: false });
    return true;
  }

  /** Follows the context manager the OpenTelemetry API has registered now; false when there is none. */
  followRegisteredContextManager(): boolean {
    const registered = apiRegistry()?.context as ContextManager | undefined;
    if (registered === undefined || typeof registered.active !== 'function') return false;
    if (registered !== this.follower.following) this.follower.attach(registered);
    return this.follower.following === registered;
  }

  flush(): void {
    this.profiling?.flush();
  }

  async stop(): Promise<void> {
    const profiling = this.profiling;
    if (profiling === undefined) return;
    if (sharedRuntime()?.processor === this.linker) delete (globalThis as Record<symbol, unknown>)[RUNTIME_KEY];
    await profiling.stop();
    this.follower.detach();
  }

  /** The resource of the spans being linked (a span's, or the provider's): profiles follow its service. */
  noteResource(resource: object | undefined): boolean {
    const service = serviceOf(resource);
    if (service !== undefined) {
      this.setService(service);
      return true;
    }
    // Detectors still running (a host id, a container id): read it once they are done.
    const waiting = (resource as { waitForAsyncAttributes?: () => Promise<void> } | undefined)?.waitForAsyncAttributes;
    if (resource !== undefined && typeof waiting === 'function' && !this.awaitedResources.has(resource)) {
      this.awaitedResources.add(resource);
      waiting.call(resource).then(() => this.noteResource(resource), () => undefined);
    }
    return false;
  }

  /** Reads the service from an SDK tracer provider's resource, before its first span. */
  noteProvider(provider: object): void {
    const p = provider as { _resource?: object; resource?: object };
    this.noteResource(p._resource ?? p.resource);
  }

  /**
   * Profiles go to the service the spans belong to, as Grafana's
   * traces-to-profiles query looks them up: `service_name` = the spans'
   * `service.name`, and `service_namespace` when the spans have one.
   */
  private setService(service: ServiceIdentity): void {
    if (this.service !== undefined && this.service.name === service.name && this.service.namespace === service.namespace) return;
    this.service = service;
    const p = this.config.profiling;
    const name = service.name ?? p.applicationName;
    if (p.applicationNameExplicit && name !== p.applicationName && !this.warnedName) {
      this.warnedName = true;
      this.log.warn(
        `the configured application name is ${p.applicationName} but the spans' service.name is ${name}: ` +
          `profiles go to ${name}, so that Grafana finds them from the spans`,
      );
    }
    this.profiling?.setService(name, service.namespace === undefined ? {} : { service_namespace: service.namespace });
    if (name !== p.applicationName || service.namespace !== undefined) {
      this.log.info(`profiles go to ${name}${service.namespace === undefined ? '' : ` (service_namespace ${service.namespace})`}, the service of the spans`);
    }
  }
}

/**
 * The span processor apps add to their own provider. It forwards to the
 * process's span-profiling runtime (whichever copy started it), and does
 * nothing while there is none.
 */
export class ForwardingSpanProcessor implements SpanProcessor {
  readonly [SPAN_PROCESSOR_MARK] = true;

  onStart(span: Span, parentContext: Context): void {
    try {
      sharedRuntime()?.processor.onStart(span, parentContext);
    } catch {
      // a span is never lost to profiling
    }
  }

  onEnd(_span: ReadableSpan): void {}

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
