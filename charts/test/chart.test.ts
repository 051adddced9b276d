/**
 * The Helm chart with the real helm and a real kube-apiserver: lint, render
 * with several value sets, server-side validation of every rendered object,
 * install / upgrade / uninstall, and the values schema rejecting mistakes.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { startControlPlane, type ControlPlane } from '../../e2e/harness/control-plane';
import { NOT_THE_CHECK } from '../../operator/src/webhook/admission-check';
import { removeDir, tempDir } from '../../e2e/harness/processes';
import { REPO_ROOT, requireTools, tool } from '../../e2e/harness/toolchain';

const CHART = path.join(REPO_ROOT, 'charts/span-profiling-operator');
const CRD = 'spanprofiling.io_spanprofilings.yaml';

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
  webhooks?: Record<string, unknown>[];
}

describe('Helm chart charts/span-profiling-operator', function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  const work = tempDir('chart');

  const helm = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) =>
      execFile(tool('helm'), args, { env: { ...process.env, KUBECONFIG: cp?.kubeconfig ?? '', HELM_CACHE_HOME: path.join(work, 'cache'), HELM_CONFIG_HOME: path.join(work, 'config'), HELM_DATA_HOME: path.join(work, 'data') }, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
  const valuesFile = (name: string, values: unknown): string => {
    const file = path.join(work, `${name}.json`);
    writeFileSync(file, JSON.stringify(values));
    return file;
  };
  const render = async (values: unknown = {}): Promise<K8sObject[]> => {
    const r = await helm(['template', 'spo', CHART, '--namespace', 'span-profiling', '--include-crds', '-f', valuesFile('render', values)]);
    assert.equal(r.code, 0, r.stderr);
    return parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject).filter((o) => o !== null);
  };

  before(async () => {
    requireTools('helm', 'kubectl', 'kube-apiserver', 'etcd');
    cp = await startControlPlane();
    await cp.kubectl('create', 'namespace', 'span-profiling');
  });
  after(async () => {
    await cp?.stop();
    removeDir(work);
  });

  it("carries the CRD of crds/ unchanged (crds/ is the single source; sync with: npm run chart:sync-crds)", () => {
    assert.equal(readFileSync(path.join(CHART, 'crds', CRD), 'utf8'), readFileSync(path.join(REPO_ROOT, 'crds', CRD), 'utf8'));
  });

  it('passes helm lint', async () => {
    const r = await helm(['lint', CHART, '--strict']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('renders by default: 2 replicas with a PDB, spread, probes, restricted security, the webhook as the design says', async () => {
    const objects = await render();
    const kinds = objects.map((o) => o.kind).sort();
    assert.deepEqual(kinds, [
      'ClusterRole',
      'ClusterRoleBinding',
      'CustomResourceDefinition',
      'Deployment',
      'Job',
      'MutatingWebhookConfiguration',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
      'ValidatingAdmissionPolicyBinding',
    ]);
    assert.deepEqual(objects.filter((o) => o.kind === 'ValidatingAdmissionPolicy').map((o) => o.metadata.name).sort(), ['spo-span-profiling-operator-dry-run-only', 'spo-span-profiling-operator-least-privilege']);
    const job = objects.find((o) => o.kind === 'Job')! as unknown as { metadata: { annotations: Record<string, string> }; spec: { template: { spec: { containers: { args: string[] }[] } } } };
    assert.equal(job.metadata.annotations['helm.sh/hook'], 'pre-delete', 'the Job is only the uninstall hook');
    assert.deepEqual(job.spec.template.spec.containers[0]!.args, ['uninstall']);
    const without = (await render({ cleanupOnUninstall: false })).map((o) => o.kind);
    assert.ok(!without.includes('Job'));
    const deployment = objects.find((o) => o.kind === 'Deployment')! as unknown as { spec: { replicas: number; template: { spec: { topologySpreadConstraints?: unknown[]; securityContext: Record<string, unknown>; containers: { securityContext: Record<string, unknown>; livenessProbe?: unknown; readinessProbe?: unknown; resources?: unknown }[] } } } };
    assert.equal(deployment.spec.replicas, 2);
    const pod = deployment.spec.template.spec;
    assert.equal(pod.topologySpreadConstraints?.length, 1);
    assert.equal(pod.securityContext['runAsNonRoot'], true);
    const c = pod.containers[0]!;
    assert.deepEqual(c.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    assert.ok(c.livenessProbe && c.readinessProbe && c.resources);
    const hook = objects.find((o) => o.kind === 'MutatingWebhookConfiguration')!.webhooks![0]! as Record<string, unknown>;
    assert.equal(hook['failurePolicy'], 'Ignore');
    assert.equal(hook['sideEffects'], 'NoneOnDryRun');
    assert.equal(hook['reinvocationPolicy'], 'IfNeeded');
    assert.ok((hook['timeoutSeconds'] as number) <= 10);
    assert.deepEqual(hook['matchConditions'], [{ name: 'not-the-admission-check', expression: NOT_THE_CHECK }], "the admission check's own dry runs skip the webhook");
    assert.deepEqual(hook['rules'], [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }]);
    assert.deepEqual(hook['namespaceSelector'], {
      matchLabels: { 'spanprofiling.io/injection': 'enabled' },
      matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'span-profiling'] }],
    });
  });

  it("runs the webhook in a thread of its own unless webhook.thread is false", async () => {
    const env = async (values: unknown): Promise<string | undefined> => {
      const deployment = (await render(values)).find((o) => o.kind === 'Deployment')! as unknown as { spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } } };
      return deployment.spec.template.spec.containers[0]!.env.find((e) => e.name === 'WEBHOOK_THREAD')?.value;
    };
    assert.equal(await env({}), 'on');
    assert.equal(await env({ webhook: { thread: false } }), 'off');
  });

  it('grants only what the operator uses (no wildcards, no secrets listing, webhook update by name)', async () => {
    const objects = await render();
    const rules = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').flatMap((o) => (o as unknown as { rules: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[] }).rules);
    for (const r of rules) {
      assert.ok(!r.verbs.includes('*') && !r.resources.includes('*') && !r.apiGroups.includes('*'), JSON.stringify(r));
      if (r.resources.includes('secrets')) assert.ok(!r.verbs.some((v) => ['list', 'watch'].includes(v)), JSON.stringify(r));
      // Deleting is for the uninstall hook, and only by name: the operator's own Secret, Lease and Deployment.
      if (r.verbs.includes('delete') || r.verbs.includes('patch') && r.resources.includes('deployments')) assert.equal(r.resourceNames?.length, 1, JSON.stringify(r));
      // Workloads and SpanProfilings are patched only with rollout.enabled.
      assert.ok(!r.resources.some((x) => ['statefulsets', 'daemonsets', 'replicasets', 'spanprofilings'].includes(x)) || !r.verbs.includes('patch'), JSON.stringify(r));
      if (r.resources.includes('mutatingwebhookconfigurations')) assert.deepEqual(r.resourceNames, ['spo-span-profiling-operator']);
    }
  });

  describe("the operator's service account against the real API server (RBAC and the admission policy)", () => {
    const SA = 'system:serviceaccount:span-profiling:spo-span-profiling-operator';
    /** A merge patch as the operator sends it, as its service account; answers the status and the API server's message. */
    const asOperator = async (urlPath: string, body: unknown): Promise<{ code: number; message: string }> => {
      const r = await cp.api<{ message?: string }>('PATCH', urlPath, body, 'application/merge-patch+json', { 'Impersonate-User': SA });
      return { code: r.status, message: r.body.message ?? '' };
    };
    const applyFence = async (values: unknown): Promise<void> => {
      const objects = (await render(values)).filter((o) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'].includes(o.kind));
      const r = await cp.kubectlResult(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
      assert.equal(r.code, 0, r.stderr);
    };
    const patchPod = (body: unknown): [string, unknown] => ['/api/v1/namespaces/fenced/pods/web', body];
    const patchNamespace = (body: unknown): [string, unknown] => ['/api/v1/namespaces/fenced', body];
    const canI = async (...args: string[]): Promise<string> => (await cp.kubectlResult(['auth', 'can-i', `--as=${SA}`, ...args])).stdout.trim();

    before(async () => {
      await applyFence({});
      await cp.kubectl('create', 'namespace', 'fenced');
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'fenced', labels: { app: 'web' }, annotations: { team: 'payments' } }, spec: { containers: [{ name: 'app', image: 'node:24' }] } };
      const r = await cp.kubectlResult(['apply', '-f', '-'], JSON.stringify(pod));
      assert.equal(r.code, 0, r.stderr);
      // The API server loads a new policy and binding asynchronously: wait until it refuses what it should.
      const deadline = Date.now() + 60_000;
      for (;;) {
        const probe = await asOperator(...patchPod({ metadata: { labels: { app: 'other' } } }));
        if (probe.code === 422 && /may not change a pod's labels/.test(probe.message)) break;
        if (probe.code === 200) await cp.kubectl('label', 'pod', '-n', 'fenced', 'web', '--overwrite', 'app=web');
        assert.ok(Date.now() < deadline, `the admission policy never took effect: ${probe.code} ${probe.message}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    });

    it('may write spanprofiling.io/ annotations on a pod (the reason for pods the webhook never saw)', async () => {
      const r = await asOperator(...patchPod({ metadata: { annotations: { 'spanprofiling.io/status': 'skipped', 'spanprofiling.io/reason': 'admitted while the webhook could not see it' } } }));
      assert.equal(r.code, 200, r.message);
    });

    const refused: [string, [string, unknown], RegExp][] = [
      ["a pod's label", patchPod({ metadata: { labels: { app: 'other' } } }), /may not change a pod's labels/],
      ["a pod's image", patchPod({ spec: { containers: [{ name: 'app', image: 'node:25' }] } }), /may not change a pod's spec/],
      ['another annotation of a pod', patchPod({ metadata: { annotations: { team: 'other' } } }), /only spanprofiling.io\/ annotations/],
      ["a pod's annotations (removing one)", patchPod({ metadata: { annotations: { team: null } } }), /only spanprofiling.io\/ annotations/],
      ["a pod's owners", patchPod({ metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'x', uid: '00000000-0000-0000-0000-000000000001' }] } }), /owners or finalizers/],
      ["a namespace's other label", patchNamespace({ metadata: { labels: { env: 'prod' } } }), /only the spanprofiling.io\/injection label/],
      ["a namespace's annotation", patchNamespace({ metadata: { annotations: { 'spanprofiling.io/inject': 'true' } } }), /only the spanprofiling.io\/injection label/],
    ];
    for (const [what, args, message] of refused) {
      it(`is refused when it changes ${what}`, async () => {
        const r = await asOperator(...args);
        assert.equal(r.code, 422, r.message);
        assert.match(r.message, message);
      });
    }

    it('may create pods only as dry runs (the admission check), and not at all with admissionCheck.enabled false', async () => {
      const pod = (name: string) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: { containers: [{ name: 'app', image: 'node:24' }] } });
      const create = async (query: string): Promise<{ code: number; message: string }> => {
        const r = await cp.api<{ message?: string }>('POST', `/api/v1/namespaces/fenced/pods${query}`, pod('checked'), 'application/json', { 'Impersonate-User': SA });
        return { code: r.status, message: r.body.message ?? '' };
      };
      const dry = await create('?dryRun=All');
      assert.equal(dry.code, 201, dry.message);
      // The policy is loaded asynchronously: until it refuses a real create, that create may have gone through.
      const deadline = Date.now() + 60_000;
      for (;;) {
        const real = await create('');
        if (real.code === 422 || real.code === 403) {
          assert.match(real.message, /may create pods only as dry runs/);
          break;
        }
        if (real.code === 201) await cp.kubectl('delete', 'pod', '-n', 'fenced', 'checked', '--wait=false');
        assert.ok(Date.now() < deadline, `the dry-run-only policy never took effect: ${real.code} ${real.message}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      const admin = await cp.api<{ message?: string }>('POST', '/api/v1/namespaces/fenced/pods?dryRun=All', pod('admin'));
      assert.equal(admin.status, 201, 'other users are not fenced');
      await applyFence({ admissionCheck: { enabled: false } });
      assert.equal(await canI('create', 'pods', '-n', 'fenced'), 'no');
      await applyFence({});
      assert.equal(await canI('create', 'pods', '-n', 'fenced'), 'yes');
    });

    it('may set and remove the injection label of a namespace; other users are not fenced', async () => {
      const set = await asOperator(...patchNamespace({ metadata: { labels: { 'spanprofiling.io/injection': 'enabled' } } }));
      assert.equal(set.code, 200, set.message);
      const removed = await asOperator(...patchNamespace({ metadata: { labels: { 'spanprofiling.io/injection': null } } }));
      assert.equal(removed.code, 200, removed.message);
      const admin = await cp.kubectlResult(['label', 'pod', '-n', 'fenced', 'web', '--overwrite', 'app=admin-may']);
      assert.equal(admin.code, 0, admin.stderr);
    });

    it('reads no Secret but its own certificate unless credentialsCheck is on, and then only the names given', async () => {
      assert.equal(await canI('get', 'secrets/pyroscope-token', '-n', 'fenced'), 'no');
      assert.equal(await canI('get', 'secrets/spo-span-profiling-operator-webhook-tls', '-n', 'span-profiling'), 'yes');
      assert.equal(await canI('list', 'secrets', '-n', 'span-profiling'), 'no');
      await applyFence({ credentialsCheck: { enabled: true, secretNames: ['pyroscope-token'] } });
      assert.equal(await canI('get', 'secrets/pyroscope-token', '-n', 'fenced'), 'yes');
      assert.equal(await canI('get', 'secrets/database', '-n', 'fenced'), 'no');
      await applyFence({ credentialsCheck: { enabled: true } });
      assert.equal(await canI('get', 'secrets/database', '-n', 'fenced'), 'yes');
      assert.equal(await canI('list', 'secrets', '-n', 'fenced'), 'no');
      await applyFence({});
      assert.equal(await canI('get', 'secrets/database', '-n', 'fenced'), 'no');
    });

    describe('with rollout.enabled: may restart workloads, and change nothing else on them', () => {
      const deployment = '/apis/apps/v1/namespaces/fenced/deployments/web';
      const restartedAt = (at: string): unknown => ({ spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': at } } } } });
      const spanProfiling = '/apis/spanprofiling.io/v1alpha1/namespaces/fenced/spanprofilings/default';

      before(async () => {
        assert.equal(await canI('patch', 'deployments', '-n', 'fenced'), 'no', 'no workload permission without rollout.enabled');
        const crds = (await render()).filter((o) => o.kind === 'CustomResourceDefinition');
        assert.equal((await cp.kubectlResult(['apply', '-f', '-'], crds.map((o) => JSON.stringify(o)).join('\n'))).code, 0);
        await cp.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/spanprofilings.spanprofiling.io');
        await applyFence({ rollout: { enabled: true } });
        const objects = [
          {
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name: 'web', namespace: 'fenced', labels: { app: 'web' }, annotations: { team: 'payments' } },
            spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' }, annotations: { team: 'payments' } }, spec: { containers: [{ name: 'app', image: 'node:24' }] } } },
          },
          { apiVersion: 'spanprofiling.io/v1alpha1', kind: 'SpanProfiling', metadata: { name: 'default', namespace: 'fenced', annotations: { 'spanprofiling.io/rollout': 'now', team: 'payments' } }, spec: { pyroscope: { address: 'http://pyroscope:4040' }, tracing: { mode: 'app' } } },
        ];
        const r = await cp.kubectlResult(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
        assert.equal(r.code, 0, r.stderr);
        const deadline = Date.now() + 60_000;
        for (;;) {
          const probe = await asOperator(deployment, { spec: { replicas: 3 } });
          if (probe.code === 422 && /not its replicas/.test(probe.message)) break;
          if (probe.code === 200) await asAdmin(deployment, { spec: { replicas: 2 } });
          assert.ok(Date.now() < deadline, `the rollout admission policy never took effect: ${probe.code} ${probe.message}`);
          await new Promise((r) => setTimeout(r, 250));
        }
      });
      after(() => applyFence({}));
      const asAdmin = async (urlPath: string, body: unknown): Promise<void> => {
        const r = await cp.api<{ message?: string }>('PATCH', urlPath, body, 'application/merge-patch+json');
        assert.equal(r.status, 200, r.body.message);
      };

      it('may get and restart Deployments, StatefulSets and DaemonSets, and get ReplicaSets; nothing more', async () => {
        for (const kind of ['deployments', 'statefulsets', 'daemonsets']) {
          assert.equal(await canI('patch', kind, '-n', 'fenced'), 'yes', kind);
          assert.equal(await canI('get', kind, '-n', 'fenced'), 'yes', kind);
          for (const verb of ['create', 'delete', 'update', 'list']) assert.equal(await canI(verb, kind, '-n', 'fenced'), 'no', `${verb} ${kind}`);
        }
        assert.equal(await canI('get', 'replicasets', '-n', 'fenced'), 'yes');
        assert.equal(await canI('patch', 'replicasets', '-n', 'fenced'), 'no');
        assert.equal(await canI('patch', 'jobs', '-n', 'fenced'), 'no');
        assert.equal(await canI('patch', 'cronjobs', '-n', 'fenced'), 'no');
      });

      it('may set the restartedAt annotation of the pod template, as kubectl rollout restart does', async () => {
        const r = await asOperator(deployment, restartedAt('2026-12-04T12:00:00Z'));
        assert.equal(r.code, 200, r.message);
        const again = await asOperator(deployment, restartedAt('2026-12-04T12:05:00Z'));
        assert.equal(again.code, 200, again.message);
      });

      const refusedOnWorkload: [string, unknown, RegExp][] = [
        ['its replicas', { spec: { replicas: 5 } }, /not its replicas/],
        ['its image', { spec: { template: { spec: { containers: [{ name: 'app', image: 'evil:1' }] } } } }, /not its pod spec/],
        ["its pod template's labels", { spec: { template: { metadata: { labels: { app: 'web', extra: 'x' } } } } }, /not its other labels or annotations/],
        ["another annotation of its pod template", { spec: { template: { metadata: { annotations: { team: 'other' } } } } }, /not its other labels or annotations/],
        ['its strategy', { spec: { strategy: { type: 'Recreate', rollingUpdate: null } } }, /not its replicas, strategy/],
        ['its paused flag', { spec: { paused: true } }, /not its replicas, strategy/],
        ['its own labels', { metadata: { labels: { app: 'web', extra: 'x' } } }, /labels, annotations, owners or finalizers/],
        ['its own annotations', { metadata: { annotations: { team: 'other' } } }, /labels, annotations, owners or finalizers/],
      ];
      for (const [what, body, message] of refusedOnWorkload) {
        it(`is refused when it changes a Deployment: ${what}`, async () => {
          const r = await asOperator(deployment, body);
          assert.equal(r.code, 422, r.message);
          assert.match(r.message, message);
        });
      }

      it("still may scale its own Deployment (the uninstall hook's first step)", async () => {
        const own = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'spo-span-profiling-operator', namespace: 'span-profiling' }, spec: { replicas: 2, selector: { matchLabels: { app: 'op' } }, template: { metadata: { labels: { app: 'op' } }, spec: { containers: [{ name: 'op', image: 'op:1' }] } } } };
        assert.equal((await cp.kubectlResult(['apply', '-f', '-'], JSON.stringify(own))).code, 0);
        const r = await asOperator('/apis/apps/v1/namespaces/span-profiling/deployments/spo-span-profiling-operator', { spec: { replicas: 0 } });
        assert.equal(r.code, 200, r.message);
      });

      it('may only remove the rollout annotation of a SpanProfiling', async () => {
        const spec = await asOperator(spanProfiling, { spec: { pyroscope: { address: 'http://evil:4040' } } });
        assert.equal(spec.code, 422, spec.message);
        assert.match(spec.message, /may only remove the spanprofiling.io\/rollout annotation/);
        const other = await asOperator(spanProfiling, { metadata: { annotations: { team: null } } });
        assert.equal(other.code, 422, other.message);
        const removed = await asOperator(spanProfiling, { metadata: { annotations: { 'spanprofiling.io/rollout': null } } });
        assert.equal(removed.code, 200, removed.message);
      });
    });
  });

  const valueSets: [string, Record<string, unknown>][] = [
    ['defaults', {}],
    ['one replica (no PDB)', { replicaCount: 1 }],
    ['rollouts enabled (workload RBAC and its admission policy)', { rollout: { enabled: true } }],
    ['provided certificates', { certificates: { mode: 'provided', secretName: 'my-tls', provided: { caBundle: Buffer.from('-----BEGIN CERTIFICATE-----\n').toString('base64') } } }],
    ['a default SpanProfiling and opted-in namespaces', { defaultSpanProfiling: { enabled: true, namespace: 'span-profiling', spec: { pyroscope: { address: 'http://pyroscope:4040' }, tracing: { otlp: { endpoint: 'http://jaeger:4318' } } } }, optInNamespaces: ['shop', 'cart'], logLevel: 'debug' }],
  ];
  for (const [name, values] of valueSets) {
    it(`renders objects the real API server accepts (dry-run=server): ${name}`, async () => {
      const objects = await render(values);
      if (name === 'one replica (no PDB)') assert.ok(!objects.some((o) => o.kind === 'PodDisruptionBudget'));
      // The CRD first, so the SpanProfiling validates against it.
      const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition');
      const rest = objects.filter((o) => o.kind !== 'CustomResourceDefinition');
      const crdApply = await cp.kubectlResult(['apply', '-f', '-'], crds.map((o) => JSON.stringify(o)).join('\n'));
      assert.equal(crdApply.code, 0, crdApply.stderr);
      await cp.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/spanprofilings.spanprofiling.io');
      const r = await cp.kubectlResult(['apply', '--dry-run=server', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rest }));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim().split('\n').length, rest.length, r.stdout);
    });
  }

  it('renders a cert-manager Certificate, and the CA injection annotation, in cert-manager mode', async () => {
    const objects = await render({ certificates: { mode: 'cert-manager' } });
    const cert = objects.find((o) => o.kind === 'Certificate')!;
    assert.deepEqual((cert.spec as { dnsNames: string[] }).dnsNames, ['spo-span-profiling-operator-webhook.span-profiling.svc', 'spo-span-profiling-operator-webhook.span-profiling.svc.cluster.local']);
    assert.ok(objects.some((o) => o.kind === 'Issuer'));
    const hook = objects.find((o) => o.kind === 'MutatingWebhookConfiguration')! as unknown as { metadata: { annotations: Record<string, string> } };
    assert.equal(hook.metadata.annotations['cert-manager.io/inject-ca-from'], 'span-profiling/spo-span-profiling-operator-webhook');
    const env = (objects.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } } }).spec.template.spec.containers[0]!.env;
    assert.equal(env.find((e) => e.name === 'CERT_MODE')?.value, 'external');
  });

  const badValues: [string, Record<string, unknown>, RegExp][] = [
    ['negative replicas', { replicaCount: -1 }, /replicaCount.*(minimum|greater than or equal to 0)/],
    ['replicas of the wrong type', { replicaCount: 'two' }, /replicaCount.*(got string|expected integer|invalid type)/],
    ['an unknown certificate mode', { certificates: { mode: 'vault' } }, /certificates.mode.*(must be one of|value must be one of)/],
    ['provided mode without a CA bundle', { certificates: { mode: 'provided' } }, /caBundle/],
    ['a misspelt key', { replicas: 3 }, /additional properties 'replicas' not allowed|replicas/],
    ['an unknown failure policy', { webhook: { failurePolicy: 'Sometimes' } }, /failurePolicy/],
  ];
  for (const [what, values, message] of badValues) {
    it(`rejects ${what} at install, with a clear message`, async () => {
      const r = await helm(['template', 'spo', CHART, '-f', valuesFile('bad', values)]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /values don't meet the specifications of the schema/);
      assert.match(r.stderr, message);
    });
  }

  it('installs, upgrades with changed values, and uninstalls everything it created (the CRD is kept)', async () => {
    const install = await helm(['install', 'spo', CHART, '--namespace', 'span-profiling']);
    assert.equal(install.code, 0, install.stderr);
    assert.match(install.stdout, /kubectl annotate namespace shop spanprofiling.io\/inject=true/, 'NOTES tell the next command');
    const names: [string, string][] = [
      ['deployment', 'spo-span-profiling-operator'],
      ['service', 'spo-span-profiling-operator-webhook'],
      ['serviceaccount', 'spo-span-profiling-operator'],
      ['role', 'spo-span-profiling-operator'],
      ['rolebinding', 'spo-span-profiling-operator'],
      ['poddisruptionbudget', 'spo-span-profiling-operator'],
      ['clusterrole', 'spo-span-profiling-operator'],
      ['clusterrolebinding', 'spo-span-profiling-operator'],
      ['mutatingwebhookconfiguration', 'spo-span-profiling-operator'],
      ['crd', 'spanprofilings.spanprofiling.io'],
    ];
    for (const [kind, name] of names) assert.equal((await cp.kubectlResult(['get', '-n', 'span-profiling', kind, name])).code, 0, `${kind}/${name} exists`);

    const upgrade = await helm(['upgrade', 'spo', CHART, '--namespace', 'span-profiling', '--set', 'replicaCount=3', '--set', 'logLevel=debug']);
    assert.equal(upgrade.code, 0, upgrade.stderr);
    const dep = JSON.parse((await cp.kubectl('get', '-n', 'span-profiling', 'deployment', 'spo-span-profiling-operator', '-o', 'json')).stdout) as { spec: { replicas: number; template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } } };
    assert.equal(dep.spec.replicas, 3);
    assert.equal(dep.spec.template.spec.containers[0]!.env.find((e) => e.name === 'LOG_LEVEL')?.value, 'debug');

    // No kubelet here to run the pre-delete hook's Job (the kind e2e suite runs it): skip hooks.
    const uninstall = await helm(['uninstall', 'spo', '--namespace', 'span-profiling', '--no-hooks']);
    assert.equal(uninstall.code, 0, uninstall.stderr);
    for (const [kind, name] of names) {
      const r = await cp.kubectlResult(['get', '-n', 'span-profiling', kind, name]);
      if (kind === 'crd') assert.equal(r.code, 0, 'Helm keeps CRDs on uninstall (documented)');
      else assert.notEqual(r.code, 0, `${kind}/${name} removed`);
    }
  });
});
