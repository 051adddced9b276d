/**
 * The reconcilers the leader runs: SpanProfiling status (conditions,
 * observedGeneration, injected, outdated and missed pod counts, Events), the
 * opt-in rollout that restarts the workloads of outdated and missed pods
 * (rollout.ts), the namespace label the webhook selects on, and a reason on
 * pods that were admitted while the webhook could not see them. Each is a function from observed to desired
 * state, safe to run any number of times; the caches come from reflectors
 * that every replica keeps (the webhook reads them too).
 */
import { ANNOTATION_INJECT, ANNOTATION_REASON, ANNOTATION_SPANPROFILING, ANNOTATION_STATUS, GROUP, PLURAL, ref, VERSION, type SpanProfiling } from '../api';
import { selectSpanProfiling } from '../inject/select';
import { podSpecProblems } from '../inject/validate';
import { drift, isInjected, type PodView } from './drift';
import { PodIndex, SelectionInputs } from './pod-index';
import { RESTARTED_AT, Rollouts, type WorkloadRef } from './rollout';
import { parseInject } from '../inject/annotations';
import type { Kube } from '../kube/client';
import { isForbidden, isNotFound } from '../kube/client';
import { Reflector, type KubeObject } from '../kube/reflector';
import type { LimitRangeLike, ResourceQuotaLike } from '../inject/resources';
import type { Log } from '../log';
import { errorMessage } from '../log';
import type { OperatorMetrics } from '../metrics';
import { effectiveNamespaceAnnotations, namespaceLabelPatch, wantsInjectionLabel, type NamespaceLike } from './namespaces';
import { desiredStatus, statusChanged, type SecretLookup } from './status';
import { referencedSecrets } from '../inject/env';
import { WorkQueue } from './queue';
import { EventRecorder } from './events';

type Pod = PodView & KubeObject & { spec?: unknown };

interface Secret {
  data?: Record<string, string>;
}

export const UNSEEN_POD_REASON =
  "admitted while the span-profiling webhook could not see it (operator unavailable, or the namespace opted in later); restart its workload (or let the SpanProfiling's spec.rollout do it) to have it recreated with the agent";

const CREDENTIALS_RECHECK_MS = 5000;
/** SpanProfilings and namespaces reconciled at a time (each key one at a time). */
const RECONCILE_CONCURRENCY = 4;

export interface ControllerOptions {
  /** Namespaces never labelled for injection (the operator's own, kube-system). */
  excludedNamespaces: ReadonlySet<string>;
  /** Namespaces opted in at install, as if annotated "true". */
  optInNamespaces?: ReadonlySet<string>;
  /** The agent image injected when a SpanProfiling names none: pods with another are outdated. */
  agentImage: string;
  resyncSeconds?: number;
  now?: () => Date;
}

export class Caches {
  readonly spanProfilings: Reflector<SpanProfiling & KubeObject>;
  readonly namespaces: Reflector<NamespaceLike & KubeObject>;
  /** LimitRanges, for the webhook to fit the agent container to its namespace's. */
  readonly limitRanges: Reflector<LimitRangeLike & KubeObject>;
  /** ResourceQuotas, for the webhook to state what they track in the agent container. */
  readonly resourceQuotas: Reflector<ResourceQuotaLike & KubeObject>;

  constructor(kube: Kube, log: Log) {
    this.spanProfilings = new Reflector(kube, `/apis/${GROUP}/${VERSION}/${PLURAL}`, log);
    this.namespaces = new Reflector(kube, '/api/v1/namespaces', log);
    this.limitRanges = new Reflector(kube, '/api/v1/limitranges', log);
    // Their status changes with every pod of the namespace; only the tracked keys are kept.
    this.resourceQuotas = new Reflector(kube, '/api/v1/resourcequotas', log, {
      transform: ({ metadata, spec }) => ({ metadata: { name: metadata?.name, namespace: metadata?.namespace, resourceVersion: metadata?.resourceVersion }, spec: { hard: spec?.hard ?? {} } }),
    });
  }

