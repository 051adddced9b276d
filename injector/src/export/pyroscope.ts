/**
 * Uploads profiles to Pyroscope's `/ingest` endpoint (pprof format: a gzipped
 * pprof as the raw body), from a bounded in-memory queue with retries and backoff.
 *
 * While the server is unreachable, the oldest profiles are dropped once the
 * queue is full: memory stays bounded and the newest data survives.
 */
import type * as http from 'node:http';
import type * as zlib from 'node:zlib';
import type { AgentConfig } from '../shared/config';
import type { Logger } from '../shared/log';
import { describeError } from '../shared/log';

/** Where and how to upload: the agent's Pyroscope settings, with the server address known to be valid. */
export type UploadTarget = Pick<
  AgentConfig['profiling'],
  'applicationName' | 'authToken' | 'basicAuthUser' | 'basicAuthPassword' | 'tenantId' | 'labels' | 'headers' | 'maxQueuedUploads'
> & {
  serverAddress: string;
  /** Sampling rate in Hz, passed to Pyroscope as `sampleRate`. */
  sampleRate: number;
};

export interface ProfileUpload {
  /** Encoded (not yet compressed) pprof, or its encoding under way. */
  pprof: Uint8Array | Promise<Uint8Array>;
  fromMs: number;
  untilMs: number;
}

/** Sends one HTTP request and answers the status and (the start of) the body; injectable for tests. */
export type Send = (url: URL, headers: Record<string, string>, body: Buffer, timeoutMs: number, signal?: AbortSignal) => Promise<{ status: number; body: string }>;

interface Queued {
  pprof: Uint8Array | Promise<Uint8Array>;
  /** The gzipped pprof, made off the main thread when first sent. */
  body: Buffer | undefined;
  url: URL;
  attempts: number;
}

/* eslint-disable @typescript-eslint/no-require-imports */
// Loaded at the first upload, not at start-up (https brings tls and crypto): a process that ends quickly never needs them.
const gzip = (data: Uint8Array): Promise<Buffer> =>
  new Promise((resolve, reject) => (require('node:zlib') as typeof zlib).gzip(data, (err, out) => (err ? reject(err) : resolve(out))));
const httpModule = (protocol: string): typeof http => (protocol === 'https:' ? require('node:https') : require('node:http')) as typeof http;
/* eslint-enable @typescript-eslint/no-require-imports */
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_ATTEMPTS = 5;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** Pyroscope's key syntax (`name{k=v,...}`) has no escaping: keep values to characters it parses. */
const UNSAFE_LABEL_VALUE = /[^A-Za-z0-9_.:/\-]/g;

export class PyroscopeUploader {
  private readonly queue: Queued[] = [];
  private draining: Promise<void> | undefined;
  private dropped = 0;
  private failing = false;
  private stopped = false;
  private backoffTimer: NodeJS.Timeout | undefined;
  /** Aborts whatever is in flight when close() gives up: nothing may outlive the shutdown bound. */
  private readonly abort = new AbortController();
  private wakeBackoff: (() => void) | undefined;
  /** The series name and labels, updated when the traced service turns out to be named otherwise. */
  private applicationName: string;
  private labels: Record<string, string>;

  constructor(
    private readonly target: UploadTarget,
    private readonly log: Logger,
    private readonly send: Send = sendWithNodeHttp,
  ) {
    this.applicationName = target.applicationName;
    this.labels = target.labels;
  }

  /** Profiles queued from now on go to the series `name{...static labels, ...labels}`. */
  setService(name: string, labels: Record<string, string>): void {
    this.applicationName = name;
    this.labels = { ...this.target.labels, ...labels };
  }

