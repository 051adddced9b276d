/**
 * Wires the agent's parts together: configuration, tracing, span linking, the
 * profiler and its context, shaping and upload, and the process lifecycle.
 * Nothing here may throw into the app: every failure degrades to less
 * telemetry and a log line.
 */
import type { TracerProvider } from '@opentelemetry/api';
import { readConfig, type AgentConfig } from './shared/config';
import { createLogger, describeError, type Logger } from './shared/log';
import { apiRegistry, type ApiType } from './shared/otel-api';
import { ApiRegistryWatcher } from './tracing/registry-watcher';
import type { ProfilingDeps } from './profiling/loop';
import { addSpanProcessor, providerName, sdkProvider } from './profiling/app-provider';
import { SpanProfilingRuntime } from './profiling/runtime';
import { startTracing, type Tracing } from './tracing/setup';
import { esModulesReason, registerEsmHooks } from './tracing/esm-hooks';
import { abortExports, endExports } from './export/bounded-retry';
import { hookProcessEnd } from './lifecycle/process-end';

type Env = Readonly<Record<string, string | undefined>>;

export type { NativeProfiler } from './profiling/loop';

export interface AgentDeps extends ProfilingDeps {
  env: Env;
  log?: Logger;
}

export interface AgentHandle {
  readonly config: AgentConfig;
  /** Who traces: the agent's own SDK, the app's, or nobody (yet). */
  readonly tracing: () => 'agent' | 'app' | 'none';
  /** Final flush and export, bounded by the configured timeout. Safe to call twice. */
  shutdown(): Promise<void>;
}

export function startAgent(deps: AgentDeps): AgentHandle {
  const { config, warnings } = readConfig(deps.env);
  const log = deps.log ?? createLogger(config.logLevel);
  for (const warning of warnings) log.warn(warning);

  const runtime = new SpanProfilingRuntime(config, deps, log, 'agent');
  let profiling = false;
  if (config.disabled) log.info('SPANPROFILING_DISABLED is set: the agent does nothing');
  else if (config.profiling.enabled) profiling = runtime.start(!config.profileStartup);
  else if (config.profiling.serverAddress === undefined) log.info('PYROSCOPE_SERVER_ADDRESS is not set: tracing only');

  let owner: 'agent' | 'app' | 'none' = 'none';
  let tracing: Tracing | undefined;

  /** The app's tracer provider is registered: link its spans, and hand the agent's tracing over to it. */
  const joinApp = (registered: unknown, when: string): void => {
    const provider = sdkProvider(registered);
    if (provider === undefined) return;
    owner = 'app';
    tracing?.handOver(registered as TracerProvider);
    const name = providerName(provider);
    if (!profiling) {
      log.info(`tracing: app's SDK (${name}, ${when})`);
      return;
    }
    runtime.noteProvider(provider);
    const joined = addSpanProcessor(provider, runtime.linker, log);
    if (joined === 'unsupported') log.warn(`tracing: app's SDK (${name}, ${when}), which takes no extra span processor: profiles are not linked to its spans`);
    else log.info(`tracing: app's SDK (${name}, ${when}); its spans are linked to profiles${joined === 'present' ? ' by its own span-profiling processor' : ''}`);
  };

  if (!config.disabled && config.tracing.enabled) {
    try {
      const appFirst = apiRegistry()?.trace;
      if (appFirst !== undefined) {
        if (config.tracing.mode === 'agent') log.warn(`SPANPROFILING_TRACING=agent, but the app registered its tracer provider before the agent loaded: joining it`);
        appWatcher(log, (registered) => joinApp(registered, 'registered again')).install();
        joinApp(appFirst, 'registered before the agent');
      } else if (config.tracing.mode === 'app') {
        appWatcher(log, (registered) => joinApp(registered, 'registered after the agent')).install();
        log.info(`tracing: app's SDK (SPANPROFILING_TRACING=app; the agent waits for the app to register its tracer provider)`);
      } else {
        const reason = config.esmHooks === 'auto' ? esModulesReason(process.argv[1]) : config.esmHooks === 'true' ? 'SPANPROFILING_ESM_HOOKS=true' : undefined;
        const esm = reason !== undefined && registerEsmHooks(log);
        if (esm) log.debug(`ES module instrumentation on: ${reason}`);
        const linker = profiling ? runtime.linker : undefined;
        if (config.tracing.mode === 'agent') {
          tracing = startTracing(deps.env, linker, (register) => register(), log, { lazy: !esm });
        } else {
          const watcher = appWatcher(log, (registered) => joinApp(registered, 'registered after the agent'), () => tracing);
          watcher.install();
          tracing = startTracing(deps.env, linker, (register) => watcher.asOwner(register), log, { lazy: !esm });
        }
        owner = 'agent';
        log.info(`tracing: agent${config.tracing.mode === 'auto' ? ' (until the app registers a tracer provider of its own)' : ''}`);
      }
    } catch (err) {
      log.error(`tracing could not start, continuing without it: ${describeError(err)}`);
    }
  }

  let shutdownPromise: Promise<void> | undefined;
  const ownTracing = (): Tracing | undefined => (owner === 'agent' ? tracing : undefined);
  const shutdown = (): Promise<void> => {
    if (shutdownPromise === undefined) {
      // Exports get one more attempt each, no waiting between retries; what still runs at the bound is cut.
      endExports();
      shutdownPromise = boundedShutdown(config.profiling.shutdownTimeoutMs, [runtime.stop(), ownTracing()?.shutdown() ?? Promise.resolve()], abortExports).catch(
        (err: unknown) => log.warn(`shutdown: ${describeError(err)}`),
      );
    }
    return shutdownPromise;
  };

  if (tracing !== undefined || profiling) hookProcessEnd(shutdown, log);

  return { config, tracing: () => owner, shutdown };
}

