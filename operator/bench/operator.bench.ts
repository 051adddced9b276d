/**
 * `npm run bench:operator`: the operator at cluster scale, against the real
 * kube-apiserver and etcd from the toolchain. Figures, not assertions.
 *
 * N namespaces opt in, each with a SpanProfiling; as many namespaces that do
 * not opt in get the same burst, first, as the baseline; then as many again
 * whose pods only a webhook that changes nothing sees (in a process of its
 * own: what any mutating webhook costs a pod creation here). Then:
 *
 * 1. a burst of N x M pod creations, BENCH_CONCURRENCY at a time, into the
 *    opted-in namespaces (the webhook injects every one), and the same burst
 *    shape into the others: pod-create p50/p99 for each;
 * 2. the webhook's own answers (its histogram: p50/p99 bounds), and as a
 *    client sees them during the burst;
 * 3. the time from the burst's start until every SpanProfiling's status
 *    counts its M pods; then the baseline burst again, which finds as many
 *    pods present as the injected one did (the bursts' order, measured);
 * 4. a rolling change: every SpanProfiling's spec changes, and the time until
 *    every status counts its M pods as outdated;
 * 5. the operator process's RSS (now, after BENCH_SETTLE_SECONDS (default 60)
 *    without changes, and peak) and CPU seconds, and the pod
 *    watches open on the API server (`apiserver_longrunning_requests`).
 * 6. last, a burst into as many namespaces again whose pods a webhook in another process answers
 *    at once with the operator's own patch for the template (its annotations left out, so the
 *    operator leaves those pods alone): what the mutation costs the API server, apart from how the
 *    operator answers.
 *
 * Options (env): BENCH_NAMESPACES (default 200), BENCH_PODS_PER_NAMESPACE
 * (default 50), BENCH_CONCURRENCY (default 16), BENCH_ADMISSION_CHECK
 * (dry-run, as the chart installs it, or off), BENCH_OPERATOR_NODE_OPTIONS
 * (NODE_OPTIONS for the operator process, e.g. the chart's), BENCH_OPERATOR_NODE_ARGS
 * (the node flags before operator.js, in place of the image's (OPERATOR_NODE_FLAGS); empty for
 * none; e.g. `--cpu-prof --cpu-prof-dir=DIR`), BENCH_WEBHOOK_THREAD (on, the
 * default: the webhook answers in its own thread; off: from the controller's).
 */
import { spawn } from 'node:child_process';
import * as https from 'node:https';
import * as path from 'node:path';
import { readFileSync } from 'node:fs';
import { GROUP, PLURAL, VERSION } from '../src/api';
import { METADATA_LIST } from '../src/kube/client';
import { startControlPlane, type ControlPlane } from '../../e2e/harness/control-plane';
import { freePort, ManagedProcess, removeDir, tempDir } from '../../e2e/harness/processes';
import { createCA, createServingCert } from '../src/certs/x509';
import { OPERATOR_NODE_FLAGS, registerLoopbackWebhook, startLoopbackOperator } from './loopback-operator';
import { REPO_ROOT } from '../../e2e/harness/toolchain';
import { percentile } from '../../injector/bench/figures';

const NAMESPACES = Number(process.env['BENCH_NAMESPACES'] ?? 200);
const PODS_PER_NAMESPACE = Number(process.env['BENCH_PODS_PER_NAMESPACE'] ?? 50);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 16);
const CHECK = process.env['BENCH_ADMISSION_CHECK'] ?? 'dry-run';
const OPERATOR_NODE_OPTIONS = process.env['BENCH_OPERATOR_NODE_OPTIONS'];
const SETTLE_SECONDS = Number(process.env['BENCH_SETTLE_SECONDS'] ?? 60);
const OPERATOR_NODE_ARGS = process.env['BENCH_OPERATOR_NODE_ARGS']?.split(' ').filter((a) => a !== '');
const WEBHOOK_THREAD = process.env['BENCH_WEBHOOK_THREAD'] === 'off' ? 'off' : 'on';

const mib = (bytes: number): string => `${(bytes / 1048576).toFixed(0)} MiB`;

/**
 * A webhook in a process of its own that answers every pod at once: with no change (what any
 * mutating webhook costs a pod creation here: the API server's call, its TLS and encoding), or with
 * a fixed JSONPatch in PATCH (base64), the one the operator answered for the burst's template (what
 * the mutation itself costs the API server: applying it, validating, storing and sending a bigger
 * pod), against which ours is measured.
 */
