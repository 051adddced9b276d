/**
 * Answers kept per template (webhook/answers.ts): the pods of one template get
 * the answer computed for the first, byte for byte what a fresh decision gives;
 * a change to anything the webhook reads is answered anew, a status write is
 * not; an answer naming one pod's token volume is never kept; and with the
 * admission check, a kept answer goes out only while the check's verdict on it
 * holds. The webhook thread's own copy of the caches (Mirror) feeds it, as in
 * the operator.
 */
import { strict as assert } from 'node:assert';
import type { V1Pod } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { SpanProfiling } from '../src/api';
import type { KubeObject } from '../src/kube/reflector';
import { AdmissionCheck, type Verdict } from '../src/webhook/admission-check';
import { cachedContext, review, reviewChecked, type ReviewContext, type ReviewOutcome } from '../src/webhook/review';
import type { MirroredKind } from '../src/webhook/thread';
import { Mirror } from '../src/webhook/worker';
import type { Kube } from '../src/kube/client';
import { reportTo } from '../src/webhook/server';
import { operatorMetrics } from '../src/metrics';
import { jsonLog } from '../src/log';
import { admissionReview } from './webhook.test';

const DEFAULTS = { agentImage: 'agent:test' };

const spanProfiling = (over: Partial<SpanProfiling['spec']> = {}, status?: SpanProfiling['status']): SpanProfiling => ({
  apiVersion: 'spanprofiling.io/v1alpha1',
  kind: 'SpanProfiling',
  metadata: { name: 'default', namespace: 'shop', generation: 1, resourceVersion: String(Math.random()) },
  spec: { pyroscope: { address: 'http://pyroscope:4040' }, tracing: { otlp: { endpoint: 'http://jaeger:4318' } }, ...over },
  ...(status !== undefined ? { status } : {}),
});

const namespace = (labels: Record<string, string> = {}, annotations: Record<string, string> = { 'spanprofiling.io/inject': 'true' }): KubeObject =>
  ({ metadata: { name: 'shop', labels, annotations } }) as KubeObject;

/** A ReplicaSet's pod as the webhook sees it: no name yet, its own token volume and managed fields' time. */
const replicaPod = (token: string, time = '2026-12-05T10:00:00Z', annotations: Record<string, string> = {}): V1Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    generateName: 'web-7d9f8c-',
    labels: { app: 'web', 'pod-template-hash': '7d9f8c' },
    annotations,
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9f8c', uid: 'rs-1', controller: true }],
    managedFields: [{ manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: time as unknown as Date, fieldsType: 'FieldsV1' }],
  },
  spec: {
    containers: [{ name: 'app', image: 'node:24', volumeMounts: [{ name: token, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }] }],
    volumes: [{ name: token, projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } }],
  },
});

function mirrorWith(objects: Partial<Record<MirroredKind, KubeObject[]>>): Mirror {
  const mirror = new Mirror();
  for (const kind of ['spanProfilings', 'namespaces', 'limitRanges', 'resourceQuotas'] as const) mirror.apply({ t: 'reset', kind, objects: objects[kind] ?? [] });
  return mirror;
}

/** What a fresh decision from the same caches answers: no answers kept. */
function fresh(mirror: Mirror, body: unknown): ReviewOutcome {
  const { answers: _a, ...ctx } = cachedContext(mirror, new Set(), DEFAULTS);
  return review(body, ctx);
}

/** The outcome as a fresh decision gives it: the mark of a reused answer left out. */
function asFresh(out: ReviewOutcome): ReviewOutcome {
  if (out.result?.reused === undefined) return out;
  const { reused: _r, ...result } = out.result;
  return { ...out, result };
}

async function waitUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

const responseOf = (out: ReviewOutcome): { uid: string; patch?: string; warnings?: string[] } => (out.body as { response: { uid: string; patch?: string; warnings?: string[] } }).response;

