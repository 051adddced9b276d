/**
 * The webhook in a thread of its own (worker.ts), so that admission never
 * waits for the controller: the main thread decodes every pod watch event,
 * rebuilds indexes and writes statuses, and a burst of those would otherwise
 * sit in front of each AdmissionReview in one event loop.
 *
 * The main thread sends the thread the objects it answers from (SpanProfilings,
 * namespaces, LimitRanges, ResourceQuotas) as its caches change, and the
 * serving certificate; it takes back what each answer reports (metrics, the
 * log line, warnings for Events) and answers the /metrics page asked on the
 * webhook's port. Should the thread end without being asked to, it is started
 * again a second later; meanwhile the API server admits pods untouched (the
 * webhook's failurePolicy is Ignore), as during any webhook outage.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { currentCredentials, type AuthProvider, type Credentials, type WatchEvent } from '../kube/client';
import type { KubeObject } from '../kube/reflector';
import type { Level, Log } from '../log';
import { errorMessage } from '../log';
import type { OperatorDefaults } from '../inject/pod';
import type { AnswerReport } from './server';
import type { ReviewOutcome } from './review';

/** What the thread answers from: the main thread's caches of these. */
export const MIRRORED = ['spanProfilings', 'namespaces', 'limitRanges', 'resourceQuotas'] as const;
export type MirroredKind = (typeof MIRRORED)[number];

/** A cache the thread mirrors (a Reflector). */
export interface MirrorSource {
  list(): KubeObject[];
  onChange(listener: (type: WatchEvent<KubeObject>['type'] | 'SYNC', obj: KubeObject | undefined) => void): void;
}

/** The thread's settings (its workerData). */
export interface WebhookThreadInit {
  port: number;
  host?: string;
  tls: { cert: string; key: string };
  defaults: OperatorDefaults;
  optInNamespaces: string[];
  /** The admission check's settings; none: off. */
  admissionCheck?: { timeoutMs: number; cacheMs: number };
  logLevel: Level;
}

/** How often the admission check's credentials are sent again (a service account token rotates within the hour). */
const CREDENTIALS_EVERY_MS = 60_000;

export type ToThread =
  | { t: 'reset'; kind: MirroredKind; objects: KubeObject[] }
  | { t: 'change'; kind: MirroredKind; type: 'ADDED' | 'MODIFIED' | 'DELETED'; obj: KubeObject }
  | { t: 'cert'; cert: string; key: string }
  | { t: 'credentials'; credentials: Credentials }
  | { t: 'metrics'; id: number; text: string }
  | { t: 'close' };

export type FromThread =
  | { t: 'listening'; port: number }
  | { t: 'failed'; error: string }
  | { t: 'answered'; seconds: number; result: ReviewOutcome['result'] }
  | { t: 'metrics'; id: number };

export interface WebhookThreadOptions {
  init: WebhookThreadInit;
  sources: Record<MirroredKind, MirrorSource>;
  /** Where the thread's answers are reported (reportTo(), in this thread). */
  report: AnswerReport;
  metricsText: () => string;
  log: Log;
  /** The main thread's credentials, sent to the thread for its admission check (needed when init.admissionCheck is set). */
  credentials?: AuthProvider;
}

/** The API server is reached through a proxy: its agent cannot be sent to another thread. */
export class CredentialsNotSendable extends Error {}

const YOUNG_GENERATION_MB = 8;

/** Only what the webhook reads of a namespace is sent: its name, labels and annotations. */
function slim(kind: MirroredKind, obj: KubeObject): KubeObject {
  if (kind !== 'namespaces') return obj;
  const m = obj.metadata ?? {};
  return { metadata: { name: m.name, ...(m['labels'] !== undefined ? { labels: m['labels'] } : {}), ...(m['annotations'] !== undefined ? { annotations: m['annotations'] } : {}) } };
}

/** The thread's script: the bundle's webhook-worker.js beside this one, or, run from source, worker.ts through tsx. */
function threadScript(): { file: string; execArgv: string[] } {
  const built = path.join(__dirname, 'webhook-worker.js');
  if (existsSync(built)) return { file: built, execArgv: [] };
  return { file: path.join(__dirname, 'worker.ts'), execArgv: ['--require', require.resolve('tsx/cjs')] };
}