const NOOP_WEBHOOK = `
  const https = require('node:https');
  const server = https.createServer({ cert: process.env.CERT, key: process.env.KEY }, (req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const uid = JSON.parse(body).request.uid;
      res.writeHead(200, { 'content-type': 'application/json' });
      const patch = process.env.PATCH ? { patchType: 'JSONPatch', patch: process.env.PATCH } : {};
      res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true, ...patch } }));
    });
  });
  server.listen(Number(process.env.PORT), '127.0.0.1', () => process.stdout.write('listening\\n'));`;

async function startNoopWebhook(cp: ControlPlane, label: Record<string, string>, patch?: string): Promise<{ stop: () => void }> {
  const ca = createCA('bench-noop', new Date(), 1);
  const tls = createServingCert(ca, ['127.0.0.1'], new Date(), 1);
  const port = await freePort();
  const name = patch === undefined ? 'bench-noop' : 'bench-patch';
  const child = spawn(process.execPath, ['-e', NOOP_WEBHOOK], { env: { ...process.env, PORT: String(port), CERT: tls.cert, KEY: tls.key, ...(patch === undefined ? {} : { PATCH: patch }) }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the no-op webhook exited (${code})`)));
  });
  await cp.kubectlResult(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name },
    webhooks: [{ name: `${name.slice('bench-'.length)}.bench.local`, admissionReviewVersions: ['v1'], sideEffects: 'None', failurePolicy: 'Ignore', timeoutSeconds: 5, clientConfig: { url: `https://127.0.0.1:${port}/`, caBundle: Buffer.from(ca.cert).toString('base64') }, rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }], namespaceSelector: { matchLabels: label } }],
  }));
  return {
    stop: () => {
      child.kill('SIGTERM');
      void cp.kubectlResult(['delete', 'mutatingwebhookconfiguration', name]);
    },
  };
}

/**
 * The JSONPatch the operator's webhook answers for a pod of the burst's template in `namespace`
 * (base64), without the operator's own annotations and labels: the operator leaves the pods it
 * patches alone (its pod watch keeps injected pods, and would count them), while the API server
 * stores a pod as big as an injected one.
 */
async function operatorPatch(port: number, namespace: string): Promise<string> {
  const review = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'patch', kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, operation: 'CREATE', namespace, object: pod() } });
  const answer = await new Promise<string>((resolve, reject) => {
    https
      .request({ host: '127.0.0.1', port, path: '/mutate-v1-pod', method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'application/json' } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject)
      .end(review);
  });
  const patch = (JSON.parse(answer) as { response?: { patch?: string } }).response?.patch;
  if (patch === undefined) throw new Error(`the operator's webhook answered no patch: ${answer.slice(0, 300)}`);
  const ours = (key: string): boolean => key.startsWith('spanprofiling.io/');
  const ops = (JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as { op: string; path: string; value?: unknown }[]).flatMap((op) => {
    const meta = /^\/metadata\/(annotations|labels)(?:\/(.*))?$/.exec(op.path);
    if (meta === null) return [op];
    if (meta[2] !== undefined) return ours(meta[2].replace(/~1/g, '/').replace(/~0/g, '~')) ? [] : [op];
    const kept = Object.fromEntries(Object.entries(op.value as Record<string, string>).filter(([key]) => !ours(key)));
    return Object.keys(kept).length === 0 ? [] : [{ ...op, value: kept }];
  });
  return Buffer.from(JSON.stringify(ops)).toString('base64');
}

/**
 * The webhook's answer as a client sees it: another process sends an AdmissionReview (a dry run of an
 * injected pod) every 20 ms over one kept-alive connection until SIGTERM, then prints the round trips.
 */
const PROBER = `
  const https = require('node:https');
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
  const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'probe', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: process.env.NS, dryRun: true,
    object: { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'probe-' }, spec: { containers: [{ name: 'app', image: 'node:24' }] } } } });
  const times = [];
  let stop = false;
  process.on('SIGTERM', () => (stop = true));
  (async () => {
    while (!stop) {
      const t = performance.now();
      await new Promise((resolve) => https.request({ host: '127.0.0.1', port: Number(process.env.PORT), path: '/mutate-v1-pod', method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => { res.resume(); res.on('end', resolve); }).on('error', resolve).end(body));
      times.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 20));
    }
    process.stdout.write(JSON.stringify(times));
    process.exit(0);
  })();`;

