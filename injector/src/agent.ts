/**
 * Wires the agent's parts together: configuration, tracing, span linking, the
 * profiler and its context, shaping and upload, and the process lifecycle.
 * Nothing here may throw into the app: every failure degrades to less
 * telemetry and a log line.
 */
import { ROOT_CONTEXT, context as otelContext } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { readConfig, type AgentConfig } from './config';
import { createLogger, describeError, type Logger } from './log';
import { SpanProfileLinker, SpanLabels } from './span-link';
import { ProfilingContextManager, type ContextMode } from './profiler-context';
import { SpanProfiler, type PprofModule } from './profiler';
import { shapeHeapProfile, shapeTimeProfile } from './pprof-shape';
import { PyroscopeUploader, type Send } from './upload';
import { startTracing, type Tracing } from './tracing';
import { isEsModuleEntry, registerEsmHooks } from './esm-hooks';

type Env = Readonly<Record<string, string | undefined>>;

export interface NativeProfiler {
  pprof: PprofModule;
  /** Whether AsyncLocalStorage is backed by AsyncContextFrame in this process. */
  asyncContextFrameActive(): boolean;
}

export interface AgentDeps {
  env: Env;
  /** Loads the native profiler; throws when no prebuild fits this runtime. */
  loadNativeProfiler: () => NativeProfiler;
  log?: Logger;
  send?: Send;
  /** Whether to hook process signals and exit (off for in-process tests). */
  manageProcessLifecycle?: boolean;
  /** Whether to register the ES module loader hook (off for in-process tests). */
  esmHooks?: boolean;
}

export interface AgentHandle {
  readonly config: AgentConfig;
  /** How the span reaches the profiler, or undefined when not profiling. */
  readonly contextMode: ContextMode | undefined;
  readonly tracing: boolean;
  /** Collects and queues a profile now (normally on a timer). */
  flush(): void;
  /** Final flush and export, bounded by the configured timeout. Safe to call twice. */
  shutdown(): Promise<void>;
}

export function startAgent(deps: AgentDeps): AgentHandle {
  const { config, warnings } = readConfig(deps.env);
  const log = deps.log ?? createLogger(config.logLevel);
  for (const warning of warnings) log.warn(warning);

  const linker = new SpanProfileLinker(config.spanLink);
  const contextManager = new ProfilingContextManager((ctx) => linker.labelsFor(ctx));

  if (config.disabled) log.info('SPANPROFILING_DISABLED is set: the agent does nothing');

  // Profiling first: spans are marked with pyroscope.profile.id only when profiles will exist.
  let profiling: ProfilingLoop | undefined;
  if (!config.disabled && config.profiling.enabled) {
    profiling = startProfiling(config, deps, log, linker, contextManager);
  } else if (!config.disabled && config.profiling.serverAddress === undefined) {
    log.info('PYROSCOPE_SERVER_ADDRESS is not set: tracing only');
  }

  let tracing: Tracing | undefined;
  if (!config.disabled && config.tracing.enabled) {
    try {
      const esm = config.esmHooks === 'auto' ? isEsModuleEntry(process.argv[1]) : config.esmHooks === 'true';
      if (esm && deps.esmHooks !== false) registerEsmHooks(log);
      tracing = startTracing(deps.env, profiling === undefined ? undefined : linker, contextManager, log);
    } catch (err) {
      log.error(`tracing could not start, continuing without it: ${describeError(err)}`);
    }
  }

  let shutdownPromise: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    shutdownPromise ??= boundedShutdown(config.profiling.shutdownTimeoutMs, [
      profiling?.stop() ?? Promise.resolve(),
      tracing?.shutdown() ?? Promise.resolve(),
    ]).catch((err: unknown) => log.warn(`shutdown: ${describeError(err)}`));
    return shutdownPromise;
  };

  if (deps.manageProcessLifecycle !== false && (tracing !== undefined || profiling !== undefined)) {
    hookProcessExit(shutdown, log);
  }

  return {
    config,
    contextMode: profiling?.mode,
    tracing: tracing?.exporting ?? false,
    flush: () => profiling?.flush(),
    shutdown,
  };
}

interface ProfilingLoop {
  mode: ContextMode;
  flush(): void;
  stop(): Promise<void>;
}

