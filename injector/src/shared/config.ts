/**
 * Agent configuration, read from the environment in one place and passed down
 * as a plain object. Names follow @pyroscope/nodejs and the Pyroscope Java
 * agent so that a pod configured for either works unchanged.
 *
 * Malformed values never stop the agent: each produces one warning and the
 * default is used instead.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export type TracingMode = 'auto' | 'agent' | 'app';

export interface AgentConfig {
  /** Kill switch: SPANPROFILING_DISABLED=true turns the whole agent off. */
  disabled: boolean;
  logLevel: LogLevel;
  /** SPANPROFILING_ESM_HOOKS: register the ES module loader hook (auto: when the entry point is an ES module). */
  esmHooks: 'auto' | 'true' | 'false';
  /**
   * SPANPROFILING_PROFILE_STARTUP: start the profiler before the app's main module runs (its
   * synchronous start-up is then profiled too, at about 35 ms for every process). Off: it starts
   * at the first span, or a moment after start-up, whichever comes first.
   */
  profileStartup: boolean;
  tracing: {
    /** False when OTEL_SDK_DISABLED=true: spans are neither made nor exported. */
    enabled: boolean;
    /**
     * SPANPROFILING_TRACING: who owns OpenTelemetry tracing in the process.
     * `auto`: the app's SDK when the app registers one (before or after the
     * agent loads), else the agent's; `agent`: always the agent's; `app`: never
     * the agent's (profiles are linked to the app's spans once it registers).
     */
    mode: TracingMode;
  };
  spanLink: {
    /** OTEL_PYROSCOPE_ROOT_SPAN_ONLY: label samples with the local-root span only. */
    rootSpanOnly: boolean;
    /** OTEL_PYROSCOPE_ADD_SPAN_NAME: add the `span_name` label. */
    addSpanName: boolean;
    /** OTEL_PYROSCOPE_ADD_TRACE_ID: add the `trace_id` label (a series label before Pyroscope 2.1). */
    addTraceId: boolean;
  };
  profiling: {
    /** OTEL_PYROSCOPE_START_PROFILING and a server address: whether to profile at all. */
    enabled: boolean;
    serverAddress: string | undefined;
    applicationName: string;
    /** Whether PYROSCOPE_APPLICATION_NAME set the name (else it follows the service name). */
    applicationNameExplicit: boolean;
    authToken: string | undefined;
    basicAuthUser: string | undefined;
    basicAuthPassword: string | undefined;
    tenantId: string | undefined;
    /** Static labels added to every series (PYROSCOPE_LABELS). */
    labels: Record<string, string>;
    /** Extra HTTP headers on every upload (PYROSCOPE_HTTP_HEADERS, JSON). */
    headers: Record<string, string>;
    uploadIntervalMs: number;
    samplingIntervalMicros: number;
    collectCpuTime: boolean;
    /** Bytes between heap samples; 0 turns the heap profile off. */
    heapSamplingIntervalBytes: number;
    /** SPANPROFILING_WORKER_THREADS: profile worker threads too (each runs a profiler of its own; profiling/workers/worker-side.ts). */
    workerThreads: boolean;
    /**
     * SPANPROFILING_WORKER_SAMPLING_INTERVAL_MICROS: the workers' sampling interval (1 kHz by
     * default). A sample's CPU is the thread's CPU since the previous sample, so the last part of
     * a burst lands on the sample after it, where the thread already waits: tasks of a few
     * interval lengths lost a third of their CPU that way at 100 Hz.
     */
    workerSamplingIntervalMicros: number;
    /** Upper bound on profiles waiting for upload while the server is unreachable. */
    maxQueuedUploads: number;
    /** Bound on the final flush when the process exits. */
    shutdownTimeoutMs: number;
  };
}

export interface ConfigResult {
  config: AgentConfig;
  warnings: string[];
}

type Env = Readonly<Record<string, string | undefined>>;

const DEFAULT_UPLOAD_INTERVAL_MS = 15_000;
/** About 100 Hz: the native profiler's own default (1 kHz) costs too much in production. */
const DEFAULT_SAMPLING_INTERVAL_MICROS = 10_000;
const LABEL_NAME = /^[a-z_][a-z0-9_]*$/;

class Reader {
  readonly warnings: string[] = [];
  constructor(private readonly env: Env) {}

