/**
 * The webhook's second line: a SpanProfiling whose values the API server
 * would reject in a pod (stored before the schema refused them) injects
 * nothing, admits the pod as it came with the reason, and shows InvalidSpec.
 */
import { strict as assert } from 'node:assert';
import type { V1Pod } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { SpanProfiling } from '../src/api';
import { desiredStatus } from '../src/controller/status';
import { mutatePod } from '../src/inject/pod';
import { parseQuantity, podSpecProblems } from '../src/inject/validate';

const sp = (spec: Partial<SpanProfiling['spec']> | Record<string, unknown>): SpanProfiling => ({
  apiVersion: 'spanprofiling.io/v1alpha1',
  kind: 'SpanProfiling',
  metadata: { name: 'default', namespace: 'shop', generation: 2 },
  spec: { pyroscope: { address: 'http://p:4040' }, ...spec },
});
const pod: V1Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', annotations: {} }, spec: { containers: [{ name: 'app', image: 'node:24' }] } };

// The four SpanProfilings that the API server once accepted and that then blocked every pod, and more.
// Typed loosely on purpose: the webhook meets objects stored before the CRD's schema said no.
const BAD: [string, Record<string, unknown>, RegExp][] = [
  ['a memory limit that is not a quantity', { agent: { resources: { limits: { memory: '64MB' } } } }, /agent.resources.limits.memory: "64MB" is not a quantity/],
  ['a CPU request above its limit', { agent: { resources: { requests: { cpu: '2' }, limits: { cpu: '500m' } } } }, /the cpu request is above its limit/],
  ['a runAsUser that is not a number', { agent: { securityContext: { runAsUser: 'abc' } } }, /runAsUser: "abc" is not a non-negative integer/],
  ['an env entry with value and valueFrom', { env: [{ name: 'A', value: 'x', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }] }, /env\[0\] \(A\): takes value or valueFrom, not both/],
  ['a valueFrom without a source', { env: [{ name: 'A', valueFrom: {} }] }, /valueFrom takes exactly one of/],
  ['a secretKeyRef without a key', { env: [{ name: 'A', valueFrom: { secretKeyRef: { name: 's' } } }] }, /valueFrom.secretKeyRef.key is required/],
  ['an env name with a space', { env: [{ name: 'A B', value: 'x' }] }, /the name must match/],
  ['a Localhost seccomp profile without a file', { agent: { securityContext: { seccompProfile: { type: 'Localhost' } } } }, /localhostProfile is set exactly when the type is Localhost/],
  ['an image with a space', { agent: { image: 'agent :1' } }, /is not an image reference/],
  ['a resource the init container cannot take', { agent: { resources: { limits: { 'nvidia.com/gpu': 1 } } } }, /takes cpu, memory, ephemeral-storage only/],
  ['a fieldRef the downward API does not give env', { env: [{ name: 'A', valueFrom: { fieldRef: { fieldPath: 'spec.containers' } } }] }, /is not a field the downward API gives env/],
  ['a resourceFieldRef to an unknown resource', { env: [{ name: 'A', valueFrom: { resourceFieldRef: { resource: 'limits.gpu' } } }] }, /resourceFieldRef.resource must be one of/],
  ['a token Secret name with capitals', { pyroscope: { address: 'http://p:4040', authTokenSecretRef: { name: 'My Secret', key: 'token' } } }, /authTokenSecretRef.name "My Secret" is not a valid object name/],
  ['a Secret key with a space', { env: [{ name: 'A', valueFrom: { secretKeyRef: { name: 's', key: 'a b' } } }] }, /secretKeyRef.key "a b" is not a valid key/],
  ['a volume size that is not a quantity', { agent: { volumeSizeLimit: '64 MB' } }, /volumeSizeLimit "64 MB" is not a quantity/],
];

