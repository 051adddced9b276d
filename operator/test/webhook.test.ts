import { strict as assert } from 'node:assert';
import * as https from 'node:https';
import { applyPatch, type Operation } from 'fast-json-patch';
import type { V1Pod } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { SpanProfiling } from '../src/api';
import { review, type ReviewContext } from '../src/webhook/review';
import { WebhookServer, MUTATE_PATH, reportTo } from '../src/webhook/server';
import { operatorMetrics } from '../src/metrics';
import { jsonLog } from '../src/log';
import { createCA, createServingCert } from '../src/certs/x509';

const sp: SpanProfiling = {
  apiVersion: 'spanprofiling.io/v1alpha1',
  kind: 'SpanProfiling',
  metadata: { name: 'default', namespace: 'shop' },
  spec: { pyroscope: { address: 'http://pyroscope:4040' }, tracing: { otlp: { endpoint: 'http://jaeger:4318' } } },
};

export const reviewContext = (over: Partial<ReviewContext> = {}): ReviewContext => ({
  namespaceAnnotations: (ns): Record<string, string> => (ns === 'shop' ? { 'spanprofiling.io/inject': 'true' } : {}),
  spanProfilings: () => [sp],
  defaults: { agentImage: 'agent:test' },
  ...over,
});

export function admissionReview(pod: V1Pod, namespace = 'shop', uid = 'uid-1'): unknown {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid, kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace, object: pod } };
}

const pod = (): V1Pod => ({ apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'web-', labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'node:24' }] } });

interface Response {
  uid: string;
  allowed: boolean;
  patchType?: string;
  patch?: string;
  warnings?: string[];
}
const responseOf = (body: unknown): Response => (body as { response: Response }).response;
const patched = (p: V1Pod, r: Response): V1Pod => applyPatch(structuredClone(p), JSON.parse(Buffer.from(r.patch!, 'base64').toString()) as Operation[]).newDocument;

describe('admission review', () => {
  it('answers with a JSONPatch that injects the pod', () => {
    const p = pod();
    const out = review(admissionReview(p), reviewContext());
    assert.equal(out.httpStatus, 200);
    const r = responseOf(out.body);
    assert.equal(r.uid, 'uid-1');
    assert.equal(r.allowed, true);
    assert.equal(r.patchType, 'JSONPatch');
    const result = patched(p, r);
    assert.equal(result.metadata?.annotations?.['spanprofiling.io/status'], 'injected');
    assert.equal(result.spec?.initContainers?.[0]?.name, 'spanprofiling-agent');
    assert.equal(out.result?.code, 'injected');
  });

  it('records a reason and warns in kubectl output on misconfiguration, still allowing the pod', () => {
    const out = review(admissionReview(pod()), reviewContext({ spanProfilings: () => [] }));
    const r = responseOf(out.body);
    assert.equal(r.allowed, true);
    assert.equal(patched(pod(), r).metadata?.annotations?.['spanprofiling.io/status'], 'error');
    assert.match(r.warnings![0]!, /^span-profiling: spanprofiling.io\/inject=true but namespace shop has no SpanProfiling/);
  });

  it('allows the pod untouched when something inside throws', () => {
    const out = review(admissionReview(pod()), reviewContext({ spanProfilings: () => { throw new Error('cache exploded'); } }));
    const r = responseOf(out.body);
    assert.equal(r.allowed, true);
    assert.equal(r.patch, undefined);
    assert.match(r.warnings![0]!, /internal error, pod admitted untouched: cache exploded/);
    assert.equal(out.result?.status, 'internal-error');
  });

  it('allows what is not a pod creation without a patch', () => {
    const body = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', kind: { kind: 'Pod' }, operation: 'UPDATE', namespace: 'shop', object: pod() } };
    const r = responseOf(review(body, reviewContext()).body);
    assert.deepEqual(r, { uid: 'u', allowed: true });
  });

  for (const [what, body] of [['null', null], ['a string', 'x'], ['no request', { kind: 'AdmissionReview' }], ['no uid', { request: { kind: { kind: 'Pod' } } }]] as const) {
    it(`answers 400 for ${what}`, () => assert.equal(review(body, reviewContext()).httpStatus, 400));
  }
});