function startProber(port: number, namespace: string): { stop: () => Promise<number[]> } {
  const child = spawn(process.execPath, ['-e', PROBER], { env: { ...process.env, PORT: String(port), NS: namespace }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      return JSON.parse(out) as number[];
    },
  };
}

/** A pod of a Deployment's ReplicaSet, as its controller creates it: the same template each time, a generated name. */
function pod() {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'web-',
      labels: { app: 'web', 'pod-template-hash': 'abc12' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-abc12', uid: '5f0c7a8e-0000-4000-8000-000000000001', controller: true }],
    },
    spec: { containers: [{ name: 'app', image: 'node:24', env: [{ name: 'PORT', value: '8080' }], resources: { requests: { cpu: '100m', memory: '128Mi' } } }] },
  };
}

function spanProfiling(generation: number) {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'SpanProfiling',
    metadata: { name: 'default' },
    spec: { pyroscope: { address: 'http://pyroscope:4040' }, tracing: { otlp: { endpoint: 'http://collector:4318' } }, ...(generation > 0 ? { env: [{ name: 'BENCH_GENERATION', value: String(generation) }] } : {}) },
  };
}

/** Creates `perNamespace` pods in each namespace, `CONCURRENCY` at a time: the latency of each. */
async function burst(cp: ControlPlane, namespaces: string[], perNamespace: number): Promise<{ latencies: number[]; seconds: number; injected: number }> {
  const work = namespaces.flatMap((ns) => Array.from({ length: perNamespace }, () => ns));
  const latencies: number[] = [];
  let next = 0;
  let injected = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < work.length) {
        const ns = work[next++]!;
        const t = performance.now();
        const r = await cp.api<{ metadata: { annotations?: Record<string, string> } }>('POST', `/api/v1/namespaces/${ns}/pods`, pod());
        if (r.status !== 201) throw new Error(`pod creation in ${ns}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
        latencies.push(performance.now() - t);
        if (r.body.metadata.annotations?.['spanprofiling.io/status'] === 'injected') injected++;
      }
    }),
  );
  return { latencies, seconds: (performance.now() - started) / 1000, injected };
}

/** Polls until every SpanProfiling's status satisfies `done`: the seconds since `since`. */
async function converged(cp: ControlPlane, since: number, done: (status: Record<string, unknown> | undefined) => boolean, timeoutMs = 600_000): Promise<number> {
  for (;;) {
    const list = await cp.api<{ items: { status?: Record<string, unknown> }[] }>('GET', `/apis/${GROUP}/${VERSION}/${PLURAL}`);
    if (list.body.items.length === NAMESPACES && list.body.items.every((sp) => done(sp.status))) return (performance.now() - since) / 1000;
    if (performance.now() - since > timeoutMs) {
      const behind = list.body.items.filter((sp) => !done(sp.status)).length;
      throw new Error(`${behind} of ${list.body.items.length} SpanProfilings had not converged after ${timeoutMs / 1000} s`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The API server's open long-running requests for pods and namespaces, by verb WATCH. */
async function watches(cp: ControlPlane): Promise<{ pods: number; namespaces: number }> {
  const { stdout } = await cp.kubectl('get', '--raw', '/metrics');
  const count = (resource: string): number =>
    [...stdout.matchAll(/^apiserver_longrunning_requests\{([^}]*)\} (\d+)/gm)]
      .filter(([, labels]) => labels!.includes(`resource="${resource}"`) && labels!.includes('verb="WATCH"') && !/subresource="[^"]/.test(labels!))
      .reduce((sum, [, , n]) => sum + Number(n), 0);
  return { pods: count('pods'), namespaces: count('namespaces') };
}

function processFigures(pid: number): { rss: number; peak: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return {
    rss: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024,
    peak: Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024,
    cpuSeconds: (Number(stat[11]) + Number(stat[12])) / 100,
  };
}

/** The bounds of the histogram bucket holding the p-th percentile (ms); `labels` picks one series (a regular expression over its labels). */
function histogramPercentile(metrics: string, name: string, p: number, labels = ''): string {
  const series = (suffix: string): [string, string][] =>
    [...metrics.matchAll(new RegExp(`^${name}_${suffix}(?:\\{([^}]*)\\})? ([\\d.e+-]+)$`, 'gm'))].filter(([, l]) => new RegExp(labels).test(l ?? '')).map(([, l, v]) => [l ?? '', v!]);
  const buckets = series('bucket').map(([l, n]) => [Number(/le="([^"]+)"/.exec(l)?.[1]), Number(n)] as const);
  const total = Number(series('count')[0]?.[1] ?? 0);
  let below = 0;
  for (const [le, n] of buckets) {
    if (n >= (p / 100) * total) return `${below * 1000}-${le * 1000} ms`;
    below = le;
  }
  return `> ${below * 1000} ms`;
}

async function main(): Promise<void> {
  const cp = await startControlPlane();
  const logDir = tempDir('bench-operator');
  let operator: ManagedProcess | undefined;
  const optedIn = Array.from({ length: NAMESPACES }, (_, i) => `team-${i}`);
  const plain = Array.from({ length: NAMESPACES }, (_, i) => `plain-${i}`);
  const noop = Array.from({ length: NAMESPACES }, (_, i) => `noop-${i}`);
  const NOOP_LABEL = { 'bench.spanprofiling.io/noop-webhook': 'true' };
  const patched = Array.from({ length: NAMESPACES }, (_, i) => `patched-${i}`);
  const PATCH_LABEL = { 'bench.spanprofiling.io/patch-webhook': 'true' };
  try {
    console.log(`operator at scale: ${NAMESPACES} namespaces opt in x ${PODS_PER_NAMESPACE} pods, ${CONCURRENCY} creations at a time, admission check ${CHECK}, webhook thread ${WEBHOOK_THREAD}${OPERATOR_NODE_OPTIONS !== undefined ? `, operator NODE_OPTIONS ${OPERATOR_NODE_OPTIONS}` : ''}, operator node flags ${(OPERATOR_NODE_ARGS ?? OPERATOR_NODE_FLAGS).join(' ') || 'none'} (API server, etcd, operator and client share this machine's cores)`);
    await cp.kubectl('apply', '-f', path.join(REPO_ROOT, 'crds'));
    await cp.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/spanprofilings.spanprofiling.io');
    await cp.kubectl('create', 'namespace', 'span-profiling');
    const manifests = [
      ...optedIn.map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, annotations: { 'spanprofiling.io/inject': 'true' } } })),
      ...plain.map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } })),
      ...noop.map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: NOOP_LABEL } })),
      ...patched.map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: PATCH_LABEL } })),
    ];
    await cp.kubectlResult(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests }));
    await cp.kubectlResult(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: optedIn.map((ns) => ({ ...spanProfiling(0), metadata: { name: 'default', namespace: ns } })) }));
    const webhookPort = await registerLoopbackWebhook(cp);
    const ownWatches = await watches(cp);
    const started = await startLoopbackOperator(cp, { name: 'operator', webhookPort, logDir, check: CHECK, webhookThread: WEBHOOK_THREAD, ...(OPERATOR_NODE_OPTIONS !== undefined ? { nodeOptions: OPERATOR_NODE_OPTIONS } : {}), ...(OPERATOR_NODE_ARGS !== undefined ? { nodeArgs: OPERATOR_NODE_ARGS } : {}) });
    operator = started.process;
    const probePort = started.probePort;
    // Every opted-in namespace labelled for the webhook, and every SpanProfiling's status written once.
    const labelled = async (): Promise<boolean> => {
      const list = await cp.api<{ items: unknown[] }>('GET', '/api/v1/namespaces?labelSelector=spanprofiling.io%2Finjection%3Denabled');
      return list.body.items.length === NAMESPACES;
    };
    await operator.waitUntil('namespaces labelled', labelled, 300_000);
    await converged(cp, performance.now(), (s) => s !== undefined && s['injectedPods'] === 0);
    const idle = processFigures(operator.pid!);
    const idleWatches = await watches(cp);
    console.log(`idle: operator RSS ${mib(idle.rss)}; watches open: pods ${idleWatches.pods}, namespaces ${idleWatches.namespaces}`);

    const baseline = await burst(cp, plain, PODS_PER_NAMESPACE);
    const noopWebhook = await startNoopWebhook(cp, NOOP_LABEL);
    const throughNoop = await burst(cp, noop, PODS_PER_NAMESPACE).finally(() => noopWebhook.stop());
    // A scrape starts the event-loop delay's window: the next one covers the injected burst.
    await fetch(`http://127.0.0.1:${probePort}/metrics`);
    const before = processFigures(operator.pid!);
    const since = performance.now();
    const prober = startProber(webhookPort, optedIn[0]!);
    const injected = await burst(cp, optedIn, PODS_PER_NAMESPACE);
    const probed = await prober.stop();
    const statusSeconds = await converged(cp, since, (s) => s?.['injectedPods'] === PODS_PER_NAMESPACE);
    const after = processFigures(operator.pid!);
    const burstWatches = await watches(cp);
    // The baseline again, now that as many pods as the injected burst found exist: the bursts' order, measured.
    const baselineLast = await burst(cp, plain, PODS_PER_NAMESPACE);
    const metrics = await (await fetch(`http://127.0.0.1:${probePort}/metrics`)).text();
    const apiMetrics = (await cp.kubectl('get', '--raw', '/metrics')).stdout;

    // A rolling change: every SpanProfiling gets another spec; its pods become outdated.
    const changed = performance.now();
    let nextSp = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (nextSp < optedIn.length) {
          const ns = optedIn[nextSp++]!;
          const r = await cp.api('PATCH', `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}/default`, { spec: spanProfiling(1).spec }, 'application/merge-patch+json');
          if (r.status !== 200) throw new Error(`SpanProfiling change in ${ns}: HTTP ${r.status}`);
        }
      }),
    );
    const outdatedSeconds = await converged(cp, changed, (s) => s?.['outdatedPods'] === PODS_PER_NAMESPACE);
    const end = processFigures(operator.pid!);
    // Then a quiet minute, as a cluster has between bursts: what V8 gives back once the operator idles.
    await new Promise((resolve) => setTimeout(resolve, SETTLE_SECONDS * 1000));
    const settled = processFigures(operator.pid!);

    // Last, so that its pods (the operator's annotations on them) change none of the figures above: the
    // operator's own patch for the template, answered at once by a webhook in another process.
    const patchWebhook = await startNoopWebhook(cp, PATCH_LABEL, await operatorPatch(webhookPort, optedIn[0]!));
    const throughPatch = await burst(cp, patched, PODS_PER_NAMESPACE).finally(() => patchWebhook.stop());

    // What a watch of every pod decodes, whole objects against metadata alone (what client-node's informers cannot ask for).
    const listAll = async (accept: string | undefined): Promise<{ bytes: number; ms: number }> => {
      let bytes = 0;
      let token: string | undefined;
      const t = performance.now();
      do {
        const r = await cp.api<{ metadata: { continue?: string } }>('GET', `/api/v1/pods?limit=500${token ? `&continue=${encodeURIComponent(token)}` : ''}`, undefined, undefined, accept === undefined ? {} : { accept });
        bytes += JSON.stringify(r.body).length;
        token = r.body.metadata.continue;
      } while (token);
      return { bytes, ms: performance.now() - t };
    };
    const whole = await listAll(undefined);
    const metadata = await listAll(METADATA_LIST);

    const pods = NAMESPACES * PODS_PER_NAMESPACE;
    const row = (what: string, b: { latencies: number[]; seconds: number }): string =>
      `| ${what} | ${percentile(b.latencies, 50).toFixed(1)} / ${percentile(b.latencies, 99).toFixed(1)} ms | ${(b.latencies.length / b.seconds).toFixed(0)} pods/s |`;
    console.log(`\n${pods} pods in ${NAMESPACES} namespaces, ${CONCURRENCY} at a time:\n`);
    console.log('| | figure | |');
    console.log('|---|---|---|');
    console.log(row('pod create p50 / p99, not opted in', baseline));
    console.log(row(`pod create p50 / p99, injected (${injected.injected} of ${pods})`, injected));
    console.log(row('pod create p50 / p99, not opted in, again after the injected burst', baselineLast));
    console.log(row('pod create p50 / p99 through a webhook that changes nothing (another process)', throughNoop));
    console.log(row("pod create p50 / p99 through a webhook that answers the operator's patch at once (another process; the operator's annotations left out)", throughPatch));
    console.log(`| p99 injected / not opted in | ${(percentile(injected.latencies, 99) / percentile(baseline.latencies, 99)).toFixed(2)}x | |`);
    console.log(`| p99 injected / through the webhook that changes nothing | ${(percentile(injected.latencies, 99) / percentile(throughNoop.latencies, 99)).toFixed(2)}x | |`);
    console.log(`| p99 injected / not opted in, after it (as many pods present) | ${(percentile(injected.latencies, 99) / percentile(baselineLast.latencies, 99)).toFixed(2)}x | |`);
    console.log(`| p99 injected / through the webhook that answers the same patch at once | ${(percentile(injected.latencies, 99) / percentile(throughPatch.latencies, 99)).toFixed(2)}x | |`);
    console.log(`| p99 through that webhook / not opted in: what the patch alone costs | ${(percentile(throughPatch.latencies, 99) / percentile(baseline.latencies, 99)).toFixed(2)}x | |`);
    console.log(`| webhook's answer as the operator times it, p50 / p99 (histogram bucket) | ${histogramPercentile(metrics, 'spanprofiling_webhook_duration_seconds', 50)} / ${histogramPercentile(metrics, 'spanprofiling_webhook_duration_seconds', 99)} | |`);
    const reused = Number(/^spanprofiling_webhook_answers_reused_total(?:\{\})? ([\d.e+-]+)$/m.exec(metrics)?.[1] ?? 0);
    console.log(`| pods answered with the answer kept for their template (the burst, the probes and the change) | ${reused} | |`);
    console.log(`| webhook's answer as a client sees it during the burst (an AdmissionReview every 20 ms, ${probed.length} in all), p50 / p99 / max | ${percentile(probed, 50).toFixed(1)} / ${percentile(probed, 99).toFixed(1)} / ${Math.max(...probed).toFixed(1)} ms | |`);
    const call = 'name="pods.spanprofiling.io".*operation="CREATE".*rejected="false"';
    console.log(`| webhook call as the API server times it, p50 / p99 (histogram bucket) | ${histogramPercentile(apiMetrics, 'apiserver_admission_webhook_admission_duration_seconds', 50, call)} / ${histogramPercentile(apiMetrics, 'apiserver_admission_webhook_admission_duration_seconds', 99, call)} | |`);
    const delay = (q: string): string => `${(Number(new RegExp(`^spanprofiling_event_loop_delay_seconds\\{quantile="${q}"\\} ([\\d.e+-]+)$`, 'm').exec(metrics)?.[1] ?? NaN) * 1000).toFixed(1)}`;
    console.log(`| the operator's event loop during the burst: late by p50 / p99 / max | ${delay('0.5')} / ${delay('0.99')} / ${delay('1')} ms | |`);
    console.log(`| status counts every pod, after the burst began | ${statusSeconds.toFixed(1)} s (the burst took ${injected.seconds.toFixed(1)} s) | |`);
    console.log(`| rolling change: status counts every pod outdated | ${outdatedSeconds.toFixed(1)} s | |`);
    console.log(`| operator RSS: idle / after the burst / after the change / ${SETTLE_SECONDS} s later (peak) | ${mib(idle.rss)} / ${mib(after.rss)} / ${mib(end.rss)} / ${mib(settled.rss)} (${mib(settled.peak)}) | |`);
    console.log(`| operator CPU: burst and status / rolling change | ${(after.cpuSeconds - before.cpuSeconds).toFixed(1)} s / ${(end.cpuSeconds - after.cpuSeconds).toFixed(1)} s | |`);
    console.log(`| every pod of the cluster listed (${3 * pods}): whole objects / metadata only | ${(whole.bytes / 1e6).toFixed(1)} MB in ${whole.ms.toFixed(0)} ms / ${(metadata.bytes / 1e6).toFixed(1)} MB in ${metadata.ms.toFixed(0)} ms | |`);
    console.log(`| the operator's watches on the API server: pods / namespaces | ${burstWatches.pods - ownWatches.pods} / ${burstWatches.namespaces - ownWatches.namespaces} (the API server's own: ${ownWatches.pods} / ${ownWatches.namespaces}) | |`);
  } catch (err) {
    console.error(cp.logs());
    throw err;
  } finally {
    await operator?.stop();
    await cp.stop();
    removeDir(logDir);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
