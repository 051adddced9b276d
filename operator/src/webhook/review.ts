/**
 * One AdmissionReview in, one AdmissionReview out: decode, decide with the
 * pure mutation, encode a JSONPatch. Whatever goes wrong inside, the pod is
 * allowed (failure must never block a pod); a request that is not an
 * AdmissionReview at all gets a 400.
 */
import type { LimitRangeLike, ResourceQuotaLike } from '../inject/resources';
import { compare, type Operation } from 'fast-json-patch';
import type { V1Pod } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { SpanProfiling } from '../api';
import { effectiveNamespaceAnnotations, type NamespaceLike } from '../controller/namespaces';
import { INIT_CONTAINER, mutatePod, refusedByAdmission, type MutationResult, type OperatorDefaults } from '../inject/pod';
import { CHECK_FIELD_MANAGER, policyOf, type Verdict } from './admission-check';
import { AnswerCache, type Answer } from './answers';

export interface ReviewContext {
  namespaceAnnotations(namespace: string): Readonly<Record<string, string>> | undefined;
  spanProfilings(): readonly SpanProfiling[];
  defaults: OperatorDefaults;
  /** The namespace's LimitRanges, from the shell's cache (none while it is not synced). */
  limitRanges?(namespace: string): readonly LimitRangeLike[];
  /** The namespace's ResourceQuotas, from the shell's cache (none while it is not synced). */
  resourceQuotas?(namespace: string): readonly ResourceQuotaLike[];
  /** The Pod Security level the namespace enforces (its pod-security.kubernetes.io/enforce label). */
  podSecurityLevel?(namespace: string): string | undefined;
  /** Answers kept for the pods of one template (answers.ts); without it, every answer is computed. */
  answers?: AnswerCache;
}

/** The caches the webhook answers from: the main thread's, or the webhook thread's copy of them. */
export interface ContextSource {
  namespace(name: string): NamespaceLike | undefined;
  spanProfilings(): readonly SpanProfiling[];
  limitRangesOf(namespace: string): readonly LimitRangeLike[];
  resourceQuotasOf(namespace: string): readonly ResourceQuotaLike[];
  /** Changes whenever what the webhook reads of these changes (answers.ts's InputsVersion): answers are then kept per template. */
  inputsVersion?(): number;
}

/** The review's context over caches: namespaces opted in at install count as annotated, as everywhere in the operator. */
export function cachedContext(source: ContextSource, optInNamespaces: ReadonlySet<string>, defaults: OperatorDefaults): ReviewContext {
  return {
    namespaceAnnotations: (ns) => effectiveNamespaceAnnotations(source.namespace(ns) ?? { metadata: { name: ns } }, optInNamespaces),
    spanProfilings: () => source.spanProfilings(),
    limitRanges: (ns) => source.limitRangesOf(ns),
    resourceQuotas: (ns) => source.resourceQuotasOf(ns),
    podSecurityLevel: (ns) => source.namespace(ns)?.metadata?.labels?.['pod-security.kubernetes.io/enforce'],
    defaults,
    ...(source.inputsVersion !== undefined ? { answers: new AnswerCache(() => source.inputsVersion!()) } : {}),
  };
}

