/**
 * The agent container's requests and limits, fitted to the namespace's
 * LimitRanges. LimitRanger admits a container only inside each range's `min`
 * and `max` and under its `maxLimitRequestRatio`, and it runs after the
 * webhook: an agent container outside them made the API server refuse every
 * pod of the namespace. So the values wanted (the SpanProfiling's
 * `agent.resources`, or the defaults) are moved into what the ranges allow;
 * when nothing fits, the pod goes in untouched with the reason.
 */
import { parseQuantity } from './validate';

export interface LimitRangeLike {
  metadata?: { name?: string; namespace?: string };
  spec?: { limits?: { type?: string; min?: Record<string, unknown>; max?: Record<string, unknown>; maxLimitRequestRatio?: Record<string, unknown> }[] };
}

export interface AgentResources {
  requests: Record<string, string>;
  limits: Record<string, string>;
}

/** What the agent's `cp` needs at the least; a range that allows less cannot run it. */
const FLOOR: Record<string, number> = { cpu: 0.001, memory: 8 * 1024 * 1024 };
const RESOURCES = ['cpu', 'memory'] as const;

/** How a fitted value is written: millicores, and Mi where whole (else bytes), rounded inward so it stays in range. */
function format(resource: string, value: number, round: 'up' | 'down'): string {
  const r = round === 'up' ? Math.ceil : Math.floor;
  if (resource === 'cpu') return `${r(Math.round(value * 1e6) / 1e3)}m`;
  const bytes = r(Math.round(value * 1e3) / 1e3);
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024}Mi` : String(bytes);
}

export type Fitted = { resources: AgentResources; changed: string[] } | { problem: string };

/**
 * Requests and limits for the agent container inside every Container range of
 * `ranges`: each value clamped into [max of the mins, min of the maxes], the
 * limit at least the request, and at most the request times the ratio.
 */
export function fitAgentResources(wanted: AgentResources, ranges: readonly LimitRangeLike[]): Fitted {
  const requests = { ...wanted.requests };
  const limits = { ...wanted.limits };
  const changed: string[] = [];
  for (const resource of RESOURCES) {
    let low = FLOOR[resource]!;
    let high = Infinity;
    let ratio = Infinity;
    const names: string[] = [];
    for (const range of ranges) {
      for (const item of range.spec?.limits ?? []) {
        if (item.type !== undefined && item.type !== 'Container') continue;
        const min = parseQuantity(item.min?.[resource]);
        const max = parseQuantity(item.max?.[resource]);
        const r = parseQuantity(item.maxLimitRequestRatio?.[resource]);
        if (min !== undefined || max !== undefined || r !== undefined) names.push(range.metadata?.name ?? '?');
        if (min !== undefined) low = Math.max(low, min);
        if (max !== undefined) high = Math.min(high, max);
        if (r !== undefined) ratio = Math.min(ratio, r);
      }
    }
    if (low > high) {
      return { problem: `the namespace's LimitRange ${[...new Set(names)].join(', ')} allows ${resource} up to ${format(resource, high, 'down')}, below what the agent's init container needs at least (${format(resource, low, 'up')})` };
    }
    const wantRequest = parseQuantity(requests[resource]) ?? low;
    const wantLimit = parseQuantity(limits[resource]) ?? Math.max(wantRequest, low);
    let request = Math.min(Math.max(wantRequest, low), high);
    let limit = Math.min(Math.max(wantLimit, request), high);
    if (limit / request > ratio) {
      // Raise the request toward the limit rather than starve the copy: both stay in [low, high].
      request = Math.min(Math.max(limit / ratio, low), high);
      limit = Math.min(limit, request * ratio);
    }
    if (request !== wantRequest) {
      requests[resource] = format(resource, request, 'up');
      changed.push(`requests.${resource} ${format(resource, request, 'up')}`);
    }
    if (limit !== wantLimit) {
      limits[resource] = format(resource, limit, 'down');
      changed.push(`limits.${resource} ${format(resource, limit, 'down')}`);
    }
  }
  return { resources: { requests, limits }, changed };
}