export class WebhookThread {
  private worker: Worker | undefined;
  private closing = false;
  private restart: NodeJS.Timeout | undefined;
  private credentialsTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: WebhookThreadOptions) {
    for (const kind of MIRRORED) {
      options.sources[kind].onChange((type, obj) => {
        if (type === 'SYNC') this.post({ t: 'reset', kind, objects: options.sources[kind].list().map((o) => slim(kind, o)) });
        else if ((type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') && obj !== undefined) this.post({ t: 'change', kind, type, obj: slim(kind, obj) });
      });
    }
  }

  /** Starts the thread; answers the port it serves on once it listens. */
  async start(): Promise<number> {
    this.closing = false;
    const credentials = await this.credentials();
    const { file, execArgv } = threadScript();
    // A small young generation: the thread's garbage is per AdmissionReview, and each MB of it is RSS.
    const worker = new Worker(file, { workerData: this.options.init, execArgv, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
    this.worker = worker;
    if (credentials !== undefined) this.post({ t: 'credentials', credentials });
    // Its copy of the caches first: messages keep their order, so every change after these follows them.
    for (const kind of MIRRORED) this.post({ t: 'reset', kind, objects: this.options.sources[kind].list().map((o) => slim(kind, o)) });
    if (credentials !== undefined && this.credentialsTimer === undefined) {
      this.credentialsTimer = setInterval(() => {
        this.credentials().then(
          (c) => c !== undefined && this.post({ t: 'credentials', credentials: c }),
          (err: unknown) => this.options.log.warn('webhook thread: credentials not renewed', { error: errorMessage(err) }),
        );
      }, CREDENTIALS_EVERY_MS);
      this.credentialsTimer.unref();
    }
    return new Promise((resolve, reject) => {
      let started = false;
      worker.on('message', (m: FromThread) => {
        if (m.t === 'listening') {
          started = true;
          // A thread started again serves the same port.
          this.options.init.port = m.port;
          resolve(m.port);
        } else if (m.t === 'failed') {
          reject(new Error(`the webhook thread did not start: ${m.error}`));
        } else if (m.t === 'answered') {
          this.options.report(m.seconds, m.result);
        } else if (m.t === 'metrics') {
          this.post({ t: 'metrics', id: m.id, text: this.options.metricsText() });
        }
      });
      worker.on('error', (err) => this.options.log.error('webhook thread failed', { error: errorMessage(err) }));
      worker.on('exit', (code) => {
        if (this.worker === worker) this.worker = undefined;
        if (!started) return reject(new Error(`the webhook thread ended (exit code ${code}) before it listened`));
        if (this.closing) return;
        this.options.log.error('webhook thread ended, starting it again', { exitCode: code });
        this.startAgain();
      });
    });
  }

  /** A second from now, and again every second until it starts. */
  private startAgain(): void {
    this.restart = setTimeout(() => {
      this.restart = undefined;
      if (this.closing) return;
      this.start().catch((err: unknown) => {
        this.options.log.error('webhook thread did not start again', { error: errorMessage(err) });
        if (!this.closing) this.startAgain();
      });
    }, 1000);
  }

  /** Serves a new certificate to new connections (and to a thread started again). */
  setCertificate(cert: string, key: string): void {
    this.options.init.tls = { cert, key };
    this.post({ t: 'cert', cert, key });
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.restart !== undefined) clearTimeout(this.restart);
    if (this.credentialsTimer !== undefined) clearInterval(this.credentialsTimer);
    this.credentialsTimer = undefined;
    const worker = this.worker;
    if (worker === undefined) return;
    // The thread closes its server, so connections end as they do at any shutdown, then ends itself.
    const ended = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    this.post({ t: 'close' });
    await ended;
  }

  /** The credentials the admission check needs, when it is on. */
  private async credentials(): Promise<Credentials | undefined> {
    if (this.options.init.admissionCheck === undefined) return undefined;
    if (this.options.credentials === undefined) throw new Error('the admission check needs credentials');
    const credentials = await currentCredentials(this.options.credentials);
    if (credentials === undefined) throw new CredentialsNotSendable('the API server is reached through a proxy');
    return credentials;
  }

  private post(message: ToThread): void {
    this.worker?.postMessage(message);
  }
}