  async start(): Promise<void> {
    // Not waited for: without it (not yet synced, or no RBAC for it) the webhook injects as it did before.
    void this.limitRanges.start();
    void this.resourceQuotas.start();
    await Promise.all([this.spanProfilings.start(), this.namespaces.start()]);
  }

  /** The LimitRanges of a namespace. */
  limitRangesOf(namespace: string): LimitRangeLike[] {
    return this.limitRanges.list().filter((l) => l.metadata?.namespace === namespace);
  }

  /** The ResourceQuotas of a namespace. */
  resourceQuotasOf(namespace: string): ResourceQuotaLike[] {
    return this.resourceQuotas.list().filter((q) => q.metadata?.namespace === namespace);
  }

  stop(): void {
    this.limitRanges.stop();
    this.resourceQuotas.stop();
    this.spanProfilings.stop();
    this.namespaces.stop();
  }

  get synced(): boolean {
    return this.spanProfilings.hasSynced && this.namespaces.hasSynced;
  }
}

/**
 * One copy of each string that many cached pods repeat. Every decoded pod brings its own copy of its
 * namespace, label and annotation values and owner; the pods of one template repeat them all (the
 * agent's annotations, the ReplicaSet, `app=web`), so 10,000 pods hold a few hundred distinct ones.
 * Bounded: when full it starts again (pods cached before keep the copies they have).
 */
class SharedStrings {
  private readonly known = new Map<string, string>();

  constructor(private readonly max: number) {}

  of<T extends string | undefined>(value: T): T {
    if (value === undefined) return value;
    const known = this.known.get(value);
    if (known !== undefined) return known as T;
    if (this.known.size >= this.max) this.known.clear();
    this.known.set(value, value);
    return value;
  }

  /** The same keys and values (those `keep` takes, when given), the values shared. */
  record(values: Record<string, string>, keep?: (key: string) => boolean): Record<string, string> {
    const out: Record<string, string> = {};
    for (const key of Object.keys(values)) if (keep === undefined || keep(key)) out[key] = this.of(values[key]!);
    return out;
  }
}
const podStrings = new SharedStrings(50_000);

/**
 * What the controller reads of a pod: its spanprofiling.io annotations, its
 * labels (for selectors), its controller and phase. The rest of a pod (often
 * tens of kB) is not cached, and what pods repeat is kept once.
 */
export function slimPod(pod: Pod): Pod {
  const m = pod.metadata;
  // Ours, and the revision's restart time (the rollout tells an old revision's pod by it).
  const annotations = podStrings.record(m.annotations ?? {}, (k) => k.startsWith('spanprofiling.io/') || k === RESTARTED_AT);
  const owner = m.ownerReferences?.find((o) => o.controller === true);
  return {
    metadata: {
      name: m.name,
      namespace: podStrings.of(m.namespace),
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      labels: podStrings.record(m.labels ?? {}),
      annotations,
      ...(owner !== undefined ? { ownerReferences: [{ apiVersion: podStrings.of(owner.apiVersion), kind: podStrings.of(owner.kind), name: podStrings.of(owner.name), uid: podStrings.of(owner.uid), controller: true }] } : {}),
      ...(m.creationTimestamp !== undefined ? { creationTimestamp: m.creationTimestamp } : {}),
      ...(m.deletionTimestamp !== undefined ? { deletionTimestamp: m.deletionTimestamp } : {}),
    },
    status: { phase: podStrings.of(pod.status?.phase) },
  };
}

export class Controller {
  private readonly queue: WorkQueue;
  private resync: NodeJS.Timeout | undefined;
  private readonly now: () => Date;
  /**
   * The leader's one pod watch for the cluster: the pods that have not ended (a field selector),
   * as metadata, kept when injected or in a namespace labelled for injection.
   */
  private pods: Reflector<Pod> | undefined;
  /** Namespaces labelled for injection: their pods are kept. */
  private readonly optedIn = new Set<string>();
  /** Opted-in namespaces whose pods the pod watch's last list took in: its cache holds every pod of theirs. */
  private podsListedFor = new Set<string>();
  /** What pods select by: each SpanProfiling's generation, each namespace's inject annotation. */
  private readonly selection = new SelectionInputs();
  private readonly index = new PodIndex<Pod>(
    (pod) => this.spanProfilingsOf(pod),
    () => this.pods?.list() ?? [],
  );
  private readonly rollouts: Rollouts;

