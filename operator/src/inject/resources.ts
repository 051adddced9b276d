/**
 * The agent container's requests and limits, fitted to the namespace's
 * LimitRanges and ResourceQuotas, which the API server checks after the
 * webhook:
 *
 * - LimitRanger admits a container only inside each range's `min` and `max`
 *   and under its `maxLimitRequestRatio` (and a range on a resource wants the
 *   container to state it);
 * - a quota that tracks a resource (`requests.cpu`, `limits.memory`,
 *   `requests.ephemeral-storage`, ...) admits only pods whose every container
 *   states it, and only within what is left of the quota.
 *
 * So the values wanted (the SpanProfiling's `agent.resources`, or the
 * defaults) are moved into what the ranges allow, every tracked resource is
 * stated, and where a quota tracks a resource the agent asks no more than the
 * pod's own containers already do: an init container counts in the pod's
 * usage only above what the others ask, so the pod then uses no more of the
 * quota with the agent than without it. When nothing fits, the pod goes in
 * untouched with the reason; when only more than the pod asks fits, the
 * admission check (webhook/admission-check.ts) judges the quota's headroom.
 */
import type { V1Container } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { parseQuantity } from './validate';

export interface LimitRangeLike {
  metadata?: { name?: string; namespace?: string };
  spec?: { limits?: { type?: string; min?: Record<string, unknown>; max?: Record<string, unknown>; maxLimitRequestRatio?: Record<string, unknown> }[] };
}

export interface ResourceQuotaLike {
  metadata?: { name?: string; namespace?: string };
  spec?: { hard?: Record<string, unknown> };
}

export interface AgentResources {
  requests: Record<string, string>;
  limits: Record<string, string>;
}

/** What the agent's `cp` needs at the least; a range that allows less cannot run it. */
const FLOOR: Record<string, number> = { cpu: 0.001, memory: 8 * 1024 * 1024, 'ephemeral-storage': 1024 * 1024 };
/** Ephemeral storage is stated only where a range or quota wants it: the copy writes to its emptyDir, not its own layer. */
const EPHEMERAL_DEFAULT = { request: 1024 * 1024, limit: 64 * 1024 * 1024 };
const RESOURCES = ['cpu', 'memory', 'ephemeral-storage'] as const;
type Resource = (typeof RESOURCES)[number];