describe('SpanProfiling values checked before they go into a pod', () => {
  it('parses quantities as the API server does', () => {
    assert.equal(parseQuantity('500m'), 0.5);
    assert.equal(parseQuantity('64Mi'), 64 * 2 ** 20);
    assert.equal(parseQuantity('1e3'), 1000);
    assert.equal(parseQuantity(2), 2);
    assert.equal(parseQuantity('.5'), 0.5);
    for (const bad of ['64MB', '1.2.3', '', 'Mi', '1 Gi', '-']) assert.equal(parseQuantity(bad), undefined, bad);
  });

  it('finds nothing wrong in the defaults and in values written as in a pod', () => {
    assert.deepEqual(podSpecProblems(sp({})), []);
    assert.deepEqual(
      podSpecProblems(sp({
        agent: { image: 'reg.example/agent:1', imagePullPolicy: 'IfNotPresent', volumeSizeLimit: '64Mi', resources: { requests: { cpu: '10m', memory: 33554432 }, limits: { cpu: 1, memory: '64Mi' } }, securityContext: { runAsUser: 1000, runAsNonRoot: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } } },
        env: [{ name: 'A', value: 'x' }, { name: 'B', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }],
      })),
      [],
    );
  });

  for (const [what, spec, message] of BAD) {
    it(`admits the pod untouched, with status error and the reason, for ${what}`, () => {
      const r = mutatePod({ pod, namespace: 'shop', namespaceAnnotations: { 'spanprofiling.io/inject': 'true' }, spanProfilings: [sp(spec)], defaults: { agentImage: 'agent:test' } });
      assert.equal(r.status, 'error');
      assert.equal(r.code, 'invalid-spanprofiling');
      assert.match(r.reason, message);
      assert.deepEqual(r.pod.spec, pod.spec, 'nothing added to the pod');
      assert.equal(r.pod.metadata?.annotations?.['spanprofiling.io/status'], 'error');
      assert.match(r.pod.metadata?.annotations?.['spanprofiling.io/reason'] ?? '', message);
      assert.ok(r.warnings.some((w) => message.test(w)), 'a warning kubectl shows');
    });
  }

  it('reports InvalidSpec on the SpanProfiling, and Ready=False saying pods are admitted without the agent', () => {
    const s = desiredStatus(sp(BAD[0]![1]), { secrets: [], injectedPods: 0, now: new Date('2026-11-29T10:00:00Z') });
    const invalid = s.conditions!.find((c) => c.type === 'InvalidSpec')!;
    assert.equal(invalid.status, 'True');
    assert.match(invalid.message, /64MB/);
    const ready = s.conditions!.find((c) => c.type === 'Ready')!;
    assert.equal(ready.status, 'False');
    assert.equal(ready.reason, 'InvalidSpec');
    assert.match(ready.message, /admitted without the agent/);
    assert.equal(desiredStatus(sp({}), { secrets: [], injectedPods: 0, now: new Date() }).conditions!.find((c) => c.type === 'InvalidSpec')!.status, 'False');
  });
});

describe('cluster-friendly injected pods', () => {
  const inject = (p: V1Pod): V1Pod =>
    mutatePod({ pod: p, namespace: 'shop', namespaceAnnotations: { 'spanprofiling.io/inject': 'true' }, spanProfilings: [sp({})], defaults: { agentImage: 'agent:test' } }).pod;
  const attrs = (p: V1Pod): string => p.spec!.containers[0]!.env!.find((e) => e.name === 'OTEL_RESOURCE_ATTRIBUTES')!.value!;

  it("names the agent's volume as safe to evict for the cluster autoscaler, keeping the pod's own list", () => {
    assert.equal(inject(pod).metadata!.annotations!['cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes'], 'spanprofiling-agent');
    const own = { ...pod, metadata: { ...pod.metadata, annotations: { 'cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes': 'cache,tmp' } } };
    assert.equal(inject(own).metadata!.annotations!['cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes'], 'cache,tmp,spanprofiling-agent');
  });

  it('sets service.version from app.kubernetes.io/version, else the image tag (not a registry port or a digest)', () => {
    const withImage = (image: string, labels?: Record<string, string>): V1Pod => ({ ...pod, metadata: { ...pod.metadata, labels }, spec: { containers: [{ name: 'app', image }] } });
    assert.match(attrs(inject(withImage('reg:5000/shop:1.4.2'))), /service\.version=1\.4\.2/);
    assert.match(attrs(inject(withImage('reg:5000/shop:1.4.2', { 'app.kubernetes.io/version': '1.5' }))), /service\.version=1\.5(,|$)/);
    assert.doesNotMatch(attrs(inject(withImage('reg:5000/shop'))), /service\.version/);
    assert.match(attrs(inject(withImage('shop:2@sha256:abc'))), /service\.version=2(,|$)/);
  });

  it('sets k8s.cronjob.name for pods of a Job a CronJob made', () => {
    const owned = (job: string): V1Pod => ({ ...pod, metadata: { ...pod.metadata, ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: job, uid: 'u', controller: true }] } });
    assert.match(attrs(inject(owned('nightly-report-29384750'))), /k8s\.job\.name=nightly-report-29384750,k8s\.cronjob\.name=nightly-report/);
    assert.doesNotMatch(attrs(inject(owned('migrate'))), /k8s\.cronjob\.name/);
  });
});

