/**
 * The opt-in rollout (spec.rollout): restarting the workloads of outdated and
 * missed pods the way `kubectl rollout restart` does (a new
 * kubectl.kubernetes.io/restartedAt annotation on the pod template), one
 * workload at a time:
 * - only Deployments, StatefulSets and DaemonSets; a bare pod, a Job's or a
 *   CronJob's is never restarted (it is named in the status message);
 * - never a workload the user paused, one whose rollout is already in
 *   progress, or one whose update strategy is OnDelete or partitioned;
 * - after each restart, wait for that workload to finish rolling out, then
 *   `pauseSeconds`, and never more than `maxRestartsPerHour`.
 * Auto acts whenever there is something to restart; Manual only during a
 * pass asked for with the spanprofiling.io/rollout=now annotation, which
 * restarts each workload at most once and removes the annotation at its end.
 *
 * The choice (workloadsOf, blocker) is pure; Rollouts holds the pacing
 * state, which lives in the leader's memory (a new leader starts with an
 * empty hour, but reads the last restart time from the status).
 */
import { ANNOTATION_ROLLOUT, GROUP, PLURAL, ref, VERSION, type SpanProfiling, type SpanProfilingStatus } from '../api';
import type { Kube } from '../kube/client';
import { isForbidden, isNotFound } from '../kube/client';
import type { OwnerReference, PodView } from './drift';

export const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';
const HOUR_MS = 3600_000;
/** How often a workload being rolled out is looked at again. */
export const ROLLOUT_POLL_MS = 3000;

export type WorkloadKind = 'Deployment' | 'StatefulSet' | 'DaemonSet';

export interface WorkloadRef {
  kind: WorkloadKind;
  namespace: string;
  name: string;
}

export const workloadKey = (w: WorkloadRef): string => `${w.kind} ${w.namespace}/${w.name}`;

const PATHS: Record<WorkloadKind, string> = { Deployment: 'deployments', StatefulSet: 'statefulsets', DaemonSet: 'daemonsets' };
export const workloadPath = (w: WorkloadRef): string => `/apis/apps/v1/namespaces/${w.namespace}/${PATHS[w.kind]}/${w.name}`;

/** The parts of a Deployment, StatefulSet or DaemonSet the rollout reads. */
export interface Workload {
  metadata: { name: string; namespace: string; generation?: number; uid?: string };
  spec?: {
    replicas?: number;
    paused?: boolean;
    updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } };
    template?: { metadata?: { annotations?: Record<string, string> } };
  };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    readyReplicas?: number;
    availableReplicas?: number;
    currentRevision?: string;
    updateRevision?: string;
    desiredNumberScheduled?: number;
    updatedNumberScheduled?: number;
    numberUnavailable?: number;
  };
}

export type OwnerOf = (pod: PodView) => Promise<WorkloadRef | string>;

const controllerOf = (refs: readonly OwnerReference[] | undefined): OwnerReference | undefined => refs?.find((o) => o.controller === true);

/**
 * The workload that owns a pod, or why there is none to restart. A
 * ReplicaSet's owner is looked up with `replicaSetOwner` (it answers the
 * ReplicaSet's controller reference).
 */
export async function ownerOf(pod: PodView, replicaSetOwner: (namespace: string, name: string) => Promise<OwnerReference | undefined>): Promise<WorkloadRef | string> {
  const owner = controllerOf(pod.metadata.ownerReferences);
  const namespace = pod.metadata.namespace;
  if (owner === undefined) return 'a bare pod (no controller owns it)';
  if (owner.kind === 'StatefulSet' || owner.kind === 'DaemonSet') return { kind: owner.kind, namespace, name: owner.name };
  if (owner.kind === 'ReplicaSet') {
    const rsOwner = await replicaSetOwner(namespace, owner.name);
    if (rsOwner?.kind === 'Deployment') return { kind: 'Deployment', namespace, name: rsOwner.name };
    return `owned by ReplicaSet ${owner.name}, which no Deployment owns`;
  }
  return `owned by ${owner.kind} ${owner.name}, which is not restarted (only Deployments, StatefulSets and DaemonSets are)`;
}