  string(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    const value = raw.toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(value)) return true;
    if (['false', '0', 'no', 'off'].includes(value)) return false;
    this.warnings.push(`${name}=${JSON.stringify(raw)} is not a boolean (true/false); using ${fallback}`);
    return fallback;
  }

  /** A non-negative integer, within [min, max]. */
  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) {
      this.warnings.push(`${name}=${JSON.stringify(raw)} is not an integer between ${min} and ${max}; using ${fallback}`);
      return fallback;
    }
    return value;
  }

  /** A duration: plain milliseconds, or a number with a unit (500ms, 15s, 1m). */
  duration(name: string, fallbackMs: number, minMs: number, maxMs: number): number | undefined {
    const raw = this.string(name);
    if (raw === undefined) return undefined;
    const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw);
    const unit = match?.[2] ?? 'ms';
    const ms = match ? Number(match[1]) * (unit === 'm' ? 60_000 : unit === 's' ? 1000 : 1) : NaN;
    if (!Number.isFinite(ms) || ms < minMs || ms > maxMs) {
      this.warnings.push(
        `${name}=${JSON.stringify(raw)} is not a duration between ${minMs}ms and ${maxMs / 1000}s (e.g. 15s or 15000); using ${fallbackMs}ms`,
      );
      return fallbackMs;
    }
    return Math.round(ms);
  }

  /** `k=v,k2=v2`, keys checked against Pyroscope's label-name rule. */
  labels(name: string): Record<string, string> {
    const raw = this.string(name);
    const labels: Record<string, string> = {};
    if (raw === undefined) return labels;
    for (const pair of raw.split(',')) {
      if (pair.trim() === '') continue;
      const eq = pair.indexOf('=');
      const key = eq > 0 ? pair.slice(0, eq).trim() : '';
      const value = eq > 0 ? pair.slice(eq + 1).trim() : '';
      if (!LABEL_NAME.test(key) || value === '') {
        this.warnings.push(`${name}: ignoring ${JSON.stringify(pair)} (want name=value, name matching [a-z_][a-z0-9_]*)`);
        continue;
      }
      labels[key] = value;
    }
    return labels;
  }

  headers(name: string): Record<string, string> {
    const raw = this.string(name);
    if (raw === undefined) return {};
    try {
      const parsed: unknown = JSON.parse(raw);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
      const headers: Record<string, string> = {};
      for (const [key, value] of Object.entries(parsed)) {
        if (typeof value === 'string') headers[key] = value;
        else this.warnings.push(`${name}: ignoring header ${JSON.stringify(key)} whose value is not a string`);
      }
      return headers;
    } catch {
      this.warnings.push(`${name} is not a JSON object of strings (e.g. {"X-Team":"shop"}); ignoring it`);
      return {};
    }
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.string(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    this.warnings.push(`${name}=${JSON.stringify(raw)} is not one of ${allowed.join(', ')}; using ${fallback}`);
    return fallback;
  }

  logLevel(name: string): LogLevel {
    const raw = this.string(name)?.toLowerCase();
    if (raw === undefined) return 'warn';
    const aliases: Record<string, LogLevel> = {
      debug: 'debug', trace: 'debug', verbose: 'debug', all: 'debug',
      info: 'info', warn: 'warn', warning: 'warn', error: 'error', silent: 'silent', none: 'silent', off: 'silent',
    };
    const level = aliases[raw];
    if (level === undefined) {
      this.warnings.push(`${name}=${JSON.stringify(raw)} is not one of debug, info, warn, error, silent; using warn`);
      return 'warn';
    }
    return level;
  }
}