describe('webhook server over HTTPS', function () {
  this.timeout(20_000);
  const ca = createCA('test-ca', new Date(), 1);
  const serving = createServingCert(ca, ['localhost', '127.0.0.1'], new Date(), 1);
  let server: WebhookServer;
  let port = 0;
  const metrics = operatorMetrics();
  const warned: [string, string][] = [];

  before(async () => {
    server = new WebhookServer({
      port: 0,
      host: '127.0.0.1',
      tls: serving,
      context: reviewContext(),
      log: jsonLog('error'),
      ready: () => true,
      report: reportTo(metrics, jsonLog('error'), (s, message) => warned.push([`${s.metadata.namespace}/${s.metadata.name}`, message])),
      metricsText: () => metrics.registry.render(),
    });
    port = await server.start();
  });
  after(() => server.close());

  const post = (path: string, body: string): Promise<{ status: number; text: string }> =>
    new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, path, method: 'POST', ca: ca.cert, servername: 'localhost', headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.end(body);
    });

  it('serves AdmissionReviews with a certificate its CA verifies', async () => {
    const res = await post(MUTATE_PATH, JSON.stringify(admissionReview(pod())));
    assert.equal(res.status, 200);
    assert.equal(responseOf(JSON.parse(res.text)).patchType, 'JSONPatch');
    assert.equal(metrics.mutations.get({ status: 'injected', reason: 'injected' }), 1);
  });

  it("hands warnings about a SpanProfiling's pod on for an Event, but not for a dry run", async () => {
    const named = pod();
    named.metadata!.annotations = { 'spanprofiling.io/container-names': 'app,worker' };
    const dry = admissionReview(named) as { request: { dryRun?: boolean } };
    dry.request.dryRun = true;
    await post(MUTATE_PATH, JSON.stringify(dry));
    assert.deepEqual(warned, []);
    const res = await post(MUTATE_PATH, JSON.stringify(admissionReview(named)));
    assert.ok(responseOf(JSON.parse(res.text)).warnings?.some((w) => /no container named worker/.test(w)));
    assert.equal(warned.length, 1);
    assert.equal(warned[0]![0], 'shop/default');
    assert.match(warned[0]![1], /^pod web- in namespace shop \(injected\): no container named worker in the pod; injecting app$/);
    await post(MUTATE_PATH, JSON.stringify(admissionReview(pod())));
    assert.equal(warned.length, 1, 'a pod without warnings is not reported');
  });

  it('answers 400, and keeps serving, for a body that is not JSON', async () => {
    assert.equal((await post(MUTATE_PATH, '{not json')).status, 400);
    assert.equal((await post(MUTATE_PATH, JSON.stringify(admissionReview(pod())))).status, 200);
  });

  it('exposes metrics with outcomes and a latency histogram', async () => {
    const text = await new Promise<string>((resolve) => https.get({ host: '127.0.0.1', port, path: '/metrics', ca: ca.cert, servername: 'localhost' }, (res) => { let t = ''; res.on('data', (c: Buffer) => (t += c)); res.on('end', () => resolve(t)); }));
    assert.match(text, /spanprofiling_webhook_mutations_total\{reason="injected",status="injected"\} \d+/);
    assert.match(text, /spanprofiling_webhook_duration_seconds_count \d+/);
  });

  it("reports how late the event loop ran since the last scrape", async () => {
    const metrics = operatorMetrics();
    const quantiles = (): Record<string, number> =>
      Object.fromEntries([...metrics.registry.render().matchAll(/^spanprofiling_event_loop_delay_seconds\{quantile="([\d.]+)"\} ([\d.e+-]+)$/gm)].map(([, q, v]) => [q!, Number(v)]));
    metrics.registry.render();
    // The monitor's own timer ticks (every 10 ms), the loop is held for 80 ms, then runs its timers.
    await new Promise((r) => setTimeout(r, 30));
    const until = Date.now() + 80;
    while (Date.now() < until);
    await new Promise((r) => setTimeout(r, 30));
    const held = quantiles();
    assert.deepEqual(Object.keys(held).sort(), ['0.5', '0.99', '1']);
    assert.ok(held['1']! >= 0.05, `max ${held['1']} s after an 80 ms hold`);
    // Each scrape starts a new window.
    assert.equal(quantiles()['1'], 0);
  });

  it('switches to a rotated certificate without restarting', async () => {
    const ca2 = createCA('test-ca-2', new Date(), 1);
    const s2 = createServingCert(ca2, ['localhost'], new Date(), 1);
    server.setCertificate(s2.cert, s2.key);
    const issuer = await new Promise<string>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, path: '/healthz', ca: ca2.cert, servername: 'localhost', agent: false }, (res) => {
        resolve(String((res.socket as import('node:tls').TLSSocket).getPeerCertificate().issuer.CN));
        res.resume();
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(issuer, 'test-ca-2');
  });
});