/**
 * Why a workload must not be restarted now, or undefined when it may be:
 * paused by its user, an update strategy a restart would not roll, or a
 * rollout still in progress (ours or anyone's).
 */
export function blocker(w: Workload, kind: WorkloadKind): string | undefined {
  const spec = w.spec ?? {};
  const st = w.status ?? {};
  const behind = (st.observedGeneration ?? 0) < (w.metadata.generation ?? 0);
  switch (kind) {
    case 'Deployment': {
      if (spec.paused === true) return 'paused (spec.paused)';
      const replicas = spec.replicas ?? 1;
      const updated = st.updatedReplicas ?? 0;
      if (behind || updated < replicas || (st.replicas ?? 0) > updated || (st.availableReplicas ?? 0) < updated) return 'rolling out';
      return undefined;
    }
    case 'StatefulSet': {
      if (spec.updateStrategy?.type === 'OnDelete') return 'its update strategy is OnDelete (a restart would replace no pod)';
      if ((spec.updateStrategy?.rollingUpdate?.partition ?? 0) > 0) return 'partitioned (spec.updateStrategy.rollingUpdate.partition): a staged rollout';
      const replicas = spec.replicas ?? 1;
      if (behind || (st.updateRevision !== undefined && st.currentRevision !== st.updateRevision) || (st.updatedReplicas ?? 0) < replicas || (st.readyReplicas ?? 0) < replicas) return 'rolling out';
      return undefined;
    }
    case 'DaemonSet': {
      if (spec.updateStrategy?.type === 'OnDelete') return 'its update strategy is OnDelete (a restart would replace no pod)';
      if (behind || (st.updatedNumberScheduled ?? 0) < (st.desiredNumberScheduled ?? 0) || (st.numberUnavailable ?? 0) > 0) return 'rolling out';
      return undefined;
    }
  }
}

/** The merge patch `kubectl rollout restart` sends. */
export const restartPatch = (at: Date): unknown => ({ spec: { template: { metadata: { annotations: { [RESTARTED_AT]: at.toISOString().replace(/\.\d+Z$/, 'Z') } } } } });

interface State {
  /** The workload restarted last, until it has rolled out. */
  current?: WorkloadRef;
  /** When the last restarted workload was seen rolled out (the pause counts from there). */
  settledAt?: number;
  /** Restart times within the last hour. */
  restarts: number[];
  /** Workloads restarted in the Manual pass under way. */
  pass?: Set<string>;
  lastRestart?: string;
  lastRestartTime?: string;
}

export interface RolloutResult {
  status: SpanProfilingStatus['rollout'];
  /** Look again after this many ms (a rollout to watch, a pause or the hourly cap), if at all. */
  recheckMs?: number;
}

export interface RolloutEvents {
  /** An Event on the SpanProfiling. */
  onSpanProfiling(type: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
  /** An Event on the restarted workload. */
  onWorkload(w: WorkloadRef, uid: string | undefined, reason: string, message: string): Promise<void>;
}

/**
 * Whether a pod is of a revision before the workload's last restart: its
 * template's `kubectl.kubernetes.io/restartedAt` (which the workload's
 * controller copies into every pod it makes) is not the workload's. Such a
 * pod is on its way out; the controller's cache may still hold it after the
 * workload reports its rollout done, and it must not trigger a second
 * restart. (Creation times, whole seconds, could not tell a pod made in the
 * second of the restart from one made just before it.)
 */
export function predatesRestart(pod: PodView, restartedAt: string | undefined): boolean {
  if (restartedAt === undefined) return false;
  return pod.metadata.annotations?.[RESTARTED_AT] !== restartedAt;
}

export class Rollouts {
  private readonly states = new Map<string, State>();
  private readonly rsOwners = new Map<string, OwnerReference | undefined>();

  constructor(
    private readonly kube: Kube,
    private readonly now: () => Date = () => new Date(),
  ) {}

