/**
 * Drift and rollout, as pure functions: which pods are current, outdated or
 * missed, what the status says, which workload a pod's restart goes to, and
 * when a workload must not be restarted.
 */
import { strict as assert } from 'node:assert';
import { mutatePod, refusedByAdmission } from '../src/inject/pod';
import type { SpanProfiling } from '../src/api';
import { drift, standing, type DriftContext, type PodView } from '../src/controller/drift';
import { blocker, ownerOf, predatesRestart, restartPatch, Rollouts, type Workload } from '../src/controller/rollout';
import type { Kube } from '../src/kube/client';
import { desiredStatus, statusChanged } from '../src/controller/status';
import { podConfigDigest } from '../src/inject/fingerprint';
import { slimPod } from '../src/controller/controller';

const IMAGE = 'spanprofiling/agent:0.2.0';
const sp = (over: Partial<SpanProfiling['spec']> = {}, generation = 1, namespace = 'shop'): SpanProfiling => ({
  apiVersion: 'spanprofiling.io/v1alpha1',
  kind: 'SpanProfiling',
  metadata: { name: 'default', namespace, generation },
  spec: { pyroscope: { address: 'http://pyroscope:4040' }, ...over },
});

/** A pod as the webhook leaves it, then as the controller caches it. */
function admitted(profile: SpanProfiling, labels: Record<string, string> = { app: 'web' }, extra: { name?: string; namespace?: string; image?: string } = {}): PodView {
  const namespace = extra.namespace ?? 'shop';
  const result = mutatePod({
    pod: { metadata: { name: extra.name ?? 'web-1', namespace, uid: `uid-${extra.name ?? 'web-1'}-${namespace}`, labels }, spec: { containers: [{ name: 'app', image: 'node:24' }] } },
    namespace,
    namespaceAnnotations: { 'spanprofiling.io/inject': namespace === profile.metadata.namespace ? 'true' : 'shop/default' },
    spanProfilings: [profile],
    defaults: { agentImage: extra.image ?? IMAGE },
  });
  return slimPod(result.pod as never);
}
/** The webhook's answer for a pod of namespace shop, opted in. */
const admit = (pod: Parameters<typeof mutatePod>[0]['pod'], profile: SpanProfiling): ReturnType<typeof mutatePod> =>
  mutatePod({ pod, namespace: 'shop', namespaceAnnotations: { 'spanprofiling.io/inject': 'true' }, spanProfilings: [profile], defaults: { agentImage: IMAGE } });
const unseen = (name: string, namespace = 'shop', labels: Record<string, string> = { app: 'web' }): PodView => ({ metadata: { name, namespace, uid: `uid-${name}-${namespace}`, labels, annotations: {} }, status: { phase: 'Running' } });
const ctx = (profiles: SpanProfiling[], inject: Record<string, string> = { shop: 'true' }): DriftContext => ({
  namespaceAnnotations: (ns) => (inject[ns] === undefined ? undefined : { 'spanprofiling.io/inject': inject[ns]! }),
  spanProfilings: profiles,
  agentImage: IMAGE,
});

