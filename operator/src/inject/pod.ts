/**
 * The mutation of a pod: a pure function of the pod, its namespace and the
 * known SpanProfilings. It decides (select.ts, which containers), changes
 * (nodejs.ts, init container and volume) and reports: the status and reason
 * annotations, and warnings for the user.
 *
 * Idempotent: a pod it already injected comes back unchanged, so webhook
 * reinvocation never injects twice.
 */
import { fitAgentResources, type AgentResources, type LimitRangeLike, type ResourceQuotaLike } from './resources';
import type { V1Container, V1EnvVar, V1Pod, V1PodSecurityContext, V1Volume } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { ANNOTATION_AGENT_IMAGE, ANNOTATION_CONFIG, ANNOTATION_GENERATION, ANNOTATION_REASON, ANNOTATION_REFUSED_BY, ANNOTATION_SPANPROFILING, ANNOTATION_STATUS, LABEL_INJECTED, ref, type InjectionStatus, type SpanProfiling } from '../api';
import { agentImageFor, podConfigDigest } from './fingerprint';
import { parseContainerNames } from './annotations';
import { generatedEnv, generatedResourceAttributes, imageTag, referencedSecrets, type EnvContext } from './env';
import { AGENT_MOUNT_PATH, AGENT_VOLUME, injectContainer } from './nodejs';
import { selectSpanProfiling, type ReasonCode } from './select';
import { serviceName } from './service-name';
import { podSpecProblems } from './validate';

export const INIT_CONTAINER = 'spanprofiling-agent';
/** The cluster autoscaler does not scale a node down while a pod has local volumes not named here. */
export const SAFE_TO_EVICT_LOCAL_VOLUMES = 'cluster-autoscaler.kubernetes.io/safe-to-evict-local-volumes';

/** The pod's list of evictable local volumes, with the agent's copy added. */
function withAgentVolume(existing: string | undefined): string {
  const names = (existing ?? '').split(',').map((n) => n.trim()).filter((n) => n !== '');
  return [...names.filter((n) => n !== AGENT_VOLUME), AGENT_VOLUME].join(',');
}

export interface OperatorDefaults {
  /** The agent image the operator was installed with. */
  agentImage: string;
  imagePullPolicy?: string;
}

export interface MutationInput {
  pod: V1Pod;
  /** The namespace the pod is created in (the admission request's, since metadata.namespace may be empty). */
  namespace: string;
  namespaceAnnotations: Readonly<Record<string, string>> | undefined;
  spanProfilings: readonly SpanProfiling[];
  defaults: OperatorDefaults;
  /** The LimitRanges of the pod's namespace (the shell's cache), which the agent container must fit. */
  limitRanges?: readonly LimitRangeLike[];
  /** The ResourceQuotas of the pod's namespace (the shell's cache): the agent states what they track, within what the pod asks. */
  resourceQuotas?: readonly ResourceQuotaLike[];
  /** The Pod Security level the namespace enforces (its pod-security.kubernetes.io/enforce label). */
  podSecurityLevel?: string;
}

export type MutationCode = ReasonCode | 'injected' | 'already-injected' | 'no-injectable-container' | 'volume-conflict' | 'invalid-spanprofiling' | 'windows-pod' | 'limit-range' | 'pod-security' | 'admission-refused';

/** kubectl's choice of container for logs and exec, honoured before "the first container". */
export const ANNOTATION_DEFAULT_CONTAINER = 'kubectl.kubernetes.io/default-container';

export interface MutationResult {
  pod: V1Pod;
  status: InjectionStatus;
  code: MutationCode;
  reason: string;
  warnings: string[];
  spanProfiling?: SpanProfiling;
}