  forget(key: string): void {
    this.states.delete(key);
  }

  /**
   * The restartedAt of a workload's pod template as the API server has it now, whoever restarted
   * it last (this leader, another replica, or kubectl): a pod of its current revision carries the same.
   */
  private async lastRestart(w: WorkloadRef): Promise<string | undefined> {
    return (await this.kube.get<Workload>(workloadPath(w)))?.spec?.template?.metadata?.annotations?.[RESTARTED_AT];
  }

  /**
   * One step for a SpanProfiling: restarts at most one workload. `stale` are
   * its outdated and missed pods.
   */
  async step(sp: SpanProfiling, stale: readonly PodView[], events: RolloutEvents): Promise<RolloutResult> {
    const key = ref(sp);
    const policy = sp.spec.rollout?.policy ?? 'Manual';
    const asked = (sp.metadata.annotations?.[ANNOTATION_ROLLOUT] ?? '').trim() !== '';
    const state = this.states.get(key) ?? { restarts: [] };
    this.states.set(key, state);
    const now = this.now().getTime();
    state.restarts = state.restarts.filter((t) => now - t < HOUR_MS);
    if (state.lastRestartTime === undefined && sp.status?.rollout?.lastRestartTime !== undefined) {
      state.lastRestart = sp.status.rollout.lastRestart;
      state.lastRestartTime = sp.status.rollout.lastRestartTime;
      state.settledAt ??= Date.parse(sp.status.rollout.lastRestartTime);
    }
    const status = (message: string, recheckMs?: number): RolloutResult => ({
      status: {
        ...(state.lastRestart !== undefined ? { lastRestart: state.lastRestart, lastRestartTime: state.lastRestartTime } : {}),
        restartsLastHour: state.restarts.length,
        message,
      },
      ...(recheckMs !== undefined ? { recheckMs } : {}),
    });

    if (!asked) state.pass = undefined;
    if (policy !== 'Auto' && !asked) {
      return status(stale.length === 0 ? 'nothing to restart' : `Manual: ${stale.length} out-of-date or missed pods wait for a restart (annotate ${ANNOTATION_ROLLOUT}=now, or set spec.rollout.policy: Auto)`);
    }
    if (asked) state.pass ??= new Set();

    try {
      // The workload restarted last must finish rolling out first.
      if (state.current !== undefined) {
        const w = await this.kube.get<Workload>(workloadPath(state.current));
        const why = w === undefined ? undefined : blocker(w, state.current.kind);
        if (why === 'rolling out') return status(`waiting for ${workloadKey(state.current)} to roll out`, ROLLOUT_POLL_MS);
        state.current = undefined;
        state.settledAt = now;
      }

      const skipped: string[] = [];
      const candidates = new Map<string, WorkloadRef>();
      // Each workload's template read once per step.
      const restarts = new Map<string, Promise<string | undefined>>();
      for (const pod of stale) {
        const owner = await ownerOf(pod, (ns, name) => this.replicaSetOwner(ns, name));
        if (typeof owner === 'string') {
          skipped.push(`pod ${pod.metadata.namespace}/${pod.metadata.name}: ${owner}`);
          continue;
        }
        const k = workloadKey(owner);
        if (state.pass?.has(k) || candidates.has(k)) continue;
        if (!restarts.has(k)) restarts.set(k, this.lastRestart(owner));
        if (!predatesRestart(pod, await restarts.get(k))) candidates.set(k, owner);
      }
      const ordered = [...candidates.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, w]) => w);
      const notes = (): string => (skipped.length === 0 ? '' : `; not restarted: ${skipped.slice(0, 5).join('; ')}${skipped.length > 5 ? `; and ${skipped.length - 5} more` : ''}`);

