/**
 * Which running pods of a SpanProfiling are current, out of date or missed:
 * a pure function of the pods (as the controller caches them), the
 * namespaces' annotations and the SpanProfilings.
 *
 * - injected: the webhook gave it the agent (label spanprofiling.io/injected);
 * - outdated: injected, but with another digest of the pod-affecting spec
 *   (spanprofiling.io/config) or another agent image than a pod created now
 *   would get; a pod injected before these annotations existed is outdated;
 * - missed: no agent, yet a pod created now would select this SpanProfiling,
 *   and the webhook did not already decide about it under this same
 *   configuration (a pod skipped for its own reasons, say a Windows pod or
 *   NODE_OPTIONS from a Secret, would be skipped again: it is not missed).
 */
import { ANNOTATION_AGENT_IMAGE, ANNOTATION_CONFIG, ANNOTATION_REFUSED_BY, ANNOTATION_SPANPROFILING, LABEL_INJECTED, ref, type SpanProfiling } from '../api';
import { agentImageFor, podConfigDigest } from '../inject/fingerprint';
import { selectSpanProfiling } from '../inject/select';

/** What the controller keeps of a pod. */
export interface PodView {
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: OwnerReference[];
    creationTimestamp?: string;
    deletionTimestamp?: string;
  };
  status?: { phase?: string };
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid?: string;
  controller?: boolean;
}

export type Standing = 'current' | 'outdated' | 'missed';

export interface DriftContext {
  namespaceAnnotations: (namespace: string) => Readonly<Record<string, string>> | undefined;
  spanProfilings: readonly SpanProfiling[];
  /** The agent image the operator injects when a SpanProfiling names none. */
  agentImage: string;
}

export const isLive = (pod: PodView): boolean => pod.metadata.deletionTimestamp === undefined && pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed';

export const isInjected = (pod: PodView): boolean => pod.metadata.labels?.[LABEL_INJECTED] === 'true';

/** How a live pod stands with this SpanProfiling, or undefined when it is not this SpanProfiling's. */
export function standing(pod: PodView, sp: SpanProfiling, ctx: DriftContext, digest = podConfigDigest(sp)): Standing | undefined {
  if (!isLive(pod)) return undefined;
  const a = pod.metadata.annotations ?? {};
  const key = ref(sp);
  if (isInjected(pod)) {
    if (a[ANNOTATION_SPANPROFILING] !== key) return undefined;
    return a[ANNOTATION_CONFIG] === digest && a[ANNOTATION_AGENT_IMAGE] === agentImageFor(sp, ctx.agentImage) ? 'current' : 'outdated';
  }
  const selection = selectSpanProfiling({
    podNamespace: pod.metadata.namespace,
    podAnnotations: a,
    podLabels: pod.metadata.labels,
    namespaceAnnotations: ctx.namespaceAnnotations(pod.metadata.namespace),
    spanProfilings: ctx.spanProfilings,
  });
  if (selection.outcome !== 'inject' || ref(selection.spanProfiling) !== key) return undefined;
  // Decided under this configuration: skipped again on a restart, unless a policy refused another agent image than a pod gets now.
  const refusedBefore = a[ANNOTATION_REFUSED_BY] !== undefined && refusedBy(pod, key, digest, agentImageFor(sp, ctx.agentImage)) === undefined;
  if (a[ANNOTATION_SPANPROFILING] === key && a[ANNOTATION_CONFIG] === digest && !refusedBefore) return undefined;
  return 'missed';
}

/**
 * The policy that keeps a live pod without the agent under this configuration and this agent
 * image (a restart would be refused again), or undefined.
 */
function refusedBy(pod: PodView, key: string, digest: string, image: string): string | undefined {
  const a = pod.metadata.annotations ?? {};
  const policy = a[ANNOTATION_REFUSED_BY];
  if (policy === undefined || !isLive(pod) || isInjected(pod) || a[ANNOTATION_SPANPROFILING] !== key || a[ANNOTATION_CONFIG] !== digest) return undefined;
  return a[ANNOTATION_AGENT_IMAGE] === undefined || a[ANNOTATION_AGENT_IMAGE] === image ? policy : undefined;
}

export interface PodCounts {
  injectedPods: number;
  outdatedPods: number;
  missedPods: number;
  /** Running without the agent because a policy of their namespace refuses it (under this configuration). */
  refusedPods: number;
}

/** Pods a policy kept from the agent, per policy and namespace. */
export interface Refusal {
  policy: string;
  namespace: string;
  pods: number;
}

export interface Drift extends PodCounts {
  /** Per namespace, sorted by name. */
  namespaces: ({ namespace: string } & PodCounts)[];
  /** The policies that kept pods from the agent, most pods first. */
  refusals: Refusal[];
  /** The outdated and missed pods, to roll out. */
  stale: PodView[];
}

/** Counts a SpanProfiling's pods; each pod once, by uid (or namespace/name), whichever cache it came from. */
export function drift(pods: Iterable<PodView>, sp: SpanProfiling, ctx: DriftContext): Drift {
  const seen = new Set<string>();
  const byNamespace = new Map<string, PodCounts>();
  const stale: PodView[] = [];
  const zero = (): PodCounts => ({ injectedPods: 0, outdatedPods: 0, missedPods: 0, refusedPods: 0 });
  const total = zero();
  const refusals = new Map<string, Refusal>();
  const digest = podConfigDigest(sp);
  const key = ref(sp);
  const image = agentImageFor(sp, ctx.agentImage);
  for (const pod of pods) {
    const id = pod.metadata.uid ?? `${pod.metadata.namespace}/${pod.metadata.name}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const policy = refusedBy(pod, key, digest, image);
    if (policy !== undefined) {
      const counts = byNamespace.get(pod.metadata.namespace) ?? zero();
      byNamespace.set(pod.metadata.namespace, counts);
      counts.refusedPods++;
      total.refusedPods++;
      const where = `${policy}\n${pod.metadata.namespace}`;
      const r = refusals.get(where) ?? { policy, namespace: pod.metadata.namespace, pods: 0 };
      refusals.set(where, r);
      r.pods++;
      continue;
    }
    const s = standing(pod, sp, ctx, digest);
    if (s === undefined) continue;
    const counts = byNamespace.get(pod.metadata.namespace) ?? zero();
    byNamespace.set(pod.metadata.namespace, counts);
    for (const c of [counts, total]) {
      if (s !== 'missed') c.injectedPods++;
      if (s === 'outdated') c.outdatedPods++;
      if (s === 'missed') c.missedPods++;
    }
    if (s !== 'current') stale.push(pod);
  }
  const namespaces = [...byNamespace.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([namespace, c]) => ({ namespace, ...c }));
  const ranked = [...refusals.values()].sort((x, y) => y.pods - x.pods || (x.policy < y.policy ? -1 : 1));
  return { ...total, namespaces, refusals: ranked, stale };
}
