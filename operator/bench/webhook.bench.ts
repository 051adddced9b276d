/**
 * `npm run bench:webhook`: admission latency and operator memory. Figures,
 * not assertions.
 *
 * 1. In-process: the HTTPS webhook server on loopback answering 200
 *    concurrent AdmissionReviews (keep-alive clients), p50/p99 and memory.
 * 2. Through the real API server: pod creations, 200 at a time, in a
 *    namespace the webhook mutates and in one it never sees, and the operator
 *    process's RSS; with the admission check off and on (a dry run of each
 *    mutated pod: once per template for a ReplicaSet's pods, once per pod
 *    for pods that all differ).
 *
 * Options (env): BENCH_REVIEWS (default 20000), BENCH_PODS (default 1000), BENCH_CONCURRENCY (default 200).
 */
import * as https from 'node:https';
import * as path from 'node:path';
import { readFileSync } from 'node:fs';
import type { SpanProfiling } from '../src/api';
import { createCA, createServingCert } from '../src/certs/x509';
import { jsonLog } from '../src/log';
import { operatorMetrics } from '../src/metrics';
import { MUTATE_PATH, reportTo, WebhookServer } from '../src/webhook/server';
import { review } from '../src/webhook/review';
import { AnswerCache } from '../src/webhook/answers';
import { startControlPlane } from '../../e2e/harness/control-plane';
import { ManagedProcess, removeDir, tempDir } from '../../e2e/harness/processes';
import { registerLoopbackWebhook, startLoopbackOperator } from './loopback-operator';
import { REPO_ROOT } from '../../e2e/harness/toolchain';
import { percentile } from '../../injector/bench/figures';

const REVIEWS = Number(process.env['BENCH_REVIEWS'] ?? 20_000);
const PODS = Number(process.env['BENCH_PODS'] ?? 1000);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 200);

