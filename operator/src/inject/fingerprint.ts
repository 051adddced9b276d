/**
 * What an injected pod was given, in the terms the controller compares:
 * a digest of the SpanProfiling's pod-affecting spec, and the agent image.
 * A pod is out of date when either differs from what a pod created now gets.
 */
import { createHash } from 'node:crypto';
import type { SpanProfiling } from '../api';

/** Spec fields that change nothing in a pod the webhook already injected. */
const NOT_IN_PODS = new Set(['rollout', 'selector']);

/** JSON with object keys sorted, so equal specs give equal digests whatever the key order. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** 16 hex digits of SHA-256 over the spec that pods are given. */
export function podConfigDigest(sp: SpanProfiling): string {
  const spec = Object.fromEntries(Object.entries(sp.spec).filter(([k]) => !NOT_IN_PODS.has(k)));
  return createHash('sha256').update(canonical(spec)).digest('hex').slice(0, 16);
}

/** The image the agent's init container gets: the SpanProfiling's, else the operator's. */
export function agentImageFor(sp: SpanProfiling, operatorDefault: string): string {
  const own = sp.spec.agent?.image;
  return own !== undefined && own !== '' ? own : operatorDefault;
}
