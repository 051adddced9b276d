/**
 * The operator against a real kube-apiserver (e2e/harness/control-plane.ts):
 * the CRD's schema and validation, and the operator as a process —
 * registering its webhook, mutating real pod creations, status, events,
 * leader election, and pods still admitted while it is down.
 */
import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { startControlPlane, type ControlPlane } from '../../e2e/harness/control-plane';
import { freePort, httpOk, ManagedProcess, removeDir, tempDir } from '../../e2e/harness/processes';
import { REPO_ROOT } from '../../e2e/harness/toolchain';
import { createServingCert, inspect } from '../src/certs/x509';
import { kubeFromEnvironment } from '../src/kube/client';
import { NOT_THE_CHECK } from '../src/webhook/admission-check';
import { OPERATOR_NODE_FLAGS } from '../bench/loopback-operator';

const OPERATOR = path.join(REPO_ROOT, 'operator/dist/operator.js');
const OPERATOR_NS = 'span-profiling';
const WEBHOOK_CONFIG = 'span-profiling-operator';

interface Pod {
  metadata: { name: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec: { initContainers?: { name: string; image: string }[]; containers: { name: string; env?: { name: string; value?: string }[] }[]; volumes?: { name: string }[] };
}
interface SpanProfilingObject {
  status?: { observedGeneration?: number; injectedPods?: number; outdatedPods?: number; missedPods?: number; conditions?: { type: string; status: string; reason: string; message: string }[] };
}

const until = async <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
};

const spanProfiling = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: 'spanprofiling.io/v1alpha1',
  kind: 'SpanProfiling',
  metadata: { name },
  spec: { pyroscope: { address: 'http://pyroscope.obs:4040' }, tracing: { otlp: { endpoint: 'http://jaeger.obs:4318' } }, ...spec },
});