  constructor(
    private readonly kube: Kube,
    private readonly caches: Caches,
    private readonly options: ControllerOptions,
    private readonly log: Log,
    private readonly metrics: OperatorMetrics,
    private readonly events: EventRecorder = new EventRecorder(kube, log, options.now),
  ) {
    this.now = options.now ?? (() => new Date());
    this.rollouts = new Rollouts(kube, this.now);
    this.queue = new WorkQueue(
      (key) => (key.startsWith('sp:') ? this.reconcileSpanProfiling(key.slice(3)) : this.reconcileNamespace(key.slice(3))),
      (key, err, retryMs) => {
        this.metrics.reconciles.inc({ result: err === undefined ? 'ok' : 'error' });
        if (err !== undefined) this.log.warn('reconcile failed, will retry', { key, error: errorMessage(err), retryMs, failures: this.queue.failuresOf(key) });
      },
      undefined,
      RECONCILE_CONCURRENCY,
    );
    caches.spanProfilings.onChange((type, sp) => {
      // Which SpanProfiling a pod selects changes with a spec or the set of them, not with a status write.
      if (this.selection.changed(sp === undefined ? undefined : `sp:${ref(sp)}`, type === 'DELETED' ? undefined : String(sp?.metadata.generation))) this.index.invalidate();
      if (sp !== undefined && type === 'DELETED') this.rollouts.forget(ref(sp));
      if (sp !== undefined) this.enqueue(`sp:${ref(sp)}`);
      // A namespace's label follows how many SpanProfilings it holds: a spec or status write (the controller's own, for
      // every pod counted) changes nothing there.
      if (sp?.metadata.namespace !== undefined && type !== 'MODIFIED') this.enqueue(`ns:${sp.metadata.namespace}`);
    });
    caches.namespaces.onChange((type, ns) => {
      const name = ns?.metadata?.name;
      if (this.selection.changed(name === undefined ? undefined : `ns:${name}`, type === 'DELETED' ? undefined : ns?.metadata?.annotations?.[ANNOTATION_INJECT])) this.index.invalidate();
      if (ns?.metadata?.name !== undefined) this.enqueue(`ns:${ns.metadata.name}`);
    });
  }

  private watchPods(): Reflector<Pod> {
    const pods = new Reflector<Pod>(this.kube, '/api/v1/pods', this.log, {
      query: `fieldSelector=${encodeURIComponent('status.phase!=Succeeded,status.phase!=Failed')}`,
      metadataOnly: true,
      transform: slimPod,
      keep: (pod) => isInjected(pod) || this.optedIn.has(pod.metadata.namespace),
    });
    pods.onChange((type, pod) => {
      if (pod === undefined) {
        if (type !== 'SYNC') return;
        for (const sp of this.caches.spanProfilings.list()) this.enqueue(`sp:${ref(sp)}`);
        // The list kept every pod of these namespaces: look for pods the webhook never saw in them now.
        this.podsListedFor = new Set(this.optedIn);
        for (const ns of this.optedIn) this.enqueue(`ns:${ns}`);
        return;
      }
      // The SpanProfilings it belonged to before the change, and those it belongs to now.
      const before = this.index.ownersOf(pod);
      const now = this.spanProfilingsOf(pod);
      if (type === 'DELETED') this.index.delete(pod);
      else this.index.set(pod, now);
      for (const key of [...before, ...now]) this.enqueue(`sp:${key}`);
    });
    return pods;
  }

  /** Called when this replica becomes leader. */
  activate(): void {
    this.pods = this.watchPods();
    void this.pods.start();
    this.queue.start();
    this.enqueueAll();
    this.resync = setInterval(() => this.enqueueAll(), (this.options.resyncSeconds ?? 60) * 1000);
    this.resync.unref();
  }

  deactivate(): void {
    clearInterval(this.resync);
    this.queue.stop();
    this.pods?.stop();
    this.pods = undefined;
    this.index.invalidate();
  }