export interface ReviewOutcome {
  httpStatus: 200 | 400;
  body: unknown;
  /** For metrics and logs. */
  result?: {
    status: MutationResult['status'] | 'internal-error';
    code: MutationResult['code'] | 'internal-error' | 'not-a-pod-creation' | 'admission-check' | 'pod-refused';
    reason: string;
    namespace: string;
    /** The pod's name, or its generateName when the API server has not named it yet (pods a controller makes). */
    pod: string;
    /** The answer kept for the pod's template was given (answers.ts). */
    reused?: true;
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
  options?: { fieldManager?: string };
}

const MAX_WARNING_LENGTH = 256;

/** What review() decided, before it is encoded: the mutated pod, for the admission check. */
interface Decision {
  outcome: ReviewOutcome;
  /** Present when the answer changes the pod. */
  mutation?: { original: V1Pod; result: MutationResult; respond: (result: MutationResult) => ReviewOutcome; answer?: Answer };
  /** The answer kept for the pods of this one's template, when the outcome is that answer. */
  reused?: Answer;
}

/** The admission check's verdicts as far as a reused answer needs them (AdmissionCheck). */
export interface KnownVerdicts {
  keyOf(namespace: string, pod: V1Pod): string;
  /** The verdict still valid for the key, or the one being asked for it, if any. */
  settled(key: string): Verdict | Promise<Verdict> | undefined;
}

/** The decision alone, synchronous and pure: what the webhook answers when no admission check is configured. */
export function review(body: unknown, ctx: ReviewContext): ReviewOutcome {
  return decide(body, ctx).outcome;
}

/**
 * The decision, then the API server's verdict on the mutated pod (a dry run
 * of it, admission-check.ts): a pod it would refuse gets the outcome's
 * annotations only, with the reason, or, when it refuses even those,
 * nothing at all.
 */
export async function reviewChecked(body: unknown, ctx: ReviewContext, check: (namespace: string, pod: V1Pod) => Promise<Verdict>, known?: KnownVerdicts): Promise<ReviewOutcome> {
  let { outcome, mutation, reused } = decide(body, ctx);
  if (reused !== undefined) {
    // An answer that changes the pod is reused while the check's verdict on it holds (or once the
    // dry run under way for it admits it); else this pod is decided on its own.
    if (reused.patch === undefined) return outcome;
    const verdict = reused.verdictKey === undefined ? undefined : await known?.settled(reused.verdictKey);
    if (verdict?.admitted === true) return outcome;
    ({ outcome, mutation } = decide(body, ctx, false));
  }
  if (mutation === undefined || outcome.result === undefined) return outcome;
  const namespace = outcome.result.namespace;
  // Before the dry run starts: the template's next pods wait for it rather than compute and ask again.
  if (mutation.answer !== undefined && known !== undefined) mutation.answer.verdictKey = known.keyOf(namespace, mutation.result.pod);
  const verdict = await check(namespace, mutation.result.pod);
  if (verdict.admitted) return outcome;
  const injecting = mutation.result.status === 'injected';
  // Only annotations, and no verdict in time: they go in (a policy on annotations is rarer than a slow API server).
  if (!injecting && verdict.kind === 'unknown') return outcome;
  // No verdict in time is no policy: the pod is not counted as refused (its reason says what happened).
  const policy = verdict.kind === 'refused' ? policyOf(verdict.message) : undefined;
  const agentImage = mutation.result.pod.spec?.initContainers?.find((c) => c.name === INIT_CONTAINER)?.image;
  const fallback = injecting ? refusedByAdmission(mutation.original, mutation.result.spanProfiling, refusalReason(verdict, mutation.result), policy, agentImage) : undefined;
  if (fallback !== undefined && verdict.kind === 'unknown') return mutation.respond(fallback);
  const second = fallback === undefined ? verdict : await check(namespace, fallback.pod);
  if (second.admitted) return mutation.respond(fallback!);
  // Refused even without the agent: the pod's own business; our annotations are not worth a refusal either.
  const reason = `the API server refuses this pod${fallback !== undefined ? ' even without the agent' : ' with the webhook\'s annotations'}, so nothing was changed: ${second.message}`;
  const untouched = { ...outcome.result, status: 'skipped' as const, code: 'pod-refused' as const, reason };
  delete untouched.warnings;
  return { httpStatus: 200, body: encode(outcome.body, []), result: untouched };
}

/** The reason a pod goes in without the agent because the API server would refuse it with it, and what to change. */
function refusalReason(verdict: Verdict & { admitted: false }, result: MutationResult): string {
  if (verdict.kind === 'unknown') return `not injected: ${verdict.message}, so the agent was left out rather than risk a refusal`;
  const image = result.pod.spec?.initContainers?.find((c) => c.name === INIT_CONTAINER)?.image ?? '';
  const advice =
    // The image's repository (its tag or digest aside; a registry port is kept): a policy on images names it.
    image !== '' && verdict.message.includes(image.replace(/@.*$/, '').replace(/:[^/:]*$/, ''))
      ? `mirror the agent image ${image} into a registry the policy allows and set the SpanProfiling's agent.image to it`
      : `let the policy admit the agent's init container ${INIT_CONTAINER} (or fit agent.resources and agent.securityContext to it), or opt the namespace out`;
  return `not injected: the API server would refuse the pod with the agent: ${verdict.message}; ${advice}`;
}

/** The AdmissionReview's answer with `patch` and `warnings`, keeping the rest of `body`. */
function encode(body: unknown, patch: Operation[], warnings: string[] = []): unknown {
  return encoded(body, patch.length > 0 ? Buffer.from(JSON.stringify(patch)).toString('base64') : undefined, warnings.map((w) => `span-profiling: ${w}`));
}

/** The same with the patch already encoded (base64) and the warnings as the response carries them. */
function encoded(body: unknown, patch: string | undefined, warnings: string[]): unknown {
  const b = body as { response: Record<string, unknown> };
  const { patchType: _t, patch: _p, warnings: _w, ...response } = b.response;
  return {
    ...b,
    response: {
      ...response,
      ...(patch !== undefined ? { patchType: 'JSONPatch', patch } : {}),
      ...(warnings.length > 0 ? { warnings } : {}),
    },
  };
}

/** The outcome of a kept answer for this request. */
function reusedOutcome(envelope: unknown, answer: Answer, request: { namespace: string; pod: string; dryRun: boolean }): ReviewOutcome {
  return {
    httpStatus: 200,
    body: encoded(envelope, answer.patch, answer.responseWarnings),
    result: {
      status: answer.status,
      code: answer.code,
      reason: answer.reason,
      ...request,
      reused: true,
      ...(answer.warnings.length > 0 ? { warnings: answer.warnings } : {}),
      ...(answer.spanProfiling !== undefined ? { spanProfiling: answer.spanProfiling } : {}),
    },
  };
}

function decide(body: unknown, ctx: ReviewContext, reuse = true): Decision {
  const request = (body as { request?: AdmissionRequest } | null)?.request;
  const apiVersion = (body as { apiVersion?: unknown } | null)?.apiVersion;
  if (typeof body !== 'object' || body === null || typeof request?.uid !== 'string' || request.uid === '') {
    return { outcome: { httpStatus: 400, body: { error: 'expected an AdmissionReview (admission.k8s.io/v1) with request.uid' } } };
  }
  const envelope = {
    apiVersion: typeof apiVersion === 'string' ? apiVersion : 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid: request.uid, allowed: true },
  };