describe('operator against a real kube-apiserver', function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  const logDir = tempDir('operator');
  const operators: ManagedProcess[] = [];
  let webhookPort = 0;

  const apply = async (obj: unknown, namespace?: string): Promise<{ code: number; stdout: string; stderr: string }> =>
    cp.kubectlResult(['apply', ...(namespace ? ['-n', namespace] : []), '-f', '-'], JSON.stringify(obj));

  const startOperator = async (identity: string, port: number): Promise<{ process: ManagedProcess; probePort: number }> => {
    const probePort = await freePort();
    const p = new ManagedProcess(identity, process.execPath, [...OPERATOR_NODE_FLAGS, OPERATOR], {
      logDir,
      env: {
        PATH: process.env['PATH'],
        KUBECONFIG: cp.kubeconfig,
        OPERATOR_NAMESPACE: OPERATOR_NS,
        POD_NAME: identity,
        AGENT_IMAGE: 'span-profiling-agent:test',
        WEBHOOK_PORT: String(port),
        PROBE_PORT: String(probePort),
        WEBHOOK_CONFIG_NAME: WEBHOOK_CONFIG,
        WEBHOOK_EXTRA_SANS: '127.0.0.1',
        LEASE_NAME: 'span-profiling-operator-leader',
        LOG_LEVEL: 'debug',
      },
    });
    operators.push(p);
    await p.waitUntil('ready', () => httpOk(`http://127.0.0.1:${probePort}/readyz`), 60_000);
    return { process: p, probePort };
  };

  const createPod = async (namespace: string, name: string, annotations: Record<string, string> = {}): Promise<Pod> => {
    const res = await cp.api<Pod>('POST', `/api/v1/namespaces/${namespace}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, annotations, labels: { app: 'web' } },
      spec: { containers: [{ name: 'app', image: 'node:24', env: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=256' }] }] },
    });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body;
  };

  const getSp = async (namespace: string, name: string): Promise<SpanProfilingObject> =>
    (await cp.api<SpanProfilingObject>('GET', `/apis/spanprofiling.io/v1alpha1/namespaces/${namespace}/spanprofilings/${name}`)).body;
  const condition = (sp: SpanProfilingObject, type: string) => sp.status?.conditions?.find((c) => c.type === type);

  before(async () => {
    assert.ok(existsSync(OPERATOR), `${OPERATOR} is missing: run npm run build`);
    cp = await startControlPlane();
    const crd = await cp.kubectlResult(['apply', '-f', path.join(REPO_ROOT, 'crds')]);
    assert.equal(crd.code, 0, crd.stderr);
    await cp.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/spanprofilings.spanprofiling.io');
    for (const ns of [OPERATOR_NS, 'shop', 'other', 'creds']) await cp.kubectl('create', 'namespace', ns);
    await cp.kubectl('annotate', 'namespace', 'shop', 'spanprofiling.io/inject=true');
    await cp.kubectl('annotate', 'namespace', 'creds', 'spanprofiling.io/inject=true');
    webhookPort = await freePort();
    const webhook = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: WEBHOOK_CONFIG },
      webhooks: [
        {
          name: 'pods.spanprofiling.io',
          admissionReviewVersions: ['v1'],
          sideEffects: 'NoneOnDryRun',
          failurePolicy: 'Ignore',
          timeoutSeconds: 5,
          reinvocationPolicy: 'IfNeeded',
          clientConfig: { url: `https://127.0.0.1:${webhookPort}/mutate-v1-pod` },
          rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
          matchConditions: [{ name: 'not-the-admission-check', expression: NOT_THE_CHECK }],
          namespaceSelector: {
            matchLabels: { 'spanprofiling.io/injection': 'enabled' },
            matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', OPERATOR_NS] }],
          },
        },
      ],
    };
    const r = await apply(webhook);
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    for (const p of operators) await p.stop();
    await cp?.stop();
    if (process.env["SPANPROF_KEEP_LOGS"] === undefined) removeDir(logDir);
  });

  describe('the SpanProfiling CRD', () => {
    it('teaches with kubectl explain', async () => {
      // The API server publishes a new CRD's OpenAPI a moment after it is Established.
      const out = await until('kubectl explain', async () => {
        const r = await cp.kubectlResult(['explain', 'spanprofiling.spec.pyroscope']);
        return r.code === 0 ? r.stdout : undefined;
      });
      assert.match(out, /The Grafana Pyroscope server that receives the profiles/);
      assert.match(out, /authTokenSecretRef/);
      assert.match((await cp.kubectl('explain', 'sprof.spec.tracing.sampler')).stdout, /Which traces are kept/);
      const rollout = (await cp.kubectl('explain', 'sprof.spec.rollout')).stdout;
      assert.match(rollout, /out of date/);
      assert.match(rollout, /maxRestartsPerHour/);
      assert.match((await cp.kubectl('explain', 'sprof.spec.rollout.policy')).stdout, /spanprofiling.io\/rollout=now/);
      assert.match((await cp.kubectl('explain', 'sprof.status.missedPods')).stdout, /run without the agent/);
    });

    it('fills in defaults', async () => {
      const r = await apply(spanProfiling('defaults'), 'other');
      assert.equal(r.code, 0, r.stderr);
      const got = (await cp.api<{ spec: { pyroscope: { uploadInterval: string }; profiling: { sampleRateHz: number; enabled: boolean }; tracing: { propagators: string[]; otlp: { protocol: string } }; agent: { volumeSizeLimit: string } } }>('GET', '/apis/spanprofiling.io/v1alpha1/namespaces/other/spanprofilings/defaults')).body;
      assert.equal(got.spec.pyroscope.uploadInterval, '15s');
      assert.equal(got.spec.profiling.sampleRateHz, 100);
      assert.equal(got.spec.profiling.enabled, true);
      assert.deepEqual(got.spec.tracing.propagators, ['tracecontext', 'baggage']);
      assert.equal(got.spec.tracing.otlp.protocol, 'http/protobuf');
      assert.equal(got.spec.agent.volumeSizeLimit, '64Mi');
      await cp.kubectl('delete', '-n', 'other', 'spanprofiling', 'defaults');
    });

    it("accepts tracing.mode app without an OTLP endpoint (the app's SDK exports), and defaults the mode to auto", async () => {
      const base = spanProfiling('app-mode');
      const r = await apply({ ...base, spec: { ...base.spec, tracing: { mode: 'app' } } }, 'other');
      assert.equal(r.code, 0, r.stderr);
      const d = await apply(spanProfiling('auto-mode'), 'other');
      assert.equal(d.code, 0, d.stderr);
      const got = (await cp.api<{ spec: { tracing: { mode: string } } }>('GET', '/apis/spanprofiling.io/v1alpha1/namespaces/other/spanprofilings/auto-mode')).body;
      assert.equal(got.spec.tracing.mode, 'auto');
      await cp.kubectl('delete', '-n', 'other', 'spanprofiling', 'app-mode', 'auto-mode');
    });

    it('accepts resources, a security context and env written as in a pod', async () => {
      const base = spanProfiling('pod-like');
      const r = await apply(
        {
          ...base,
          spec: {
            ...base.spec,
            agent: {
              resources: { requests: { cpu: '10m', memory: 33554432 }, limits: { cpu: 1, memory: '64Mi' } },
              securityContext: { runAsUser: 1000, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } },
            },
            env: [
              { name: 'A', value: 'x' },
              { name: 'B', valueFrom: { secretKeyRef: { name: 's', key: 'k', optional: true } } },
              { name: 'C', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
            ],
          },
        },
        'other',
      );
      assert.equal(r.code, 0, r.stderr);
      await cp.kubectl('delete', '-n', 'other', 'spanprofiling', 'pod-like');
    });

    const invalid: [string, Record<string, unknown>, RegExp][] = [
      ['no Pyroscope address', { pyroscope: {} }, /spec.pyroscope.address: Required value/],
      ['an address that is not a URL', { pyroscope: { address: 'pyroscope:4040' } }, /spec.pyroscope.address: Invalid value: "pyroscope:4040"/],
      ['both a token and basic auth', { pyroscope: { address: 'http://p:4040', authTokenSecretRef: { name: 's', key: 'k' }, basicAuth: { username: 'u', passwordSecretRef: { name: 's', key: 'p' } } } }, /set either pyroscope.authTokenSecretRef or pyroscope.basicAuth, not both/],
      ['a ratio sampler without its ratio', { tracing: { otlp: { endpoint: 'http://c:4318' }, sampler: { type: 'traceidratio' } } }, /sampler.argument \(a ratio between 0 and 1\) is required/],
      ['a ratio above 1', { tracing: { otlp: { endpoint: 'http://c:4318' }, sampler: { type: 'traceidratio', argument: '1.5' } } }, /spec.tracing.sampler.argument: Invalid value: "1.5"/],
      ['tracing on without an endpoint', { tracing: { enabled: true } }, /tracing.otlp.endpoint is required while tracing is enabled/],
      ['NODE_OPTIONS in env', { env: [{ name: 'NODE_OPTIONS', value: '--inspect' }] }, /NODE_OPTIONS is managed by the operator/],
      ['a label name Pyroscope rejects', { pyroscope: { address: 'http://p:4040', labels: { 'Team Name': 'x' } } }, /label names must match \[a-z_\]\[a-z0-9_\]\*/],
      ['a sample rate of 0', { profiling: { sampleRateHz: 0 } }, /spec.profiling.sampleRateHz: Invalid value: 0: spec.profiling.sampleRateHz in body should be greater than or equal to 1/],
      ['an unknown OTLP protocol', { tracing: { otlp: { endpoint: 'http://c:4318', protocol: 'thrift' } } }, /spec.tracing.otlp.protocol: Unsupported value: "thrift"/],
      // Each of these was accepted once, and then made the API server reject every pod the webhook returned.
      ['a memory limit that is not a quantity', { agent: { resources: { limits: { memory: '64MB' } } } }, /spec.agent.resources.limits.memory: Invalid value: "64MB"/],
      ['a CPU request above its limit', { agent: { resources: { requests: { cpu: '2' }, limits: { cpu: '500m' } } } }, /each resource request \(cpu, memory, ephemeral-storage\) must not be above its limit/],
      ['a runAsUser that is not a number', { agent: { securityContext: { runAsUser: 'abc' } } }, /spec.agent.securityContext.runAsUser: Invalid value: "string"/],
      ['an env entry with both value and valueFrom', { env: [{ name: 'A', value: 'x', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }] }, /an env entry takes value or valueFrom, not both/],
      ['a valueFrom with two sources', { env: [{ name: 'A', valueFrom: { fieldRef: { fieldPath: 'metadata.name' }, secretKeyRef: { name: 's', key: 'k' } } }] }, /valueFrom takes exactly one of/],
      ['a secretKeyRef without a key', { env: [{ name: 'A', valueFrom: { secretKeyRef: { name: 's' } } }] }, /spec.env\[0\].valueFrom.secretKeyRef.key: Required value/],
      ['a security context field that does not exist', { agent: { securityContext: { runAsUsr: 1000 } } }, /unknown field "spec.agent.securityContext.runAsUsr"/],
      ['a Localhost seccomp profile without its file', { agent: { securityContext: { seccompProfile: { type: 'Localhost' } } } }, /localhostProfile is set exactly when the type is Localhost/],
      ['a resource the init container cannot take', { agent: { resources: { limits: { 'nvidia.com/gpu': 1 } } } }, /takes cpu, memory and ephemeral-storage only/],
      ['a fieldRef the downward API does not give env', { env: [{ name: 'A', valueFrom: { fieldRef: { fieldPath: 'spec.containers' } } }] }, /spec.env\[0\].valueFrom.fieldRef.fieldPath: Invalid value: "spec.containers"/],
      ['a resourceFieldRef to an unknown resource', { env: [{ name: 'A', valueFrom: { resourceFieldRef: { resource: 'limits.gpu' } } }] }, /spec.env\[0\].valueFrom.resourceFieldRef.resource: Unsupported value: "limits.gpu"/],
      ['a token Secret name with capitals', { pyroscope: { address: 'http://p:4040', authTokenSecretRef: { name: 'My Secret', key: 'token' } } }, /spec.pyroscope.authTokenSecretRef.name: Invalid value: "My Secret"/],
      ['a Secret key with a space', { env: [{ name: 'A', valueFrom: { secretKeyRef: { name: 's', key: 'a b' } } }] }, /spec.env\[0\].valueFrom.secretKeyRef.key: Invalid value: "a b"/],
      ['an agent image with a space', { agent: { image: 'registry/agent :1' } }, /spec.agent.image: Invalid value/],
      ['an unknown tracing mode', { tracing: { mode: 'both', otlp: { endpoint: 'http://c:4318' } } }, /spec.tracing.mode: Unsupported value: "both"/],
      ['an upload interval without a unit', { pyroscope: { address: 'http://p:4040', uploadInterval: '15' } }, /spec.pyroscope.uploadInterval: Invalid value: "15"/],
    ];
    for (const [what, spec, message] of invalid) {
      it(`rejects ${what}, saying so`, async () => {
        const base = spanProfiling('invalid');
        const r = await apply({ ...base, spec: { ...base.spec, ...spec } }, 'other');
        assert.notEqual(r.code, 0, 'rejected');
        assert.match(r.stderr, message);
      });
    }
  });

  describe('the operator process', () => {
    let first: { process: ManagedProcess; probePort: number };

    before(async () => {
      const r = await apply(spanProfiling('default'), 'shop');
      assert.equal(r.code, 0, r.stderr);
      first = await startOperator('op-1', webhookPort);
    });

    it('registers its webhook: a CA bundle in the configuration and a serving certificate in a Secret', async () => {
      const bundle = await until('caBundle', async () => {
        const cfg = await cp.api<{ webhooks: { clientConfig: { caBundle?: string } }[] }>('GET', `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${WEBHOOK_CONFIG}`);
        return cfg.body.webhooks[0]?.clientConfig.caBundle;
      });
      assert.match(Buffer.from(bundle, 'base64').toString(), /BEGIN CERTIFICATE/);
      const secret = await cp.api<{ type: string; data: Record<string, string> }>('GET', `/api/v1/namespaces/${OPERATOR_NS}/secrets/span-profiling-operator-webhook-tls`);
      assert.equal(secret.body.type, 'kubernetes.io/tls');
      assert.ok(secret.body.data['tls.crt'] && secret.body.data['tls.key']);
    });

    it('keeps non-ASCII annotations of the Lease it renews (written back whole) intact, and reads them whole', async () => {
      // 40 kB of two-byte characters: the response crosses TLS records and chunks, some inside a character.
      const street = `Zürich-Straße ${'ü'.repeat(20_000)}`;
      const path = `/apis/coordination.k8s.io/v1/namespaces/${OPERATOR_NS}/leases/span-profiling-operator-leader`;
      type Lease = { metadata: { annotations?: Record<string, string> }; spec: { renewTime?: string } };
      const patched = await cp.api<Lease>('PATCH', path, { metadata: { annotations: { street } } }, 'application/merge-patch+json');
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
      const renewed = patched.body.spec.renewTime;
      await until('two renewals', async () => {
        const l = (await cp.api<Lease>('GET', path)).body;
        return l.spec.renewTime !== renewed && l.spec.renewTime !== undefined && Date.parse(l.spec.renewTime) > Date.parse(renewed ?? '0') + 2500;
      });
      assert.equal((await cp.api<Lease>('GET', path)).body.metadata.annotations?.['street'], street);
      const kube = await kubeFromEnvironment(cp.kubeconfig);
      assert.equal((await kube.request<Lease>('GET', path)).metadata.annotations?.['street'], street);
    });

    it('labels opted-in namespaces for the webhook, and only them', async () => {
      await until('shop labelled', async () => (await cp.api<{ metadata: { labels?: Record<string, string> } }>('GET', '/api/v1/namespaces/shop')).body.metadata.labels?.['spanprofiling.io/injection'] === 'enabled');
      const other = (await cp.api<{ metadata: { labels?: Record<string, string> } }>('GET', '/api/v1/namespaces/other')).body;
      assert.equal(other.metadata.labels?.['spanprofiling.io/injection'], undefined);
      const own = (await cp.api<{ metadata: { labels?: Record<string, string> } }>('GET', `/api/v1/namespaces/${OPERATOR_NS}`)).body;
      assert.equal(own.metadata.labels?.['spanprofiling.io/injection'], undefined);
    });

    it('injects a pod created in an opted-in namespace', async () => {
      const pod = await until('an injected pod', async () => {
        const p = await createPod('shop', `web-${Date.now()}`);
        return p.metadata.annotations?.['spanprofiling.io/status'] === 'injected' ? p : (await cp.api('DELETE', `/api/v1/namespaces/shop/pods/${p.metadata.name}`), undefined);
      });
      assert.equal(pod.spec.initContainers?.[0]?.name, 'spanprofiling-agent');
      assert.equal(pod.spec.initContainers?.[0]?.image, 'span-profiling-agent:test');
      assert.ok(pod.spec.volumes?.some((v) => v.name === 'spanprofiling-agent'));
      const env = pod.spec.containers[0]!.env!;
      assert.equal(env.find((e) => e.name === 'NODE_OPTIONS')?.value, '--max-old-space-size=256 --require /spanprofiling/register.js');
      assert.equal(env.find((e) => e.name === 'PYROSCOPE_SERVER_ADDRESS')?.value, 'http://pyroscope.obs:4040');
      assert.equal(pod.metadata.labels?.['spanprofiling.io/injected'], 'true');
    });

    it('leaves pods of other namespaces untouched (the webhook never sees them)', async () => {
      const pod = await createPod('other', 'web');
      assert.equal(pod.spec.initContainers, undefined);
      assert.equal(pod.metadata.annotations?.['spanprofiling.io/status'], undefined);
    });

    it('leaves a pod annotated "false" untouched, recording why', async () => {
      const pod = await createPod('shop', 'opted-out', { 'spanprofiling.io/inject': 'false' });
      assert.equal(pod.spec.initContainers, undefined);
      assert.equal(pod.spec.containers[0]!.env!.length, 1);
      assert.equal(pod.metadata.annotations?.['spanprofiling.io/status'], 'skipped');
      assert.match(pod.metadata.annotations?.['spanprofiling.io/reason'] ?? '', /inject=false on the pod/);
    });

    it('reports Ready with the injected pod count and observedGeneration', async () => {
      const sp = await until('status', async () => {
        const s = await getSp('shop', 'default');
        return condition(s, 'Ready')?.status === 'True' && (s.status?.injectedPods ?? 0) >= 1 ? s : undefined;
      });
      assert.equal(sp.status?.observedGeneration, 1);
      const out = (await cp.kubectl('get', '-n', 'shop', 'sprof')).stdout;
      assert.match(out, /NAME\s+READY\s+PYROSCOPE\s+INJECTED\s+OUTDATED\s+MISSED\s+AGE/);
      assert.match(out, /default\s+True\s+http:\/\/pyroscope.obs:4040\s+1\s+0\s+0\s/);
    });

    it("counts new pods from its pod watch, without listing a namespace's pods at each status write", async () => {
      /** The API server's own count of LIST requests for pods in one namespace, from anyone. */
      const namespacedPodLists = async (): Promise<number> => {
        const metrics = (await cp.kubectl('get', '--raw', '/metrics')).stdout;
        let n = 0;
        for (const line of metrics.split('\n')) {
          if (line.startsWith('apiserver_request_total{') && line.includes('resource="pods"') && line.includes('scope="namespace"') && line.includes('verb="LIST"') && line.includes('subresource=""')) n += Number(line.slice(line.lastIndexOf(' ') + 1));
        }
        return n;
      };
      const before = (await getSp('shop', 'default')).status?.injectedPods ?? 0;
      const lists = await namespacedPodLists();
      for (let i = 0; i < 4; i++) await createPod('shop', `counted-${i}`);
      await until('the status counts them', async () => ((await getSp('shop', 'default')).status?.injectedPods ?? 0) >= before + 4);
      assert.equal(await namespacedPodLists(), lists);
    });

    it('reports a missing credentials Secret in its conditions and an event, and recovers when it appears', async () => {
      const r = await apply(spanProfiling('secured', { pyroscope: { address: 'https://p:4040', authTokenSecretRef: { name: 'pyroscope-token', key: 'token' } } }), 'creds');
      assert.equal(r.code, 0, r.stderr);
      const sp = await until('CredentialsMissing', async () => {
        const s = await getSp('creds', 'secured');
        return condition(s, 'CredentialsMissing')?.status === 'True' ? s : undefined;
      });
      assert.match(condition(sp, 'CredentialsMissing')!.message, /Secret creds\/pyroscope-token not found/);
      assert.equal(condition(sp, 'Ready')?.status, 'False');
      const events = await until('a warning event', async () => {
        const out = (await cp.kubectl('get', 'events', '-n', 'creds', '-o', 'json')).stdout;
        const items = (JSON.parse(out) as { items: { type: string; reason: string; involvedObject: { name: string } }[] }).items;
        return items.find((e) => e.involvedObject.name === 'secured' && e.type === 'Warning');
      });
      assert.equal(events.reason, 'CredentialsMissing');
      await cp.kubectl('create', 'secret', 'generic', '-n', 'creds', 'pyroscope-token', '--from-literal=token=t');
      await until('Ready again', async () => condition(await getSp('creds', 'secured'), 'Ready')?.status === 'True', 90_000);
    });

    it("checks credentials where the pods read them: a pod in another namespace makes the SpanProfiling report that namespace's Secret, with an Event", async () => {
      // creds/secured has its token Secret in creds (the test above); billing uses it by name but has no copy.
      await cp.kubectl('create', 'namespace', 'billing');
      await cp.kubectl('annotate', 'namespace', 'billing', 'spanprofiling.io/inject=creds/secured');
      const pod = await until('an injected pod in billing', async () => {
        const p = await createPod('billing', `invoice-${Date.now()}`);
        return p.metadata.annotations?.['spanprofiling.io/status'] === 'injected' ? p : (await cp.api('DELETE', `/api/v1/namespaces/billing/pods/${p.metadata.name}`), undefined);
      }, 60_000);
      assert.match(pod.metadata.annotations!['spanprofiling.io/reason']!, /read from Secret pyroscope-token in the pod's namespace billing, not creds/);
      const sp = await until('CredentialsMissing for billing', async () => {
        const s = await getSp('creds', 'secured');
        return condition(s, 'CredentialsMissing')?.status === 'True' ? s : undefined;
      });
      assert.match(condition(sp, 'CredentialsMissing')!.message, /Secret billing\/pyroscope-token not found \(1 pod of this SpanProfiling runs? in billing/);
      assert.equal(condition(sp, 'Ready')?.status, 'False');
      const warning = await until('a PodWarning event', async () => {
        const out = (await cp.kubectl('get', 'events', '-n', 'creds', '-o', 'json')).stdout;
        const items = (JSON.parse(out) as { items: { type: string; reason: string; message: string; involvedObject: { name: string; kind: string } }[] }).items;
        return items.find((e) => e.involvedObject.name === 'secured' && e.involvedObject.kind === 'SpanProfiling' && e.reason === 'PodWarning');
      });
      assert.equal(warning.type, 'Warning');
      assert.match(warning.message, /in namespace billing \(injected\): .*read from Secret pyroscope-token in the pod's namespace billing/);
      await cp.kubectl('create', 'secret', 'generic', '-n', 'billing', 'pyroscope-token', '--from-literal=token=t');
      await until('Ready again', async () => condition(await getSp('creds', 'secured'), 'Ready')?.status === 'True', 90_000);
    });

    it('exposes Prometheus metrics of its mutations', async () => {
      const text = await (await fetch(`http://127.0.0.1:${first.probePort}/metrics`)).text();
      assert.match(text, /spanprofiling_webhook_mutations_total\{reason="injected",status="injected"\} [1-9]/);
      assert.match(text, /spanprofiling_leader 1/);
    });

    it('runs as two replicas: both serve the webhook, one leads, the other takes over', async () => {
      const secondPort = await freePort();
      const second = await startOperator('op-2', secondPort);
      const lease = async () => (await cp.api<{ spec: { holderIdentity?: string } }>('GET', `/apis/coordination.k8s.io/v1/namespaces/${OPERATOR_NS}/leases/span-profiling-operator-leader`)).body.spec.holderIdentity;
      assert.equal(await lease(), 'op-1');
      assert.match(await (await fetch(`http://127.0.0.1:${second.probePort}/metrics`)).text(), /spanprofiling_leader 0/);
      // The follower serves the webhook too, with the certificate the leader made.
      const secret = await cp.api<{ data: Record<string, string> }>('GET', `/api/v1/namespaces/${OPERATOR_NS}/secrets/span-profiling-operator-webhook-tls`);
      const review = await new Promise<{ response: { allowed: boolean; patchType?: string } }>((resolve, reject) => {
        const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u1', kind: { kind: 'Pod' }, operation: 'CREATE', namespace: 'shop', object: { metadata: { name: 'x' }, spec: { containers: [{ name: 'app', image: 'node' }] } } } });
        const req = https.request({ host: '127.0.0.1', port: secondPort, path: '/mutate-v1-pod', method: 'POST', ca: Buffer.from(secret.body.data['ca.crt']!, 'base64'), headers: { 'content-type': 'application/json' } }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve(JSON.parse(text)));
        });
        req.on('error', reject);
        req.end(body);
      });
      assert.equal(review.response.allowed, true);
      assert.equal(review.response.patchType, 'JSONPatch');
      await first.process.stop();
      await until('op-2 leads', async () => (await lease()) === 'op-2', 30_000);
      const pod = await createPod('shop', 'after-failover');
      assert.equal(pod.metadata.annotations?.['spanprofiling.io/status'], undefined, 'the webhook config still points at op-1, which is gone');
      await second.process.stop();
    });

    it('still admits pods with the operator down, and gives them a reason when it is back', async () => {
      const started = Date.now();
      const pod = await createPod('shop', 'while-down');
      assert.ok(Date.now() - started < 15_000);
      assert.equal(pod.spec.initContainers, undefined);
      await startOperator('op-3', webhookPort);
      const annotated = await until('a reason on the unseen pod', async () => {
        const p = (await cp.api<Pod>('GET', '/api/v1/namespaces/shop/pods/while-down')).body;
        return p.metadata.annotations?.['spanprofiling.io/status'] === 'skipped' ? p : undefined;
      });
      assert.match(annotated.metadata.annotations!['spanprofiling.io/reason']!, /webhook could not see it/);
      const sp = await until('the unseen pod counted as missed', async () => {
        const s = await getSp('shop', 'default');
        return (s.status?.missedPods ?? 0) >= 1 ? s : undefined;
      });
      assert.equal(condition(sp, 'PodsOutOfDate')?.status, 'True');
      assert.match(condition(sp, 'Ready')?.message ?? '', /\d+ pods? that opt in runs? without the agent: restart their workloads .*spanprofiling.io\/rollout=now/);
      await cp.api('DELETE', '/api/v1/namespaces/shop/pods/while-down');
    });

    it('renews a serving certificate that is about to expire, keeping the CA, and serves the new one', async () => {
      for (const p of operators) await p.stop();
      const path = `/api/v1/namespaces/${OPERATOR_NS}/secrets/span-profiling-operator-webhook-tls`;
      const secret = (await cp.api<{ metadata: Record<string, unknown>; data: Record<string, string> }>('GET', path)).body;
      const ca = { cert: Buffer.from(secret.data['ca.crt']!, 'base64').toString(), key: Buffer.from(secret.data['ca.key']!, 'base64').toString() };
      // Issued long ago: ten days of validity left, inside the 30-day renewal window.
      const expiring = createServingCert(ca, ['127.0.0.1'], new Date(Date.now() - 355 * 86_400_000), 365);
      const put = await cp.api('PUT', path, { ...secret, data: { ...secret.data, 'tls.crt': Buffer.from(expiring.cert).toString('base64'), 'tls.key': Buffer.from(expiring.key).toString('base64') } });
      assert.equal(put.status, 200, JSON.stringify(put.body));

      await startOperator('op-4', webhookPort);
      const renewed = await until('a renewed certificate', async () => {
        const now = (await cp.api<{ data: Record<string, string> }>('GET', path)).body.data;
        return now['tls.crt'] !== Buffer.from(expiring.cert).toString('base64') ? now : undefined;
      });
      assert.equal(renewed['ca.crt'], secret.data['ca.crt'], 'the CA is kept, so the caBundle stays valid');
      const notAfter = inspect(Buffer.from(renewed['tls.crt']!, 'base64').toString()).notAfter.getTime();
      assert.ok(notAfter > Date.now() + 300 * 86_400_000, 'valid for about a year again');
      const served = await new Promise<string>((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port: webhookPort, path: '/healthz', ca: ca.cert, agent: false }, (res) => {
          resolve((res.socket as import('node:tls').TLSSocket).getPeerCertificate().valid_to);
          res.resume();
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(new Date(served).getTime() > Date.now() + 300 * 86_400_000, true, `serving the renewed certificate (valid to ${served})`);
    });
  });

  describe('drift and rollout (spec.rollout), with workloads as the API server stores them', () => {
    // No controller manager runs here: the test plays the Deployment controller (it creates the
    // ReplicaSet and pods, and writes the Deployment's status), so each step is the test's to make.
    const NS = 'roll';
    const deploymentPath = `/apis/apps/v1/namespaces/${NS}/deployments/web`;
    type Deployment = { metadata: { uid: string; generation: number }; spec: { template: { metadata?: { annotations?: Record<string, string> } } } };
    type EventList = { items: { reason: string; message: string; involvedObject: { kind: string; name: string } }[] };
    let rsUid = '';
    let pods = 0;
    let operator: { probePort: number };
    const restartedAt = async (): Promise<string | undefined> => (await cp.api<Deployment>('GET', deploymentPath)).body.spec.template.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt'];
    /** Writes the Deployment's status as its controller would once every pod is new and available. */
    const settle = async (): Promise<void> => {
      const d = (await cp.api<Deployment>('GET', deploymentPath)).body;
      const r = await cp.api('PUT', `${deploymentPath}/status`, { ...d, status: { observedGeneration: d.metadata.generation, replicas: 1, updatedReplicas: 1, readyReplicas: 1, availableReplicas: 1 } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    };
    /** A pod of the Deployment's ReplicaSet, as its controller would create it from the current template (the webhook sees it if it can). */
    const createOwnedPod = async (): Promise<Pod> => {
      const annotations = (await cp.api<Deployment>('GET', deploymentPath)).body.spec.template.metadata?.annotations ?? {};
      const res = await cp.api<Pod>('POST', `/api/v1/namespaces/${NS}/pods`, {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `web-5d8f-${++pods}`, labels: { app: 'web' }, annotations, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f', uid: rsUid, controller: true }] },
        spec: { containers: [{ name: 'app', image: 'node:24' }] },
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body;
    };
    const counts = async (): Promise<string> => {
      const st = (await getSp(NS, 'default')).status as { injectedPods?: number; outdatedPods?: number; missedPods?: number } | undefined;
      return `${st?.injectedPods ?? '-'} injected, ${st?.outdatedPods ?? '-'} outdated, ${st?.missedPods ?? '-'} missed`;
    };
    const events = async (): Promise<EventList['items']> => (await cp.api<EventList>('GET', `/api/v1/namespaces/${NS}/events`)).body.items;

    before(async () => {
      for (const p of operators) await p.stop();
      await cp.kubectl('create', 'namespace', NS);
      const deployment = await cp.api<Deployment>('POST', `/apis/apps/v1/namespaces/${NS}/deployments`, {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web' },
        spec: { replicas: 1, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'node:24' }] } } },
      });
      assert.equal(deployment.status, 201, JSON.stringify(deployment.body));
      const rs = await cp.api<{ metadata: { uid: string } }>('POST', `/apis/apps/v1/namespaces/${NS}/replicasets`, {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: { name: 'web-5d8f', labels: { app: 'web' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: deployment.body.metadata.uid, controller: true }] },
        spec: { replicas: 1, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'node:24' }] } } },
      });
      assert.equal(rs.status, 201, JSON.stringify(rs.body));
      rsUid = rs.body.metadata.uid;
      await settle();
      // Started while no operator runs: the webhook never sees them.
      await createOwnedPod();
      await cp.api('POST', `/api/v1/namespaces/${NS}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'bare', labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'node:24' }] } });
      await cp.kubectl('annotate', 'namespace', NS, 'spanprofiling.io/inject=true');
      assert.equal((await apply(spanProfiling('default', { rollout: { policy: 'Manual', pauseSeconds: 0 } }), NS)).code, 0);
      operator = await startOperator('op-5', webhookPort);
    });

    it('counts the pods that started without the agent as missed, and restarts nothing under Manual', async () => {
      await until('2 missed pods', async () => ((await counts()) === '0 injected, 0 outdated, 2 missed' ? true : undefined));
      const sp = await getSp(NS, 'default');
      assert.equal(condition(sp, 'PodsOutOfDate')?.reason, 'PodsMissed');
      assert.match((sp.status as { rollout?: { message?: string } }).rollout?.message ?? '', /^Manual: 2 out-of-date or missed pods wait/);
      assert.equal(await restartedAt(), undefined);
      const out = (await cp.kubectl('get', '-n', NS, 'sprof', '-o', 'wide')).stdout;
      assert.match(out, /default\s+True\s+\S+\s+0\s+0\s+2\s+0\s+Manual\s/);
    });

    it('restarts the Deployment once when annotated spanprofiling.io/rollout=now, never the bare pod, waits for the rollout, then ends the pass', async () => {
      await cp.kubectl('annotate', 'spanprofiling', '-n', NS, 'default', 'spanprofiling.io/rollout=now');
      const first = await until('the Deployment restarted', restartedAt);
      const restartEvent = await until('an Event on the Deployment', async () => (await events()).find((e) => e.involvedObject.kind === 'Deployment' && e.reason === 'SpanProfilingRestart'));
      assert.match(restartEvent.message, /SpanProfiling roll\/default/);
      await until('an Event on the SpanProfiling', async () => (await events()).find((e) => e.involvedObject.kind === 'SpanProfiling' && e.reason === 'WorkloadRestarted' && /Deployment roll\/web/.test(e.message)));
      // While the Deployment rolls out, the pass waits, with the annotation still on.
      const waiting = await until('the rollout waiting', async () => {
        const m = ((await getSp(NS, 'default')).status as { rollout?: { message?: string } }).rollout?.message ?? '';
        return /waiting for Deployment roll\/web to roll out/.test(m) ? m : undefined;
      });
      assert.ok(waiting);
      // The Deployment controller's part: replace the pod (now the webhook sees it), report the rollout done.
      await cp.api('DELETE', `/api/v1/namespaces/${NS}/pods/web-5d8f-1`);
      const replaced = await createOwnedPod();
      assert.equal(replaced.metadata.annotations?.['spanprofiling.io/status'], 'injected');
      assert.equal(replaced.metadata.annotations?.['spanprofiling.io/generation'], '1');
      assert.equal(replaced.metadata.annotations?.['spanprofiling.io/agent-image'], 'span-profiling-agent:test');
      await settle();
      await until('the pass done: the annotation removed', async () => {
        const sp = (await cp.api<{ metadata: { annotations?: Record<string, string> } }>('GET', `/apis/spanprofiling.io/v1alpha1/namespaces/${NS}/spanprofilings/default`)).body;
        return sp.metadata.annotations?.['spanprofiling.io/rollout'] === undefined ? sp : undefined;
      });
      const done = await until('an Event saying so', async () => (await events()).find((e) => e.involvedObject.kind === 'SpanProfiling' && e.reason === 'RolloutDone'));
      assert.match(done.message, /is done; not restarted: pod roll\/bare: a bare pod/);
      assert.equal(await restartedAt(), first, 'restarted once');
      await until('1 injected, 1 missed (the bare pod)', async () => ((await counts()) === '1 injected, 0 outdated, 1 missed' ? true : undefined));
      await cp.api('DELETE', `/api/v1/namespaces/${NS}/pods/bare`);
    });

    it('does not make pods outdated for a change of spec.rollout, and restarts their Deployment under Auto when a change affects them', async () => {
      const before = await restartedAt();
      const auto = await cp.api('PATCH', `/apis/spanprofiling.io/v1alpha1/namespaces/${NS}/spanprofilings/default`, { spec: { rollout: { policy: 'Auto', pauseSeconds: 0 } } }, 'application/merge-patch+json');
      assert.equal(auto.status, 200);
      await until('generation 2 observed', async () => ((await getSp(NS, 'default')).status?.observedGeneration === 2 ? true : undefined));
      assert.equal(await counts(), '1 injected, 0 outdated, 0 missed');
      assert.equal(await restartedAt(), before);

      const edit = await cp.api('PATCH', `/apis/spanprofiling.io/v1alpha1/namespaces/${NS}/spanprofilings/default`, { spec: { profiling: { sampleRateHz: 50 } } }, 'application/merge-patch+json');
      assert.equal(edit.status, 200);
      await until('the Deployment restarted again', async () => ((await restartedAt()) !== before ? true : undefined));
      assert.equal((await getSp(NS, 'default')).status?.observedGeneration, 3);
      assert.match(await counts(), /^1 injected, 1 outdated, 0 missed$/);
      await cp.api('DELETE', `/api/v1/namespaces/${NS}/pods/web-5d8f-2`);
      const replaced = await createOwnedPod();
      const env = replaced.spec.containers[0]!.env ?? [];
      assert.equal(env.find((e) => e.name === 'PYROSCOPE_WALL_SAMPLING_INTERVAL_MICROS')?.value, '20000', 'the new sample rate: 50 Hz');
      await settle();
      await until('up to date', async () => ((await counts()) === '1 injected, 0 outdated, 0 missed' ? true : undefined));
      assert.equal(condition(await getSp(NS, 'default'), 'PodsOutOfDate')?.status, 'False');
    });

    it('leaves a paused Deployment alone, saying so', async () => {
      const paused = await cp.api('PATCH', deploymentPath, { spec: { paused: true } }, 'application/merge-patch+json');
      assert.equal(paused.status, 200);
      await settle();
      const before = await restartedAt();
      const edit = await cp.api('PATCH', `/apis/spanprofiling.io/v1alpha1/namespaces/${NS}/spanprofilings/default`, { spec: { profiling: { sampleRateHz: 20 } } }, 'application/merge-patch+json');
      assert.equal(edit.status, 200);
      const message = await until('the rollout waiting on the paused Deployment', async () => {
        const m = ((await getSp(NS, 'default')).status as { rollout?: { message?: string } }).rollout?.message ?? '';
        return /Deployment roll\/web is paused/.test(m) ? m : undefined;
      });
      assert.match(message, /no workload can be restarted now/);
      assert.equal(await restartedAt(), before);
    });

    it("restarts a StatefulSet's pods the same way, past the paused Deployment", async () => {
      const stsPath = `/apis/apps/v1/namespaces/${NS}/statefulsets/db`;
      const sts = await cp.api<{ metadata: { uid: string; generation: number } }>('POST', `/apis/apps/v1/namespaces/${NS}/statefulsets`, {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name: 'db' },
        spec: { replicas: 1, serviceName: 'db', selector: { matchLabels: { app: 'db' } }, template: { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'app', image: 'node:24' }] } } },
      });
      assert.equal(sts.status, 201, JSON.stringify(sts.body));
      const settled = await cp.api('PUT', `${stsPath}/status`, { ...sts.body, status: { observedGeneration: sts.body.metadata.generation, replicas: 1, readyReplicas: 1, updatedReplicas: 1, currentRevision: 'db-1', updateRevision: 'db-1' } });
      assert.equal(settled.status, 200, JSON.stringify(settled.body));
      const pod = await cp.api<Pod>('POST', `/api/v1/namespaces/${NS}/pods`, {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'db-0', labels: { app: 'db' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: sts.body.metadata.uid, controller: true }] },
        spec: { containers: [{ name: 'app', image: 'node:24' }] },
      });
      assert.equal(pod.body.metadata.annotations?.['spanprofiling.io/status'], 'injected');
      const pausedAt = await restartedAt();
      const edit = await cp.api('PATCH', `/apis/spanprofiling.io/v1alpha1/namespaces/${NS}/spanprofilings/default`, { spec: { profiling: { sampleRateHz: 30 } } }, 'application/merge-patch+json');
      assert.equal(edit.status, 200);
      const at = await until('the StatefulSet restarted', async () => (await cp.api<Deployment>('GET', stsPath)).body.spec.template.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt']);
      assert.match(at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      await until('an Event on the StatefulSet', async () => (await events()).find((e) => e.involvedObject.kind === 'StatefulSet' && e.involvedObject.name === 'db' && e.reason === 'SpanProfilingRestart'));
      const metrics = await (await fetch(`http://127.0.0.1:${operator.probePort}/metrics`)).text();
      assert.match(metrics, /spanprofiling_rollout_restarts_total\{kind="Deployment",spanprofiling="roll\/default"\} 2/);
      assert.match(metrics, /spanprofiling_rollout_restarts_total\{kind="StatefulSet",spanprofiling="roll\/default"\} 1/);
      assert.match(metrics, /spanprofiling_pods\{spanprofiling="roll\/default",state="injected"\} 2/);
      assert.match(metrics, /spanprofiling_pods\{spanprofiling="roll\/default",state="missed"\} 0/);
      assert.equal(await restartedAt(), pausedAt, 'the paused Deployment keeps its restart time');
    });
  });

  describe('the API server as the oracle (dry-run pods, with and without the webhook)', () => {
    const PAIRS = Number(process.env['ORACLE_PAIRS'] ?? 10_000);
    const CONCURRENCY = 8;
    const SPECS: Record<string, Record<string, unknown>> = {
      'oracle-a': {},
      'oracle-b': {
        containerNames: ['api', 'worker'],
        agent: { resources: { requests: { cpu: '5m', memory: '8Mi' }, limits: { cpu: 1, memory: '128Mi' } }, securityContext: { runAsUser: 1000, runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } } },
        env: [{ name: 'TEAM', value: 'shop' }, { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'tok', key: 't', optional: true } } }],
      },
      'oracle-c': { tracing: { mode: 'app' }, resourceAttributes: { 'deployment.environment': 'prod' }, profiling: { heap: { enabled: true } } },
    };
    const NAMESPACES = Object.keys(SPECS);

    before(async () => {
      for (const ns of ['oracle-plain', ...NAMESPACES]) await cp.kubectl('create', 'namespace', ns);
      for (const ns of NAMESPACES) {
        await cp.kubectl('annotate', 'namespace', ns, 'spanprofiling.io/inject=true');
        const r = await apply(spanProfiling('default', SPECS[ns]), ns);
        assert.equal(r.code, 0, r.stderr);
      }
      for (const ns of NAMESPACES) {
        await until(`namespace ${ns} labelled for the webhook`, async () => {
          const got = (await cp.api<{ metadata: { labels?: Record<string, string> } }>('GET', `/api/v1/namespaces/${ns}`)).body;
          return got.metadata.labels?.['spanprofiling.io/injection'] === 'enabled';
        });
      }
    });

    it(`admits every pod with the webhook that it admits without, loses nothing the user set, and mutates once (${PAIRS} pairs)`, async function () {
      this.timeout(900_000);
      const { default: fc } = await import('fast-check');
      const env = fc.oneof(
        fc.record({ name: fc.constantFrom('NODE_OPTIONS', 'OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'PYROSCOPE_LABELS', 'PORT', 'Zürich'), value: fc.string({ maxLength: 24 }) }),
        fc.record({ name: fc.constantFrom('NODE_OPTIONS', 'SECRET', 'OTEL_RESOURCE_ATTRIBUTES'), valueFrom: fc.constantFrom({ secretKeyRef: { name: 's', key: 'k' } }, { fieldRef: { fieldPath: 'metadata.name' } }) }),
      );
      const name = fc.constantFrom('app', 'api', 'worker', 'sidecar', 'spanprofiling-agent-x', 'a'.repeat(63), 'web');
      const container = fc.record({
        name,
        image: fc.constantFrom('node:24', 'reg:5000/shop', 'shop@sha256:' + 'a'.repeat(64)),
        env: fc.option(fc.uniqueArray(env, { selector: (e) => e.name, maxLength: 5 }), { nil: undefined }),
        envFrom: fc.option(fc.constant([{ configMapRef: { name: 'cm' } }]), { nil: undefined }),
        volumeMounts: fc.option(fc.constantFrom([{ name: 'data', mountPath: '/data' }], [{ name: 'spanprofiling-agent-data', mountPath: '/spanprofiling' }]), { nil: undefined }),
        securityContext: fc.option(fc.constantFrom({ runAsNonRoot: true, runAsUser: 1000 }, { readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } }), { nil: undefined }),
      });
      const init = fc.record({ name: fc.constantFrom('migrate', 'logger', 'api'), image: fc.constant('node:24'), restartPolicy: fc.option(fc.constant('Always'), { nil: undefined }) });
      const pod = fc.record({
        containers: fc.uniqueArray(container, { selector: (c) => c.name, minLength: 1, maxLength: 3 }),
        initContainers: fc.option(fc.uniqueArray(init, { selector: (c) => c.name, maxLength: 2 }), { nil: undefined }),
        annotations: fc.dictionary(
          fc.constantFrom('spanprofiling.io/inject', 'spanprofiling.io/container-names', 'kubectl.kubernetes.io/default-container', 'note', 'spanprofiling.io/status'),
          fc.constantFrom('true', 'false', 'default', 'api,worker', 'logger', 'worker', 'Zürich-Straße', 'injected', 'x/y'),
          { maxKeys: 3 },
        ),
        windows: fc.boolean(),
        ns: fc.constantFrom(...NAMESPACES),
      });
      const samples = fc.sample(pod, { numRuns: PAIRS, seed: 11 });

      type Created = { status: number; body: { metadata?: { annotations?: Record<string, string> }; spec?: Record<string, unknown>; message?: string } };
      const dryRun = (ns: string, body: unknown): Promise<Created> => cp.api('POST', `/api/v1/namespaces/${ns}/pods?dryRun=All`, body) as Promise<Created>;
      const failures: string[] = [];
      let admittedBoth = 0;
      let injected = 0;
      let unseenOnce = 0;
      const started = Date.now();
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < samples.length && failures.length < 5) {
          const i = next++;
          const g = samples[i]!;
          const spec: Record<string, unknown> = { containers: g.containers, volumes: [{ name: 'data', emptyDir: {} }, { name: 'spanprofiling-agent-data', emptyDir: {} }] };
          if (g.initContainers !== undefined && g.initContainers.length > 0) spec['initContainers'] = g.initContainers;
          if (g.windows) spec['os'] = { name: 'windows' };
          const body = { apiVersion: 'v1', kind: 'Pod', metadata: { name: `p${i}`, annotations: g.annotations }, spec };
          const plain = await dryRun('oracle-plain', body);
          if (plain.status !== 201) continue;
          const hooked = await dryRun(g.ns, body);
          const what = `pair ${i} in ${g.ns}: ${JSON.stringify(body)}`;
          if (hooked.status !== 201) {
            failures.push(`${what}\n  rejected with the webhook: ${hooked.body.message}`);
            continue;
          }
          admittedBoth++;
          let out = hooked.body;
          if (out.metadata?.annotations?.['spanprofiling.io/status'] === undefined && g.annotations['spanprofiling.io/inject'] !== 'false') {
            // failurePolicy Ignore admits a pod whose webhook call timed out on a busy machine: ask once more, alone.
            const retry = await dryRun(g.ns, body);
            if (retry.status === 201 && retry.body.metadata?.annotations?.['spanprofiling.io/status'] !== undefined) {
              unseenOnce++;
              out = retry.body;
            } else {
              failures.push(`${what}\n  no status annotation: the webhook did not record what it did`);
            }
          }
          for (const [k, v] of Object.entries(g.annotations)) if (k !== 'spanprofiling.io/status' && k !== 'spanprofiling.io/reason' && out.metadata?.annotations?.[k] !== v) failures.push(`${what}\n  annotation ${k} lost`);
          const outContainers = (out.spec?.['containers'] ?? []) as { name: string; env?: { name: string }[]; envFrom?: unknown; volumeMounts?: { name: string }[] }[];
          for (const c of g.containers) {
            const after = outContainers.find((x) => x.name === c.name);
            if (after === undefined) failures.push(`${what}\n  container ${c.name} lost`);
            for (const e of c.env ?? []) if (!after?.env?.some((x) => x.name === e.name)) failures.push(`${what}\n  env ${e.name} of ${c.name} lost`);
            for (const m of c.volumeMounts ?? []) if (!after?.volumeMounts?.some((x) => x.name === m.name)) failures.push(`${what}\n  mount ${m.name} of ${c.name} lost`);
          }
          if (out.metadata?.annotations?.['spanprofiling.io/status'] !== 'injected') continue;
          injected++;
          // The webhook again on its own output (what reinvocation does): nothing changes.
          const again = await dryRun(g.ns, { apiVersion: 'v1', kind: 'Pod', metadata: { name: `p${i}`, annotations: out.metadata.annotations }, spec: out.spec });
          const pick = (s: Record<string, unknown> | undefined): unknown => JSON.stringify([s?.['containers'], s?.['initContainers'], s?.['volumes']]);
          if (again.status !== 201 || pick(again.body.spec) !== pick(out.spec)) failures.push(`${what}\n  a second mutation changed the pod (${again.status})`);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      const seconds = (Date.now() - started) / 1000;
      console.log(`      oracle: ${PAIRS} pairs in ${seconds.toFixed(0)} s, ${admittedBoth} admitted without and with the webhook, ${injected} injected, ${unseenOnce} seen by the webhook only when asked again`);
      assert.deepEqual(failures.slice(0, 5), []);
      assert.ok(admittedBoth > PAIRS / 5, `enough valid pods: ${admittedBoth}`);
      assert.ok(injected > PAIRS / 20, `enough injected pods: ${injected}`);
    });
  });

  describe('the API server as the oracle, in namespaces hardened with policies (twins with and without the webhook)', () => {
    const PAIRS = Number(process.env['ORACLE_POLICY_PAIRS'] ?? 4000);
    const TWINS = 12;
    const CONCURRENCY = 8;
    const ALLOWED = ['images.shop.internal/', 'mirror.shop.internal/'];
    // Policies as platform teams write them (Kyverno's and Gatekeeper's libraries have each), as ValidatingAdmissionPolicies.
    const POLICIES: Record<string, string> = {
      'allowed-registry-0': `object.spec.containers.all(c, c.image.startsWith('${ALLOWED[0]}')) && object.spec.?initContainers.orValue([]).all(c, c.image.startsWith('${ALLOWED[0]}'))`,
      'allowed-registry-1': `object.spec.containers.all(c, c.image.startsWith('${ALLOWED[1]}')) && object.spec.?initContainers.orValue([]).all(c, c.image.startsWith('${ALLOWED[1]}'))`,
      'memory-limits-required': `object.spec.containers.all(c, has(c.resources) && has(c.resources.limits) && 'memory' in c.resources.limits) && object.spec.?initContainers.orValue([]).all(c, has(c.resources) && has(c.resources.limits) && 'memory' in c.resources.limits)`,
      'run-as-non-root': `object.spec.?securityContext.?runAsNonRoot.orValue(false) || (object.spec.containers.all(c, c.?securityContext.?runAsNonRoot.orValue(false)) && object.spec.?initContainers.orValue([]).all(c, c.?securityContext.?runAsNonRoot.orValue(false)))`,
      'at-most-one-init-container': `size(object.spec.?initContainers.orValue([])) <= 1`,
      'persistent-volume-types-only': `object.spec.?volumes.orValue([]).all(v, has(v.configMap) || has(v.secret) || has(v.projected) || has(v.persistentVolumeClaim))`,
      'team-label-required': `'team' in object.metadata.?labels.orValue({})`,
    };
    type Twin = { id: number; psa?: string; limits?: Record<string, Record<string, string>>; quota?: Record<string, string>; policies: string[]; agent: Record<string, unknown> };
    const twins: Twin[] = [];
    const plainNs = (t: Twin): string => `hardened-${t.id}-plain`;
    const hookedNs = (t: Twin): string => `hardened-${t.id}`;
    const bytes = (q: string): number => Number(/^\d+/.exec(q)![0]) * ({ m: 1e-3, Mi: 1 << 20, Gi: 1 << 30 }[q.replace(/^\d+/, '')] ?? 1);

    before(async function () {
      this.timeout(300_000);
      const { default: fc } = await import('fast-check');
      const quantity = (r: string) => (r === 'cpu' ? fc.constantFrom('5m', '20m', '50m', '100m', '250m') : r === 'memory' ? fc.constantFrom('4Mi', '16Mi', '32Mi', '48Mi', '128Mi') : fc.constantFrom('2Mi', '50Mi', '1Gi'));
      const twin = fc.record({
        psa: fc.option(fc.constantFrom('baseline', 'restricted'), { nil: undefined }),
        limits: fc.option(
          fc.record(
            {
              min: fc.record({ cpu: quantity('cpu'), memory: quantity('memory') }, { requiredKeys: [] }),
              max: fc.record({ cpu: quantity('cpu'), memory: quantity('memory'), 'ephemeral-storage': quantity('ephemeral-storage') }, { requiredKeys: [] }),
              maxLimitRequestRatio: fc.record({ cpu: fc.constantFrom('1', '2', '4'), memory: fc.constantFrom('1', '2') }, { requiredKeys: [] }),
            },
            { requiredKeys: [] },
          ),
          { nil: undefined },
        ),
        quota: fc.option(fc.record({ 'requests.cpu': fc.constantFrom('30m', '1'), 'limits.memory': fc.constantFrom('40Mi', '1Gi'), 'limits.ephemeral-storage': fc.constant('10Gi'), 'requests.memory': fc.constantFrom('12Mi', '1Gi') }, { requiredKeys: [] }), { nil: undefined }),
        policies: fc.subarray(Object.keys(POLICIES), { maxLength: 3 }),
        agent: fc.record(
          {
            image: fc.constantFrom(undefined, `${ALLOWED[0]}span-profiling-agent:test`, `${ALLOWED[1]}span-profiling-agent:test`),
            resources: fc.constantFrom(undefined, { requests: { cpu: '5m', memory: '8Mi' }, limits: { cpu: '50m', memory: '32Mi' } }, { limits: { memory: '128Mi' } }),
            securityContext: fc.constantFrom(undefined, { runAsUser: 1000 }, { privileged: true }, { runAsNonRoot: false, runAsUser: 0 }),
          },
          { requiredKeys: [] },
        ),
      });
      fc.sample(twin, { numRuns: TWINS, seed: 25 }).forEach((t, id) => {
        const limits = t.limits as Record<string, Record<string, string>> | undefined;
        for (const [r, min] of Object.entries(limits?.['min'] ?? {})) {
          // The API server wants a range's min at most its max, and its ratio at most max/min.
          const max = limits?.['max']?.[r];
          if (max !== undefined && bytes(min) > bytes(max)) [limits!['min']![r], limits!['max']![r]] = [max, min];
          const hi = limits?.['max']?.[r];
          const ratio = limits?.['maxLimitRequestRatio'];
          if (ratio?.[r] !== undefined && hi !== undefined && Number(ratio[r]) > bytes(hi) / bytes(limits!['min']![r]!)) delete ratio[r];
        }
        const agent = Object.fromEntries(Object.entries(t.agent).filter(([, v]) => v !== undefined));
        twins.push({ id, ...(t.psa ? { psa: t.psa } : {}), ...(limits ? { limits } : {}), ...(t.quota ? { quota: t.quota as Record<string, string> } : {}), policies: t.policies, agent });
      });
      for (const [name, expression] of Object.entries(POLICIES)) {
        const policy = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy', metadata: { name }, spec: { failurePolicy: 'Fail', matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }] }, validations: [{ expression, message: `policy ${name}` }] } };
        const binding = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name }, spec: { policyName: name, validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { [`policy.shop.internal/${name}`]: 'on' } } } } };
        for (const o of [policy, binding]) assert.equal((await apply(o)).code, 0);
      }
      for (const t of twins) {
        for (const ns of [plainNs(t), hookedNs(t)]) {
          await cp.kubectl('create', 'namespace', ns);
          const labels = [...(t.psa ? [`pod-security.kubernetes.io/enforce=${t.psa}`] : []), ...t.policies.map((p) => `policy.shop.internal/${p}=on`)];
          if (labels.length > 0) await cp.kubectl('label', 'namespace', ns, ...labels);
          if (t.limits !== undefined) {
            const lr = await apply({ apiVersion: 'v1', kind: 'LimitRange', metadata: { name: 'hardened' }, spec: { limits: [{ type: 'Container', ...t.limits }] } }, ns);
            assert.equal(lr.code, 0, lr.stderr);
          }
          if (t.quota !== undefined) {
            const q = await cp.api<{ metadata: unknown }>('POST', `/api/v1/namespaces/${ns}/resourcequotas`, { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'team' }, spec: { hard: t.quota } });
            assert.equal(q.status, 201, JSON.stringify(q.body));
            // No controller manager here: the quota controller's first status, as it writes it.
            const st = await cp.api('PUT', `/api/v1/namespaces/${ns}/resourcequotas/team/status`, { ...q.body, status: { hard: t.quota, used: Object.fromEntries(Object.keys(t.quota).map((k) => [k, '0'])) } });
            assert.equal(st.status, 200);
          }
        }
        assert.equal((await apply(spanProfiling('default', { agent: t.agent }), hookedNs(t))).code, 0, JSON.stringify(t.agent));
        await cp.kubectl('annotate', 'namespace', hookedNs(t), 'spanprofiling.io/inject=true');
      }
      for (const t of twins) {
        await until(`namespace ${hookedNs(t)} labelled for the webhook`, async () => ((await cp.api<{ metadata: { labels?: Record<string, string> } }>('GET', `/api/v1/namespaces/${hookedNs(t)}`)).body.metadata.labels?.['spanprofiling.io/injection'] === 'enabled' ? true : undefined));
      }
      // The API server loads policies asynchronously: wait until each refuses, in a namespace bound to it alone, a pod that breaks them all.
      const breaksAll = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'probe' }, spec: { containers: [{ name: 'app', image: 'x' }], initContainers: [{ name: 'a', image: 'x' }, { name: 'b', image: 'x' }], volumes: [{ name: 'v', emptyDir: {} }] } };
      for (const name of Object.keys(POLICIES)) {
        const ns = `probe-${name}`;
        await cp.kubectl('create', 'namespace', ns);
        await cp.kubectl('label', 'namespace', ns, `policy.shop.internal/${name}=on`);
        await until(`policy ${name} in force`, async () => {
          const r = await cp.api<{ message?: string }>('POST', `/api/v1/namespaces/${ns}/pods?dryRun=All`, breaksAll);
          return (r.status >= 400 && (r.body.message ?? '').includes(`policy ${name}`)) || undefined;
        }, 60_000);
      }
    });

    it(`admits every pod with the webhook that it admits without, whatever the namespace's Pod Security level, LimitRange, quota and policies (${PAIRS} pairs)`, async function () {
      this.timeout(1_200_000);
      const { default: fc } = await import('fast-check');
      const resources = fc.constantFrom(
        undefined,
        { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '50m', memory: '32Mi' } },
        { requests: { cpu: '5m', memory: '4Mi' }, limits: { memory: '48Mi', 'ephemeral-storage': '100Mi' } },
        { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '100m', memory: '128Mi', 'ephemeral-storage': '1Gi' } },
        { limits: { cpu: '250m', memory: '48Mi' } },
      );
      const securityContext = fc.constantFrom(undefined, { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } }, { runAsNonRoot: true }, { privileged: true });
      const container = fc.record({ name: fc.constantFrom('app', 'api', 'worker'), image: fc.constantFrom(`${ALLOWED[0]}web:1`, `${ALLOWED[1]}web:1`, 'node:24'), resources, securityContext });
      const pod = fc.record({
        twin: fc.nat({ max: TWINS - 1 }),
        containers: fc.uniqueArray(container, { selector: (c) => c.name, minLength: 1, maxLength: 2 }),
        init: fc.option(fc.record({ name: fc.constant('migrate'), image: fc.constantFrom(`${ALLOWED[0]}migrate:1`, `${ALLOWED[1]}migrate:1`), resources, securityContext }), { nil: undefined }),
        podSecurityContext: fc.constantFrom(undefined, { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } }),
        team: fc.boolean(),
        volume: fc.constantFrom(undefined, { name: 'config', configMap: { name: 'web' } }, { name: 'scratch', emptyDir: {} }),
        // Teams mostly write pods their namespace admits: each rule is followed, or not, at random.
        follows: fc.record({ images: fc.boolean(), limits: fc.boolean(), security: fc.boolean(), labels: fc.boolean(), volumes: fc.boolean(), ranges: fc.boolean() }),
      });
      const samples = fc.sample(pod, { numRuns: PAIRS, seed: 7 });
      type Gen = (typeof samples)[number];
      type C = { name: string; image: string; resources?: { requests?: Record<string, string>; limits?: Record<string, string> }; securityContext?: Record<string, unknown> };
      type Spec = { containers: C[]; initContainers?: C[]; securityContext?: Record<string, unknown>; volumes?: { name: string }[] };
      const RESTRICTED = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } };
      /** The pod as its team would write it for the namespace, rule by rule where it follows them. */
      const follow = (g: Gen, t: Twin, spec: Spec, labels: Record<string, string>): void => {
        const all = [...spec.containers, ...(spec.initContainers ?? [])];
        const registry = t.policies.find((p) => p.startsWith('allowed-registry-'));
        if (g.follows.images && registry !== undefined) for (const c of all) c.image = `${ALLOWED[Number(registry.slice(-1))]}${c.image.replace(/^.*\//, '')}`;
        if (g.follows.security && (t.psa !== undefined || t.policies.includes('run-as-non-root'))) {
          spec.securityContext = { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } };
          for (const c of all) c.securityContext = RESTRICTED;
        }
        if (g.follows.labels && t.policies.includes('team-label-required')) labels['team'] = 'shop';
        if (g.follows.volumes && t.policies.includes('persistent-volume-types-only')) delete spec.volumes;
        if (g.follows.ranges && (t.limits !== undefined || t.quota !== undefined)) {
          const pick = (r: string, fallback: string): string => t.limits?.['min']?.[r] ?? (t.limits?.['max']?.[r] !== undefined && bytes(t.limits['max'][r]!) < bytes(fallback) ? t.limits['max'][r]! : fallback);
          const [cpu, memory, storage] = [pick('cpu', '5m'), pick('memory', '16Mi'), t.limits?.['max']?.['ephemeral-storage'] ?? '100Mi'];
          for (const c of all) c.resources = { requests: { cpu, memory, 'ephemeral-storage': storage }, limits: { cpu, memory, 'ephemeral-storage': storage } };
        }
        if (g.follows.limits && t.policies.includes('memory-limits-required')) for (const c of all) c.resources = { ...c.resources, limits: { memory: '48Mi', ...c.resources?.limits } };
      };
      const clean = <T extends Record<string, unknown>>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
      type Created = { status: number; body: { metadata?: { annotations?: Record<string, string> }; spec?: { initContainers?: unknown[] }; message?: string } };
      const failures: string[] = [];
      const tally = { admittedPlain: 0, injected: 0, refused: new Map<string, number>(), otherSkips: 0, unseen: 0 };
      let next = 0;
      const started = Date.now();
      const worker = async (): Promise<void> => {
        while (next < samples.length && failures.length < 5) {
          const i = next++;
          const g = samples[i]!;
          const t = twins[g.twin]!;
          const spec = clean({ containers: g.containers.map((c) => clean(c)), initContainers: g.init === undefined ? undefined : [clean(g.init)], securityContext: g.podSecurityContext, volumes: g.volume === undefined ? undefined : [g.volume] }) as Spec;
          const labels: Record<string, string> = g.team ? { team: 'shop' } : {};
          follow(g, t, spec, labels);
          const body = { apiVersion: 'v1', kind: 'Pod', metadata: { name: `p${i}`, labels }, spec };
          const plain = (await cp.api('POST', `/api/v1/namespaces/${plainNs(t)}/pods?dryRun=All`, body)) as Created;
          if (plain.status !== 201) continue;
          tally.admittedPlain++;
          const hooked = (await cp.api('POST', `/api/v1/namespaces/${hookedNs(t)}/pods?dryRun=All`, body)) as Created;
          if (hooked.status !== 201) {
            failures.push(`pair ${i} in ${hookedNs(t)} (${JSON.stringify(t)}): ${JSON.stringify(body)}\n  admitted without the webhook, refused with it: ${hooked.body.message}`);
            continue;
          }
          const a = hooked.body.metadata?.annotations ?? {};
          const kind = a['spanprofiling.io/refused-by']?.replace(/\/.*/, '');
          if (a['spanprofiling.io/status'] === 'injected') tally.injected++;
          else if (kind !== undefined) tally.refused.set(kind, (tally.refused.get(kind) ?? 0) + 1);
          else if (a['spanprofiling.io/status'] === undefined) tally.unseen++;
          else tally.otherSkips++;
          if (a['spanprofiling.io/status'] !== 'injected' && hooked.body.spec?.initContainers?.length !== (g.init === undefined ? undefined : 1)) failures.push(`pair ${i}: not injected, yet its init containers changed`);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      const seconds = (Date.now() - started) / 1000;
      const refused = [...tally.refused].map(([k, v]) => `${k} ${v}`).join(', ');
      console.log(`      oracle with policies: ${PAIRS} pairs in ${seconds.toFixed(0)} s over ${TWINS} twin namespaces; ${tally.admittedPlain} admitted without the webhook, all admitted with it: ${tally.injected} injected, refused-by ${refused || 'none'}, ${tally.otherSkips} skipped for other reasons, ${tally.unseen} unseen (webhook timeout)`);
      assert.deepEqual(failures.slice(0, 5), []);
      assert.ok(tally.admittedPlain > PAIRS / 10, `enough admitted pods: ${tally.admittedPlain}`);
      assert.ok(tally.injected > tally.admittedPlain / 20, `enough injected pods: ${tally.injected}`);
      assert.ok(tally.refused.size >= 3, `several kinds of policy refuse the agent: ${refused}`);
    });
  });

  describe('a namespace that enforces Pod Security restricted', () => {
    const NS = 'psa-restricted';
    // A pod the restricted level admits, as hardened teams write them.
    const restrictedPod = (name: string) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name },
      spec: {
        securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
        containers: [{ name: 'app', image: 'node:24', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsUser: 1000 } }],
      },
    });

    type AgentInit = { securityContext?: { runAsUser?: number; allowPrivilegeEscalation?: boolean; capabilities?: unknown } } | undefined;
    const agentInit = (pod: Pod): AgentInit => pod.spec.initContainers?.[0] as AgentInit;

    before(async () => {
      await cp.kubectl('create', 'namespace', NS);
      await cp.kubectl('label', 'namespace', NS, 'pod-security.kubernetes.io/enforce=restricted');
      await cp.kubectl('annotate', 'namespace', NS, 'spanprofiling.io/inject=true');
      await until(`namespace ${NS} labelled for the webhook`, async () => ((await cp.api<{ metadata: { labels?: Record<string, string> } }>('GET', `/api/v1/namespaces/${NS}`)).body.metadata.labels?.['spanprofiling.io/injection'] === 'enabled' ? true : undefined));
    });

    for (const [what, securityContext] of [
      ['the default agent security context', undefined],
      ['an agent.securityContext that sets only runAsUser', { runAsUser: 1000 }],
      ['an agent.securityContext that sets runAsGroup and readOnlyRootFilesystem', { runAsGroup: 2000, readOnlyRootFilesystem: false }],
    ] as const) {
      it(`admits and injects a restricted pod with ${what}`, async () => {
        const r = await apply(spanProfiling('default', securityContext === undefined ? {} : { agent: { securityContext } }), NS);
        assert.equal(r.code, 0, r.stderr);
        const created = await until('an injected pod (the webhook sees the new SpanProfiling)', async () => {
          const res = await cp.api<Pod & { message?: string }>('POST', `/api/v1/namespaces/${NS}/pods?dryRun=All`, restrictedPod('web'));
          assert.equal(res.status, 201, `the API server admits the pod: ${res.body.message ?? ''}`);
          const want = (securityContext as { runAsUser?: number } | undefined)?.runAsUser ?? 65532;
          return res.body.metadata.annotations?.['spanprofiling.io/status'] === 'injected' && agentInit(res.body)?.securityContext?.runAsUser === want ? res.body : undefined;
        });
        assert.equal(agentInit(created)?.securityContext?.allowPrivilegeEscalation, false);
        assert.deepEqual(agentInit(created)?.securityContext?.capabilities, { drop: ['ALL'] });
      });
    }

    it('admits and injects a pod where the namespace enforces baseline', async () => {
      const ns = 'psa-baseline';
      await cp.kubectl('create', 'namespace', ns);
      await cp.kubectl('label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=baseline');
      assert.equal((await apply(spanProfiling('default'), ns)).code, 0);
      await cp.kubectl('annotate', 'namespace', ns, 'spanprofiling.io/inject=true');
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web' }, spec: { containers: [{ name: 'app', image: 'node:24' }] } };
      await until('an injected pod', async () => {
        const res = await cp.api<Pod & { message?: string }>('POST', `/api/v1/namespaces/${ns}/pods?dryRun=All`, pod);
        assert.equal(res.status, 201, `the API server admits the pod: ${res.body.message ?? ''}`);
        return res.body.metadata.annotations?.['spanprofiling.io/status'] === 'injected' || undefined;
      });
    });

    it('admits a restricted pod untouched, with the reason, when agent.securityContext would break the level (privileged)', async () => {
      const r = await apply(spanProfiling('default', { agent: { securityContext: { privileged: true } } }), NS);
      assert.equal(r.code, 0, r.stderr);
      const admitted = await until('the webhook to see the new SpanProfiling', async () => {
        const res = await cp.api<Pod & { message?: string }>('POST', `/api/v1/namespaces/${NS}/pods?dryRun=All`, restrictedPod('web'));
        assert.equal(res.status, 201, `the API server admits the pod: ${res.body.message ?? ''}`);
        return res.body.metadata.annotations?.['spanprofiling.io/status'] === 'skipped' ? res.body : undefined;
      });
      assert.equal(admitted.spec.initContainers, undefined);
      assert.match(admitted.metadata.annotations?.['spanprofiling.io/reason'] ?? '', /enforces the restricted Pod Security level/);
    });
  });

  describe('namespaces with LimitRanges (LimitRanger runs after the webhook)', () => {
    type Res = { requests?: Record<string, string>; limits?: Record<string, string> };
    type Admitted = Pod & { message?: string; spec: Pod['spec'] & { initContainers?: { name: string; resources?: Res }[] } };
    const cases: { ns: string; limits: Record<string, unknown>; app: Res; expect: 'injected' | 'skipped'; check?: (r: Res) => void }[] = [
      {
        ns: 'lr-min',
        limits: { min: { cpu: '50m', memory: '32Mi' } },
        app: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } },
        expect: 'injected',
        check: (r) => assert.deepEqual(r.requests, { cpu: '50m', memory: '32Mi' }),
      },
      {
        ns: 'lr-max',
        limits: { max: { cpu: '100m', memory: '48Mi' } },
        app: { requests: { cpu: '50m', memory: '32Mi' }, limits: { cpu: '100m', memory: '48Mi' } },
        expect: 'injected',
        check: (r) => assert.deepEqual(r.limits, { cpu: '100m', memory: '48Mi' }),
      },
      {
        ns: 'lr-ratio',
        limits: { maxLimitRequestRatio: { cpu: '2' } },
        app: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '200m', memory: '64Mi' } },
        expect: 'injected',
        check: (r) => assert.equal(r.requests?.['cpu'], '100m'),
      },
      {
        ns: 'lr-defaults',
        limits: { default: { cpu: '300m', memory: '256Mi' }, defaultRequest: { cpu: '100m', memory: '128Mi' } },
        app: {},
        expect: 'injected',
        check: (r) => assert.deepEqual(r, { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '200m', memory: '64Mi' } }, 'defaults are for containers that state nothing: the agent states its own'),
      },
      {
        ns: 'lr-tiny',
        limits: { max: { memory: '4Mi' } },
        app: { requests: { cpu: '10m', memory: '4Mi' }, limits: { cpu: '10m', memory: '4Mi' } },
        expect: 'skipped',
      },
    ];

    before(async () => {
      for (const c of cases) {
        await cp.kubectl('create', 'namespace', c.ns);
        const lr = await apply({ apiVersion: 'v1', kind: 'LimitRange', metadata: { name: 'hardened' }, spec: { limits: [{ type: 'Container', ...c.limits }] } }, c.ns);
        assert.equal(lr.code, 0, lr.stderr);
        const r = await apply(spanProfiling('default'), c.ns);
        assert.equal(r.code, 0, r.stderr);
        await cp.kubectl('annotate', 'namespace', c.ns, 'spanprofiling.io/inject=true');
      }
    });

    for (const c of cases) {
      it(`${c.expect === 'injected' ? 'admits and injects' : 'admits untouched, with the reason,'} a pod that fits ${JSON.stringify(c.limits)}`, async () => {
        const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web' }, spec: { containers: [{ name: 'app', image: 'node:24', resources: c.app }] } };
        const admitted = await until(`the webhook to see ${c.ns}'s LimitRange`, async () => {
          const res = await cp.api<Admitted>('POST', `/api/v1/namespaces/${c.ns}/pods?dryRun=All`, pod);
          assert.equal(res.status, 201, `the API server admits the pod: ${res.body.message ?? ''}`);
          const status = res.body.metadata.annotations?.['spanprofiling.io/status'];
          return status === c.expect ? res.body : undefined;
        });
        if (c.expect === 'injected') c.check?.(admitted.spec.initContainers![0]!.resources ?? {});
        else {
          assert.equal(admitted.spec.initContainers, undefined);
          assert.match(admitted.metadata.annotations?.['spanprofiling.io/reason'] ?? '', /LimitRange hardened allows memory up to 4Mi/);
        }
      });
    }
  });

  describe('namespaces with ResourceQuotas (quota admission runs last)', () => {
    type Res = { requests?: Record<string, string>; limits?: Record<string, string> };
    type Admitted = Pod & { message?: string; spec: Pod['spec'] & { initContainers?: { name: string; resources?: Res }[] } };
    const cases: { ns: string; hard: Record<string, string>; app: Res; expect: 'injected' | 'skipped'; check: (admitted: Admitted) => void }[] = [
      {
        // Every container must state its ephemeral storage limit: the agent's did not, and every pod was refused.
        ns: 'quota-storage',
        hard: { 'limits.ephemeral-storage': '1Gi', 'requests.cpu': '1' },
        app: { requests: { cpu: '5m' }, limits: { 'ephemeral-storage': '100Mi' } },
        expect: 'injected',
        check: (a) => {
          assert.equal(a.spec.initContainers?.[0]?.resources?.limits?.['ephemeral-storage'], '64Mi');
          assert.equal(a.spec.initContainers?.[0]?.resources?.requests?.['cpu'], '5m', 'no more than the pod asks');
        },
      },
      {
        // The agent needs 8Mi at least, more than the pod asks and more than the quota has left: the check sees it.
        ns: 'quota-full',
        hard: { 'requests.memory': '6Mi' },
        app: { requests: { memory: '4Mi' } },
        expect: 'skipped',
        check: (a) => {
          assert.equal(a.spec.initContainers, undefined);
          assert.match(a.metadata.annotations?.['spanprofiling.io/reason'] ?? '', /would refuse the pod with the agent: exceeded quota: team/);
        },
      },
    ];

    before(async () => {
      for (const c of cases) {
        await cp.kubectl('create', 'namespace', c.ns);
        const created = await cp.api<{ metadata: { resourceVersion: string } }>('POST', `/api/v1/namespaces/${c.ns}/resourcequotas`, { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'team' }, spec: { hard: c.hard } });
        assert.equal(created.status, 201);
        // No controller manager here: its quota controller's first status, as it writes it.
        const used = Object.fromEntries(Object.keys(c.hard).map((k) => [k, '0']));
        const status = await cp.api('PUT', `/api/v1/namespaces/${c.ns}/resourcequotas/team/status`, { ...created.body, status: { hard: c.hard, used } });
        assert.equal(status.status, 200, JSON.stringify(status.body));
        assert.equal((await apply(spanProfiling('default'), c.ns)).code, 0);
        await cp.kubectl('annotate', 'namespace', c.ns, 'spanprofiling.io/inject=true');
      }
    });

    for (const c of cases) {
      it(`${c.expect === 'injected' ? 'admits and injects' : 'admits untouched, with the reason,'} a pod under a quota on ${Object.keys(c.hard).join(', ')}`, async () => {
        const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web' }, spec: { containers: [{ name: 'app', image: 'node:24', resources: c.app }] } };
        const plain = await cp.api<Admitted>('POST', `/api/v1/namespaces/${c.ns}/pods?dryRun=All`, { ...pod, metadata: { name: 'web', annotations: { 'spanprofiling.io/inject': 'false' } } });
        assert.equal(plain.status, 201, `admitted without the agent: ${plain.body.message ?? ''}`);
        const admitted = await until(`the webhook to see ${c.ns}'s quota`, async () => {
          const res = await cp.api<Admitted>('POST', `/api/v1/namespaces/${c.ns}/pods?dryRun=All`, pod);
          assert.equal(res.status, 201, `the API server admits the pod: ${res.body.message ?? ''}`);
          return res.body.metadata.annotations?.['spanprofiling.io/status'] === c.expect ? res.body : undefined;
        });
        c.check(admitted);
      });
    }
  });

  describe('policies the operator cannot read: the API server judges the mutated pod first (a dry run)', () => {
    const NS = 'images-only';
    const ALLOWED = 'images.shop.internal/';
    type Admitted = Pod & { message?: string };
    const pod = (name: string, image = `${ALLOWED}web:1`) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: { containers: [{ name: 'app', image }] } });

    before(async () => {
      await cp.kubectl('create', 'namespace', NS);
      await cp.kubectl('label', 'namespace', NS, 'policy=images-only');
      // The most common policy there is (Kyverno's and Gatekeeper's libraries both ship it): images from the company's registry only.
      const policy = {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicy',
        metadata: { name: 'images-from-our-registry' },
        spec: {
          failurePolicy: 'Fail',
          matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['pods'] }] },
          validations: [
            {
              expression: `object.spec.containers.all(c, c.image.startsWith('${ALLOWED}')) && object.spec.?initContainers.orValue([]).all(c, c.image.startsWith('${ALLOWED}'))`,
              messageExpression: `'images must come from ${ALLOWED}: ' + object.spec.?initContainers.orValue([]).map(c, c.image).filter(i, !i.startsWith('${ALLOWED}')).join(', ')`,
            },
          ],
        },
      };
      const binding = {
        apiVersion: 'admissionregistration.k8s.io/v1',
        kind: 'ValidatingAdmissionPolicyBinding',
        metadata: { name: 'images-from-our-registry' },
        spec: { policyName: 'images-from-our-registry', validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { policy: 'images-only' } } } },
      };
      for (const o of [policy, binding]) assert.equal((await apply(o)).code, 0);
      // The API server loads a policy asynchronously: wait until it refuses a pod it should.
      await until('the image policy in force', async () => (await cp.api('POST', `/api/v1/namespaces/${NS}/pods?dryRun=All`, pod('probe', 'node:24'))).status >= 400 || undefined);
      assert.equal((await apply(spanProfiling('default'), NS)).code, 0);
      await cp.kubectl('annotate', 'namespace', NS, 'spanprofiling.io/inject=true');
      await until(`namespace ${NS} labelled for the webhook`, async () => ((await cp.api<{ metadata: { labels?: Record<string, string> } }>('GET', `/api/v1/namespaces/${NS}`)).body.metadata.labels?.['spanprofiling.io/injection'] === 'enabled' ? true : undefined));
    });

    it('admits the pod without the agent, saying which policy refused it and what to change, with an Event on the SpanProfiling', async () => {
      const created = await until('the webhook to see the namespace', async () => {
        const res = await cp.api<Admitted>('POST', `/api/v1/namespaces/${NS}/pods`, pod(`web-${Date.now()}`));
        assert.equal(res.status, 201, `the API server admits the pod: ${res.body.message ?? ''}`);
        return res.body.metadata.annotations?.['spanprofiling.io/status'] !== undefined ? res.body : undefined;
      });
      assert.equal(created.metadata.annotations?.['spanprofiling.io/status'], 'skipped');
      assert.equal(created.spec.initContainers, undefined);
      assert.equal(created.spec.volumes, undefined);
      const reason = created.metadata.annotations?.['spanprofiling.io/reason'] ?? '';
      assert.match(reason, /images-from-our-registry/);
      assert.match(reason, /span-profiling-agent:test/);
      assert.match(reason, /mirror the agent image span-profiling-agent:test .*set the SpanProfiling's agent.image/);
      const event = await until('an AdmissionPolicy Event on the SpanProfiling', async () => {
        const list = await cp.api<{ items: { reason: string; message: string; involvedObject: { kind: string; name: string } }[] }>('GET', `/api/v1/namespaces/${NS}/events`);
        return list.body.items.find((e) => e.reason === 'AdmissionPolicy' && e.involvedObject.kind === 'SpanProfiling');
      });
      assert.match(event.message, /images-from-our-registry/);
      const counted = await until('the SpanProfiling to count the refused pod', async () => {
        const got = await getSp(NS, 'default');
        return ((got.status as { refusedPods?: number } | undefined)?.refusedPods ?? 0) >= 1 ? got : undefined;
      });
      assert.equal(condition(counted, 'PodsRefused')?.status, 'True');
      assert.match(condition(counted, 'PodsRefused')?.message ?? '', /ValidatingAdmissionPolicy\/images-from-our-registry in images-only/);
      assert.equal(condition(counted, 'Ready')?.status, 'True', 'the operator works; the policy is the namespace owner\'s to change');
    });

    it('injects once the SpanProfiling names a mirrored agent image the policy allows', async () => {
      assert.equal((await apply(spanProfiling('default', { agent: { image: `${ALLOWED}span-profiling-agent:test` } }), NS)).code, 0);
      const created = await until('an injected pod', async () => {
        const res = await cp.api<Admitted>('POST', `/api/v1/namespaces/${NS}/pods`, pod(`web-${Date.now()}`));
        assert.equal(res.status, 201, `the API server admits the pod: ${res.body.message ?? ''}`);
        return res.body.metadata.annotations?.['spanprofiling.io/status'] === 'injected' ? res.body : undefined;
      });
      assert.equal(created.spec.initContainers?.[0]?.image, `${ALLOWED}span-profiling-agent:test`);
    });

    it('answers the check\'s own dry run untouched (no recursion), and counts it apart in its metrics', async () => {
      const res = await cp.api<Admitted>('POST', `/api/v1/namespaces/${NS}/pods?dryRun=All&fieldManager=spanprofiling.io-admission-check`, pod('marked'));
      assert.equal(res.status, 201, res.body.message);
      assert.equal(res.body.metadata.annotations?.['spanprofiling.io/status'], undefined);
      assert.equal(res.body.spec.initContainers, undefined);
    });
  });

  describe('operator.js uninstall (the chart\'s pre-delete hook)', () => {
    it('stops the operator, removes the namespace labels, its Lease and its certificate Secret; a second run finds nothing to do', async () => {
      for (const op of operators) await op.stop();
      assert.equal((await cp.api<{ metadata: { labels?: Record<string, string> } }>('GET', '/api/v1/namespaces/shop')).body.metadata.labels?.['spanprofiling.io/injection'], 'enabled');
      const deployment = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'span-profiling-operator', namespace: OPERATOR_NS },
        spec: { replicas: 2, selector: { matchLabels: { app: 'op' } }, template: { metadata: { labels: { app: 'op' } }, spec: { containers: [{ name: 'op', image: 'op' }] } } },
      };
      assert.equal((await apply(deployment)).code, 0);
      const run = async (): Promise<string> => {
        const p = new ManagedProcess(`uninstall-${Date.now()}`, process.execPath, [...OPERATOR_NODE_FLAGS, OPERATOR, 'uninstall'], {
          logDir,
          env: { PATH: process.env['PATH'], KUBECONFIG: cp.kubeconfig, OPERATOR_NAMESPACE: OPERATOR_NS, OPERATOR_DEPLOYMENT: 'span-profiling-operator', LEASE_NAME: 'span-profiling-operator-leader' },
        });
        await p.exited;
        assert.equal(p.exitCode, 0, p.tail());
        return p.tail();
      };
      const first = await run();
      assert.match(first, /"removedLabels":\[[^\]]*"shop"/, first);
      const labels = (await cp.api<{ metadata: { labels?: Record<string, string>; annotations?: Record<string, string> } }>('GET', '/api/v1/namespaces/shop')).body.metadata;
      assert.equal(labels.labels?.['spanprofiling.io/injection'], undefined);
      assert.equal(labels.annotations?.['spanprofiling.io/inject'], 'true', "the user's annotation stays");
      assert.equal((await cp.api('GET', `/api/v1/namespaces/${OPERATOR_NS}/secrets/span-profiling-operator-webhook-tls`)).status, 404);
      assert.equal((await cp.api('GET', `/apis/coordination.k8s.io/v1/namespaces/${OPERATOR_NS}/leases/span-profiling-operator-leader`)).status, 404);
      assert.equal((await cp.api<{ spec: { replicas: number } }>('GET', `/apis/apps/v1/namespaces/${OPERATOR_NS}/deployments/span-profiling-operator`)).body.spec.replicas, 0);
      const second = await run();
      assert.match(second, /"removedLabels":\[\],"deleted":\[\],"problems":0/, second);
    });
  });
});