/**
 * Watches for the app registering a tracer provider, and follows it. With the
 * agent's tracing registered first (`tracing` given, auto mode), a
 * registration by the app goes through (the agent removes its own instance of
 * that type), and a tracer provider of the app's takes tracing over entirely:
 * without the agent the app would have only what it registers itself.
 */
function appWatcher(log: Logger, onProvider: (registered: unknown) => void, tracing?: () => Tracing | undefined): ApiRegistryWatcher {
  return new ApiRegistryWatcher({
    yieldTo: (type: ApiType) => (tracing === undefined ? [] : type === 'trace' ? ['trace', 'context', 'propagation', 'diag'] : [type]),
    registered: (type, instance) => {
      if (type === 'context' && tracing !== undefined) safely(log, () => tracing()?.releaseContext());
      if (type === 'trace') whenDelegated(instance, () => safely(log, () => onProvider(instance)));
    },
    restored: (type) =>
      log.warn(
        `the app's registration of its OpenTelemetry ${type} failed (its @opentelemetry/api is another version than the agent's and, bundled, cannot be told): ` +
          `the agent keeps tracing; set SPANPROFILING_TRACING=app to leave tracing to the app`,
      ),
  });
}

/**
 * Calls `then` as soon as a just-registered ProxyTracerProvider has its
 * delegate: setGlobalTracerProvider registers the proxy, then sets the
 * delegate, in the same synchronous call; the app may start spans right after.
 */
function whenDelegated(registered: unknown, then: () => void): void {
  const proxy = registered as { setDelegate?: (delegate: unknown) => void } | null;
  if (proxy === null || typeof proxy !== 'object' || typeof proxy.setDelegate !== 'function' || sdkProvider(proxy) !== undefined) {
    then();
    return;
  }
  const original = proxy.setDelegate;
  Object.defineProperty(proxy, 'setDelegate', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function (this: unknown, delegate: unknown): void {
      delete (proxy as { setDelegate?: unknown }).setDelegate;
      original.call(this, delegate);
      then();
    },
  });
}

function safely(log: Logger, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    log.warn(`joining the app's OpenTelemetry: ${describeError(err)}`);
  }
}

/**
 * Waits for `work`, at most `timeoutMs`; the wait keeps the process alive (the
 * final flush on a natural exit, where everything else of the agent's is
 * unref'd), and `atBound` runs if the bound is reached.
 */
function boundedShutdown(timeoutMs: number, work: Promise<unknown>[], atBound: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      try {
        atBound();
      } finally {
        resolve();
      }
    }, timeoutMs);
  });
  return Promise.race([Promise.allSettled(work).then(() => undefined), deadline]).finally(() => clearTimeout(timer));
}