const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(0)} MiB`;

/** A pod of one ReplicaSet, or (distinct) one that differs from every other pod (a label of its own). */
function pod(i: number, distinct = false) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'web-', labels: { app: 'web', 'pod-template-hash': 'abc12', ...(distinct ? { instance: `i${i}` } : {}) }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-abc12', uid: '5f0c7a8e-0000-4000-8000-000000000001', controller: true }] },
    spec: { containers: [{ name: 'app', image: 'node:24', env: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=512' }, { name: 'PORT', value: '8080' }] }, { name: 'sidecar', image: 'envoy' }] },
  };
}

async function inProcess(): Promise<void> {
  const ca = createCA('bench', new Date(), 1);
  const tls = createServingCert(ca, ['localhost'], new Date(), 1);
  const sps: SpanProfiling[] = Array.from({ length: 50 }, (_, i) => ({
    apiVersion: 'spanprofiling.io/v1alpha1',
    kind: 'SpanProfiling',
    metadata: { name: i === 0 ? 'default' : `sp-${i}`, namespace: i === 0 ? 'shop' : `ns-${i}` },
    spec: { pyroscope: { address: 'http://pyroscope:4040' }, tracing: { otlp: { endpoint: 'http://jaeger:4318' } } },
  }));
  const metrics = operatorMetrics();
  const server = new WebhookServer({
    port: 0,
    host: '127.0.0.1',
    tls,
    context: { namespaceAnnotations: () => ({ 'spanprofiling.io/inject': 'true' }), spanProfilings: () => sps, defaults: { agentImage: 'agent' } },
    log: jsonLog('error'),
    ready: () => true,
    report: reportTo(metrics, jsonLog('error')),
    metricsText: () => metrics.registry.render(),
  });
  const port = await server.start();
  const agent = new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: ca.cert });
  const send = (i: number): Promise<number> => {
    const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: `u${i}`, kind: { kind: 'Pod' }, operation: 'CREATE', namespace: 'shop', object: pod(i) } });
    const start = performance.now();
    return new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, path: MUTATE_PATH, method: 'POST', agent, servername: 'localhost', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - start) : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
  };
  // Warm-up with every connection open, as the API server keeps its connections: steady state is measured.
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, k) => { for (let i = 0; i < 5; i++) await send(k * 5 + i); }));
  global.gc?.();
  const before = process.memoryUsage();
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < REVIEWS) latencies.push(await send(next++));
  }));
  const seconds = (performance.now() - started) / 1000;
  const after = process.memoryUsage();
  // The server-side cost alone: review() as the server calls it, one at a time.
  const ctx = { namespaceAnnotations: () => ({ 'spanprofiling.io/inject': 'true' }), spanProfilings: () => sps, defaults: { agentImage: 'agent' } };
  // And with answers kept per template (the operator's default), interleaved with it: one template's pods.
  const kept = { ...ctx, answers: new AnswerCache(() => 0) };
  const serial: number[] = [];
  const serialKept: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const body = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: `u${i}`, kind: { kind: 'Pod' }, operation: 'CREATE', namespace: 'shop', object: pod(i) } };
    let t = performance.now();
    review(body, ctx);
    serial.push(performance.now() - t);
    t = performance.now();
    review(body, kept);
    serialKept.push(performance.now() - t);
  }
  agent.destroy();
  await server.close();
  console.log(`in-process HTTPS webhook, ${REVIEWS} AdmissionReviews, ${CONCURRENCY} concurrent (client and server share this process and its 2 cores):`);
  console.log(`  throughput  ${(REVIEWS / seconds).toFixed(0)} reviews/s`);
  console.log(`  latency     p50 ${percentile(latencies, 50).toFixed(2)} ms   p99 ${percentile(latencies, 99).toFixed(2)} ms   (queueing behind ${CONCURRENCY} in flight included)`);
  console.log(`  review()    p50 ${percentile(serial, 50).toFixed(3)} ms   p99 ${percentile(serial, 99).toFixed(3)} ms   (decide + mutate + JSONPatch, one at a time)`);
  console.log(`  review()    p50 ${percentile(serialKept, 50).toFixed(3)} ms   p99 ${percentile(serialKept, 99).toFixed(3)} ms   (the same with answers kept per template: ${kept.answers.reused} of ${serialKept.length} reused)`);
  console.log(`  memory      RSS ${mib(before.rss)} -> ${mib(after.rss)}, heap used ${mib(before.heapUsed)} -> ${mib(after.heapUsed)}`);
}

async function throughApiServer(): Promise<void> {
  const cp = await startControlPlane();
  const logDir = tempDir('bench-webhook');
  let operator: ManagedProcess | undefined;
  try {
    await cp.kubectl('apply', '-f', path.join(REPO_ROOT, 'crds'));
    await cp.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/spanprofilings.spanprofiling.io');
    for (const ns of ['span-profiling', 'shop', 'plain']) await cp.kubectl('create', 'namespace', ns);
    await cp.kubectl('annotate', 'namespace', 'shop', 'spanprofiling.io/inject=true');
    await cp.kubectlResult(['apply', '-n', 'shop', '-f', '-'], JSON.stringify({ apiVersion: 'spanprofiling.io/v1alpha1', kind: 'SpanProfiling', metadata: { name: 'default' }, spec: { pyroscope: { address: 'http://p:4040' }, tracing: { otlp: { endpoint: 'http://j:4318' } } } }));
    const webhookPort = await registerLoopbackWebhook(cp);
    const create = async (namespace: string, distinct = false): Promise<{ p50: number; p99: number; rate: number; injected: number }> => {
      const latencies: number[] = [];
      let next = 0;
      let injected = 0;
      const started = performance.now();
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < PODS) {
          const i = next++;
          const t = performance.now();
          const r = await cp.api<{ metadata: { annotations?: Record<string, string> } }>('POST', `/api/v1/namespaces/${namespace}/pods`, pod(i, distinct));
          if (r.status !== 201) throw new Error(`pod creation: HTTP ${r.status}`);
          latencies.push(performance.now() - t);
          if (r.body.metadata.annotations?.['spanprofiling.io/status'] === 'injected') injected++;
        }
      }));
      return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), rate: PODS / ((performance.now() - started) / 1000), injected };
    };
    const line = (what: string, r: { p50: number; p99: number; rate: number; injected?: number }): string =>
      `  ${what.padEnd(52)} p50 ${r.p50.toFixed(1).padStart(6)} ms   p99 ${r.p99.toFixed(1).padStart(6)} ms   ${r.rate.toFixed(0).padStart(4)} pods/s${r.injected !== undefined ? `   ${r.injected} injected` : ''}`;
    console.log(`\nthrough the real kube-apiserver, ${PODS} pod creations per row, ${CONCURRENCY} concurrent (apiserver, etcd, operator and client on 2 cores):`);
    for (const check of ['off', 'dry-run'] as const) {
      const started = await startLoopbackOperator(cp, { name: `operator-${check}`, webhookPort, logDir, check });
      const { probePort } = started;
      operator = started.process;
      const pid = started.process.pid;
      for (let i = 0; i < 100; i++) {
        const probe = await cp.api<{ metadata: { annotations?: Record<string, string> } }>('POST', '/api/v1/namespaces/shop/pods?dryRun=All', pod(i));
        if (probe.body.metadata.annotations?.['spanprofiling.io/status'] === 'injected') break;
        await new Promise((r) => setTimeout(r, 300));
      }
      console.log(`admission check ${check}:`);
      console.log(line('namespace the webhook never sees', await create('plain')));
      console.log(line("opted-in namespace, one ReplicaSet's pods", await create('shop')));
      if (check === 'dry-run') console.log(line('opted-in namespace, every pod different (no reuse)', await create('shop', true)));
      const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
      const hwm = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
      const metrics = await (await fetch(`http://127.0.0.1:${probePort}/metrics`)).text();
      const served = /spanprofiling_webhook_duration_seconds_count (\d+)/.exec(metrics)?.[1];
      const sum = Number(/spanprofiling_webhook_duration_seconds_sum ([\d.e+-]+)/.exec(metrics)?.[1] ?? NaN);
      console.log(`  operator process: RSS ${mib(rss)} (peak ${mib(hwm)}), reviews served ${served} (the check's own included), mean answer ${((sum / Number(served)) * 1000).toFixed(1)} ms`);
      await started.process.stop();
      operator = undefined;
    }
  } finally {
    await operator?.stop();
    await cp.stop();
    removeDir(logDir);
  }
}

async function main(): Promise<void> {
  await inProcess();
  await throughApiServer();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
