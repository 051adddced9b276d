/**
 * The admission check's decisions (webhook/admission-check.ts, review.ts
 * reviewChecked): what the webhook answers for each verdict, and how verdicts
 * are asked and reused. The API server's own verdicts are in
 * integration.test.ts (a real image policy) and in the oracle.
 */
import { strict as assert } from 'node:assert';
import { applyPatch, type Operation } from 'fast-json-patch';
import type { V1Pod } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { AdmissionCheck, CHECK_FIELD_MANAGER, dryRunBody, policyOf, type Verdict } from '../src/webhook/admission-check';
import { review, reviewChecked } from '../src/webhook/review';
import { KubeError, KubeTimeout, type Kube } from '../src/kube/client';
import { admissionReview, reviewContext } from './webhook.test';

const pod = (name = 'web-abc12-x1', token = 'kube-api-access-7xk2p'): V1Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, uid: 'u-1', creationTimestamp: '2026-12-05T00:00:00Z' as unknown as Date, labels: { app: 'web' } },
  spec: { containers: [{ name: 'app', image: 'node:24', volumeMounts: [{ name: token, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }] }], volumes: [{ name: token, projected: { sources: [] } }] },
});

type Response = { patch?: string; warnings?: string[] };
const responseOf = (body: unknown): Response => (body as { response: Response }).response;
const patched = (p: V1Pod, body: unknown): V1Pod => {
  const r = responseOf(body);
  return r.patch === undefined ? p : applyPatch(structuredClone(p), JSON.parse(Buffer.from(r.patch, 'base64').toString()) as Operation[]).newDocument;
};