  const namespace = request.namespace ?? '';
  const dryRun = request.dryRun === true;
  const pod = request.object as V1Pod | undefined;
  const podName = pod?.metadata?.name ?? pod?.metadata?.generateName ?? '';
  if (request.kind?.kind !== 'Pod' || (request.operation !== undefined && request.operation !== 'CREATE') || typeof pod !== 'object' || pod === null) {
    return { outcome: { httpStatus: 200, body: envelope, result: { status: 'skipped', code: 'not-a-pod-creation', reason: 'not a pod creation', namespace, pod: podName, dryRun } } };
  }
  // The admission check's own dry run of a pod this webhook already mutated: let it through as it is.
  if (dryRun && request.options?.fieldManager === CHECK_FIELD_MANAGER) {
    return { outcome: { httpStatus: 200, body: envelope, result: { status: 'skipped', code: 'admission-check', reason: "the admission check's dry run", namespace, pod: podName, dryRun } } };
  }

  try {
    const answers = ctx.answers;
    const key = answers === undefined ? undefined : answers.keyOf(namespace, pod);
    const kept = key === undefined || !reuse ? undefined : answers!.get(key);
    if (kept !== undefined) return { outcome: reusedOutcome(envelope, kept, { namespace, pod: podName, dryRun }), reused: kept };
    const result = mutatePod({
      pod,
      namespace,
      namespaceAnnotations: ctx.namespaceAnnotations(namespace),
      limitRanges: ctx.limitRanges?.(namespace) ?? [],
      resourceQuotas: ctx.resourceQuotas?.(namespace) ?? [],
      podSecurityLevel: ctx.podSecurityLevel?.(namespace),
      spanProfilings: ctx.spanProfilings(),
      defaults: ctx.defaults,
    });
    const respond = (r: MutationResult): ReviewOutcome => {
      const warnings = r.warnings.map((w) => (w.length > MAX_WARNING_LENGTH ? `${w.slice(0, MAX_WARNING_LENGTH - 3)}...` : w));
      return {
        httpStatus: 200,
        body: encode(envelope, compare(pod, r.pod), warnings),
        result: {
          status: r.status,
          code: r.code,
          reason: r.reason,
          namespace,
          pod: podName,
          dryRun,
          ...(r.warnings.length > 0 ? { warnings: r.warnings } : {}),
          ...(r.spanProfiling !== undefined ? { spanProfiling: r.spanProfiling } : {}),
        },
      };
    };
    const outcome = respond(result);
    const response = (outcome.body as { response: { patch?: string; warnings?: string[] } }).response;
    const changes = response.patch !== undefined;
    const { status, code, reason, warnings, spanProfiling } = result;
    const answer: Answer | undefined =
      key === undefined ? undefined : { status, code, reason, warnings, responseWarnings: response.warnings ?? [], ...(changes ? { patch: response.patch! } : {}), ...(spanProfiling !== undefined ? { spanProfiling } : {}) };
    if (answer !== undefined) answers!.set(key!, answer);
    return { outcome, ...(changes ? { mutation: { original: pod, result, respond, ...(answer !== undefined ? { answer } : {}) } } : {}) };
  } catch (err) {
    const reason = `internal error, pod admitted untouched: ${err instanceof Error ? err.message : String(err)}`;
    return { outcome: { httpStatus: 200, body: encode(envelope, [], [reason.slice(0, MAX_WARNING_LENGTH - 'span-profiling: '.length)]), result: { status: 'internal-error', code: 'internal-error', reason, namespace, pod: podName, dryRun } } };
  }
}
