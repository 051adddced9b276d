/**
 * One AdmissionReview in, one AdmissionReview out: decode, decide with the
 * pure mutation, encode a JSONPatch. Whatever goes wrong inside, the pod is
 * allowed (failure must never block a pod); a request that is not an
 * AdmissionReview at all gets a 400.
 */
import type { LimitRangeLike } from '../inject/resources';
import { compare, type Operation } from 'fast-json-patch';
import type { V1Pod } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { SpanProfiling } from '../api';
import { mutatePod, type MutationResult, type OperatorDefaults } from '../inject/pod';

export interface ReviewContext {
  namespaceAnnotations(namespace: string): Readonly<Record<string, string>> | undefined;
  spanProfilings(): readonly SpanProfiling[];
  defaults: OperatorDefaults;
  /** The namespace's LimitRanges, from the shell's cache (none while it is not synced). */
  limitRanges?(namespace: string): readonly LimitRangeLike[];
  /** The Pod Security level the namespace enforces (its pod-security.kubernetes.io/enforce label). */
  podSecurityLevel?(namespace: string): string | undefined;
}

export interface ReviewOutcome {
  httpStatus: 200 | 400;
  body: unknown;
  /** For metrics and logs. */
  result?: {
    status: MutationResult['status'] | 'internal-error';
    code: string;
    reason: string;
    namespace: string;
    /** The pod's name, or its generateName when the API server has not named it yet (pods a controller makes). */
    pod: string;
    /** Warnings for the user, and the SpanProfiling they concern (for an Event there). */
    warnings?: string[];
    spanProfiling?: SpanProfiling;
    dryRun: boolean;
  };
}

interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  operation?: string;
  namespace?: string;
  object?: unknown;
  dryRun?: boolean;
}

const MAX_WARNING_LENGTH = 256;

export function review(body: unknown, ctx: ReviewContext): ReviewOutcome {
  const request = (body as { request?: AdmissionRequest } | null)?.request;
  const apiVersion = (body as { apiVersion?: unknown } | null)?.apiVersion;
  if (typeof body !== 'object' || body === null || typeof request?.uid !== 'string' || request.uid === '') {
    return { httpStatus: 400, body: { error: 'expected an AdmissionReview (admission.k8s.io/v1) with request.uid' } };
  }
  const respond = (extra: Record<string, unknown>): Record<string, unknown> => ({
    apiVersion: typeof apiVersion === 'string' ? apiVersion : 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid: request.uid, allowed: true, ...extra },
  });

  const namespace = request.namespace ?? '';
  const dryRun = request.dryRun === true;
  const pod = request.object as V1Pod | undefined;
  const podName = pod?.metadata?.name ?? pod?.metadata?.generateName ?? '';
  if (request.kind?.kind !== 'Pod' || (request.operation !== undefined && request.operation !== 'CREATE') || typeof pod !== 'object' || pod === null) {
    return { httpStatus: 200, body: respond({}), result: { status: 'skipped', code: 'not-a-pod-creation', reason: 'not a pod creation', namespace, pod: podName, dryRun } };
  }

  try {
    const result = mutatePod({
      pod,
      namespace,
      namespaceAnnotations: ctx.namespaceAnnotations(namespace),
      limitRanges: ctx.limitRanges?.(namespace) ?? [],
      podSecurityLevel: ctx.podSecurityLevel?.(namespace),
      spanProfilings: ctx.spanProfilings(),
      defaults: ctx.defaults,
    });
    const patch: Operation[] = compare(pod, result.pod);
    const warnings = result.warnings.map((w) => (w.length > MAX_WARNING_LENGTH ? `${w.slice(0, MAX_WARNING_LENGTH - 3)}...` : w));
    return {
      httpStatus: 200,
      body: respond({
        ...(patch.length > 0 ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') } : {}),
        ...(warnings.length > 0 ? { warnings: warnings.map((w) => `span-profiling: ${w}`) } : {}),
      }),
      result: {
        status: result.status,
        code: result.code,
        reason: result.reason,
        namespace,
        pod: podName,
        dryRun,
        ...(result.warnings.length > 0 ? { warnings: result.warnings } : {}),
        ...(result.spanProfiling !== undefined ? { spanProfiling: result.spanProfiling } : {}),
      },
    };
  } catch (err) {
    const reason = `internal error, pod admitted untouched: ${err instanceof Error ? err.message : String(err)}`;
    return { httpStatus: 200, body: respond({ warnings: [`span-profiling: ${reason}`.slice(0, MAX_WARNING_LENGTH)] }), result: { status: 'internal-error', code: 'internal-error', reason, namespace, pod: podName, dryRun } };
  }
}