function startProfiling(
  config: AgentConfig,
  deps: AgentDeps,
  log: Logger,
  linker: SpanProfileLinker,
  contextManager: ProfilingContextManager,
): ProfilingLoop | undefined {
  let native: NativeProfiler;
  try {
    native = deps.loadNativeProfiler();
  } catch (err) {
    log.warn(
      `profiling is off: no native profiler for Node ${process.version} (ABI ${process.versions.modules}, ${process.platform}-${process.arch}): ` +
        `${describeError(err)}. Tracing continues.`,
    );
    return undefined;
  }

  const p = config.profiling;
  let mode: ContextMode;
  try {
    mode = native.asyncContextFrameActive() ? 'cped' : 'hooks';
  } catch {
    mode = 'hooks';
  }
  const profiler = new SpanProfiler(
    native.pprof,
    { samplingIntervalMicros: p.samplingIntervalMicros, collectCpuTime: p.collectCpuTime, heapSamplingIntervalBytes: p.heapSamplingIntervalBytes, mode },
    (value) => (value instanceof SpanLabels ? linker.toPprofLabels(value) : {}),
  );
  try {
    profiler.start();
  } catch (err) {
    log.warn(`profiling is off: the profiler did not start: ${describeError(err)}. Tracing continues.`);
    return undefined;
  }
  contextManager.connectProfiler(profiler, mode);
  log.info(`profiling ${p.applicationName} to ${p.serverAddress} every ${p.uploadIntervalMs}ms (span context: ${mode})`);

  const uploader = new PyroscopeUploader(
    { ...p, serverAddress: p.serverAddress!, sampleRate: Math.round(1e6 / p.samplingIntervalMicros) },
    log,
    deps.send,
  );
  let windowStart = Date.now();

  // The agent's own work (serialising, uploading) must not be traced nor attributed to a span.
  const quietly = <T>(fn: () => T): T => otelContext.with(suppressTracing(ROOT_CONTEXT), fn);

  const ship = (profile: ReturnType<SpanProfiler['collect']>, heap: boolean): void => {
    const untilMs = Date.now();
    const fromMs = windowStart;
    windowStart = untilMs;
    if (profile !== undefined) {
      const shaped = shapeTimeProfile(profile);
      for (const part of [...shaped.cpu, ...shaped.wall]) uploader.enqueue({ pprof: part.encode(), fromMs, untilMs });
    }
    const heapProfile = heap ? profiler.heapProfile() : undefined;
    if (heapProfile !== undefined) {
      for (const part of shapeHeapProfile(heapProfile)) uploader.enqueue({ pprof: part.encode(), fromMs, untilMs });
    }
  };

  const flush = (): void =>
    quietly(() => {
      try {
        ship(profiler.collect(), true);
      } catch (err) {
        log.warn(`could not collect a profile: ${describeError(err)}`);
      }
    });

  const timer = setInterval(flush, p.uploadIntervalMs);
  timer.unref();

  return {
    mode,
    flush,
    stop: () =>
      quietly(async () => {
        clearInterval(timer);
        contextManager.disconnectProfiler();
        try {
          const heap = profiler.heapProfile();
          ship(profiler.stop(), false);
          if (heap !== undefined) for (const part of shapeHeapProfile(heap)) uploader.enqueue({ pprof: part.encode(), fromMs: windowStart, untilMs: Date.now() });
        } catch (err) {
          log.warn(`could not collect the last profile: ${describeError(err)}`);
        }
        await uploader.close(p.shutdownTimeoutMs);
      }),
  };
}

function boundedShutdown(timeoutMs: number, work: Promise<unknown>[]): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
    timer.unref();
  });
  return Promise.race([Promise.allSettled(work).then(() => undefined), deadline]).finally(() => clearTimeout(timer));
}

/**
 * Flushes once when the process is about to end, without changing how it ends:
 * - natural end (`beforeExit`): flush, then Node exits with the app's exit code;
 * - SIGTERM / SIGINT with no handler of the app's own: flush (bounded), then
 *   re-raise the signal so the process dies of it exactly as without the agent;
 * - a signal the app handles: flush in the background and let the app decide.
 */
function hookProcessExit(shutdown: () => Promise<void>, log: Logger): void {
  process.once('beforeExit', () => void shutdown());
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const onSignal = (): void => {
      const appHandles = process.listenerCount(signal) > 1;
      if (appHandles) {
        void shutdown();
        return;
      }
      process.removeListener(signal, onSignal);
      void shutdown().finally(() => {
        if (process.listenerCount(signal) === 0) {
          process.kill(process.pid, signal);
        } else {
          log.debug(`${signal}: the app added its own handler during shutdown; leaving the exit to it`);
        }
      });
    };
    process.on(signal, onSignal);
  }
}
