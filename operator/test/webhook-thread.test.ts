/**
 * The webhook in its own thread (src/webhook/thread.ts, worker.ts): it answers
 * from its copy of the main thread's caches, follows their changes, reports
 * each answer back, and answers while the main thread's event loop is busy.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import * as https from 'node:https';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { SpanProfiling } from '../src/api';
import { createCA, createServingCert } from '../src/certs/x509';
import type { WatchEvent } from '../src/kube/client';
import type { KubeObject } from '../src/kube/reflector';
import { jsonLog } from '../src/log';
import type { ReviewOutcome } from '../src/webhook/review';
import { MUTATE_PATH } from '../src/webhook/server';
import { CredentialsNotSendable, WebhookThread, type MirroredKind, type MirrorSource } from '../src/webhook/thread';
import { admissionReview } from './webhook.test';

/** A cache as the thread sees one: a list, and its changes. */
class Source implements MirrorSource {
  private readonly items = new Map<string, KubeObject>();
  private readonly listeners: ((type: WatchEvent<KubeObject>['type'] | 'SYNC', obj: KubeObject | undefined) => void)[] = [];
  constructor(items: KubeObject[] = []) {
    for (const item of items) this.items.set(`${item.metadata?.namespace ?? ''}/${item.metadata?.name ?? ''}`, item);
  }
  list(): KubeObject[] {
    return [...this.items.values()];
  }
  onChange(listener: (type: WatchEvent<KubeObject>['type'] | 'SYNC', obj: KubeObject | undefined) => void): void {
    this.listeners.push(listener);
  }
  emit(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: KubeObject): void {
    const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
    if (type === 'DELETED') this.items.delete(key);
    else this.items.set(key, obj);
    for (const l of this.listeners) l(type, obj);
  }
}