  /** Queues a profile; never throws, never blocks. */
  enqueue(upload: ProfileUpload): void {
    if (this.stopped) return;
    try {
      // Compression and the upload are asynchronous (an encoding may still be a promise): an upload must not stall the app's event loop.
      Promise.resolve(upload.pprof).catch(() => undefined);
      const entry: Queued = { pprof: upload.pprof, body: undefined, url: this.ingestUrl(upload), attempts: 0 };
      this.queue.push(entry);
      while (this.queue.length > this.target.maxQueuedUploads) {
        this.queue.shift();
        this.dropped++;
      }
      this.draining ??= this.drain().finally(() => (this.draining = undefined));
    } catch (err) {
      this.log.warn(`could not prepare a profile for upload: ${describeError(err)}`);
    }
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Uploads what is queued, giving up after timeoutMs. Later enqueues are ignored. */
  async close(timeoutMs: number): Promise<void> {
    this.stopped = true;
    this.wakeBackoff?.();
    if (this.draining === undefined && this.queue.length === 0) return;
    this.draining ??= this.drain().finally(() => (this.draining = undefined));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.draining, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
    if (this.queue.length > 0) {
      this.dropped += this.queue.length;
      this.queue.length = 0;
    }
    this.abort.abort();
  }

  private async drain(): Promise<void> {
    for (let entry = this.queue[0]; entry !== undefined && !this.abort.signal.aborted; entry = this.queue[0]) {
      entry.attempts++;
      let outcome: 'done' | 'retry' | 'drop';
      let detail = '';
      try {
        entry.body ??= await gzip(await entry.pprof);
      } catch (err) {
        this.log.warn(`could not encode a profile: ${describeError(err)}`);
        this.removeHead(entry);
        continue;
      }
      try {
        const { status, body } = await this.send(entry.url, this.headers(), entry.body, REQUEST_TIMEOUT_MS, this.abort.signal);
        detail = `HTTP ${status}${body.trim() === '' ? '' : `: ${body.trim().slice(0, 300)}`}`;
        outcome = status >= 200 && status < 300 ? 'done' : status === 429 || status >= 500 ? 'retry' : 'drop';
      } catch (err) {
        detail = describeError(err);
        outcome = 'retry';
      }
      if (outcome === 'retry' && (entry.attempts >= MAX_ATTEMPTS || this.stopped)) outcome = 'drop';

      if (outcome === 'done') {
        if (this.failing) this.log.info(`uploads to ${this.target.serverAddress} work again`);
        this.failing = false;
        this.removeHead(entry);
        continue;
      }
      if (!this.failing) {
        // One message per outage, not one per attempt.
        this.log.warn(`profile upload to ${this.target.serverAddress} failed (${detail}); retrying with backoff, keeping at most ${this.target.maxQueuedUploads} profiles`);
        this.failing = true;
      }
      if (outcome === 'drop') {
        this.removeHead(entry);
        this.dropped++;
        if (detail.startsWith('HTTP 4')) this.log.error(`Pyroscope rejected a profile (${detail}); check the server address, credentials and tenant`);
        continue;
      }
      await this.backoff(entry.attempts);
    }
    if (this.dropped > 0) {
      this.log.warn(`dropped ${this.dropped} profile(s) that could not be uploaded`);
      this.dropped = 0;
    }
  }

  private removeHead(entry: Queued): void {
    if (this.queue[0] === entry) this.queue.shift();
  }

  private backoff(attempt: number): Promise<void> {
    const ms = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
    return new Promise<void>((resolve) => {
      this.wakeBackoff = resolve;
      this.backoffTimer = setTimeout(resolve, ms);
      this.backoffTimer.unref();
    }).then(() => {
      clearTimeout(this.backoffTimer);
      this.wakeBackoff = undefined;
    });
  }

  private ingestUrl(upload: ProfileUpload): URL {
    const labels = Object.entries(this.labels)
      .map(([k, v]) => `${k}=${v.replace(UNSAFE_LABEL_VALUE, '_')}`)
      .join(',');
    const url = new URL(`${this.target.serverAddress}/ingest`);
    url.searchParams.set('name', `${this.applicationName}{${labels}}`);
    url.searchParams.set('from', String(Math.floor(upload.fromMs / 1000)));
    url.searchParams.set('until', String(Math.max(Math.ceil(upload.untilMs / 1000), Math.floor(upload.fromMs / 1000) + 1)));
    url.searchParams.set('spyName', 'nodespy');
    url.searchParams.set('format', 'pprof');
    url.searchParams.set('sampleRate', String(this.target.sampleRate));
    return url;
  }

  private headers(): Record<string, string> {
    const t = this.target;
    const headers: Record<string, string> = { ...t.headers, 'Content-Type': 'application/octet-stream' };
    if (t.authToken !== undefined) headers['Authorization'] = `Bearer ${t.authToken}`;
    else if (t.basicAuthUser !== undefined) {
      headers['Authorization'] = `Basic ${Buffer.from(`${t.basicAuthUser}:${t.basicAuthPassword ?? ''}`).toString('base64')}`;
    }
    if (t.tenantId !== undefined) headers['X-Scope-OrgID'] = t.tenantId;
    return headers;
  }
}

/** Plain node:http(s): the agent's own traffic must not go through instrumented fetch. */
export function sendWithNodeHttp(url: URL, headers: Record<string, string>, body: Buffer, timeoutMs: number, signal?: AbortSignal): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpModule(url.protocol).request(url, {
      method: 'POST',
      headers: { ...headers, 'Content-Length': String(body.length) },
      timeout: timeoutMs,
      ...(signal ? { signal } : {}),
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs}ms`)));
    request.on('error', reject);
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        if (text.length < 1000) text += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
      response.on('error', reject);
    });
    request.end(body);
  });
}
