import { strict as assert } from 'node:assert';
import type { SpanProfiling } from '../src/api';
import { desiredStatus, statusChanged, type SecretLookup } from '../src/controller/status';
import { namespaceLabelPatch, wantsInjectionLabel } from '../src/controller/namespaces';
import { createCA, createServingCert, inspect, needsRenewal } from '../src/certs/x509';

const sp = (spec: Partial<SpanProfiling['spec']['pyroscope']> = {}): SpanProfiling => ({
  apiVersion: 'spanprofiling.io/v1alpha1',
  kind: 'SpanProfiling',
  metadata: { name: 'default', namespace: 'shop', generation: 3 },
  spec: { pyroscope: { address: 'http://p:4040', ...spec } },
});
const now = new Date('2026-11-21T08:00:00Z');

describe('SpanProfiling status', () => {
  it('is Ready with the injected pod count and observedGeneration', () => {
    const s = desiredStatus(sp(), { secrets: [], injectedPods: 4, now });
    assert.equal(s.observedGeneration, 3);
    assert.equal(s.injectedPods, 4);
    const ready = s.conditions!.find((c) => c.type === 'Ready')!;
    assert.equal(ready.status, 'True');
    assert.equal(ready.observedGeneration, 3);
    assert.match(ready.message, /4 running/);
    assert.equal(s.conditions!.find((c) => c.type === 'CredentialsMissing')!.status, 'False');
  });

  const lookup = (over: Partial<SecretLookup> = {}): SecretLookup => ({ namespace: 'shop', name: 'pyro', found: 'no', keys: [], pods: 0, ...over });

  it('reports a missing credentials Secret, and a missing key, as CredentialsMissing=True and Ready=False', () => {
    const missing = desiredStatus(sp({ authTokenSecretRef: { name: 'pyro', key: 'token' } }), { secrets: [lookup()], injectedPods: 0, now });
    const cm = missing.conditions!.find((c) => c.type === 'CredentialsMissing')!;
    assert.equal(cm.status, 'True');
    assert.match(cm.message, /Secret shop\/pyro not found/);
    assert.equal(missing.conditions!.find((c) => c.type === 'Ready')!.reason, 'CredentialsMissing');
    const noKey = desiredStatus(sp({ basicAuth: { username: 'u', passwordSecretRef: { name: 'pyro', key: 'password' } } }), { secrets: [lookup({ found: 'yes', keys: ['user'] })], injectedPods: 0, now });
    assert.match(noKey.conditions!.find((c) => c.type === 'CredentialsMissing')!.message, /has no key password/);
  });

  it("names the namespace of pods that read a missing Secret there (another namespace than the SpanProfiling's)", () => {
    const s = desiredStatus(sp({ authTokenSecretRef: { name: 'pyro', key: 'token' } }), {
      secrets: [lookup({ namespace: 'shop', found: 'yes', keys: ['token'], pods: 1 }), lookup({ namespace: 'billing', pods: 3 })],
      injectedPods: 4,
      now,
    });
    const cm = s.conditions!.find((c) => c.type === 'CredentialsMissing')!;
    assert.equal(cm.status, 'True');
    assert.match(cm.message, /Secret billing\/pyro not found \(3 pods of this SpanProfiling run in billing, and Kubernetes reads a pod's Secrets in its own namespace\)/);
    assert.doesNotMatch(cm.message, /shop\/pyro/);
    assert.equal(s.conditions!.find((c) => c.type === 'Ready')!.status, 'False');
  });

  it('says Unknown, not missing, when the operator may not read Secrets, and stays Ready', () => {
    const s = desiredStatus(sp({ authTokenSecretRef: { name: 'pyro', key: 'token' } }), { secrets: [lookup({ found: 'forbidden' })], injectedPods: 0, now });
    const cm = s.conditions!.find((c) => c.type === 'CredentialsMissing')!;
    assert.equal(cm.status, 'Unknown');
    assert.equal(cm.reason, 'NotChecked');
    assert.match(cm.message, /credentialsCheck.enabled/);
    assert.match(cm.message, /shop\/pyro/);
    assert.equal(s.conditions!.find((c) => c.type === 'Ready')!.status, 'True');
  });

  it('keeps lastTransitionTime while a condition does not change, so reconciling again writes nothing', () => {
    const first = desiredStatus(sp(), { secrets: [], injectedPods: 1, now });
    const later = new Date(now.getTime() + 60_000);
    const again = desiredStatus({ ...sp(), status: first }, { secrets: [], injectedPods: 1, now: later });
    assert.equal(statusChanged(first, again), false);
    const moved = desiredStatus({ ...sp({ authTokenSecretRef: { name: 'x', key: 'y' } }), status: first }, { secrets: [lookup({ name: 'x' })], injectedPods: 1, now: later });
    assert.equal(moved.conditions!.find((c) => c.type === 'Ready')!.lastTransitionTime, later.toISOString().replace(/\.\d+Z$/, 'Z'));
  });
});

describe('namespace injection label', () => {
  const ns = (annotations: Record<string, string> = {}, labels: Record<string, string> = {}, name = 'shop') => ({ metadata: { name, annotations, labels } });
  const excluded = new Set(['kube-system', 'span-profiling']);
  const cases: [string, ReturnType<typeof ns>, number, boolean][] = [
    ['annotated true', ns({ 'spanprofiling.io/inject': 'true' }), 0, true],
    ['annotated with a name', ns({ 'spanprofiling.io/inject': 'obs/cpu' }), 0, true],
    ['annotated false, even with a SpanProfiling', ns({ 'spanprofiling.io/inject': 'false' }), 1, false],
    ['not annotated, holding a SpanProfiling', ns(), 1, true],
    ['not annotated, nothing in it', ns(), 0, false],
    ['kube-system, annotated', ns({ 'spanprofiling.io/inject': 'true' }, {}, 'kube-system'), 0, false],
    ["the operator's own", ns({ 'spanprofiling.io/inject': 'true' }, {}, 'span-profiling'), 1, false],
  ];
  for (const [what, n, count, want] of cases) it(`${what}: ${want ? 'labelled' : 'not labelled'}`, () => assert.equal(wantsInjectionLabel(n, count, excluded), want));

  it('patches only when the label is wrong, and removes it with null', () => {
    assert.deepEqual(namespaceLabelPatch(ns(), true), { metadata: { labels: { 'spanprofiling.io/injection': 'enabled' } } });
    assert.equal(namespaceLabelPatch(ns({}, { 'spanprofiling.io/injection': 'enabled' }), true), undefined);
    assert.deepEqual(namespaceLabelPatch(ns({}, { 'spanprofiling.io/injection': 'enabled' }), false), { metadata: { labels: { 'spanprofiling.io/injection': null } } });
  });
});

describe('webhook certificates', () => {
  it('issues a serving certificate for the service names, signed by the CA', () => {
    const ca = createCA('ca', now, 3650);
    const s = createServingCert(ca, ['svc.ns.svc', 'svc.ns.svc.cluster.local'], now, 365);
    const info = inspect(s.cert);
    assert.deepEqual(info.names, ['svc.ns.svc', 'svc.ns.svc.cluster.local']);
    assert.ok(info.notAfter.getTime() > now.getTime() + 364 * 86_400_000);
    const { X509Certificate } = require('node:crypto') as typeof import('node:crypto');
    assert.ok(new X509Certificate(s.cert).verify(new X509Certificate(ca.cert).publicKey));
  });

  it('renews before expiry or when a name is missing', () => {
    const ca = createCA('ca', now, 3650);
    const s = createServingCert(ca, ['a'], now, 365);
    assert.equal(needsRenewal(s.cert, now, 30, ['a']), false);
    assert.equal(needsRenewal(s.cert, new Date(now.getTime() + 340 * 86_400_000), 30, ['a']), true);
    assert.equal(needsRenewal(s.cert, now, 30, ['a', 'b']), true);
    assert.equal(needsRenewal(undefined, now, 30), true);
    assert.equal(needsRenewal('garbage', now, 30), true);
  });
});