const sp = (name: string, namespace = 'shop'): SpanProfiling & KubeObject => ({
  apiVersion: 'spanprofiling.io/v1alpha1',
  kind: 'SpanProfiling',
  metadata: { name, namespace },
  spec: { pyroscope: { address: 'http://pyroscope:4040' }, tracing: { otlp: { endpoint: 'http://jaeger:4318' } } },
});
const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'web-', labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'node:24' }] } };

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (let i = 0; i < 600; i++) {
    const got = await probe();
    if (got !== undefined) return got;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('the webhook in its own thread', function () {
  this.timeout(60_000);
  const ca = createCA('thread-ca', new Date(), 1);
  const serving = createServingCert(ca, ['localhost', '127.0.0.1'], new Date(), 1);
  const sources = {
    spanProfilings: new Source([sp('default')]),
    namespaces: new Source([{ metadata: { name: 'shop', annotations: { 'spanprofiling.io/inject': 'true' }, labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } }]),
    limitRanges: new Source(),
    resourceQuotas: new Source(),
  } satisfies Record<MirroredKind, Source>;
  const reported: { seconds: number; result: ReviewOutcome['result'] }[] = [];
  let thread: WebhookThread;
  let port = 0;
  let caCert = ca.cert;
  const logged: string[] = [];

  before(async () => {
    thread = new WebhookThread({
      init: { port: 0, host: '127.0.0.1', tls: serving, defaults: { agentImage: 'agent:test' }, optInNamespaces: ['opted'], logLevel: 'error' },
      sources,
      report: (seconds, result) => reported.push({ seconds, result }),
      metricsText: () => 'spanprofiling_from_the_main_thread 1\n',
      log: jsonLog('error', (line) => logged.push(line)),
    });
    port = await thread.start();
  });
  after(() => thread.close());

  const request = (method: string, urlPath: string, body?: unknown): Promise<{ status: number; text: string }> =>
    new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, path: urlPath, method, ca: caCert, servername: 'localhost', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  const admit = async (namespace = 'shop', uid = 'u'): Promise<{ allowed: boolean; patch?: string; warnings?: string[] }> => {
    const res = await request('POST', MUTATE_PATH, admissionReview(pod, namespace, uid));
    assert.equal(res.status, 200);
    return (JSON.parse(res.text) as { response: { allowed: boolean; patch?: string } }).response;
  };
  /** The answer adds the agent (a pod skipped gets annotations that say why, and no agent). */
  const injected = (answer: { patch?: string }): boolean => answer.patch !== undefined && Buffer.from(answer.patch, 'base64').toString().includes('spanprofiling-agent');

  it('answers from its copy of the caches, and reports each answer to the main thread', async () => {
    const before = reported.length;
    const answer = await admit('shop', 'first');
    assert.equal(answer.allowed, true);
    assert.ok(injected(answer));
    const r = await waitFor('the report', () => reported.slice(before).find((x) => x.result?.namespace === 'shop'));
    assert.equal(r.result?.status, 'injected');
    assert.ok(r.seconds > 0);
    // A namespace opted in at install counts as annotated, as in the main thread.
    sources.namespaces.emit('ADDED', { metadata: { name: 'opted' } });
    sources.spanProfilings.emit('ADDED', sp('default', 'opted'));
    await waitFor('the opted-in namespace', async () => (injected(await admit('opted')) ? true : undefined));
  });

  it('follows the changes of the caches', async () => {
    sources.spanProfilings.emit('DELETED', sp('default'));
    await waitFor('the SpanProfiling gone', async () => (!injected(await admit()) ? true : undefined));
    sources.spanProfilings.emit('ADDED', sp('default'));
    await waitFor('the SpanProfiling back', async () => (injected(await admit()) ? true : undefined));
  });

  it('answers while the main thread is busy', async () => {
    // Another process asks while this thread's event loop does not turn: only the webhook's own thread can answer.
    const dir = mkdtempSync(path.join(tmpdir(), 'webhook-thread-'));
    const out = path.join(dir, 'answer.json');
    const client = `
      const https = require('node:https');
      const body = ${JSON.stringify(JSON.stringify(admissionReview(pod, 'shop', 'busy')))};
      const req = https.request({ host: '127.0.0.1', port: ${port}, path: ${JSON.stringify(MUTATE_PATH)}, method: 'POST', ca: ${JSON.stringify(caCert)}, servername: 'localhost' }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => process.stdout.write(text + '\\n'));
      });
      req.on('error', (err) => process.stdout.write(JSON.stringify({ error: err.message }) + '\\n'));
      req.end(body);`;
    const fd = openSync(out, 'w');
    const child = spawn(process.execPath, ['-e', client], { stdio: ['ignore', fd, 'inherit'] });
    closeSync(fd);
    const answered = (): string | undefined => {
      const text = readFileSync(out, 'utf8');
      return text.endsWith('\n') ? text : undefined;
    };
    const blocked = new Int32Array(new SharedArrayBuffer(4));
    let text: string | undefined;
    for (let i = 0; i < 3000 && (text = answered()) === undefined; i++) Atomics.wait(blocked, 0, 0, 20);
    const exited = new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)));
    await exited;
    rmSync(dir, { recursive: true, force: true });
    assert.ok(text !== undefined, 'no answer while the main thread was busy');
    const response = (JSON.parse(text) as { response?: { uid: string; patch?: string } }).response;
    assert.equal(response?.uid, 'busy');
    assert.ok(response !== undefined && injected(response), 'injected');
  });

  it("serves the main thread's /metrics page, and its own readiness", async () => {
    assert.deepEqual(await request('GET', '/metrics'), { status: 200, text: 'spanprofiling_from_the_main_thread 1\n' });
    assert.deepEqual(await request('GET', '/readyz'), { status: 200, text: 'ready' });
  });

  it('is started again when it fails', async () => {
    // A message it cannot apply throws in the thread, which ends.
    (thread as unknown as { post(m: unknown): void }).post({ t: 'reset', kind: 'namespaces', objects: null });
    await waitFor('the thread to end', () => (logged.some((l) => l.includes('webhook thread ended, starting it again')) ? true : undefined));
    await waitFor('an answer from the new thread', async () => {
      try {
        return injected(await admit('shop', 'again')) ? true : undefined;
      } catch {
        return undefined;
      }
    });
  });

  it('does not start when its admission check would need a proxy it cannot be sent', async () => {
    const proxied = new WebhookThread({
      init: { port: 0, host: '127.0.0.1', tls: serving, defaults: { agentImage: 'agent:test' }, optInNamespaces: [], logLevel: 'error', admissionCheck: { timeoutMs: 1000, cacheMs: 1000 } },
      sources,
      report: () => undefined,
      metricsText: () => '',
      log: jsonLog('error'),
      credentials: async () => ({ server: 'https://127.0.0.1:6443', https: { agent: new https.Agent() }, headers: {} }),
    });
    await assert.rejects(proxied.start(), CredentialsNotSendable);
  });

  it('serves a new certificate to new connections', async () => {
    const other = createCA('rotated-ca', new Date(), 1);
    const rotated = createServingCert(other, ['localhost', '127.0.0.1'], new Date(), 1);
    thread.setCertificate(rotated.cert, rotated.key);
    caCert = other.cert;
    await waitFor('the new certificate', async () => {
      try {
        return (await request('GET', '/healthz')).status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    });
    assert.equal((await admit()).allowed, true);
  });
});
