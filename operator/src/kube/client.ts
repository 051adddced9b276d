/**
 * The one narrow edge to the Kubernetes API server: JSON requests by REST path
 * and streaming watches. Authentication comes from @kubernetes/client-node's
 * KubeConfig (in-cluster service account, or a kubeconfig file), the rest is
 * plain node:https, so every call the operator makes is visible here.
 *
 * Why not @kubernetes/client-node's informers: the operator needs three caches
 * and a dozen calls; this client is the whole of that in a few hundred lines
 * with tests at the wire (bytes split across chunks, 410 Gone, continue
 * tokens), while the informers bring their own retry, cache and error
 * semantics that would still need the same tests, and a much larger bundle.
 *
 * Bodies are decoded as a stream (setEncoding): a character whose UTF-8 bytes
 * arrive in two chunks is decoded once both are in, never as two U+FFFD.
 */
import * as https from 'node:https';
import * as http from 'node:http';

/** Longer than the watch timeoutSeconds the reflector asks for (300 s), with bookmarks in between. */
const WATCH_IDLE_LIMIT_MS = 330_000;

export class KubeError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** A request that had no answer in its time. */
export class KubeTimeout extends Error {}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export interface Kube {
  /**
   * `timeoutMs`: give up (and reject) when no answer came within it (default 30 s); `accept`: the
   * representation asked for (default application/json; METADATA_LIST for a list of metadata only).
   */
  request<T>(method: string, path: string, body?: unknown, contentType?: string, timeoutMs?: number, accept?: string): Promise<T>;
  /** GET that answers undefined for 404. */
  get<T>(path: string): Promise<T | undefined>;
  /** Streams watch events until the server closes, abort() is called, or an error occurs; `accept` as for request (METADATA for metadata only). */
  watch<T>(path: string, onEvent: (event: WatchEvent<T>) => void, accept?: string): { done: Promise<void>; abort: () => void };
}

/** Objects as their metadata alone (PartialObjectMetadata): what the API server sends of a pod shrinks from kilobytes to its metadata. */
export const METADATA = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';
export const METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';

export interface RequestOptions {
  server: string;
  https: https.RequestOptions;
  headers: Record<string, string>;
}

export type AuthProvider = () => Promise<RequestOptions>;

/** Loads credentials: KUBECONFIG or ~/.kube/config, else the in-cluster service account. */
export async function kubeFromEnvironment(kubeconfigPath?: string): Promise<Kube> {
  return new HttpKube(await authFromEnvironment(kubeconfigPath));
}

/** What a request needs to reach the API server, as another thread can be sent it (no proxy agent, no functions). */
export interface Credentials {
  server: string;
  https: Pick<https.RequestOptions, 'ca' | 'cert' | 'key' | 'pfx' | 'passphrase' | 'rejectUnauthorized' | 'servername'>;
  headers: Record<string, string>;
}

/** The credentials `auth` answers now, or undefined when they need an agent of their own (a proxy) that cannot be sent. */
export async function currentCredentials(auth: AuthProvider): Promise<Credentials | undefined> {
  const o = await auth();
  if (o.https.agent !== undefined) return undefined;
  const { ca, cert, key, pfx, passphrase, rejectUnauthorized, servername } = o.https;
  const tls = Object.fromEntries(Object.entries({ ca, cert, key, pfx, passphrase, rejectUnauthorized, servername }).filter(([, v]) => v !== undefined));
  return { server: o.server, https: tls, headers: o.headers };
}

/** Credentials from KUBECONFIG or ~/.kube/config, else the in-cluster service account, read anew for each request (tokens rotate). */
export async function authFromEnvironment(kubeconfigPath?: string): Promise<AuthProvider> {
  // KubeConfig alone: the package's index brings every generated API class (16 MB bundled, against 1.5 MB).
  const k8s = await import('@kubernetes/client-node/dist/config.js');
  const kc = new k8s.KubeConfig();
  if (kubeconfigPath !== undefined) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error('no Kubernetes cluster configured (KUBECONFIG, ~/.kube/config or in-cluster service account)');
  const auth: AuthProvider = async () => {
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    // client-node makes a new Agent on every call (a TLS handshake and secure context per request:
    // 78 MiB more RSS for 1,000 admission checks); requests share HttpKube's pool unless a proxy is configured.
    if (cluster.proxyUrl === undefined) delete opts.agent;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (typeof v === 'string') headers[k] = v;
    return { server: cluster.server.replace(/\/+$/, ''), https: opts, headers };
  };
  return auth;
}

