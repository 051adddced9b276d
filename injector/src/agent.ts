/**
 * Wires the agent's parts together: configuration, tracing, span linking, the
 * profiler and its context, shaping and upload, and the process lifecycle.
 * Nothing here may throw into the app: every failure degrades to less
 * telemetry and a log line.
 */
import { readConfig, type AgentConfig } from './config';
import { createLogger, describeError, type Logger } from './log';
import { SpanProfileLinker } from './span-link';
import { ProfilingContextManager } from './profiler-context';
import { ProfilingLoop, type ProfilingDeps } from './profiling-loop';
import { startTracing, type Tracing } from './tracing';
import { isEsModuleEntry, registerEsmHooks } from './esm-hooks';

type Env = Readonly<Record<string, string | undefined>>;

export type { NativeProfiler } from './profiling-loop';

export interface AgentDeps extends ProfilingDeps {
  env: Env;
  log?: Logger;
}

export interface AgentHandle {
  readonly config: AgentConfig;
  /** Final flush and export, bounded by the configured timeout. Safe to call twice. */
  shutdown(): Promise<void>;
}

export function startAgent(deps: AgentDeps): AgentHandle {
  const { config, warnings } = readConfig(deps.env);
  const log = deps.log ?? createLogger(config.logLevel);
  for (const warning of warnings) log.warn(warning);

  let profiling: ProfilingLoop | undefined;
  const linker = new SpanProfileLinker(config.spanLink, () => profiling?.running === true);
  const contextManager = new ProfilingContextManager((ctx) => linker.labelsFor(ctx));

  if (config.disabled) log.info('SPANPROFILING_DISABLED is set: the agent does nothing');

  if (!config.disabled && config.profiling.enabled) {
    profiling = new ProfilingLoop(config.profiling, deps, log, linker, contextManager);
    // Spans are linked only while the profiler runs (the linker asks), so none points at a missing profile.
    if (!profiling.start()) profiling = undefined;
  } else if (!config.disabled && config.profiling.serverAddress === undefined) {
    log.info('PYROSCOPE_SERVER_ADDRESS is not set: tracing only');
  }

  let tracing: Tracing | undefined;
  if (!config.disabled && config.tracing.enabled) {
    try {
      const esm = config.esmHooks === 'auto' ? isEsModuleEntry(process.argv[1]) : config.esmHooks === 'true';
      if (esm) registerEsmHooks(log);
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

  if (tracing !== undefined || profiling !== undefined) {
    const flushNow = (): Promise<void> =>
      boundedShutdown(config.profiling.shutdownTimeoutMs, [Promise.resolve(profiling?.flush()), tracing?.forceFlush() ?? Promise.resolve()]).catch(() => undefined);
    hookProcessExit(shutdown, flushNow, log);
  }

  return { config, shutdown };
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
 * - a signal the app handles: flush what there is and keep running; the app decides.
 */
function hookProcessExit(shutdown: () => Promise<void>, flush: () => Promise<void>, log: Logger): void {
  process.once('beforeExit', () => void shutdown());
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    const onSignal = (): void => {
      // Prepended, so every listener the app has (even a `once` one) is still counted here.
      const appHandles = process.listenerCount(signal) > 1;
      if (appHandles) {
        // The app drains on its own terms: send what we have, keep tracing and profiling its last requests.
        void flush();
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
    process.prependListener(signal, onSignal);
  }
}
