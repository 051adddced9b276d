/**
 * `npm run bench:policies`: what a namespace hardened the way platform teams
 * harden them does with a pod, without the operator and with it (the
 * admission check off and on), against the real kube-apiserver. Prints a
 * table; the integration suite asserts the same rows.
 */
import * as path from 'node:path';
import { startControlPlane } from '../../e2e/harness/control-plane';
import { ManagedProcess, removeDir, tempDir } from '../../e2e/harness/processes';
import { REPO_ROOT } from '../../e2e/harness/toolchain';
import { registerLoopbackWebhook, startLoopbackOperator } from './loopback-operator';
const ALLOWED = 'images.shop.internal/';
const rows: { what: string; labels?: Record<string, string>; lr?: Record<string, unknown>; vap?: boolean; agent?: Record<string, unknown>; app?: Record<string, unknown>; quota?: Record<string, string>; podImage?: string }[] = [
  { what: 'Pod Security restricted, default SpanProfiling', labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } },
  { what: 'Pod Security restricted, agent.securityContext {runAsUser: 1000}', labels: { 'pod-security.kubernetes.io/enforce': 'restricted' }, agent: { securityContext: { runAsUser: 1000 } } },
  { what: 'Pod Security baseline', labels: { 'pod-security.kubernetes.io/enforce': 'baseline' } },
  { what: 'LimitRange min cpu 50m, memory 32Mi', lr: { min: { cpu: '50m', memory: '32Mi' } }, app: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } } },
  { what: 'LimitRange max cpu 100m, memory 48Mi', lr: { max: { cpu: '100m', memory: '48Mi' } }, app: { requests: { cpu: '50m', memory: '32Mi' }, limits: { cpu: '100m', memory: '48Mi' } } },
  { what: 'LimitRange maxLimitRequestRatio cpu 2', lr: { maxLimitRequestRatio: { cpu: '2' } }, app: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '200m', memory: '64Mi' } } },
  { what: 'LimitRange with defaults only', lr: { default: { cpu: '300m', memory: '256Mi' }, defaultRequest: { cpu: '100m', memory: '128Mi' } } },
  { what: 'ValidatingAdmissionPolicy: images only from the company registry', vap: true, podImage: `${ALLOWED}web:1` },
  { what: '... and agent.image mirrored there', vap: true, podImage: `${ALLOWED}web:1`, agent: { image: `${ALLOWED}span-profiling-agent:test` } },
  { what: 'ResourceQuota on limits.ephemeral-storage', quota: { 'limits.ephemeral-storage': '1Gi' }, app: { limits: { 'ephemeral-storage': '100Mi' } } },
  { what: 'ResourceQuota requests.memory 6Mi, pod asks 4Mi', quota: { 'requests.memory': '6Mi' }, app: { requests: { memory: '4Mi' } } },
];
(async () => {
  const cp = await startControlPlane();
  const logDir = tempDir('table');
  const ops: ManagedProcess[] = [];
  try {
    await cp.kubectl('apply', '-f', path.join(REPO_ROOT, 'crds'));
    await cp.kubectl('wait', '--for=condition=Established', '--timeout=60s', 'crd/spanprofilings.spanprofiling.io');
    await cp.kubectl('create', 'namespace', 'span-profiling');
    const vap = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicy', metadata: { name: 'images-from-our-registry' }, spec: { failurePolicy: 'Fail', matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }] }, validations: [{ expression: `object.spec.containers.all(c, c.image.startsWith('${ALLOWED}')) && object.spec.?initContainers.orValue([]).all(c, c.image.startsWith('${ALLOWED}'))` }] } };
    const vb = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name: 'images-from-our-registry' }, spec: { policyName: 'images-from-our-registry', validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { policy: 'images' } } } } };
    for (const o of [vap, vb]) await cp.kubectlResult(['apply', '-f', '-'], JSON.stringify(o));
    const webhookPort = await registerLoopbackWebhook(cp);
    let n = 0;
    for (const r of rows) {
      const ns = `t${n++}`;
      await cp.kubectl('create', 'namespace', ns);
      const labels = { ...r.labels, ...(r.vap ? { policy: 'images' } : {}) };
      if (Object.keys(labels).length) await cp.kubectl('label', 'namespace', ns, ...Object.entries(labels).map(([k, v]) => `${k}=${v}`));
      if (r.lr) await cp.kubectlResult(['apply', '-n', ns, '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'LimitRange', metadata: { name: 'hardened' }, spec: { limits: [{ type: 'Container', ...r.lr }] } }));
      if (r.quota) {
        const q = await cp.api<Record<string, unknown>>('POST', `/api/v1/namespaces/${ns}/resourcequotas`, { apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'team' }, spec: { hard: r.quota } });
        await cp.api('PUT', `/api/v1/namespaces/${ns}/resourcequotas/team/status`, { ...q.body, status: { hard: r.quota, used: Object.fromEntries(Object.keys(r.quota).map((k) => [k, '0'])) } });
      }
      await cp.kubectlResult(['apply', '-n', ns, '-f', '-'], JSON.stringify({ apiVersion: 'spanprofiling.io/v1alpha1', kind: 'SpanProfiling', metadata: { name: 'default' }, spec: { pyroscope: { address: 'http://p:4040' }, tracing: { otlp: { endpoint: 'http://j:4318' } }, ...(r.agent ? { agent: r.agent } : {}) } }));
    }
    const until = async (what: string, probe: () => Promise<boolean>): Promise<void> => {
      for (const deadline = Date.now() + 60_000; !(await probe().catch(() => false)); await new Promise((res) => setTimeout(res, 250))) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      }
    };
    // The API server loads a policy asynchronously.
    const vapNs = `t${rows.findIndex((r) => r.vap)}`;
    await until('the image policy in force', async () => (await cp.api('POST', `/api/v1/namespaces/${vapNs}/pods?dryRun=All`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'probe' }, spec: { containers: [{ name: 'a', image: 'x' }] } })).status >= 400);
    const pod = (r: (typeof rows)[number], inject: boolean) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', annotations: { 'spanprofiling.io/inject': inject ? 'true' : 'false' } }, spec: { ...(r.labels?.['pod-security.kubernetes.io/enforce'] === 'restricted' ? { securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } } } : {}), containers: [{ name: 'app', image: r.podImage ?? 'node:24', ...(r.app ? { resources: r.app } : {}), ...(r.labels?.['pod-security.kubernetes.io/enforce'] === 'restricted' ? { securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, runAsUser: 1000 } } : {}) }] } });
    const results: string[][] = rows.map((r) => [r.what]);
    for (const check of ['off', 'dry-run']) {
      const { process: op } = await startLoopbackOperator(cp, { name: `op-${check}`, webhookPort, logDir, check, agentImage: 'span-profiling-agent:test' });
      ops.push(op);
      for (let i = 0; i < rows.length; i++) await cp.kubectl('annotate', '--overwrite', 'namespace', `t${i}`, 'spanprofiling.io/inject=true');
      for (let i = 0; i < rows.length; i++) {
        await until(`t${i} labelled for the webhook`, async () => (await cp.api<{ metadata: { labels?: Record<string, string> } }>('GET', `/api/v1/namespaces/t${i}`)).body.metadata.labels?.['spanprofiling.io/injection'] === 'enabled');
        // The webhook's caches see the namespace's SpanProfiling, LimitRange and quota once a pod of it is decided.
        await until(`the webhook deciding pods of t${i}`, async () => (await cp.api<{ metadata: { annotations?: Record<string, string> } }>('POST', `/api/v1/namespaces/t${i}/pods?dryRun=All`, pod(rows[i]!, false))).body.metadata?.annotations?.['spanprofiling.io/status'] !== undefined);
      }
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i]!;
        if (check === 'off') {
          const plain = await cp.api<{ message?: string }>('POST', `/api/v1/namespaces/t${i}/pods?dryRun=All`, pod(r, false));
          results[i]!.push(plain.status === 201 ? 'admitted' : `${plain.status}`);
        }
        const res = await cp.api<{ message?: string; metadata: { annotations?: Record<string, string> } }>('POST', `/api/v1/namespaces/t${i}/pods?dryRun=All`, pod(r, true));
        results[i]!.push(res.status === 201 ? `admitted, ${res.body.metadata.annotations?.['spanprofiling.io/status']}${res.body.metadata.annotations?.['spanprofiling.io/refused-by'] ? ` (refused-by ${res.body.metadata.annotations['spanprofiling.io/refused-by']})` : ''}` : `**${res.status}** ${(res.body.message ?? '').slice(0, 80)}`);
      }
      await op.stop();
    }
    console.log('| namespace policy | without the operator | operator, check off | operator, check on |\n|---|---|---|---|');
    for (const r of results) console.log(`| ${r.join(' | ')} |`);
  } finally {
    for (const o of ops) await o.stop().catch(() => undefined);
    await cp.stop();
    removeDir(logDir);
  }
})().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