describe('admission check: what the webhook answers for each verdict', () => {
  const judged: V1Pod[] = [];
  const judge = (...verdicts: Verdict[]) => async (_ns: string, p: V1Pod): Promise<Verdict> => {
    judged.push(p);
    return verdicts.shift() ?? { admitted: true };
  };
  beforeEach(() => judged.splice(0));

  it('answers the mutation when the API server admits the mutated pod', async () => {
    const p = pod();
    const out = await reviewChecked(admissionReview(p), reviewContext(), judge({ admitted: true }));
    assert.equal(out.result?.code, 'injected');
    assert.equal(judged.length, 1);
    assert.equal(judged[0]!.spec?.initContainers?.[0]?.name, 'spanprofiling-agent', 'the pod judged is the mutated one');
    assert.deepEqual(out.body, review(admissionReview(p), reviewContext()).body);
  });

  it('leaves the agent out when the API server refuses the pod with it, with the reason and what to change', async () => {
    const p = pod();
    const message = "ValidatingAdmissionPolicy 'images' with binding 'images' denied request: images must come from images.shop.internal/: agent:test";
    const out = await reviewChecked(admissionReview(p), reviewContext(), judge({ admitted: false, kind: 'refused', message }, { admitted: true }));
    const after = patched(p, out.body);
    assert.equal(after.spec?.initContainers, undefined);
    assert.deepEqual(after.spec, p.spec);
    assert.equal(after.metadata?.annotations?.['spanprofiling.io/status'], 'skipped');
    assert.match(after.metadata?.annotations?.['spanprofiling.io/reason'] ?? '', /would refuse the pod with the agent: ValidatingAdmissionPolicy 'images'.*mirror the agent image agent:test/);
    assert.equal(out.result?.code, 'admission-refused');
    assert.equal(after.metadata?.annotations?.['spanprofiling.io/refused-by'], 'ValidatingAdmissionPolicy/images');
    assert.ok(out.result?.warnings?.some((w) => w.includes("ValidatingAdmissionPolicy 'images'")), 'a warning, for the Event');
    assert.equal(judged.length, 2, 'the pod without the agent is judged too');
    assert.equal(judged[1]!.spec?.initContainers, undefined);
  });

  it('advises on the policy, not the image, when the refusal does not name the image', async () => {
    const out = await reviewChecked(admissionReview(pod()), reviewContext(), judge({ admitted: false, kind: 'refused', message: 'exceeded quota: q, requested: requests.memory=8Mi' }, { admitted: true }));
    assert.match(out.result?.reason ?? '', /exceeded quota.*let the policy admit the agent's init container spanprofiling-agent/);
  });

  it('changes nothing at all when the API server refuses the pod even without the agent', async () => {
    const out = await reviewChecked(admissionReview(pod()), reviewContext(), judge({ admitted: false, kind: 'refused', message: 'no' }, { admitted: false, kind: 'refused', message: 'still no' }));
    assert.equal(responseOf(out.body).patch, undefined);
    assert.equal(responseOf(out.body).warnings, undefined);
    assert.equal(out.result?.code, 'pod-refused');
    assert.match(out.result?.reason ?? '', /even without the agent.*still no/);
  });

  it('leaves the agent out, unjudged otherwise, when the check has no answer in time', async () => {
    const out = await reviewChecked(admissionReview(pod()), reviewContext(), judge({ admitted: false, kind: 'unknown', message: 'the API server did not answer the admission check within 2500 ms' }));
    assert.equal(judged.length, 1);
    const after = patched(pod(), out.body);
    assert.equal(after.spec?.initContainers, undefined);
    assert.match(after.metadata?.annotations?.['spanprofiling.io/reason'] ?? '', /within 2500 ms, so the agent was left out/);
    assert.equal(after.metadata?.annotations?.['spanprofiling.io/refused-by'], undefined, 'no policy refused it: not counted as refused');
  });

  it('asks nothing for a pod it does not change (reinvocation of an injected pod), and lets its own dry run through untouched', async () => {
    const injected = patched(pod(), review(admissionReview(pod()), reviewContext()).body);
    const again = await reviewChecked(admissionReview(injected), reviewContext(), judge());
    assert.equal(responseOf(again.body).patch, undefined);
    assert.equal(judged.length, 0);
    const own = admissionReview(pod()) as { request: Record<string, unknown> };
    own.request['dryRun'] = true;
    own.request['options'] = { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1', dryRun: ['All'], fieldManager: CHECK_FIELD_MANAGER };
    const out = await reviewChecked(own, reviewContext(), judge());
    assert.equal(responseOf(out.body).patch, undefined);
    assert.equal(out.result?.code, 'admission-check');
    assert.equal(judged.length, 0);
    // The marker counts only on a dry run: a real create that names the field manager is injected.
    own.request['dryRun'] = false;
    assert.equal((await reviewChecked(own, reviewContext(), judge())).result?.code, 'injected');
  });
});

describe('admission check: asking the API server', () => {
  const fakeKube = (answer: (path: string, body: V1Pod, timeoutMs?: number) => Promise<unknown>): Kube & { calls: { path: string; body: V1Pod; timeoutMs?: number }[] } => {
    const calls: { path: string; body: V1Pod; timeoutMs?: number }[] = [];
    return {
      calls,
      request: async <T>(_m: string, path: string, body?: unknown, _c?: string, timeoutMs?: number): Promise<T> => {
        calls.push({ path, body: body as V1Pod, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });
        return (await answer(path, body as V1Pod, timeoutMs)) as T;
      },
      get: async () => undefined,
      watch: () => ({ done: Promise.resolve(), abort: () => undefined }),
    };
  };

  it('dry-runs the pod as a client would send it, marked, within its time', async () => {
    const kube = fakeKube(async () => ({}));
    const check = new AdmissionCheck(kube, { timeoutMs: 1234, cacheMs: 30_000 });
    assert.deepEqual(await check.check('shop', pod()), { admitted: true });
    assert.equal(kube.calls[0]!.path, `/api/v1/namespaces/shop/pods?dryRun=All&fieldManager=${CHECK_FIELD_MANAGER}`);
    assert.equal(kube.calls[0]!.timeoutMs, 1234);
    assert.equal(kube.calls[0]!.body.metadata?.uid, undefined);
    assert.equal(kube.calls[0]!.body.metadata?.creationTimestamp, undefined);
    assert.equal(kube.calls[0]!.body.metadata?.namespace, 'shop');
    assert.deepEqual(dryRunBody('shop', pod()).spec, pod().spec);
  });

  it("reports the API server's refusal as the user would read it, and a timeout or failure as unknown", async () => {
    const refusing = new AdmissionCheck(fakeKube(async () => { throw new KubeError(403, 'Forbidden', 'POST /api/v1/namespaces/shop/pods?dryRun=All: 403 pods "web" is forbidden: exceeded quota: q'); }), { timeoutMs: 100, cacheMs: 1000 });
    assert.deepEqual(await refusing.check('shop', pod()), { admitted: false, kind: 'refused', message: 'exceeded quota: q' });
    const slow = new AdmissionCheck(fakeKube(async () => { throw new KubeTimeout('no answer'); }), { timeoutMs: 100, cacheMs: 1000 });
    assert.deepEqual(await slow.check('shop', pod()), { admitted: false, kind: 'unknown', message: 'the API server did not answer the admission check within 100 ms' });
    const broken = new AdmissionCheck(fakeKube(async () => { throw new Error('ECONNREFUSED'); }), { timeoutMs: 100, cacheMs: 1000 });
    const verdict = await broken.check('shop', pod());
    assert.equal(verdict.admitted, false);
    assert.match(verdict.admitted ? '' : `${verdict.kind}: ${verdict.message}`, /^unknown: the admission check failed: ECONNREFUSED/);
  });

  it('asks once for pods of one template (names and token volumes aside) within the cache time, and again after it', async () => {
    let now = 0;
    const kube = fakeKube(async () => ({}));
    const check = new AdmissionCheck(kube, { timeoutMs: 100, cacheMs: 30_000, now: () => now });
    await Promise.all([check.check('shop', pod('web-1', 'kube-api-access-aaaaa')), check.check('shop', pod('web-2', 'kube-api-access-bbbbb'))]);
    await check.check('shop', pod('web-3', 'kube-api-access-ccccc'));
    assert.equal(kube.calls.length, 1, 'concurrent and later asks share one dry run');
    await check.check('other', pod('web-4'));
    const changed = pod('web-5');
    changed.spec!.containers[0]!.image = 'node:25';
    await check.check('shop', changed);
    assert.equal(kube.calls.length, 3, 'another namespace or another pod spec is asked');
    now = 30_001;
    await check.check('shop', pod('web-6'));
    assert.equal(kube.calls.length, 4, 'asked again after the cache time');
  });

  it('asks again after an unknown verdict, not after a refusal', async () => {
    let fail: Error = new KubeTimeout('slow');
    const kube = fakeKube(async () => { throw fail; });
    const check = new AdmissionCheck(kube, { timeoutMs: 100, cacheMs: 30_000 });
    await check.check('shop', pod());
    await check.check('shop', pod());
    assert.equal(kube.calls.length, 2);
    fail = new KubeError(403, 'Forbidden', 'POST x: 403 no');
    await check.check('shop', pod());
    await check.check('shop', pod());
    assert.equal(kube.calls.length, 3);
  });
});

describe('admission check: which policy a refusal names (spanprofiling.io/refused-by)', () => {
  // Messages as the API server words them (kube-apiserver 1.33).
  const cases: [string, string][] = [
    ["ValidatingAdmissionPolicy 'images-from-our-registry' with binding 'images-from-our-registry' denied request: images must come from x/", 'ValidatingAdmissionPolicy/images-from-our-registry'],
    ['admission webhook "validate.kyverno.svc-fail" denied the request: resource Pod/shop/web was blocked', 'ValidatingWebhook/validate.kyverno.svc-fail'],
    ['exceeded quota: team, requested: requests.memory=8Mi, used: requests.memory=4Mi, limited: requests.memory=6Mi', 'ResourceQuota/team'],
    ['failed quota: team: must specify limits.ephemeral-storage for: spanprofiling-agent', 'ResourceQuota'],
    ['violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false', 'PodSecurity/restricted'],
    ['[maximum memory usage per Container is 4Mi, but limit is 64Mi]', 'LimitRange'],
    ['something else', 'admission'],
  ];
  for (const [message, policy] of cases) it(`${policy} from "${message.slice(0, 40)}..."`, () => assert.equal(policyOf(message), policy));
});
