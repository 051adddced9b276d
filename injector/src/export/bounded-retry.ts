/**
 * The OTLP exporters' retrying transport, replaced in the agent's bundle
 * (build.mjs resolves @opentelemetry/otlp-exporter-base's ./retrying-transport
 * here) so that a trace backend that is down never delays the app's exit:
 *
 * - the wait before a retry is an unref'd timer, so it never keeps the
 *   process alive (upstream's is ref'd: each pending batch held a process
 *   that had finished for up to its 10 s export timeout);
 * - once the process is ending (endExports()), no retry is waited for: each
 *   export gets one more attempt, within the shutdown bound;
 * - when the bound is reached (abortExports()), sends still running are cut:
 *   the transport is shut down (a gRPC client is closed, which fails its
 *   calls) and the HTTP sockets of agentFactory() are destroyed.
 *
 * Otherwise it retries as upstream does: up to 5 retries with exponential
 * backoff and jitter (1 s, x1.5, at most 5 s) or the server's Retry-After,
 * within the export's timeout.
 */
import { diag } from '@opentelemetry/api';
import type * as http from 'node:http';

interface ExportResponse {
  status: 'success' | 'failure' | 'retryable';
  retryInMillis?: number;
  error?: Error;
  data?: Uint8Array;
}

interface ExporterTransport {
  send(data: Uint8Array, timeoutMillis: number): Promise<ExportResponse>;
  shutdown(): void;
}

const MAX_RETRIES = 5;
const INITIAL_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 5000;
const BACKOFF_MULTIPLIER = 1.5;
const JITTER = 0.2;

const live = new Set<BoundedRetryingTransport>();
const agents = new Set<http.Agent>();
let ending = false;

class BoundedRetryingTransport implements ExporterTransport {
  private readonly waits = new Set<() => void>();

  constructor(private readonly transport: ExporterTransport) {
    live.add(this);
  }

  async send(data: Uint8Array, timeoutMillis: number): Promise<ExportResponse> {
    const deadline = Date.now() + timeoutMillis;
    let backoff = INITIAL_BACKOFF_MS;
    let result = await this.transport.send(data, timeoutMillis);
    for (let retries = 0; result.status === 'retryable' && retries < MAX_RETRIES && !ending; retries++) {
      const jittered = Math.min(backoff * (1 + (Math.random() * 2 - 1) * JITTER), MAX_BACKOFF_MS);
      backoff *= BACKOFF_MULTIPLIER;
      const wait = Math.max(result.retryInMillis ?? jittered, 0);
      if (wait > deadline - Date.now()) return result;
      if (!(await this.sleep(wait))) return result;
      result = await this.transport.send(data, Math.max(deadline - Date.now(), 1));
    }
    return result;
  }

  shutdown(): void {
    live.delete(this);
    this.transport.shutdown();
  }

  /** Gives up the retries being waited for. */
  end(): void {
    for (const giveUp of this.waits) giveUp();
  }

  /** Cuts the sends still running. */
  abort(): void {
    this.end();
    try {
      this.transport.shutdown();
    } catch {
      // a transport that cannot shut down is left to its own timeout, unref'd
    }
  }

  /** Resolves true after `ms`, or false as soon as the process is ending. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const giveUp = (): void => {
        clearTimeout(timer);
        this.waits.delete(giveUp);
        resolve(false);
      };
      const timer = setTimeout(() => {
        this.waits.delete(giveUp);
        resolve(true);
      }, ms);
      timer.unref();
      this.waits.add(giveUp);
    });
  }
}

/** What @opentelemetry/otlp-exporter-base calls to wrap each exporter's transport. */
export function createRetryingTransport(options: { transport: ExporterTransport }): ExporterTransport {
  return new BoundedRetryingTransport(options.transport);
}

/**
 * For the OTLP/HTTP exporters' `httpAgentOptions`: keep-alive agents whose
 * sockets are unref'd, also when reused (an export in flight never keeps the
 * process alive; the agent's shutdown holds it for the final flush, within
 * its bound), and that abortExports() can destroy. Passing a factory replaces
 * the one upstream makes from the environment, so the TLS files it reads are
 * read here the same way: OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE,
 * _CLIENT_CERTIFICATE and _CLIENT_KEY.
 */
export function agentFactory(protocol: string): http.Agent {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const module = (protocol === 'https:' ? require('node:https') : require('node:http')) as typeof http;
  /* eslint-enable @typescript-eslint/no-require-imports */
  const tls = protocol === 'https:' ? { ca: tlsFile('CERTIFICATE'), cert: tlsFile('CLIENT_CERTIFICATE'), key: tlsFile('CLIENT_KEY') } : {};
  const agent = new module.Agent({ keepAlive: true, ...Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)) });
  type Socket = { unref?: () => void };
  const hooks = agent as unknown as { createConnection: (...args: unknown[]) => Socket; reuseSocket: (socket: Socket, req: unknown) => void };
  const create = hooks.createConnection;
  hooks.createConnection = function (this: unknown, ...args: unknown[]) {
    const socket = create.apply(this, args);
    socket.unref?.();
    return socket;
  };
  // Node refs a keep-alive socket when it is reused for the next request.
  const reuse = hooks.reuseSocket;
  hooks.reuseSocket = function (this: unknown, socket: Socket, req: unknown) {
    reuse.call(this, socket, req);
    socket.unref?.();
  };
  agents.add(agent);
  return agent;
}

/** A TLS file named by OTEL_EXPORTER_OTLP_TRACES_<name> or OTEL_EXPORTER_OTLP_<name>, as the exporter reads it. */
function tlsFile(name: string): Buffer | undefined {
  const file = process.env[`OTEL_EXPORTER_OTLP_TRACES_${name}`]?.trim() || process.env[`OTEL_EXPORTER_OTLP_${name}`]?.trim();
  if (file === undefined || file === '') return undefined;
  try {
    /* eslint-disable-next-line @typescript-eslint/no-require-imports */
    return (require('node:fs') as typeof import('node:fs')).readFileSync(require('node:path').resolve(process.cwd(), file));
  } catch (err) {
    diag.warn(`OTEL_EXPORTER_OTLP_${name}: could not read ${file}: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

/** The process is ending: no more waiting between retries. */
export function endExports(): void {
  ending = true;
  for (const t of live) t.end();
}

/** The shutdown bound is reached: cut what is still being sent. */
export function abortExports(): void {
  ending = true;
  for (const t of live) t.abort();
  for (const agent of agents) agent.destroy();
}
