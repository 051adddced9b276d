/**
 * Events on SpanProfilings: the controller's one per Ready transition and
 * one per workload a rollout restarts (also on the workload), and
 * the webhook's warnings about pods (a named container that does not exist,
 * NODE_OPTIONS from envFrom, credentials read in another namespace), which
 * nobody sees on a pod a controller made. The same warning for pods of one
 * template (same generateName) is recorded once per window, so a ReplicaSet
 * scaling to 100 writes one Event, not 100.
 */
import { API_VERSION, KIND, type SpanProfiling } from '../api';
import type { Kube } from '../kube/client';
import type { Log } from '../log';
import { errorMessage } from '../log';

const MAX_REMEMBERED = 1000;

export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string | undefined;
}

export class EventRecorder {
  private readonly recent = new Map<string, number>();

  constructor(
    private readonly kube: Kube,
    private readonly log: Log,
    private readonly now: () => Date = () => new Date(),
    private readonly windowMs = 10 * 60_000,
  ) {}

  async record(sp: SpanProfiling, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    await this.recordOn({ apiVersion: API_VERSION, kind: KIND, name: sp.metadata.name, namespace: sp.metadata.namespace, uid: sp.metadata.uid }, type, reason, message);
  }

  /** An Event on any namespaced object (the workloads a rollout restarts). */
  async recordOn(involvedObject: InvolvedObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = this.now().toISOString();
    try {
      await this.kube.request('POST', `/api/v1/namespaces/${involvedObject.namespace}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${involvedObject.name}.`, namespace: involvedObject.namespace },
        involvedObject,
        type,
        reason,
        message: message.slice(0, 1024),
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        source: { component: 'span-profiling-operator' },
        reportingComponent: 'span-profiling-operator',
      });
    } catch (err) {
      this.log.warn('could not record an event', { error: errorMessage(err), reason });
    }
  }

  /** Records a Warning unless the same one was recorded within the window; never waits, never throws. Answers whether it records. */
  warnOnce(sp: SpanProfiling, reason: string, message: string): boolean {
    const key = `${sp.metadata.namespace}/${sp.metadata.name}\n${reason}\n${message}`;
    const at = this.now().getTime();
    const last = this.recent.get(key);
    if (last !== undefined && at - last < this.windowMs) return false;
    this.recent.delete(key);
    this.recent.set(key, at);
    // Oldest first in insertion order: forget the oldest.
    while (this.recent.size > MAX_REMEMBERED) this.recent.delete(this.recent.keys().next().value as string);
    void this.record(sp, 'Warning', reason, message);
    return true;
  }
}
