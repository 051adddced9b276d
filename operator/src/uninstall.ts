/**
 * `operator.js uninstall`: what the chart's pre-delete hook runs before Helm
 * removes the release, so that nothing the operator made at run time is left:
 *   1. scale the operator's Deployment to zero and wait until its pods are
 *      gone (otherwise a running replica would put the rest back);
 *   2. remove the injection label from every namespace that has it;
 *   3. delete the Lease, and the webhook certificate Secret when the operator
 *      made it (CERT_MODE=self).
 * Each step is tried even when an earlier one failed, and problems are logged,
 * never fatal: a failing hook would block `helm uninstall`.
 * Left alone on purpose: the CRD and SpanProfilings (Helm keeps CRDs), and the
 * status annotations on existing pods (a record of what was done to them).
 */
import { LABEL_NAMESPACE_INJECTION } from './api';
import { isNotFound, type Kube } from './kube/client';
import { errorMessage, type Log } from './log';

export interface UninstallConfig {
  namespace: string;
  deployment: string;
  leaseName: string;
  certMode: 'self' | 'external';
  certSecretName: string;
  /** How long to wait for the operator's pods to stop. */
  stopTimeoutMs?: number;
}

export interface UninstallResult {
  removedLabels: string[];
  deleted: string[];
  problems: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function uninstall(kube: Kube, config: UninstallConfig, log: Log): Promise<UninstallResult> {
  const result: UninstallResult = { removedLabels: [], deleted: [], problems: [] };
  const step = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      result.problems.push(`${what}: ${errorMessage(err)}`);
      log.warn(`uninstall: ${what} failed`, { error: errorMessage(err) });
    }
  };
  const ns = encodeURIComponent(config.namespace);

  await step(`scale deployment ${config.deployment} to 0`, async () => {
    const path = `/apis/apps/v1/namespaces/${ns}/deployments/${encodeURIComponent(config.deployment)}`;
    const patched = await kube.request<unknown>('PATCH', path, { spec: { replicas: 0 } }, 'application/merge-patch+json').catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (patched === undefined) return;
    // Wait until no pod of it is left, terminating ones included: a replica
    // in its shutdown grace period could still put a label back.
    const dep = await kube.get<{ spec?: { selector?: { matchLabels?: Record<string, string> } } }>(path);
    const selector = Object.entries(dep?.spec?.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
    if (selector === '') throw new Error('the Deployment has no matchLabels selector');
    const deadline = Date.now() + (config.stopTimeoutMs ?? 60_000);
    for (;;) {
      const pods = await kube.request<{ items: unknown[] }>('GET', `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`);
      if (pods.items.length === 0) break;
      if (Date.now() > deadline) throw new Error(`${pods.items.length} pods still running`);
      await sleep(500);
    }
    log.info('uninstall: operator stopped', { deployment: config.deployment });
  });

  await step('remove namespace labels', async () => {
    const list = await kube.request<{ items: { metadata: { name: string } }[] }>('GET', `/api/v1/namespaces?labelSelector=${encodeURIComponent(LABEL_NAMESPACE_INJECTION)}`);
    for (const item of list.items) {
      await step(`remove the label from namespace ${item.metadata.name}`, async () => {
        await kube.request('PATCH', `/api/v1/namespaces/${encodeURIComponent(item.metadata.name)}`, { metadata: { labels: { [LABEL_NAMESPACE_INJECTION]: null } } }, 'application/merge-patch+json');
        result.removedLabels.push(item.metadata.name);
      });
    }
  });

  const remove = async (kind: string, path: string): Promise<void> =>
    step(`delete ${kind}`, async () => {
      try {
        await kube.request('DELETE', path);
        result.deleted.push(kind);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    });
  await remove(`lease/${config.leaseName}`, `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${encodeURIComponent(config.leaseName)}`);
  if (config.certMode === 'self') await remove(`secret/${config.certSecretName}`, `/api/v1/namespaces/${ns}/secrets/${encodeURIComponent(config.certSecretName)}`);

  log.info('uninstall: done', { removedLabels: result.removedLabels, deleted: result.deleted, problems: result.problems.length });
  return result;
}
