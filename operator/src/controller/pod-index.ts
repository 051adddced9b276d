/**
 * The pods of each SpanProfiling, kept as pod events come, so that a
 * SpanProfiling's status is counted from its own pods rather than from every
 * pod the operator watches (at 10,000 pods in 200 namespaces, counting every
 * SpanProfiling over every pod was 2 million pod evaluations a round).
 *
 * A pod belongs to the SpanProfilings `owners` names: the one it was injected
 * by, and, for a pod without the agent, also the one it would be injected
 * with now. Which one that is depends on namespace annotations and on the
 * SpanProfilings: when those change, `invalidate()`, and the index is built
 * again at its next read.
 */
import type { KubeObject } from '../kube/reflector';

export class PodIndex<P extends KubeObject> {
  private readonly ownersByPod = new Map<string, readonly string[]>();
  private readonly podsOf = new Map<string, Map<string, P>>();
  private stale = true;

  constructor(
    /** The SpanProfilings (namespace/name) a pod belongs to. */
    private readonly owners: (pod: P) => readonly string[],
    /** Every pod, for a rebuild. */
    private readonly all: () => Iterable<P>,
  ) {}

  /** A pod was added or changed; `owners` when the caller already has them. */
  set(pod: P, owners: readonly string[] = this.owners(pod)): void {
    if (this.stale) return;
    this.remove(pod);
    const key = podKey(pod);
    this.ownersByPod.set(key, owners);
    for (const owner of owners) {
      let pods = this.podsOf.get(owner);
      if (pods === undefined) this.podsOf.set(owner, (pods = new Map()));
      pods.set(key, pod);
    }
  }

  /** The SpanProfilings a pod belonged to when last set (none while the index is stale). */
  ownersOf(pod: P): readonly string[] {
    return this.stale ? [] : (this.ownersByPod.get(podKey(pod)) ?? []);
  }

  /** A pod is gone. */
  delete(pod: P): void {
    if (!this.stale) this.remove(pod);
  }

  /** What a pod belongs to may have changed for every pod (namespace annotations, SpanProfilings). */
  invalidate(): void {
    this.stale = true;
  }

  /** The pods of a SpanProfiling. */
  of(spanProfiling: string): P[] {
    if (this.stale) this.rebuild();
    return [...(this.podsOf.get(spanProfiling)?.values() ?? [])];
  }

  private rebuild(): void {
    this.ownersByPod.clear();
    this.podsOf.clear();
    this.stale = false;
    for (const pod of this.all()) this.set(pod);
  }

  private remove(pod: P): void {
    const key = podKey(pod);
    for (const owner of this.ownersByPod.get(key) ?? []) {
      const pods = this.podsOf.get(owner);
      pods?.delete(key);
      if (pods?.size === 0) this.podsOf.delete(owner);
    }
    this.ownersByPod.delete(key);
  }
}

const podKey = (pod: KubeObject): string => `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;

/**
 * The inputs of a pod's selection, by key: `changed` answers whether a value
 * differs from the last one seen (an undefined key, a re-list's end, counts as
 * a change), so that status writes and the operator's own namespace labels do
 * not rebuild the index.
 */
export class SelectionInputs {
  private readonly seen = new Map<string, string | undefined>();

  changed(key: string | undefined, value: string | undefined): boolean {
    if (key === undefined) return true;
    if (value === undefined) return this.seen.delete(key);
    const known = this.seen.has(key);
    if (known && this.seen.get(key) === value) return false;
    this.seen.set(key, value);
    return true;
  }
}