  /** The SpanProfilings a pod counts for: the one that injected it; for a pod without the agent, also the one it would be injected with now. */
  private spanProfilingsOf(pod: Pod): string[] {
    const keys = new Set<string>();
    const owner = pod.metadata.annotations?.[ANNOTATION_SPANPROFILING];
    if (owner !== undefined) keys.add(owner);
    const selected = isInjected(pod) ? undefined : this.selectedFor(pod);
    if (selected !== undefined) keys.add(selected);
    return [...keys];
  }

  /** The SpanProfiling a pod would be injected with now. */
  private selectedFor(pod: Pod): string | undefined {
    const selection = selectSpanProfiling({
      podNamespace: pod.metadata.namespace,
      podAnnotations: pod.metadata.annotations,
      podLabels: pod.metadata.labels,
      namespaceAnnotations: this.namespaceAnnotations(pod.metadata.namespace),
      spanProfilings: this.caches.spanProfilings.list(),
    });
    return selection.outcome === 'inject' ? ref(selection.spanProfiling) : undefined;
  }

  private namespaceAnnotations(name: string): Record<string, string> | undefined {
    return effectiveNamespaceAnnotations(this.caches.namespaces.get(undefined, name) ?? { metadata: { name } }, this.options.optInNamespaces ?? new Set());
  }

  /** Keeps every pod of a namespace while it is labelled for injection, to count the pods that missed the agent. */
  private watchPodsOf(namespace: string, wanted: boolean): void {
    if (wanted === this.optedIn.has(namespace)) return;
    if (wanted) this.optedIn.add(namespace);
    else this.optedIn.delete(namespace);
    this.podsListedFor.delete(namespace);
    // The one watch lists again: the namespace's pods come into the cache (or leave it).
    this.pods?.relist();
  }