export class HttpKube implements Kube {
  /** Requests reuse their connections (a TLS handshake per call cost the webhook's admission check most of its time); watches keep their own. */
  private readonly agent = new https.Agent({ keepAlive: true, maxSockets: 32 });

  constructor(private readonly auth: AuthProvider) {}

  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json', timeoutMs = 30_000, accept = 'application/json'): Promise<T> {
    const { res, text } = await this.send(method, path, body, contentType, timeoutMs, accept);
    if ((res.statusCode ?? 0) >= 400) throw statusError(res.statusCode ?? 0, text, `${method} ${path}`);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  async get<T>(path: string): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', path);
    } catch (err) {
      if (err instanceof KubeError && err.status === 404) return undefined;
      throw err;
    }
  }

  watch<T>(path: string, onEvent: (event: WatchEvent<T>) => void, accept = 'application/json'): { done: Promise<void>; abort: () => void } {
    let request: http.ClientRequest | undefined;
    let aborted = false;
    const done = (async () => {
      const o = await this.auth();
      await new Promise<void>((resolve, reject) => {
        if (aborted) return resolve();
        request = https.request(`${o.server}${path}`, { ...o.https, method: 'GET', headers: { ...o.headers, accept } }, (res) => {
          if ((res.statusCode ?? 0) >= 400) {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => reject(statusError(res.statusCode ?? 0, text, `WATCH ${path}`)));
            return;
          }
          let buffer = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buffer += chunk;
            for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
              const line = buffer.slice(0, nl).trim();
              buffer = buffer.slice(nl + 1);
              if (line === '') continue;
              try {
                onEvent(JSON.parse(line) as WatchEvent<T>);
              } catch (err) {
                request?.destroy(err instanceof Error ? err : new Error(String(err)));
              }
            }
          });
          res.on('end', () => resolve());
          res.on('error', (err) => (aborted ? resolve() : reject(err)));
        });
        request.on('error', (err) => (aborted ? resolve() : reject(err)));
        // A half-open connection must not leave a cache stale: the server ends watches within timeoutSeconds.
        request.setTimeout(WATCH_IDLE_LIMIT_MS, () => request?.destroy(new Error(`WATCH ${path}: no data for ${WATCH_IDLE_LIMIT_MS / 1000}s`)));
        request.end();
      });
    })();
    return {
      done,
      abort: () => {
        aborted = true;
        request?.destroy();
      },
    };
  }

  private async send(method: string, path: string, body: unknown, contentType: string, timeoutMs: number, accept: string): Promise<{ res: http.IncomingMessage; text: string }> {
    const o = await this.auth();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = https.request(`${o.server}${path}`, {
        ...o.https,
        agent: o.https.agent ?? this.agent,
        method,
        timeout: timeoutMs,
        headers: { ...o.headers, accept, ...(payload ? { 'content-type': contentType, 'content-length': String(payload.length) } : {}) },
      });
      req.on('timeout', () => req.destroy(new KubeTimeout(`${method} ${path}: no answer within ${timeoutMs / 1000}s`)));
      req.on('error', reject);
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ res, text }));
        res.on('error', reject);
      });
      req.end(payload);
    });
  }
}

function statusError(status: number, text: string, what: string): KubeError {
  let reason = '';
  let message = text;
  try {
    const s = JSON.parse(text) as { reason?: string; message?: string };
    reason = s.reason ?? '';
    message = s.message ?? text;
  } catch {
    // not a Status object
  }
  return new KubeError(status, reason, `${what}: ${status} ${message}`.slice(0, 2000));
}

export const isConflict = (err: unknown): boolean => err instanceof KubeError && err.status === 409;
export const isNotFound = (err: unknown): boolean => err instanceof KubeError && err.status === 404;
export const isForbidden = (err: unknown): boolean => err instanceof KubeError && err.status === 403;
