/**
 * The status a SpanProfiling should have, from what the controller observed:
 * a pure function, so reconciling twice writes nothing the second time.
 */
import type { Condition, SpanProfiling, SpanProfilingStatus } from '../api';
import { podSpecProblems } from '../inject/validate';

export interface Observed {
  /** Secret name -> its keys, for Secrets that exist in the SpanProfiling's namespace. */
  secrets: ReadonlyMap<string, readonly string[]>;
  injectedPods: number;
  now: Date;
}

export function credentialProblems(sp: SpanProfiling, secrets: ReadonlyMap<string, readonly string[]>): string[] {
  const refs = [
    sp.spec.pyroscope.authTokenSecretRef && { what: 'pyroscope.authTokenSecretRef', ...sp.spec.pyroscope.authTokenSecretRef },
    sp.spec.pyroscope.basicAuth && { what: 'pyroscope.basicAuth.passwordSecretRef', ...sp.spec.pyroscope.basicAuth.passwordSecretRef },
  ].filter((r): r is { what: string; name: string; key: string } => Boolean(r));
  const problems: string[] = [];
  for (const r of refs) {
    const keys = secrets.get(r.name);
    if (keys === undefined) problems.push(`${r.what}: Secret ${sp.metadata.namespace}/${r.name} not found`);
    else if (!keys.includes(r.key)) problems.push(`${r.what}: Secret ${sp.metadata.namespace}/${r.name} has no key ${r.key}`);
  }
  return problems;
}

/** Secret names a SpanProfiling references. */
export function referencedSecrets(sp: SpanProfiling): string[] {
  return [sp.spec.pyroscope.authTokenSecretRef?.name, sp.spec.pyroscope.basicAuth?.passwordSecretRef.name].filter((n): n is string => n !== undefined);
}

export function desiredStatus(sp: SpanProfiling, observed: Observed): SpanProfilingStatus {
  const generation = sp.metadata.generation ?? 0;
  const problems = credentialProblems(sp, observed.secrets);
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