  private enqueueAll(): void {
    for (const sp of this.caches.spanProfilings.list()) this.enqueue(`sp:${ref(sp)}`);
    for (const ns of this.caches.namespaces.list()) if (ns.metadata?.name) this.enqueue(`ns:${ns.metadata.name}`);
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  async reconcileSpanProfiling(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const sp = this.caches.spanProfilings.get(namespace, name);
    if (sp === undefined) {
      this.metrics.pods.deleteMatching({ spanprofiling: key });
      return;
    }
    const counts = drift(this.index.of(key), sp, { namespaceAnnotations: (ns) => this.namespaceAnnotations(ns), spanProfilings: this.caches.spanProfilings.list(), agentImage: this.options.agentImage });
    const injectedPods = counts.injectedPods;
    for (const [state, n] of [['injected', counts.injectedPods], ['outdated', counts.outdatedPods], ['missed', counts.missedPods]] as const) this.metrics.pods.set({ spanprofiling: key, state }, n);
    // Pods read their credentials in their own namespace: look where they run (or, before any runs, beside the SpanProfiling).
    const podsIn = new Map(counts.namespaces.filter((n) => n.injectedPods > 0).map((n) => [n.namespace, n.injectedPods]));
    const lookIn = podsIn.size > 0 ? [...podsIn.keys()].sort() : [namespace];
    const secrets: SecretLookup[] = [];
    for (const secretName of referencedSecrets(sp)) {
      for (const ns of lookIn) secrets.push({ namespace: ns, name: secretName, pods: podsIn.get(ns) ?? 0, ...(await this.lookUpSecret(ns, secretName)) });
    }
    // A SpanProfiling that cannot be injected rolls nothing: the new pods would come back without the agent.
    const rollout = podSpecProblems(sp).length === 0 ? await this.rollouts.step(sp, counts.stale, this.rolloutEvents(sp)) : undefined;
    if (rollout?.recheckMs !== undefined) this.queue.addAfter(`sp:${key}`, Math.max(1000, rollout.recheckMs));
    const status = desiredStatus(sp, { secrets, injectedPods, drift: counts, ...(rollout !== undefined ? { rollout: rollout.status } : {}), now: this.now() });
    // Secrets are not watched (that would cache every Secret of the cluster): look again soon while one is missing.
    if (status.conditions?.some((c) => c.type === 'CredentialsMissing' && c.status === 'True')) this.queue.addAfter(`sp:${key}`, CREDENTIALS_RECHECK_MS);
    if (!statusChanged(sp.status, status)) return;

    const before = new Map((sp.status?.conditions ?? []).map((c) => [c.type, c.status]));
    try {
      // A merge patch keeps what it does not name: say null for the parts that are gone.
      const patch = { status: { namespaces: null, rollout: null, ...status } };
      await this.kube.request('PATCH', `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}/${name}/status`, patch, 'application/merge-patch+json');
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    // One event per Ready transition: its reason names the problem (the other conditions detail it).
    const ready = status.conditions?.find((c) => c.type === 'Ready');
    if (ready !== undefined && before.get('Ready') !== ready.status) {
      await this.events.record(sp, ready.status === 'True' ? 'Normal' : 'Warning', ready.reason, ready.message);
    }
  }

  private rolloutEvents(sp: SpanProfiling): Parameters<Rollouts['step']>[2] {
    return {
      onSpanProfiling: (type, reason, message) => this.events.record(sp, type, reason, message),
      onWorkload: (w: WorkloadRef, uid, reason, message) => {
        this.metrics.restarts.inc({ spanprofiling: ref(sp), kind: w.kind });
        this.log.info('restarted a workload', { spanProfiling: ref(sp), kind: w.kind, namespace: w.namespace, name: w.name });
        return this.events.recordOn({ apiVersion: 'apps/v1', kind: w.kind, name: w.name, namespace: w.namespace, uid }, 'Normal', reason, message);
      },
    };
  }

  private async lookUpSecret(namespace: string, name: string): Promise<Pick<SecretLookup, 'found' | 'keys'>> {
    try {
      const secret = await this.kube.get<Secret>(`/api/v1/namespaces/${namespace}/secrets/${name}`);
      return secret === undefined ? { found: 'no', keys: [] } : { found: 'yes', keys: Object.keys(secret.data ?? {}) };
    } catch (err) {
      if (isForbidden(err)) return { found: 'forbidden', keys: [] };
      throw err;
    }
  }

  async reconcileNamespace(name: string): Promise<void> {
    const cached = this.caches.namespaces.get(undefined, name);
    if (cached === undefined) {
      this.watchPodsOf(name, false);
      return;
    }
    const ns = { metadata: { ...cached.metadata, annotations: effectiveNamespaceAnnotations(cached, this.options.optInNamespaces ?? new Set()) } };
    const count = this.caches.spanProfilings.list().filter((sp) => sp.metadata.namespace === name).length;
    const wanted = wantsInjectionLabel(ns, count, this.options.excludedNamespaces);
    this.watchPodsOf(name, wanted);
    const patch = namespaceLabelPatch(cached, wanted);
    if (patch !== undefined) {
      await this.kube.request('PATCH', `/api/v1/namespaces/${name}`, patch, 'application/merge-patch+json');
      this.log.info(wanted ? 'namespace labelled for injection' : 'namespace injection label removed', { namespace: name });
    }
    if (wanted && parseInject(ns.metadata?.annotations).kind !== 'unset') await this.markUnseenPods(name);
  }

  /**
   * Pods in an opted-in namespace that the webhook never saw get a reason, so users know to restart them. Read from the
   * pod watch's cache (its pods that have not ended, with our annotations), once its list took the namespace in: a list
   * of the namespace's pods at every reconcile cost the API server as much as the pods it creates.
   */
  private async markUnseenPods(namespace: string): Promise<void> {
    if (this.pods === undefined || !this.podsListedFor.has(namespace)) return;
    for (const pod of this.pods.list()) {
      if (pod.metadata.namespace !== namespace) continue;
      const a = pod.metadata.annotations ?? {};
      if (a[ANNOTATION_STATUS] !== undefined || pod.metadata.deletionTimestamp !== undefined || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
      try {
        await this.kube.request(
          'PATCH',
          `/api/v1/namespaces/${namespace}/pods/${pod.metadata.name}`,
          { metadata: { annotations: { [ANNOTATION_STATUS]: 'skipped', [ANNOTATION_REASON]: UNSEEN_POD_REASON } } },
          'application/merge-patch+json',
        );
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }
}