describe('drift: which pods are current, outdated or missed', () => {
  const current = sp();

  it('records on each injected pod the SpanProfiling, its generation, the agent image and the digest of what it was given', () => {
    const pod = admitted(sp({}, 7));
    const a = pod.metadata.annotations!;
    assert.equal(a['spanprofiling.io/spanprofiling'], 'shop/default');
    assert.equal(a['spanprofiling.io/generation'], '7');
    assert.equal(a['spanprofiling.io/agent-image'], IMAGE);
    assert.equal(a['spanprofiling.io/config'], podConfigDigest(current));
    assert.match(a['spanprofiling.io/config']!, /^[0-9a-f]{16}$/);
  });

  const cases: [string, () => PodView, SpanProfiling, ReturnType<typeof standing>][] = [
    ['a pod injected with the current spec and image', () => admitted(current), current, 'current'],
    ['a pod injected before a sample-rate change', () => admitted(sp({}, 1)), sp({ profiling: { sampleRateHz: 50 } }, 2), 'outdated'],
    ['a pod injected with another agent image (an operator upgrade)', () => admitted(current, undefined, { image: 'spanprofiling/agent:0.1.0' }), current, 'outdated'],
    ['a pod injected with the image the SpanProfiling named, which it no longer names', () => admitted(sp({ agent: { image: 'mine:1' } })), sp({ agent: { image: 'mine:1' } }, 2), 'current'],
    ['a pod injected before a change of spec.rollout only (generation moves, pods are unaffected)', () => admitted(sp({}, 1)), sp({ rollout: { policy: 'Auto' } }, 2), 'current'],
    ['a pod injected before a change of spec.selector only', () => admitted(sp({}, 1)), sp({ selector: { matchLabels: { app: 'web' } } }, 2), 'current'],
    ['a pod injected by an operator that recorded no digest', () => {
      const pod = admitted(current);
      delete pod.metadata.annotations!['spanprofiling.io/config'];
      return pod;
    }, current, 'outdated'],
    ['a pod the webhook never saw, in an opted-in namespace', () => unseen('web-2'), current, 'missed'],
    ['a pod the controller marked as unseen', () => ({ ...unseen('web-2'), metadata: { ...unseen('web-2').metadata, annotations: { 'spanprofiling.io/status': 'skipped', 'spanprofiling.io/reason': 'admitted while…' } } }), current, 'missed'],
    ['a pod that does not match the selector', () => unseen('db-1', 'shop', { app: 'db' }), sp({ selector: { matchLabels: { app: 'web' } } }), undefined],
    ['a pod that opted out', () => ({ ...unseen('web-2'), metadata: { ...unseen('web-2').metadata, annotations: { 'spanprofiling.io/inject': 'false' } } }), current, undefined],
    ['a pod in a namespace that did not opt in', () => unseen('web-2', 'other'), current, undefined],
    ['a pod that finished', () => ({ ...unseen('job-1'), status: { phase: 'Succeeded' } }), current, undefined],
    ['a pod being deleted', () => ({ ...unseen('web-2'), metadata: { ...unseen('web-2').metadata, deletionTimestamp: '2026-12-04T10:00:00Z' } }), current, undefined],
  ];
  for (const [what, pod, profile, want] of cases) it(`${what}: ${want ?? 'not counted'}`, () => assert.equal(standing(pod(), profile, ctx([profile])), want));

  it('does not count as missed a pod skipped for its own reasons under the same configuration, but does once the SpanProfiling changes', () => {
    const windows = admit({ metadata: { name: 'win-1', namespace: 'shop', uid: 'w1' }, spec: { os: { name: 'windows' }, containers: [{ name: 'app', image: 'node:24' }] } }, current);
    assert.equal(windows.status, 'skipped');
    const pod = { ...slimPod(windows.pod as never), status: { phase: 'Running' } };
    assert.equal(standing(pod, current, ctx([current])), undefined);
    const changed = sp({ containerNames: ['app'] }, 2);
    assert.equal(standing(pod, changed, ctx([changed])), 'missed');
  });

  it('counts a pod admitted while the SpanProfiling could not be injected as missed once it is fixed', () => {
    const broken = sp({ env: [{ name: 'BAD NAME', value: 'x' }] } as never, 1);
    const result = admit({ metadata: { name: 'web-3', namespace: 'shop', uid: 'u3' }, spec: { containers: [{ name: 'app', image: 'node:24' }] } }, broken);
    assert.equal(result.status, 'error');
    const pod = { ...slimPod(result.pod as never), status: { phase: 'Running' } };
    assert.equal(standing(pod, broken, ctx([broken])), undefined, 'still broken: a restart would not help');
    const fixed = sp({}, 2);
    assert.equal(standing(pod, fixed, ctx([fixed])), 'missed');
  });

  it('totals and splits by namespace, each pod once even when two caches hold it', () => {
    const profile = sp({}, 2);
    const old = sp({ profiling: { sampleRateHz: 50 } }, 1);
    const pods = [
      admitted(profile, undefined, { name: 'a', namespace: 'shop' }),
      admitted(old, undefined, { name: 'b', namespace: 'shop' }),
      admitted(old, undefined, { name: 'c', namespace: 'cart' }),
      unseen('d', 'cart'),
      unseen('e', 'shop'),
    ].map((p) => ({ ...p, status: { phase: 'Running' } }));
    const d = drift([...pods, pods[0]!, pods[3]!], profile, ctx([profile], { shop: 'true', cart: 'shop/default' }));
    assert.deepEqual({ injected: d.injectedPods, outdated: d.outdatedPods, missed: d.missedPods }, { injected: 3, outdated: 2, missed: 2 });
    assert.deepEqual(d.namespaces, [
      { namespace: 'cart', injectedPods: 1, outdatedPods: 1, missedPods: 1, refusedPods: 0 },
      { namespace: 'shop', injectedPods: 2, outdatedPods: 1, missedPods: 1, refusedPods: 0 },
    ]);
    assert.deepEqual(d.stale.map((p) => p.metadata.name).sort(), ['b', 'c', 'd', 'e']);
  });

  it("counts pods a policy kept from the agent apart, per policy, and as missed once the configuration changes (a restart may inject them)", () => {
    const profile = sp();
    const tiny = [{ metadata: { name: 'hardened' }, spec: { limits: [{ type: 'Container', max: { memory: '4Mi' } }] } }];
    const limited = mutatePod({ pod: { metadata: { name: 'lr', namespace: 'shop', uid: 'u-lr' }, spec: { containers: [{ name: 'app', image: 'node:24' }] } }, namespace: 'shop', namespaceAnnotations: { 'spanprofiling.io/inject': 'true' }, spanProfilings: [profile], defaults: { agentImage: IMAGE }, limitRanges: tiny });
    assert.equal(limited.pod.metadata?.annotations?.['spanprofiling.io/refused-by'], 'LimitRange/hardened');
    const imaged = (name: string) => slimPod(refusedByAdmission({ metadata: { name, namespace: 'shop', uid: `u-${name}` }, spec: { containers: [{ name: 'app', image: 'node:24' }] } }, profile, 'not injected: ...', 'ValidatingAdmissionPolicy/images', IMAGE).pod as never);
    const pods = [slimPod(limited.pod as never), imaged('v1'), imaged('v2'), admitted(profile, undefined, { name: 'ok' })].map((p) => ({ ...p, status: { phase: 'Running' } }));
    const d = drift(pods, profile, ctx([profile]));
    assert.deepEqual({ injected: d.injectedPods, missed: d.missedPods, refused: d.refusedPods }, { injected: 1, missed: 0, refused: 3 });
    assert.deepEqual(d.refusals, [
      { policy: 'ValidatingAdmissionPolicy/images', namespace: 'shop', pods: 2 },
      { policy: 'LimitRange/hardened', namespace: 'shop', pods: 1 },
    ]);
    assert.deepEqual(d.stale, [], 'nothing to restart: a restart would be refused again');
    const mirrored = drift(pods, profile, { ...ctx([profile]), agentImage: 'images.shop.internal/agent:0.2.0' });
    assert.deepEqual({ refused: mirrored.refusedPods, missed: mirrored.missedPods }, { refused: 1, missed: 2 }, "the operator's agent image changed: the pods refused with the old one may be admitted now");
    const edited = sp({ profiling: { sampleRateHz: 30 } }, 2);
    const after = drift(pods, edited, ctx([edited]));
    assert.deepEqual({ refused: after.refusedPods, missed: after.missedPods, outdated: after.outdatedPods }, { refused: 0, missed: 3, outdated: 1 });
    const status = desiredStatus(profile, { secrets: [], injectedPods: 1, drift: d, now: new Date('2026-12-05T00:00:00Z') });
    assert.equal(status.refusedPods, 3);
    const refused = status.conditions?.find((c) => c.type === 'PodsRefused');
    assert.equal(refused?.status, 'True');
    assert.match(refused?.message ?? '', /^3 pods run without the agent because a policy of their namespace would refuse them with it: ValidatingAdmissionPolicy\/images in shop \(2\), LimitRange\/hardened in shop \(1\)\. .*mirror the agent image and set spec.agent.image/);
    assert.equal(desiredStatus(profile, { secrets: [], injectedPods: 1, now: new Date() }).conditions?.find((c) => c.type === 'PodsRefused')?.status, 'False');
  });
});