/** Reads the agent configuration from an environment (normally process.env). */
export function readConfig(env: Env): ConfigResult {
  const r = new Reader(env);
  const serviceName = r.string('OTEL_SERVICE_NAME');
  const pyroscopeName = r.string('PYROSCOPE_APPLICATION_NAME');
  const applicationName = pyroscopeName ?? serviceName ?? defaultServiceName(env);
  if (serviceName !== undefined && pyroscopeName !== undefined && serviceName !== applicationName) {
    r.warnings.push(
      `PYROSCOPE_APPLICATION_NAME (${applicationName}) differs from OTEL_SERVICE_NAME (${serviceName}): ` +
        `Grafana links a trace to profiles by service_name, so the two should agree`,
    );
  }

  const uploadIntervalMs =
    r.duration('PYROSCOPE_UPLOAD_INTERVAL', DEFAULT_UPLOAD_INTERVAL_MS, 1000, 300_000) ??
    r.duration('PYROSCOPE_FLUSH_INTERVAL_MS', DEFAULT_UPLOAD_INTERVAL_MS, 1000, 300_000) ??
    DEFAULT_UPLOAD_INTERVAL_MS;

  const serverAddress = r.string('PYROSCOPE_SERVER_ADDRESS');
  const serverIsUrl = serverAddress !== undefined && /^https?:\/\/[^\s/]+/.test(serverAddress);
  if (serverAddress !== undefined && !serverIsUrl) {
    r.warnings.push(`PYROSCOPE_SERVER_ADDRESS=${JSON.stringify(serverAddress)} is not an http(s) URL; profiles will not be uploaded`);
  }
  const validServer = serverIsUrl ? serverAddress.replace(/\/+$/, '') : undefined;

  const config: AgentConfig = {
    disabled: r.bool('SPANPROFILING_DISABLED', false),
    logLevel: r.logLevel('PYROSCOPE_LOG_LEVEL'),
    esmHooks: r.string('SPANPROFILING_ESM_HOOKS') === undefined ? 'auto' : r.bool('SPANPROFILING_ESM_HOOKS', false) ? 'true' : 'false',
    profileStartup: r.bool('SPANPROFILING_PROFILE_STARTUP', false),
    tracing: { enabled: !r.bool('OTEL_SDK_DISABLED', false), mode: r.oneOf('SPANPROFILING_TRACING', ['auto', 'agent', 'app'] as const, 'auto') },
    spanLink: {
      rootSpanOnly: r.bool('OTEL_PYROSCOPE_ROOT_SPAN_ONLY', true),
      addSpanName: r.bool('OTEL_PYROSCOPE_ADD_SPAN_NAME', true),
      addTraceId: r.bool('OTEL_PYROSCOPE_ADD_TRACE_ID', false),
    },
    profiling: {
      enabled: r.bool('OTEL_PYROSCOPE_START_PROFILING', true) && validServer !== undefined,
      serverAddress: validServer,
      applicationName,
      applicationNameExplicit: pyroscopeName !== undefined,
      authToken: r.string('PYROSCOPE_AUTH_TOKEN'),
      basicAuthUser: r.string('PYROSCOPE_BASIC_AUTH_USER'),
      basicAuthPassword: r.string('PYROSCOPE_BASIC_AUTH_PASSWORD'),
      tenantId: r.string('PYROSCOPE_TENANT_ID'),
      labels: { ...instanceLabels(env), ...r.labels('PYROSCOPE_LABELS') },
      headers: r.headers('PYROSCOPE_HTTP_HEADERS'),
      uploadIntervalMs,
      samplingIntervalMicros: r.integer('PYROSCOPE_WALL_SAMPLING_INTERVAL_MICROS', DEFAULT_SAMPLING_INTERVAL_MICROS, 1000, 1_000_000),
      collectCpuTime: r.bool('PYROSCOPE_WALL_COLLECT_CPU_TIME', true),
      heapSamplingIntervalBytes: r.integer('PYROSCOPE_HEAP_SAMPLING_INTERVAL_BYTES', 0, 0, 1 << 30),
      workerThreads: r.bool('SPANPROFILING_WORKER_THREADS', true),
      workerSamplingIntervalMicros: r.integer('SPANPROFILING_WORKER_SAMPLING_INTERVAL_MICROS', 1000, 1000, 1_000_000),
      maxQueuedUploads: r.integer('PYROSCOPE_MAX_QUEUED_UPLOADS', 8, 1, 1000),
      shutdownTimeoutMs: r.integer('PYROSCOPE_SHUTDOWN_TIMEOUT_MS', 2000, 0, 30_000),
    },
  };
  if (config.profiling.basicAuthUser !== undefined && config.profiling.authToken !== undefined) {
    r.warnings.push('both PYROSCOPE_AUTH_TOKEN and PYROSCOPE_BASIC_AUTH_USER are set; using the token');
  }
  return { config, warnings: r.warnings };
}

/**
 * Series labels that tell apart the processes of one service, each bounded by
 * what runs at a time: `pod` (the Kubernetes pod, from the `k8s.pod.name`
 * resource attribute the operator sets) and `worker` (the cluster worker id,
 * or pm2's instance number, in a process that is one of several workers).
 */
export function instanceLabels(env: Env): Record<string, string> {
  const labels: Record<string, string> = {};
  const pod = /(?:^|,)\s*k8s\.pod\.name=([^,]+)/.exec(env['OTEL_RESOURCE_ATTRIBUTES'] ?? '')?.[1]?.trim();
  if (pod !== undefined && pod !== '' && !pod.includes('$(')) labels['pod'] = pod;
  const worker = env['NODE_UNIQUE_ID']?.trim() || env['NODE_APP_INSTANCE']?.trim();
  if (worker !== undefined && /^\d+$/.test(worker)) labels['worker'] = worker;
  return labels;
}

/** What Pyroscope and OpenTelemetry would call a service with no name configured. */
function defaultServiceName(env: Env): string {
  const fromResource = /(?:^|,)\s*service\.name=([^,]+)/.exec(env['OTEL_RESOURCE_ATTRIBUTES'] ?? '');
  return fromResource?.[1]?.trim() || 'unknown_service:node';
}