/** How a fitted value is written: millicores, and Mi where whole (else bytes), rounded inward so it stays in range. */
function format(resource: string, value: number, round: 'up' | 'down'): string {
  const r = round === 'up' ? Math.ceil : Math.floor;
  if (resource === 'cpu') return `${r(Math.round(value * 1e6) / 1e3)}m`;
  const bytes = r(Math.round(value * 1e3) / 1e3);
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024}Mi` : String(bytes);
}

export type Fitted = { resources: AgentResources; changed: string[] } | { problem: string; code: 'limit-range'; policy: string };

/** The pod's other containers, whose requests and limits the quota already counts. */
export interface PodContainers {
  containers: readonly V1Container[];
  initContainers: readonly V1Container[];
}

/** Quota keys tracking a resource's requests and its limits (a bare `cpu` or `memory` means requests). */
const tracks = (quotas: readonly ResourceQuotaLike[], resource: Resource): { requests: string[]; limits: string[] } => {
  const requests: string[] = [];
  const limits: string[] = [];
  for (const q of quotas) {
    const hard = q.spec?.hard ?? {};
    const name = q.metadata?.name ?? '?';
    if (`requests.${resource}` in hard || resource in hard) requests.push(name);
    if (`limits.${resource}` in hard) limits.push(name);
  }
  return { requests, limits };
};

/**
 * What the pod asks of a resource without the agent, as a quota counts it:
 * the larger of its running containers (sidecars included) together and its
 * largest run-to-completion init container; undefined when a container does
 * not state it (the quota then refuses the pod anyway).
 */
function podUsage(pod: PodContainers, resource: Resource, kind: 'requests' | 'limits'): number | undefined {
  const of = (c: V1Container): number | undefined => parseQuantity(c.resources?.[kind]?.[resource]);
  let running = 0;
  for (const c of [...pod.containers, ...pod.initContainers.filter((i) => i.restartPolicy === 'Always')]) {
    const v = of(c);
    if (v === undefined) return undefined;
    running += v;
  }
  let init = 0;
  for (const c of pod.initContainers.filter((i) => i.restartPolicy !== 'Always')) {
    const v = of(c);
    if (v === undefined) return undefined;
    init = Math.max(init, v);
  }
  return Math.max(running, init);
}

/**
 * Requests and limits for the agent container inside every Container range of
 * `ranges`: each value clamped into [max of the mins, min of the maxes], the
 * limit at least the request, and at most the request times the ratio; then,
 * for a resource a quota tracks, lowered to what the pod already asks where
 * the ranges allow it.
 */
export function fitAgentResources(wanted: AgentResources, ranges: readonly LimitRangeLike[], quotas: readonly ResourceQuotaLike[] = [], pod?: PodContainers): Fitted {
  const requests = { ...wanted.requests };
  const limits = { ...wanted.limits };
  const changed: string[] = [];
  for (const resource of RESOURCES) {
    let low = FLOOR[resource]!;
    let high = Infinity;
    let ratio = Infinity;
    let ranged = false;
    const names: string[] = [];
    for (const range of ranges) {
      for (const item of range.spec?.limits ?? []) {
        if (item.type !== undefined && item.type !== 'Container') continue;
        const min = parseQuantity(item.min?.[resource]);
        const max = parseQuantity(item.max?.[resource]);
        const r = parseQuantity(item.maxLimitRequestRatio?.[resource]);
        if (min !== undefined || max !== undefined || r !== undefined) {
          names.push(range.metadata?.name ?? '?');
          ranged = true;
        }
        if (min !== undefined) low = Math.max(low, min);
        if (max !== undefined) high = Math.min(high, max);
        if (r !== undefined) ratio = Math.min(ratio, r);
      }
    }
    const quota = tracks(quotas, resource);
    const stated = requests[resource] !== undefined || limits[resource] !== undefined;
    if (!stated && !ranged && quota.requests.length + quota.limits.length === 0) continue;
    if (low > high) {
      return { code: 'limit-range', policy: `LimitRange/${[...new Set(names)].join(',')}`, problem: `the namespace's LimitRange ${[...new Set(names)].join(', ')} allows ${resource} up to ${format(resource, high, 'down')}, below what the agent's init container needs at least (${format(resource, low, 'up')})` };
    }
    const fallback = resource === 'ephemeral-storage' ? EPHEMERAL_DEFAULT : { request: low, limit: low };
    const wantRequest = parseQuantity(requests[resource]);
    const wantLimit = parseQuantity(limits[resource]);
    let request = Math.min(Math.max(wantRequest ?? Math.min(fallback.request, wantLimit ?? Infinity), low), high);
    let limit = Math.min(Math.max(wantLimit ?? Math.max(fallback.limit, request), request), high);
    // A quota that tracks the resource: no more than the pod's containers already ask, where the ranges allow.
    const podRequest = quota.requests.length > 0 && pod !== undefined ? podUsage(pod, resource, 'requests') : undefined;
    if (podRequest !== undefined && request > podRequest) request = Math.max(podRequest, low);
    const podLimit = quota.limits.length > 0 && pod !== undefined ? podUsage(pod, resource, 'limits') : undefined;
    if (podLimit !== undefined && limit > podLimit) limit = Math.max(podLimit, request);
    if (limit / request > ratio) {
      // Lower the limit toward the request when a quota capped the request; else raise the request rather than starve the copy.
      if (podRequest !== undefined && request <= podRequest) limit = Math.max(request, Math.min(limit, request * ratio));
      else {
        request = Math.min(Math.max(limit / ratio, low), high);
        limit = Math.min(limit, request * ratio);
      }
    }
    // A value nobody asked for is written only where a range or a quota wants it stated.
    const writtenRequest = format(resource, request, 'up');
    const writtenLimit = format(resource, limit, 'down');
    if (wantRequest !== undefined ? request !== wantRequest : ranged || quota.requests.length > 0) {
      requests[resource] = writtenRequest;
      changed.push(`requests.${resource} ${writtenRequest}`);
    }
    if (wantLimit !== undefined ? limit !== wantLimit : ranged || quota.limits.length > 0) {
      limits[resource] = writtenLimit;
      changed.push(`limits.${resource} ${writtenLimit}`);
    }
  }
  return { resources: { requests, limits }, changed };
}
