/**
 * The status a SpanProfiling should have, from what the controller observed:
 * a pure function, so reconciling twice writes nothing the second time.
 */
import type { Condition, SpanProfiling, SpanProfilingStatus } from '../api';
import { podSpecProblems } from '../inject/validate';
import { credentialRefs } from '../inject/env';

export interface SecretLookup {
  /** The namespace it was looked for in: the SpanProfiling's, or one where pods it injected run (they read it there). */
  namespace: string;
  name: string;
  /** 'forbidden': the operator may not read Secrets (the chart's credentialsCheck is off), so it does not know. */
  found: 'yes' | 'no' | 'forbidden';
  /** The Secret's keys, when found. */
  keys: readonly string[];
  /** Live pods of this SpanProfiling in that namespace. */
  pods: number;
}

export interface Observed {
  secrets: readonly SecretLookup[];
  injectedPods: number;
  now: Date;
}

export interface CredentialCheck {
  /** What is missing, said so a user can fix it. */
  missing: string[];
  /** Secrets the operator could not look at. */
  unknown: string[];
}

/**
 * The credentials a SpanProfiling names become secretKeyRefs in its pods, which
 * Kubernetes resolves in each pod's own namespace. So each Secret must exist in
 * every namespace its pods run in (before any runs: the SpanProfiling's own).
 */
export function checkCredentials(sp: SpanProfiling, lookups: readonly SecretLookup[]): CredentialCheck {
  const missing: string[] = [];
  const unknown: string[] = [];
  for (const r of credentialRefs(sp)) {
    for (const l of lookups.filter((x) => x.name === r.name)) {
      const where = l.namespace === sp.metadata.namespace ? '' : ` (${l.pods === 1 ? '1 pod of this SpanProfiling runs' : `${l.pods} pods of this SpanProfiling run`} in ${l.namespace}, and Kubernetes reads a pod's Secrets in its own namespace)`;
      if (l.found === 'forbidden') unknown.push(`${l.namespace}/${l.name}`);
      else if (l.found === 'no') missing.push(`${r.what}: Secret ${l.namespace}/${l.name} not found${where}`);
      else if (!l.keys.includes(r.key)) missing.push(`${r.what}: Secret ${l.namespace}/${l.name} has no key ${r.key}${where}`);
    }
  }
  return { missing, unknown: [...new Set(unknown)] };
}

export function desiredStatus(sp: SpanProfiling, observed: Observed): SpanProfilingStatus {
  const generation = sp.metadata.generation ?? 0;
  const { missing: problems, unknown } = checkCredentials(sp, observed.secrets);
  const credentials = problems.length > 0;
  const invalid = podSpecProblems(sp);
  const wanted: Omit<Condition, 'lastTransitionTime'>[] = [
    invalid.length > 0
      ? { type: 'Ready', status: 'False', observedGeneration: generation, reason: 'InvalidSpec', message: `pods are admitted without the agent until this is fixed: ${invalid.join('; ')}` }
      : credentials
      ? { type: 'Ready', status: 'False', observedGeneration: generation, reason: 'CredentialsMissing', message: `${problems.join('; ')}. Pods are still injected, but uploads will be rejected until the Secret exists.` }
      : {
          type: 'Ready',
          status: 'True',
          observedGeneration: generation,
          reason: 'Ready',
          message: `pods that opt in are injected (${observed.injectedPods} running) and profile to ${sp.spec.pyroscope.address}`,
        },
    credentials
      ? { type: 'CredentialsMissing', status: 'True', observedGeneration: generation, reason: 'SecretNotFound', message: problems.join('; ') }
      : unknown.length > 0
      ? {
          type: 'CredentialsMissing',
          status: 'Unknown',
          observedGeneration: generation,
          reason: 'NotChecked',
          message: `the operator may not read Secrets (the chart's credentialsCheck.enabled is off, or the names are not in credentialsCheck.secretNames), so it cannot tell whether ${unknown.join(', ')} exist`,
        }
      : { type: 'CredentialsMissing', status: 'False', observedGeneration: generation, reason: 'SecretsFound', message: 'every referenced Secret and key exists' },
    invalid.length > 0
      ? { type: 'InvalidSpec', status: 'True', observedGeneration: generation, reason: 'PodWouldBeRejected', message: invalid.join('; ') }
      : { type: 'InvalidSpec', status: 'False', observedGeneration: generation, reason: 'Valid', message: 'everything copied into pods is valid' },
  ];
  const previous = sp.status?.conditions ?? [];
  const conditions = wanted.map((c): Condition => {
    const before = previous.find((p) => p.type === c.type);
    const lastTransitionTime = before !== undefined && before.status === c.status ? before.lastTransitionTime : observed.now.toISOString().replace(/\.\d+Z$/, 'Z');
    return { ...c, lastTransitionTime };
  });
  return { observedGeneration: generation, injectedPods: observed.injectedPods, conditions };
}

/** Whether two statuses differ in anything but key order. */
export function statusChanged(a: SpanProfilingStatus | undefined, b: SpanProfilingStatus): boolean {
  return JSON.stringify(normalize(a)) !== JSON.stringify(normalize(b));
}

function normalize(s: SpanProfilingStatus | undefined): unknown {
  if (s === undefined) return undefined;
  return {
    observedGeneration: s.observedGeneration ?? 0,
    injectedPods: s.injectedPods ?? 0,
    conditions: (s.conditions ?? [])
      .map((c) => ({ type: c.type, status: c.status, observedGeneration: c.observedGeneration ?? 0, lastTransitionTime: c.lastTransitionTime, reason: c.reason, message: c.message }))
      .sort((x, y) => x.type.localeCompare(y.type)),
  };
}
