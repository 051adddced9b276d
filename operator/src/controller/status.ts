/**
 * The status a SpanProfiling should have, from what the controller observed:
 * a pure function, so reconciling twice writes nothing the second time.
 */
import type { Condition, SpanProfiling, SpanProfilingStatus } from '../api';
import { ANNOTATION_ROLLOUT } from '../api';
import { podSpecProblems } from '../inject/validate';
import { credentialRefs } from '../inject/env';
import { canonical } from '../inject/fingerprint';
import type { PodCounts, Refusal } from './drift';

type Counts = Omit<PodCounts, 'refusedPods'> & { refusedPods?: number };

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
  /** Outdated and missed pods, in all and per namespace (drift.ts); none when absent. */
  drift?: Counts & { namespaces: ({ namespace: string } & Counts)[]; refusals?: readonly Refusal[] };
  /** What the rollout did last and is doing (rollout.ts). */
  rollout?: SpanProfilingStatus['rollout'];
  now: Date;
}

/** What the Ready condition tells a user to do about outdated and missed pods, or undefined when there are none. */
export function staleAdvice(sp: SpanProfiling, outdated: number, missed: number): string | undefined {
  if (outdated + missed === 0) return undefined;
  const what = [
    outdated > 0 ? `${outdated} ${outdated === 1 ? 'pod runs' : 'pods run'} an older configuration or agent image` : '',
    missed > 0 ? `${missed} ${missed === 1 ? 'pod' : 'pods'} that opt in ${missed === 1 ? 'runs' : 'run'} without the agent` : '',
  ].filter((x) => x !== '').join(' and ');
  if (sp.spec.rollout?.policy === 'Auto') return `${what}: the operator restarts their workloads one at a time (spec.rollout.policy: Auto)`;
  return `${what}: restart their workloads (kubectl rollout restart), or have the operator do it once with kubectl annotate spanprofiling -n ${sp.metadata.namespace} ${sp.metadata.name} ${ANNOTATION_ROLLOUT}=now, or always with spec.rollout.policy: Auto`;
}

/** What the PodsRefused condition says: which policies keep how many pods from the agent, and what to do. */
export function refusalMessage(refused: number, refusals: readonly Refusal[]): string | undefined {
  if (refused === 0) return undefined;
  const shown = refusals.slice(0, 5).map((r) => `${r.policy} in ${r.namespace} (${r.pods})`);
  const more = refusals.length > 5 ? ` and ${refusals.length - 5} more` : '';
  return (
    `${refused} ${refused === 1 ? 'pod runs' : 'pods run'} without the agent because a policy of ${refused === 1 ? 'its' : 'their'} namespace would refuse ${refused === 1 ? 'it' : 'them'} with it: ${shown.join(', ')}${more}. ` +
    "Each pod's spanprofiling.io/reason says what to change (for an image policy: mirror the agent image and set spec.agent.image); restart the workloads once the policy admits the agent"
  );
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
  const outdated = observed.drift?.outdatedPods ?? 0;
  const missed = observed.drift?.missedPods ?? 0;
  const advice = staleAdvice(sp, outdated, missed);
  const refusedPods = observed.drift?.refusedPods ?? 0;
  const refusal = refusalMessage(refusedPods, observed.drift?.refusals ?? []);
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
          message: `pods that opt in are injected (${observed.injectedPods} running) and profile to ${sp.spec.pyroscope.address}${advice === undefined ? '' : `; ${advice}`}`,
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
    advice !== undefined
      ? { type: 'PodsOutOfDate', status: 'True', observedGeneration: generation, reason: outdated > 0 ? 'PodsOutdated' : 'PodsMissed', message: advice }
      : { type: 'PodsOutOfDate', status: 'False', observedGeneration: generation, reason: 'UpToDate', message: 'every running pod that opts in runs the agent with the current configuration' },
    refusal !== undefined
      ? { type: 'PodsRefused', status: 'True', observedGeneration: generation, reason: 'PolicyRefusesAgent', message: refusal }
      : { type: 'PodsRefused', status: 'False', observedGeneration: generation, reason: 'NoneRefused', message: 'no policy keeps a pod that opts in from the agent' },
  ];
  const previous = sp.status?.conditions ?? [];
  const conditions = wanted.map((c): Condition => {
    const before = previous.find((p) => p.type === c.type);
    const lastTransitionTime = before !== undefined && before.status === c.status ? before.lastTransitionTime : observed.now.toISOString().replace(/\.\d+Z$/, 'Z');
    return { ...c, lastTransitionTime };
  });
  const perNamespace = observed.drift !== undefined && observed.drift.namespaces.length > 1 ? { namespaces: observed.drift.namespaces } : {};
  return {
    observedGeneration: generation,
    injectedPods: observed.injectedPods,
    outdatedPods: outdated,
    missedPods: missed,
    refusedPods,
    ...perNamespace,
    ...(observed.rollout !== undefined ? { rollout: observed.rollout } : {}),
    conditions,
  };
}

/** Whether two statuses differ in anything but key order. */
export function statusChanged(a: SpanProfilingStatus | undefined, b: SpanProfilingStatus): boolean {
  return normalize(a) !== normalize(b);
}

function normalize(s: SpanProfilingStatus | undefined): string | undefined {
  if (s === undefined) return undefined;
  return canonical({
    ...s,
    observedGeneration: s.observedGeneration ?? 0,
    injectedPods: s.injectedPods ?? 0,
    outdatedPods: s.outdatedPods ?? 0,
    missedPods: s.missedPods ?? 0,
    refusedPods: s.refusedPods ?? 0,
    namespaces: s.namespaces ?? [],
    conditions: (s.conditions ?? []).map((c) => ({ ...c, observedGeneration: c.observedGeneration ?? 0 })).sort((x, y) => x.type.localeCompare(y.type)),
  });
}