describe('status: outdated and missed pods', () => {
  const now = new Date('2026-12-04T10:00:00Z');
  const counts = (o: number, m: number, namespaces: string[] = ['shop']) => ({ injectedPods: 4, outdatedPods: o, missedPods: m, namespaces: namespaces.map((namespace) => ({ namespace, injectedPods: 4, outdatedPods: o, missedPods: m })) });

  it('counts them, and the Ready message says what to do: the annotation or Auto under Manual', () => {
    const s = desiredStatus(sp(), { secrets: [], injectedPods: 4, drift: counts(2, 1), now });
    assert.equal(s.outdatedPods, 2);
    assert.equal(s.missedPods, 1);
    assert.equal(s.namespaces, undefined, 'one namespace: no breakdown');
    const ready = s.conditions!.find((c) => c.type === 'Ready')!;
    assert.equal(ready.status, 'True');
    assert.match(ready.message, /2 pods run an older configuration or agent image and 1 pod that opt in runs without the agent/);
    assert.match(ready.message, /kubectl annotate spanprofiling -n shop default spanprofiling.io\/rollout=now/);
    const ood = s.conditions!.find((c) => c.type === 'PodsOutOfDate')!;
    assert.equal(ood.status, 'True');
    assert.equal(ood.reason, 'PodsOutdated');
  });

  it('says the operator restarts them under Auto, and breaks the counts down when pods run in several namespaces', () => {
    const s = desiredStatus(sp({ rollout: { policy: 'Auto' } }), { secrets: [], injectedPods: 8, drift: counts(0, 3, ['cart', 'shop']), now });
    assert.match(s.conditions!.find((c) => c.type === 'Ready')!.message, /the operator restarts their workloads one at a time/);
    assert.equal(s.conditions!.find((c) => c.type === 'PodsOutOfDate')!.reason, 'PodsMissed');
    assert.equal(s.namespaces?.length, 2);
  });

  it('is up to date with none, and a change of the counts is a change of status', () => {
    const none = desiredStatus(sp(), { secrets: [], injectedPods: 4, drift: counts(0, 0), now });
    assert.equal(none.conditions!.find((c) => c.type === 'PodsOutOfDate')!.status, 'False');
    assert.doesNotMatch(none.conditions!.find((c) => c.type === 'Ready')!.message, /older/);
    const some = desiredStatus(sp(), { secrets: [], injectedPods: 4, drift: counts(1, 0), now });
    assert.ok(statusChanged(none, some));
    assert.ok(!statusChanged(none, desiredStatus({ ...sp(), status: none }, { secrets: [], injectedPods: 4, drift: counts(0, 0), now: new Date('2026-12-04T11:00:00Z') })));
  });
});