      if (ordered.length === 0) {
        if (asked) {
          await this.endPass(sp);
          state.pass = undefined;
          await events.onSpanProfiling('Normal', 'RolloutDone', `the rollout pass asked for with ${ANNOTATION_ROLLOUT} is done${notes()}`);
          return status(`rollout pass done${notes()}`);
        }
        return status(`nothing to restart${notes()}`);
      }
      const pauseLeft = state.settledAt === undefined ? 0 : state.settledAt + (sp.spec.rollout?.pauseSeconds ?? 30) * 1000 - now;
      if (pauseLeft > 0) return status(`pausing ${Math.ceil(pauseLeft / 1000)} s before the next restart (${ordered.length} workloads to restart)${notes()}`, pauseLeft);
      const cap = sp.spec.rollout?.maxRestartsPerHour ?? 10;
      if (state.restarts.length >= cap) {
        return status(`${cap} restarts in the last hour (spec.rollout.maxRestartsPerHour): ${ordered.length} workloads wait${notes()}`, state.restarts[0]! + HOUR_MS - now);
      }

      const waiting: string[] = [];
      for (const w of ordered) {
        const live = await this.kube.get<Workload>(workloadPath(w));
        if (live === undefined) continue;
        const why = blocker(live, w.kind);
        if (why !== undefined) {
          waiting.push(`${workloadKey(w)} is ${why}`);
          continue;
        }
        // restartedAt has whole seconds: a second restart within the second of the last would write the
        // same value, change nothing, and leave the pods stale for another restart (4 in 130 ms here).
        const last = Date.parse(live.spec?.template?.metadata?.annotations?.[RESTARTED_AT] ?? '');
        const instant = this.now();
        const at = Number.isFinite(last) && last >= Math.floor(instant.getTime() / 1000) * 1000 ? new Date(last + 1000) : instant;
        await this.kube.request('PATCH', workloadPath(w), restartPatch(at), 'application/strategic-merge-patch+json');
        state.current = w;
        state.restarts.push(at.getTime());
        state.pass?.add(workloadKey(w));
        state.lastRestart = workloadKey(w);
        state.lastRestartTime = at.toISOString().replace(/\.\d+Z$/, 'Z');
        const cause = `its pods run without the agent or with an older configuration of SpanProfiling ${key}`;
        await events.onWorkload(w, live.metadata.uid, 'SpanProfilingRestart', `restarted by the span-profiling operator: ${cause}`);
        await events.onSpanProfiling('Normal', 'WorkloadRestarted', `restarted ${workloadKey(w)}: ${cause}`);
        return status(`restarted ${workloadKey(w)}; waiting for it to roll out${ordered.length > 1 ? ` (${ordered.length - 1} more to restart)` : ''}${notes()}`, ROLLOUT_POLL_MS);
      }
      return status(`no workload can be restarted now: ${waiting.join('; ')}${notes()}`, ROLLOUT_POLL_MS * 5);
    } catch (err) {
      if (isForbidden(err)) {
        await events.onSpanProfiling('Warning', 'RolloutForbidden', 'the operator may not read or restart workloads: install the chart with rollout.enabled=true');
        return status('the operator may not read or restart workloads: install the chart with rollout.enabled=true', 60_000);
      }
      throw err;
    }
  }

  /** The controller of a ReplicaSet (cached: a ReplicaSet's owner does not change). */
  private async replicaSetOwner(namespace: string, name: string): Promise<OwnerReference | undefined> {
    const k = `${namespace}/${name}`;
    if (this.rsOwners.has(k)) return this.rsOwners.get(k);
    const rs = await this.kube.get<{ metadata: { ownerReferences?: OwnerReference[] } }>(`/apis/apps/v1/namespaces/${namespace}/replicasets/${name}`);
    const owner = controllerOf(rs?.metadata.ownerReferences);
    if (rs !== undefined) {
      if (this.rsOwners.size > 10_000) this.rsOwners.clear();
      this.rsOwners.set(k, owner);
    }
    return owner;
  }

  private async endPass(sp: SpanProfiling): Promise<void> {
    try {
      await this.kube.request('PATCH', `/apis/${GROUP}/${VERSION}/namespaces/${sp.metadata.namespace}/${PLURAL}/${sp.metadata.name}`, { metadata: { annotations: { [ANNOTATION_ROLLOUT]: null } } }, 'application/merge-patch+json');
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
