/**
 * The service name a pod's telemetry is filed under: the app.kubernetes.io/name
 * label, else the app label, else the owning workload (a Deployment's name is
 * its ReplicaSet's name minus the pod-template-hash), else the pod's name.
 */
import type { V1Pod } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };

export function serviceName(pod: V1Pod): string {
  const labels = pod.metadata?.labels ?? {};
  const fromLabel = labels['app.kubernetes.io/name'] ?? labels['app'];
  if (fromLabel !== undefined && fromLabel.trim() !== '') return fromLabel.trim();

  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller === true) ?? pod.metadata?.ownerReferences?.[0];
  if (owner !== undefined && owner.name !== '') {
    const hash = labels['pod-template-hash'];
    if (owner.kind === 'ReplicaSet' && hash !== undefined && owner.name.endsWith(`-${hash}`)) return owner.name.slice(0, -hash.length - 1);
    // A Job made by a CronJob is named <cronjob>-<scheduled time in minutes>.
    if (owner.kind === 'Job' && /-\d{8,}$/.test(owner.name)) return owner.name.replace(/-\d{8,}$/, '');
    return owner.name;
  }
  const name = pod.metadata?.name ?? pod.metadata?.generateName?.replace(/-+$/, '');
  if (name !== undefined && name !== '') return name;
  return pod.spec?.containers?.[0]?.name ?? 'unknown_service';
}