describe('rollout: which workload, and when not', () => {
  const pod = (owner?: { kind: string; name: string }): PodView => ({
    metadata: { name: 'p', namespace: 'shop', ...(owner !== undefined ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: owner.kind, name: owner.name, controller: true }] } : {}) },
  });
  const rsOwners: Record<string, { apiVersion: string; kind: string; name: string; controller: boolean } | undefined> = {
    'web-5d8f': { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true },
    'orphan-1': undefined,
  };
  const lookup = async (_ns: string, name: string) => rsOwners[name];

  const owners: [string, PodView, unknown][] = [
    ["a Deployment's pod (through its ReplicaSet)", pod({ kind: 'ReplicaSet', name: 'web-5d8f' }), { kind: 'Deployment', namespace: 'shop', name: 'web' }],
    ["a StatefulSet's pod", pod({ kind: 'StatefulSet', name: 'db' }), { kind: 'StatefulSet', namespace: 'shop', name: 'db' }],
    ["a DaemonSet's pod", pod({ kind: 'DaemonSet', name: 'agent' }), { kind: 'DaemonSet', namespace: 'shop', name: 'agent' }],
  ];
  for (const [what, p, want] of owners) it(`restarts ${what}`, async () => assert.deepEqual(await ownerOf(p, lookup), want));
  const never: [string, PodView, RegExp][] = [
    ['a bare pod', pod(), /bare pod/],
    ["a Job's pod", pod({ kind: 'Job', name: 'migrate' }), /Job migrate, which is not restarted/],
    ["a ReplicaSet's without a Deployment", pod({ kind: 'ReplicaSet', name: 'orphan-1' }), /no Deployment owns/],
  ];
  for (const [what, p, why] of never) it(`never restarts ${what}`, async () => assert.match(String(await ownerOf(p, lookup)), why));

  const w = (spec: Workload['spec'], status: Workload['status'], generation = 3): Workload => ({ metadata: { name: 'web', namespace: 'shop', generation }, spec, status });
  const blockers: [string, Workload, 'Deployment' | 'StatefulSet' | 'DaemonSet', RegExp | undefined][] = [
    ['a settled Deployment', w({ replicas: 2 }, { observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 2 }), 'Deployment', undefined],
    ['a paused Deployment', w({ replicas: 2, paused: true }, { observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 2 }), 'Deployment', /paused/],
    ['a Deployment not yet observed', w({ replicas: 2 }, { observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2 }), 'Deployment', /rolling out/],
    ['a Deployment with old pods left', w({ replicas: 2 }, { observedGeneration: 3, replicas: 3, updatedReplicas: 2, availableReplicas: 2 }), 'Deployment', /rolling out/],
    ['a Deployment whose new pods are not available', w({ replicas: 2 }, { observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 1 }), 'Deployment', /rolling out/],
    ['a Deployment scaled to zero', w({ replicas: 0 }, { observedGeneration: 3 }), 'Deployment', undefined],
    ['a settled StatefulSet', w({ replicas: 3 }, { observedGeneration: 3, currentRevision: 'r2', updateRevision: 'r2', updatedReplicas: 3, readyReplicas: 3 }), 'StatefulSet', undefined],
    ['a StatefulSet between revisions', w({ replicas: 3 }, { observedGeneration: 3, currentRevision: 'r1', updateRevision: 'r2', updatedReplicas: 1, readyReplicas: 3 }), 'StatefulSet', /rolling out/],
    ['an OnDelete StatefulSet', w({ replicas: 3, updateStrategy: { type: 'OnDelete' } }, { observedGeneration: 3 }), 'StatefulSet', /OnDelete/],
    ['a partitioned StatefulSet', w({ replicas: 3, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 2 } } }, { observedGeneration: 3 }), 'StatefulSet', /partitioned/],
    ['a settled DaemonSet', w({}, { observedGeneration: 3, desiredNumberScheduled: 4, updatedNumberScheduled: 4, numberUnavailable: 0 }), 'DaemonSet', undefined],
    ['a DaemonSet with unavailable pods', w({}, { observedGeneration: 3, desiredNumberScheduled: 4, updatedNumberScheduled: 4, numberUnavailable: 1 }), 'DaemonSet', /rolling out/],
  ];
  for (const [what, workload, kind, want] of blockers) {
    it(`${what}: ${want === undefined ? 'may be restarted' : `waits (${want.source})`}`, () => {
      const why = blocker(workload, kind);
      if (want === undefined) assert.equal(why, undefined);
      else assert.match(why ?? '', want);
    });
  }

  it("counts a pod of a revision before the workload's restart as on its way out, whenever it was created", () => {
    const at = '2026-12-04T10:00:00Z';
    const of = (restartedAt?: string, created = '2026-12-04T10:00:00Z'): PodView => ({ metadata: { name: 'p', namespace: 'shop', creationTimestamp: created, ...(restartedAt !== undefined ? { annotations: { 'kubectl.kubernetes.io/restartedAt': restartedAt } } : {}) } });
    assert.equal(predatesRestart(of(undefined), at), true, 'made from the template before any restart, in the same second');
    assert.equal(predatesRestart(of('2026-12-01T08:00:00Z'), at), true, 'an earlier restart');
    assert.equal(predatesRestart(of(at, '2026-12-04T10:00:00Z'), at), false, 'the new revision, in the same second');
    assert.equal(predatesRestart(of(undefined, '2026-12-04T09:00:00Z'), undefined), false, 'never restarted');
  });

  it('restarts a workload once, though its old pod lingers in the cache after the rollout is done', async () => {
    let now = Date.parse('2026-12-04T10:00:00Z');
    const patches: string[] = [];
    let deployment: Workload = { metadata: { name: 'web', namespace: 'shop', generation: 1 }, spec: { replicas: 1 }, status: { observedGeneration: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1 } };
    const kube: Kube = {
      request: async <T>(method: string, urlPath: string, body?: unknown): Promise<T> => {
        if (method === 'PATCH') {
          // As the API server applies it: the template's restartedAt changes, and with it the generation.
          patches.push(urlPath);
          const template = (body as { spec: Workload['spec'] }).spec?.template;
          deployment = { ...deployment, metadata: { ...deployment.metadata, generation: deployment.metadata.generation! + 1 }, spec: { ...deployment.spec, template } };
        }
        return {} as T;
      },
      get: async <T>(urlPath: string): Promise<T | undefined> =>
        (urlPath.includes('/replicasets/') ? { metadata: { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] } } : deployment) as T,
      watch: () => ({ done: Promise.resolve(), abort: () => undefined }),
    };
    const rollouts = new Rollouts(kube, () => new Date(now));
    const profile = sp({ rollout: { policy: 'Auto', pauseSeconds: 0 } });
    const old: PodView = { metadata: { name: 'web-1', namespace: 'shop', creationTimestamp: '2026-12-04T09:00:00Z', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f', controller: true }] } };
    const events = { onSpanProfiling: async () => undefined, onWorkload: async () => undefined };
    assert.match((await rollouts.step(profile, [old], events)).status?.message ?? '', /^restarted Deployment shop\/web/);
    now += 5000;
    assert.match((await rollouts.step(profile, [old], events)).status?.message ?? '', /waiting for Deployment shop\/web to roll out/);
    // The Deployment controller is done; the cache still holds the old pod.
    deployment = { ...deployment, status: { ...deployment.status, observedGeneration: deployment.metadata.generation } };
    now += 5000;
    assert.match((await rollouts.step(profile, [old], events)).status?.message ?? '', /^nothing to restart/);
    assert.equal(patches.length, 1);
    // A pod of the new revision that is still stale (the webhook was down again) is restarted for.
    const fresh: PodView = { ...old, metadata: { ...old.metadata, name: 'web-2', creationTimestamp: new Date(now).toISOString(), annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-12-04T10:00:00Z' } } };
    now += 5000;
    assert.match((await rollouts.step(profile, [fresh], events)).status?.message ?? '', /^restarted Deployment shop\/web/);
    assert.equal(patches.length, 2);
  });

  it('writes a new restartedAt for a restart within the second of the last one (the same value would change nothing)', async () => {
    const bodies: unknown[] = [];
    const deployment: Workload = {
      metadata: { name: 'web', namespace: 'shop', generation: 3 },
      spec: { replicas: 1, template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-12-04T10:00:00Z' } } } },
      status: { observedGeneration: 3, replicas: 1, updatedReplicas: 1, availableReplicas: 1 },
    };
    const kube: Kube = {
      request: async <T>(method: string, _path: string, body?: unknown): Promise<T> => {
        if (method === 'PATCH') bodies.push(body);
        return {} as T;
      },
      get: async <T>(urlPath: string): Promise<T | undefined> =>
        (urlPath.includes('/replicasets/') ? { metadata: { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true }] } } : deployment) as T,
      watch: () => ({ done: Promise.resolve(), abort: () => undefined }),
    };
    const rollouts = new Rollouts(kube, () => new Date('2026-12-04T10:00:00.600Z'));
    const stale: PodView = { metadata: { name: 'web-1', namespace: 'shop', annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-12-04T10:00:00Z' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f', controller: true }] } };
    await rollouts.step(sp({ rollout: { policy: 'Auto', pauseSeconds: 0 } }), [stale], { onSpanProfiling: async () => undefined, onWorkload: async () => undefined });
    assert.deepEqual(bodies, [restartPatch(new Date('2026-12-04T10:00:01Z'))]);
  });

  it('restarts with the patch kubectl rollout restart sends', () => {
    assert.deepEqual(restartPatch(new Date('2026-12-04T10:00:00.123Z')), { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-12-04T10:00:00Z' } } } } });
  });
});