describe('answers kept per template', () => {
  let mirror: Mirror;
  let ctx: ReviewContext;
  beforeEach(() => {
    mirror = mirrorWith({ spanProfilings: [spanProfiling()], namespaces: [namespace()] });
    ctx = cachedContext(mirror, new Set(), DEFAULTS);
  });

  it("gives a template's later pods the first one's answer, the same as a fresh decision, with each request's own uid", () => {
    const tokens = ['kube-api-access-7xk2p', 'kube-api-access-q9zz4', 'kube-api-access-b2m8d'];
    const outs = tokens.map((t, i) => review(admissionReview(replicaPod(t, `2026-12-05T10:00:0${i}Z`), 'shop', `uid-${i}`), ctx));
    assert.equal(ctx.answers!.computed, 1);
    assert.equal(ctx.answers!.reused, 2);
    const metrics = operatorMetrics();
    for (const out of outs) reportTo(metrics, jsonLog('error'))(0.001, out.result);
    assert.match(metrics.registry.render(), /^spanprofiling_webhook_answers_reused_total 2$/m);
    outs.forEach((out, i) => {
      const want = fresh(mirror, admissionReview(replicaPod(tokens[i]!), 'shop', `uid-${i}`));
      assert.deepEqual(asFresh(out), want);
      assert.equal(out.result?.reused, i === 0 ? undefined : true);
      assert.equal(responseOf(out).uid, `uid-${i}`);
      assert.equal(out.result?.code, 'injected');
      assert.ok(responseOf(out).patch !== undefined);
    });
  });

  it('answers every pod shape as a fresh decision would, kept or not', () => {
    const shapes: V1Pod[] = [
      replicaPod('kube-api-access-aaaaa'),
      replicaPod('kube-api-access-aaaaa', undefined, { 'spanprofiling.io/inject': 'false' }),
      replicaPod('kube-api-access-aaaaa', undefined, { 'spanprofiling.io/container-names': 'app,missing' }),
      { ...replicaPod('kube-api-access-aaaaa'), metadata: { name: 'bare' } },
      { ...replicaPod('kube-api-access-aaaaa'), spec: { ...replicaPod('x').spec!, nodeSelector: { 'kubernetes.io/os': 'windows' } } },
    ];
    for (let round = 0; round < 2; round++) {
      for (const [i, shape] of shapes.entries()) {
        const body = admissionReview(shape, 'shop', `uid-${round}-${i}`);
        const out = review(body, ctx);
        assert.deepEqual(asFresh(out), fresh(mirror, body), `shape ${i}, round ${round}`);
        assert.equal(out.result?.reused, round === 0 ? undefined : true);
      }
    }
    assert.equal(ctx.answers!.reused, shapes.length);
  });

  it('answers anew once a SpanProfiling, a LimitRange or the namespace changes, and not for a status write', () => {
    const answer = (token: string): ReviewOutcome => review(admissionReview(replicaPod(token)), ctx);
    const envOf = (out: ReviewOutcome): string => Buffer.from(responseOf(out).patch ?? '', 'base64').toString();
    const first = answer('kube-api-access-00001');

    // The controller writes the pod counts: the same answer is given again.
    mirror.apply({ t: 'change', kind: 'spanProfilings', type: 'MODIFIED', obj: spanProfiling({}, { observedGeneration: 1 } as SpanProfiling['status']) as KubeObject });
    assert.equal(envOf(answer('kube-api-access-00002')), envOf(first));
    assert.equal(ctx.answers!.reused, 1);

    // The sample rate changes: the new pods get it.
    mirror.apply({ t: 'change', kind: 'spanProfilings', type: 'MODIFIED', obj: spanProfiling({ profiling: { sampleRateHz: 250 } }) as KubeObject });
    const edited = answer('kube-api-access-00003');
    assert.notEqual(envOf(edited), envOf(first));
    assert.deepEqual(asFresh(edited), fresh(mirror, admissionReview(replicaPod('kube-api-access-00003'))));

    // A LimitRange's floor for containers: the agent's init container is fitted to it.
    const limitRange = { metadata: { name: 'floor', namespace: 'shop' }, spec: { limits: [{ type: 'Container', min: { memory: '32Mi' } }] } } as KubeObject;
    mirror.apply({ t: 'change', kind: 'limitRanges', type: 'ADDED', obj: limitRange });
    const fitted = answer('kube-api-access-00004');
    assert.match(fitted.result!.reason, /fits the namespace's LimitRanges/);
    mirror.apply({ t: 'change', kind: 'limitRanges', type: 'DELETED', obj: limitRange });
    assert.doesNotMatch(answer('kube-api-access-00005').result!.reason, /LimitRanges/);

    // The namespace enforces restricted Pod Security, or opts out.
    mirror.apply({ t: 'change', kind: 'namespaces', type: 'MODIFIED', obj: namespace({ 'pod-security.kubernetes.io/enforce': 'restricted' }) });
    assert.deepEqual(asFresh(answer('kube-api-access-00006')), fresh(mirror, admissionReview(replicaPod('kube-api-access-00006'))));
    mirror.apply({ t: 'change', kind: 'namespaces', type: 'MODIFIED', obj: namespace({}, {}) });
    const out = answer('kube-api-access-00007');
    assert.notEqual(out.result?.code, 'injected');
    assert.deepEqual(asFresh(out), fresh(mirror, admissionReview(replicaPod('kube-api-access-00007'))));
    assert.equal(ctx.answers!.reused, 1, 'only the status write kept the answer');
  });

  it("never keeps an answer that names the pod's own token volume", () => {
    // A pod asking for a container named like its token volume: the warning names it.
    const named = (token: string): V1Pod => replicaPod(token, undefined, { 'spanprofiling.io/container-names': `app,${token}` });
    const outs = ['kube-api-access-aaaa1', 'kube-api-access-aaaa2'].map((t) => review(admissionReview(named(t)), ctx));
    assert.equal(ctx.answers!.reused, 0);
    assert.ok(outs[1]!.result!.warnings!.some((w) => w.includes('kube-api-access-aaaa2')), JSON.stringify(outs[1]!.result!.warnings));
  });

  describe('with the admission check', () => {
    const kubeCounting = (): Kube & { asked: number } => {
      const kube = {
        asked: 0,
        request: async () => {
          kube.asked++;
          return {};
        },
      };
      return kube as unknown as Kube & { asked: number };
    };

    it("reuses an answer while the check's verdict on it holds, and asks again when it lapses", async () => {
      let now = 0;
      const kube = kubeCounting();
      const check = new AdmissionCheck(kube, { timeoutMs: 1000, cacheMs: 30_000, now: () => now });
      const answer = (token: string): Promise<ReviewOutcome> => reviewChecked(admissionReview(replicaPod(token)), ctx, (ns, p) => check.check(ns, p), check);
      for (let i = 0; i < 5; i++) assert.equal((await answer(`kube-api-access-0000${i}`)).result?.code, 'injected');
      assert.equal(kube.asked, 1);
      assert.equal(ctx.answers!.reused, 4);
      now = 31_000;
      assert.equal((await answer('kube-api-access-00009')).result?.code, 'injected');
      assert.equal(kube.asked, 2, 'the lapsed verdict is asked again');
    });

    it("lets a template's pods that come while its first dry run is under way wait for that verdict, not decide and ask again", async () => {
      let admit: () => void = () => undefined;
      const kube = {
        asked: 0,
        request: () => {
          kube.asked++;
          return new Promise((resolve) => (admit = () => resolve({})));
        },
      };
      const check = new AdmissionCheck(kube as unknown as Kube, { timeoutMs: 1000, cacheMs: 30_000 });
      let checks = 0;
      const counted = (ns: string, p: V1Pod): Promise<Verdict> => {
        checks++;
        return check.check(ns, p);
      };
      const answers = Array.from({ length: 5 }, (_, i) => reviewChecked(admissionReview(replicaPod(`kube-api-access-c000${i}`)), ctx, counted, check));
      await waitUntil(() => kube.asked === 1);
      admit();
      const outs = await Promise.all(answers);
      assert.deepEqual(outs.map((o) => o.result?.code), Array(5).fill('injected'));
      assert.deepEqual(outs.map((o) => o.result?.reused), [undefined, true, true, true, true]);
      assert.equal(checks, 1, 'only the first pod was decided and checked');
      assert.equal(kube.asked, 1);
    });

    it('decides each pod on its own while the API server refuses the kept answer', async () => {
      const judged: V1Pod[] = [];
      const verdicts: Verdict[] = [
        { admitted: false, kind: 'refused', message: "ValidatingAdmissionPolicy 'no-agent' denied request" },
        { admitted: true },
        { admitted: false, kind: 'refused', message: "ValidatingAdmissionPolicy 'no-agent' denied request" },
        { admitted: true },
      ];
      const judge = async (_ns: string, p: V1Pod): Promise<Verdict> => {
        judged.push(p);
        return verdicts.shift()!;
      };
      const check = new AdmissionCheck(kubeCounting(), { timeoutMs: 1000, cacheMs: 30_000 });
      for (const token of ['kube-api-access-r0001', 'kube-api-access-r0002']) {
        const out = await reviewChecked(admissionReview(replicaPod(token)), ctx, judge, check);
        assert.equal(out.result?.code, 'admission-refused');
        assert.equal(out.result?.status, 'skipped');
      }
      assert.equal(judged.length, 4, 'each pod was judged with the agent, then without');
    });
  });
});