const DEFAULT_RESOURCES = { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '200m', memory: '64Mi' } };
const DEFAULT_SECURITY_CONTEXT = {
  runAsNonRoot: true,
  runAsUser: 65532,
  runAsGroup: 65532,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

/**
 * The agent container's security context: what the SpanProfiling sets, field by field over the
 * secure default (a context that sets only runAsUser keeps allowPrivilegeEscalation=false, drop
 * ALL, runAsNonRoot and the seccomp profile, so the restricted Pod Security level still admits
 * it). Defaults that would contradict what is set are left out: allowPrivilegeEscalation=false for
 * a privileged container (the API server rejects the pair), runAsNonRoot for runAsUser 0 (the
 * kubelet would refuse to start it).
 */
export function agentSecurityContext(given: V1Container['securityContext'] | undefined): V1Container['securityContext'] {
  if (given === undefined || given === null) return DEFAULT_SECURITY_CONTEXT;
  const merged: Record<string, unknown> = { ...DEFAULT_SECURITY_CONTEXT, ...given };
  if (given.privileged === true && given.allowPrivilegeEscalation === undefined) delete merged['allowPrivilegeEscalation'];
  if (given.runAsUser === 0 && given.runAsNonRoot === undefined) delete merged['runAsNonRoot'];
  return merged as V1Container['securityContext'];
}

/** Capabilities the baseline Pod Security level lets a container add. */
const BASELINE_CAPABILITIES = new Set(['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT']);

/**
 * What of a container's security context the namespace's Pod Security level (baseline or
 * restricted, as Pod Security admission checks them) refuses, or undefined. The pod's own
 * context counts where the level lets it (runAsNonRoot, seccompProfile).
 */
export function podSecurityProblem(sc: V1Container['securityContext'], podSc: V1PodSecurityContext | undefined, level: string | undefined): string | undefined {
  if (level !== 'baseline' && level !== 'restricted') return undefined;
  const c = sc ?? {};
  if (c.privileged === true) return 'privileged';
  const added = c.capabilities?.add ?? [];
  const seccomp = c.seccompProfile?.type ?? podSc?.seccompProfile?.type;
  if (added.some((cap) => !BASELINE_CAPABILITIES.has(cap))) return `capabilities.add ${added.join(', ')}`;
  if (seccomp === 'Unconfined') return 'seccompProfile Unconfined';
  if (level === 'baseline') return undefined;
  if (c.allowPrivilegeEscalation !== false) return 'allowPrivilegeEscalation is not false';
  if (!(c.capabilities?.drop ?? []).includes('ALL')) return 'capabilities.drop does not include ALL';
  if (added.some((cap) => cap !== 'NET_BIND_SERVICE')) return `capabilities.add ${added.join(', ')}`;
  if ((c.runAsNonRoot ?? podSc?.runAsNonRoot) !== true) return 'runAsNonRoot is not true';
  if ((c.runAsUser ?? podSc?.runAsUser) === 0) return 'runAsUser 0';
  if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') return 'no RuntimeDefault or Localhost seccompProfile';
  return undefined;
}

export function mutatePod(input: MutationInput): MutationResult {
  const pod = structuredClone(input.pod);
  const annotations = pod.metadata?.annotations ?? {};
  // Decided by the agent's init container, not by the status annotation (which a template may have copied).
  if (pod.spec?.initContainers?.some((c) => c.name === INIT_CONTAINER)) {
    return { pod, status: 'injected', code: 'already-injected', reason: annotations[ANNOTATION_REASON] ?? 'already injected', warnings: [] };
  }

  const selection = selectSpanProfiling({
    podNamespace: input.namespace,
    podAnnotations: annotations,
    podLabels: pod.metadata?.labels,
    namespaceAnnotations: input.namespaceAnnotations,
    spanProfilings: input.spanProfilings,
  });
  if (selection.outcome !== 'inject') {
    return annotate(pod, { status: selection.outcome === 'skip' ? 'skipped' : 'error', code: selection.code, reason: selection.reason, warnings: selection.outcome === 'error' ? [selection.reason] : [] });
  }
  const sp = selection.spanProfiling;
  // A value the API server rejects would make it refuse the pod we return: inject nothing, and say why.
  const problems = podSpecProblems(sp);
  if (problems.length > 0) {
    const reason = `SpanProfiling ${ref(sp)} cannot be injected: ${problems.join('; ')}`;
    return { ...annotate(pod, { status: 'error', code: 'invalid-spanprofiling', reason, warnings: [reason] }, sp), spanProfiling: sp };
  }
  if (pod.spec?.os?.name === 'windows' || pod.spec?.nodeSelector?.['kubernetes.io/os'] === 'windows') {
    return annotate(pod, { status: 'skipped', code: 'windows-pod', reason: 'a Windows pod: the agent image and its copy step are Linux-only', warnings: [] }, sp);
  }

  const containers = pod.spec?.containers ?? [];
  const initContainers = pod.spec?.initContainers ?? [];
  // Native sidecars (init containers that keep running) can be named too.
  const sidecars = initContainers.filter((c) => c.restartPolicy === 'Always');
  const defaultContainer = annotations[ANNOTATION_DEFAULT_CONTAINER];
  const fallback = defaultContainer !== undefined && containers.some((c) => c.name === defaultContainer) ? [defaultContainer] : containers[0] ? [containers[0].name] : [];
  const wanted = parseContainerNames(annotations) ?? (sp.spec.containerNames?.length ? sp.spec.containerNames : fallback);
  const exists = (n: string): boolean => containers.some((c) => c.name === n) || sidecars.some((c) => c.name === n);
  const missing = wanted.filter((n) => !exists(n));
  const warnings: string[] = [];
  for (const name of missing) {
    warnings.push(
      initContainers.some((c) => c.name === name)
        ? `container ${name} is an init container that runs to completion, not a sidecar: not injected`
        : `no container named ${name} in the pod`,
    );
  }
  if (missing.length > 0) warnings.push(`injecting ${wanted.filter(exists).join(', ') || 'nothing'}`);
  // Kubernetes resolves a pod's secretKeyRefs in the pod's namespace, not the SpanProfiling's.
  const secrets = sp.metadata.namespace !== input.namespace ? referencedSecrets(sp) : [];
  if (secrets.length > 0) {
    warnings.push(
      `the Pyroscope credentials of SpanProfiling ${ref(sp)} are read from Secret ${secrets.join(', ')} in the pod's namespace ${input.namespace}, not ${sp.metadata.namespace}: copy it there (the SpanProfiling's CredentialsMissing condition says whether it exists)`,
    );
  }

  const service = serviceName(pod);
  const skipped: string[] = [];
  let injectedCount = 0;
  const inject = (container: V1Container): V1Container => {
    if (!wanted.includes(container.name)) return container;
    const version = pod.metadata?.labels?.['app.kubernetes.io/version'] ?? imageTag(container.image);
    const ctx: EnvContext = { serviceName: service, podNamespace: input.namespace, containerName: container.name, workload: workloadAttributes(pod), ...(version === undefined ? {} : { serviceVersion: version }) };
    const result = injectContainer(container, {
      // The CRD allows an integer divisor where client-node types a string: the API server takes both.
      fromSpanProfiling: (sp.spec.env ?? []) as V1EnvVar[],
      generated: generatedEnv(sp, ctx),
      resource: { generated: generatedResourceAttributes(ctx), fromSpanProfiling: sp.spec.resourceAttributes ?? {} },
    });
    if (!result.injected) {
      skipped.push(result.reason);
      return container;
    }
    injectedCount++;
    warnings.push(...result.warnings);
    return result.container;
  };
  const newContainers = containers.map(inject);
  const newInitContainers = initContainers.map((c) => (c.restartPolicy === 'Always' ? inject(c) : c));

  if (injectedCount === 0) {
    const reason = skipped.length > 0 ? skipped.join('; ') : `no container to inject (${missing.length > 0 ? `missing: ${missing.join(', ')}` : 'the pod has no containers'})`;
    return annotate(pod, { status: 'skipped', code: 'no-injectable-container', reason, warnings: [...warnings, reason] }, sp);
  }
  const volumes = pod.spec?.volumes ?? [];
  if (volumes.some((v) => v.name === AGENT_VOLUME)) {
    const reason = `the pod already has a volume named ${AGENT_VOLUME}`;
    return annotate(pod, { status: 'error', code: 'volume-conflict', reason, warnings: [reason] }, sp);
  }

  const agent = sp.spec.agent ?? {};
  const fitted = fitAgentResources((agent.resources as AgentResources | undefined) ?? DEFAULT_RESOURCES, input.limitRanges ?? [], input.resourceQuotas ?? [], { containers, initContainers });
  if ('problem' in fitted) {
    const reason = `not injected: ${fitted.problem}`;
    return annotate(pod, { status: 'skipped', code: fitted.code, reason, warnings: [reason], refusedBy: fitted.policy }, sp);
  }
  const securityContext = agentSecurityContext(agent.securityContext as V1Container['securityContext']);
  const insecure = podSecurityProblem(securityContext, pod.spec?.securityContext, input.podSecurityLevel);
  if (insecure !== undefined) {
    const reason = `not injected: the namespace enforces the ${input.podSecurityLevel} Pod Security level, which the agent's init container would break (${insecure}); change the SpanProfiling's agent.securityContext`;
    return annotate(pod, { status: 'skipped', code: 'pod-security', reason, warnings: [reason], refusedBy: `PodSecurity/${input.podSecurityLevel}` }, sp);
  }
  if (fitted.changed.length > 0) warnings.push(`the agent's init container fits the namespace's LimitRanges and ResourceQuotas with ${fitted.changed.join(', ')}`);
  const volume: V1Volume = { name: AGENT_VOLUME, emptyDir: { sizeLimit: String(agent.volumeSizeLimit ?? '64Mi') } };
  const init: V1Container = {
    name: INIT_CONTAINER,
    image: agentImageFor(sp, input.defaults.agentImage),
    command: ['cp', '-R', '/agent/.', `${AGENT_MOUNT_PATH}/`],
    volumeMounts: [{ name: AGENT_VOLUME, mountPath: AGENT_MOUNT_PATH }],
    resources: { ...(agent.resources as V1Container['resources']), ...fitted.resources },
    securityContext,
    ...(agent.imagePullPolicy ?? input.defaults.imagePullPolicy ? { imagePullPolicy: agent.imagePullPolicy ?? input.defaults.imagePullPolicy } : {}),
  };
  pod.spec = { ...pod.spec!, containers: newContainers, volumes: [...volumes, volume], initContainers: [init, ...newInitContainers] };
  pod.metadata = {
    ...pod.metadata,
    labels: { ...pod.metadata?.labels, [LABEL_INJECTED]: 'true' },
    annotations: {
      ...pod.metadata?.annotations,
      [ANNOTATION_AGENT_IMAGE]: init.image!,
      [SAFE_TO_EVICT_LOCAL_VOLUMES]: withAgentVolume(pod.metadata?.annotations?.[SAFE_TO_EVICT_LOCAL_VOLUMES]),
    },
  };
  const injectedNames = [...newInitContainers.filter((c, i) => c !== initContainers[i]), ...newContainers.filter((c, i) => c !== containers[i])].map((c) => c.name);
  if (skipped.length > 0) warnings.push(...skipped);
  // Controller-made pods show no admission warnings to anyone: the reason annotation carries them.
  const reason = `injected ${injectedNames.join(', ')} with SpanProfiling ${ref(sp)}${warnings.length > 0 ? `; ${warnings.join('; ')}` : ''}`;
  return { ...annotate(pod, { status: 'injected', code: 'injected', reason, warnings }, sp), spanProfiling: sp };
}

/**
 * The pod as it came, with the reason it goes in without the agent: the API
 * server would refuse it with the agent (a policy the webhook cannot read,
 * found by the admission check).
 */
export function refusedByAdmission(pod: V1Pod, sp: SpanProfiling | undefined, reason: string, policy: string | undefined, agentImage?: string): MutationResult {
  const result = annotate(structuredClone(pod), { status: 'skipped', code: 'admission-refused', reason, warnings: [reason], ...(policy !== undefined ? { refusedBy: policy } : {}) }, sp);
  // The image refused with it: another agent image (the operator's default changed) may be admitted.
  if (agentImage !== undefined) result.pod.metadata!.annotations![ANNOTATION_AGENT_IMAGE] = agentImage;
  return sp === undefined ? result : { ...result, spanProfiling: sp };
}

/**
 * Writes the outcome on the pod. `sp` is the SpanProfiling that decided, once
 * one was selected: the pod then records which one, its generation and the
 * digest of what it gives pods, so the controller can tell a pod that is out
 * of date, or one skipped for its own reasons under the same configuration
 * (a restart would skip it again), from one the webhook never saw.
 */
function annotate(pod: V1Pod, r: { status: InjectionStatus; code: MutationCode; reason: string; warnings: string[]; refusedBy?: string }, sp?: SpanProfiling): MutationResult {
  const decidedBy: Record<string, string> =
    sp === undefined ? {} : { [ANNOTATION_SPANPROFILING]: ref(sp), [ANNOTATION_GENERATION]: String(sp.metadata.generation ?? 0), [ANNOTATION_CONFIG]: podConfigDigest(sp) };
  const { refusedBy, ...result } = r;
  const annotations: Record<string, string> = { ...pod.metadata?.annotations, ...decidedBy, [ANNOTATION_STATUS]: r.status, [ANNOTATION_REASON]: r.reason };
  // A template may carry the annotation from a pod it was copied from: only this decision's stays.
  delete annotations[ANNOTATION_REFUSED_BY];
  if (refusedBy !== undefined) annotations[ANNOTATION_REFUSED_BY] = refusedBy;
  pod.metadata = { ...pod.metadata, annotations };
  return { pod, ...result };
}

/** Workload attributes that are known when the pod is admitted. */
function workloadAttributes(pod: V1Pod): Record<string, string> {
  const owner = pod.metadata?.ownerReferences?.find((o) => o.controller === true);
  if (owner === undefined) return {};
  const hash = pod.metadata?.labels?.['pod-template-hash'];
  switch (owner.kind) {
    case 'ReplicaSet':
      return hash !== undefined && owner.name.endsWith(`-${hash}`)
        ? { 'k8s.replicaset.name': owner.name, 'k8s.deployment.name': owner.name.slice(0, -hash.length - 1) }
        : { 'k8s.replicaset.name': owner.name };
    case 'StatefulSet':
      return { 'k8s.statefulset.name': owner.name };
    case 'DaemonSet':
      return { 'k8s.daemonset.name': owner.name };
    case 'Job': {
      // A CronJob names its Jobs <cronjob>-<scheduled time in minutes>.
      const cronJob = /^(.+)-\d{8,}$/.exec(owner.name)?.[1];
      return { 'k8s.job.name': owner.name, ...(cronJob === undefined ? {} : { 'k8s.cronjob.name': cronJob }) };
    }
    default:
      return {};
  }
}