describe('the right containers, or none', () => {
  const mutate = (p: V1Pod, spec: Partial<SpanProfiling['spec']> = {}) =>
    mutatePod({ pod: p, namespace: 'shop', namespaceAnnotations: { 'spanprofiling.io/inject': 'true' }, spanProfilings: [sp(spec)], defaults: { agentImage: 'agent:test' } });
  const hasPreload = (c: { env?: { name: string; value?: string }[] } | undefined): boolean => (c?.env ?? []).some((e) => e.name === 'NODE_OPTIONS' && /register\.js/.test(e.value ?? ''));
  const twoContainers = (annotations: Record<string, string> = {}): V1Pod => ({
    ...pod,
    metadata: { name: 'web', annotations },
    spec: { containers: [{ name: 'proxy', image: 'envoy:1' }, { name: 'app', image: 'node:24' }] },
  });

  it('injects the container kubectl.kubernetes.io/default-container names, before the first one', () => {
    const r = mutate(twoContainers({ 'kubectl.kubernetes.io/default-container': 'app' }));
    assert.equal(r.status, 'injected');
    assert.equal(hasPreload(r.pod.spec!.containers[1]), true);
    assert.equal(hasPreload(r.pod.spec!.containers[0]), false);
    // A default-container that does not exist falls back to the first container.
    assert.equal(hasPreload(mutate(twoContainers({ 'kubectl.kubernetes.io/default-container': 'gone' })).pod.spec!.containers[0]), true);
  });

  it('injects a native sidecar named in container-names, after the agent copy; an ordinary init container is refused with a reason', () => {
    const p: V1Pod = {
      ...pod,
      metadata: { name: 'web', annotations: { 'spanprofiling.io/container-names': 'app,logger,migrate' } },
      spec: {
        initContainers: [{ name: 'migrate', image: 'node:24' }, { name: 'logger', image: 'node:24', restartPolicy: 'Always' }],
        containers: [{ name: 'app', image: 'node:24' }],
      },
    };
    const r = mutate(p);
    assert.equal(r.status, 'injected');
    const inits = r.pod.spec!.initContainers!;
    assert.deepEqual(inits.map((c) => c.name), ['spanprofiling-agent', 'migrate', 'logger']);
    assert.equal(hasPreload(inits[2]), true, 'the sidecar has the agent');
    assert.equal(hasPreload(inits[1]), false);
    assert.ok(inits[2]!.volumeMounts!.some((m) => m.name === 'spanprofiling-agent'));
    assert.match(r.reason, /injected logger, app with SpanProfiling shop\/default/);
    assert.match(r.reason, /migrate is an init container that runs to completion, not a sidecar/);
  });

  it('skips Windows pods with a reason', () => {
    for (const spec of [{ os: { name: 'windows' }, containers: [{ name: 'app', image: 'node:24' }] }, { nodeSelector: { 'kubernetes.io/os': 'windows' }, containers: [{ name: 'app', image: 'node:24' }] }]) {
      const r = mutate({ ...pod, spec });
      assert.equal(r.status, 'skipped');
      assert.equal(r.code, 'windows-pod');
      assert.deepEqual(r.pod.spec, spec);
      assert.match(r.pod.metadata!.annotations!['spanprofiling.io/reason']!, /Windows/);
    }
  });

  it('injects a pod whose status annotation says injected but that has no agent (copied from a template)', () => {
    const r = mutate({ ...pod, metadata: { name: 'web', annotations: { 'spanprofiling.io/status': 'injected', 'spanprofiling.io/reason': 'copied' } } });
    assert.equal(r.code, 'injected');
    assert.ok(r.pod.spec!.initContainers!.some((c) => c.name === 'spanprofiling-agent'));
  });

  it('writes the warnings nobody sees for controller-made pods into the reason annotation', () => {
    const r = mutate(twoContainers({ 'spanprofiling.io/container-names': 'app,worker' }));
    assert.equal(r.status, 'injected');
    assert.match(r.pod.metadata!.annotations!['spanprofiling.io/reason']!, /no container named worker in the pod/);
    const fromEnv = mutate({ ...pod, spec: { containers: [{ name: 'app', image: 'node:24', envFrom: [{ configMapRef: { name: 'cfg' } }] }] } });
    assert.match(fromEnv.pod.metadata!.annotations!['spanprofiling.io/reason']!, /envFrom/);
  });
});
