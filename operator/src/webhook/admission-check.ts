/**
 * Would the API server admit the pod as the webhook mutated it? Validating
 * policies the operator cannot read (ValidatingAdmissionPolicies, Kyverno,
 * Gatekeeper, any validating webhook, and the built-in quota, LimitRange and
 * Pod Security checks) run after the mutating webhooks, so a mutation they
 * refuse blocks the pod. The only judge that knows them all is the API
 * server: the mutated pod is created there as a dry run (nothing is stored,
 * no side effect), and only a pod it admits gets the agent.
 *
 * The dry run passes through this webhook too: it is marked with a field
 * manager the webhook recognises, only on dry runs, and answers untouched, so
 * the check never recurses. Marking costs nothing a policy could see on the
 * pod.
 *
 * The same pod (its name and generated token volume aside) in the same
 * namespace gets the same verdict for `cacheMs`: a ReplicaSet scaling to 100
 * asks once. Concurrent asks for one pod share one dry run. An answer the
 * webhook reuses for a template (answers.ts) is given again only while the
 * verdict on it holds.
 */
import { createHash } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { KubeError, KubeTimeout, type Kube } from '../kube/client';

/** The field manager of the check's dry runs: the webhook lets these through untouched. */
export const CHECK_FIELD_MANAGER = 'spanprofiling.io-admission-check';

/** The webhook configuration's match condition that keeps those dry runs from reaching it (the chart's webhook.yaml says the same). */
export const NOT_THE_CHECK = `!(request.dryRun == true && has(request.options) && has(request.options.fieldManager) && request.options.fieldManager == '${CHECK_FIELD_MANAGER}')`;

export type Verdict =
  | { admitted: true }
  /** refused: the API server said no (its message says which policy); unknown: no answer in time, or the check failed. */
  | { admitted: false; kind: 'refused' | 'unknown'; message: string };

export interface AdmissionCheckOptions {
  /** How long a dry run may take: the webhook must answer within the API server's timeoutSeconds. */
  timeoutMs: number;
  /** How long a verdict is reused for the same pod. */
  cacheMs: number;
  now?: () => number;
}

const MAX_CACHED = 2000;

export class AdmissionCheck {
  private readonly cache = new Map<string, { verdict: Verdict; at: number }>();
  private readonly inFlight = new Map<string, Promise<Verdict>>();
  private readonly now: () => number;

  constructor(
    private readonly kube: Kube,
    private readonly options: AdmissionCheckOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Never throws: a failed check is a verdict of its own (unknown). */
  async check(namespace: string, pod: V1Pod): Promise<Verdict> {
    const body = dryRunBody(namespace, pod);
    const key = verdictKey(namespace, body);
    const cached = this.cached(key);
    if (cached !== undefined) return cached;
    const pending = this.inFlight.get(key);
    if (pending !== undefined) return pending;
    const asked = this.ask(namespace, body).then((verdict) => {
      this.inFlight.delete(key);
      // An unknown verdict (a timeout on a busy API server) is asked again next time.
      if (verdict.admitted || verdict.kind === 'refused') this.remember(key, verdict);
      return verdict;
    });
    this.inFlight.set(key, asked);
    return asked;
  }

  /** The key the verdict on this pod is kept under. */
  keyOf(namespace: string, pod: V1Pod): string {
    return verdictKey(namespace, dryRunBody(namespace, pod));
  }

  /** The verdict kept under `key` while it holds, without asking. */
  cached(key: string): Verdict | undefined {
    const cached = this.cache.get(key);
    return cached !== undefined && this.now() - cached.at < this.options.cacheMs ? cached.verdict : undefined;
  }

  /** The verdict kept under `key`, or the dry run under way for it, without asking anew. */
  settled(key: string): Verdict | Promise<Verdict> | undefined {
    return this.cached(key) ?? this.inFlight.get(key);
  }

  private async ask(namespace: string, body: V1Pod): Promise<Verdict> {
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods?dryRun=All&fieldManager=${CHECK_FIELD_MANAGER}`;
    try {
      await this.kube.request('POST', path, body, 'application/json', this.options.timeoutMs);
      return { admitted: true };
    } catch (err) {
      if (err instanceof KubeError) return { admitted: false, kind: 'refused', message: apiMessage(err) };
      if (err instanceof KubeTimeout) return { admitted: false, kind: 'unknown', message: `the API server did not answer the admission check within ${this.options.timeoutMs} ms` };
      return { admitted: false, kind: 'unknown', message: `the admission check failed: ${err instanceof Error ? err.message : String(err)}` };
    }
  }

  private remember(key: string, verdict: Verdict): void {
    this.cache.delete(key);
    this.cache.set(key, { verdict, at: this.now() });
    while (this.cache.size > MAX_CACHED) this.cache.delete(this.cache.keys().next().value as string);
  }
}

/** The pod as a client would send it: what the API server sets on creation is left out. */
export function dryRunBody(namespace: string, pod: V1Pod): V1Pod {
  const { uid: _uid, resourceVersion: _rv, creationTimestamp: _ct, managedFields: _mf, generation: _g, selfLink: _sl, ...metadata } = (pod.metadata ?? {}) as NonNullable<V1Pod['metadata']> & { selfLink?: string };
  return { apiVersion: 'v1', kind: 'Pod', metadata: { ...metadata, namespace }, ...(pod.spec !== undefined ? { spec: pod.spec } : {}) };
}

/** Pods of one template differ only in their names and in the service account token volume's generated suffix. */
function verdictKey(namespace: string, body: V1Pod): string {
  const { name: _n, generateName: _g, ...metadata } = body.metadata ?? {};
  return templateKey(namespace, { metadata, spec: body.spec });
}

/** `namespace` and a hash of `pod` (or the part of it given) with its service account token volume's generated suffix made alike. */
export function templateKey(namespace: string, pod: unknown): string {
  const text = JSON.stringify(pod).replace(/kube-api-access-[a-z0-9]{5}/g, 'kube-api-access');
  return `${namespace}/${createHash('sha256').update(text).digest('base64url')}`;
}

/** "POST /api/...: 403 pods "web" is forbidden: <why>" → "<why>", as the user would read it from kubectl. */
function apiMessage(err: KubeError): string {
  const text = err.message.replace(/^\S+ \S+: \d+ /, '');
  return text.replace(/^pods "[^"]*" is forbidden: /, '').replace(/^pods is forbidden: /, '');
}

/** Which policy an API server refusal names, as spanprofiling.io/refused-by says it. */
export function policyOf(message: string): string {
  const patterns: [RegExp, (m: RegExpExecArray) => string][] = [
    [/ValidatingAdmissionPolicy '([^']+)'/, (m) => `ValidatingAdmissionPolicy/${m[1]}`],
    [/admission webhook "([^"]+)"/, (m) => `ValidatingWebhook/${m[1]}`],
    [/exceeded quota: ([^,\s]+)/, (m) => `ResourceQuota/${m[1]}`],
    [/must specify [\w.,\- ]+/, () => 'ResourceQuota'],
    [/violates PodSecurity "(\w+)/, (m) => `PodSecurity/${m[1]}`],
    [/(?:minimum|maximum) [\w-]+ usage per Container|limit to request ratio per Container/, () => 'LimitRange'],
  ];
  for (const [re, name] of patterns) {
    const m = re.exec(message);
    if (m !== null) return name(m);
  }
  return 'admission';
}
