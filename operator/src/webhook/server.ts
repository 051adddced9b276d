/**
 * The HTTPS server: the mutating webhook, health and readiness, and metrics.
 * A thin shell: it only reads bodies, calls review(), and writes answers.
 * Its certificate can be replaced while it runs (rotation).
 */
import * as https from 'node:https';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { review, reviewChecked, type ReviewContext, type ReviewOutcome } from './review';
import type { AdmissionCheck } from './admission-check';
import type { OperatorMetrics } from '../metrics';
import { answerProbe, type MetricsText, type Readiness } from '../probes';
import type { Log } from '../log';
import type { SpanProfiling } from '../api';

export const MUTATE_PATH = '/mutate-v1-pod';
const MAX_BODY_BYTES = 4 * 1024 * 1024;

/** What happens after each answer: its metrics, its log line, the warnings for an Event. */
export type AnswerReport = (seconds: number, result: ReviewOutcome['result']) => void;

export interface ServerOptions {
  port: number;
  host?: string;
  tls: { cert: string; key: string };
  context: ReviewContext;
  log: Log;
  /** Readiness: true once caches are synced and a certificate is in place, else why not. */
  ready: Readiness;
  /** After each answer (reportTo() makes one for a thread that keeps the metrics). */
  report: AnswerReport;
  /** The /metrics page on this port. */
  metricsText: MetricsText;
  /** The API server's verdict on each mutated pod before it is answered (admission-check.ts); none: the mutation is answered as it is. */
  admissionCheck?: AdmissionCheck;
}

/**
 * Reports answers to `metrics` and `log`; `onWarnings` is called after a (not dry-run) pod creation
 * whose mutation warned about a SpanProfiling's pod, with the mutation code that says why.
 */
export function reportTo(metrics: OperatorMetrics, log: Log, onWarnings?: (sp: SpanProfiling, message: string, code: string) => void): AnswerReport {
  return (seconds, r) => {
    try {
      metrics.latency.observe(seconds);
      if (r === undefined) return;
      metrics.mutations.inc({ status: r.status, reason: r.code });
      if (r.reused === true) metrics.reusedAnswers.inc();
      const level = r.status === 'error' || r.status === 'internal-error' ? 'warn' : r.code === 'admission-check' ? 'debug' : 'info';
      log[level]('admission', { namespace: r.namespace, pod: r.pod, status: r.status, code: r.code, reason: r.reason, ms: Math.round(seconds * 1e4) / 10 });
      // A dry run has no side effects (the webhook is registered with sideEffects: NoneOnDryRun).
      if (r.spanProfiling !== undefined && r.warnings !== undefined && !r.dryRun) {
        onWarnings?.(r.spanProfiling, `pod ${r.pod} in namespace ${r.namespace} (${r.status}): ${r.warnings.join('; ')}`, r.code);
      }
    } catch {
      // Metrics and logs never stand between a pod and its answer.
    }
  };
}

export class WebhookServer {
  private server: https.Server | undefined;

  constructor(private readonly options: ServerOptions) {}

  async start(): Promise<number> {
    this.server = https.createServer({ cert: this.options.tls.cert, key: this.options.tls.key }, (req, res) => this.handle(req, res));
    this.server.on('tlsClientError', (err) => this.options.log.debug('TLS handshake failed', { error: err.message }));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.options.port, this.options.host ?? '0.0.0.0', resolve);
    });
    return (this.server.address() as AddressInfo).port;
  }

  /** Serves a new certificate to new connections. */
  setCertificate(cert: string, key: string): void {
    this.server?.setSecureContext({ cert, key });
  }

  async close(): Promise<void> {
    if (this.server === undefined) return;
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server.closeAllConnections();
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (answerProbe(req, res, this.options.ready, this.options.metricsText)) return;
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'POST' || path !== MUTATE_PATH) return this.text(res, 404, 'not found');

    const started = process.hrtime.bigint();
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        this.text(res, 413, 'request too large');
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return this.text(res, 400, 'body is not JSON');
      }
      void this.answer(body).then((outcome) => this.respond(res, outcome, started));
    });
    req.on('error', () => res.destroy());
  }

  private async answer(body: unknown): Promise<ReviewOutcome> {
    const check = this.options.admissionCheck;
    try {
      return check === undefined ? review(body, this.options.context) : await reviewChecked(body, this.options.context, (ns, pod) => check.check(ns, pod), check);
    } catch (err) {
      // Never reached by design (both catch inside); if it is, the pod still goes in, untouched.
      const uid = (body as { request?: { uid?: unknown } } | null)?.request?.uid;
      if (typeof uid !== 'string') return { httpStatus: 400, body: { error: 'expected an AdmissionReview (admission.k8s.io/v1) with request.uid' } };
      this.options.log.error('admission failed, pod admitted untouched', { error: err instanceof Error ? err.message : String(err) });
      return { httpStatus: 200, body: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true } } };
    }
  }

  private respond(res: http.ServerResponse, outcome: ReviewOutcome, started: bigint): void {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    try {
      this.options.report(seconds, outcome.result);
    } catch {
      // Reports never stand between a pod and its answer.
    }
    if (res.destroyed) return;
    res.writeHead(outcome.httpStatus, { 'content-type': 'application/json' });
    res.end(JSON.stringify(outcome.body));
  }

  private text(res: http.ServerResponse, status: number, body: string, type = 'text/plain'): void {
    if (res.headersSent) return;
    res.writeHead(status, { 'content-type': type });
    res.end(body);
  }
}
