/**
 * Leader election on a coordination.k8s.io Lease, so that two or more
 * replicas can run: every replica serves the webhook, one reconciles.
 * Optimistic concurrency on the Lease's resourceVersion decides races.
 */
import type { Kube } from './client';
import { isConflict } from './client';
import type { Log } from '../log';
import { errorMessage } from '../log';

interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewEverySeconds?: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

const microTime = (d: Date): string => d.toISOString().replace('Z', '000Z');

export class LeaderElector {
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private stopped = false;

  constructor(
    private readonly kube: Kube,
    private readonly options: LeaderElectionOptions,
    private readonly log: Log,
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    void this.tick();
  }

  /** Gives the lease up (so another replica takes over at once) and stops trying. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.setLeading(false);
    try {
      const lease = await this.kube.get<Lease>(this.path);
      if (lease?.spec.holderIdentity === this.options.identity) {
        await this.kube.request('PUT', this.path, { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 } });
      }
    } catch (err) {
      this.log.warn('could not release the leader lease', { error: errorMessage(err) });
    }
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.options.namespace}/leases/${this.options.name}`;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    // Step down before the lease can expire for the others (client-go's renew deadline).
    const renewDeadlineMs = ((this.options.leaseDurationSeconds ?? 15) * 1000 * 2) / 3;
    if (this.leading && Date.now() - this.lastRenew > renewDeadlineMs) this.setLeading(false);
    try {
      this.setLeading(await this.tryAcquireOrRenew());
    } catch (err) {
      this.log.warn('leader election failed', { error: errorMessage(err) });
      // Losing contact with the API server for a full lease period means another replica may lead now.
      if (this.leading && Date.now() - this.lastRenew > (this.options.leaseDurationSeconds ?? 15) * 1000) this.setLeading(false);
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), (this.options.renewEverySeconds ?? 2) * 1000);
  }

  private lastRenew = 0;

  private async tryAcquireOrRenew(): Promise<boolean> {
    const o = this.options;
    const duration = o.leaseDurationSeconds ?? 15;
    const now = new Date();
    const lease = await this.kube.get<Lease>(this.path);
    if (lease === undefined) {
      try {
        await this.kube.request('POST', `/apis/coordination.k8s.io/v1/namespaces/${o.namespace}/leases`, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: o.name, namespace: o.namespace },
          spec: { holderIdentity: o.identity, leaseDurationSeconds: duration, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
        });
        this.lastRenew = Date.now();
        return true;
      } catch (err) {
        if (isConflict(err)) return false;
        throw err;
      }
    }
    const holder = lease.spec.holderIdentity ?? '';
    const renewed = lease.spec.renewTime ? Date.parse(lease.spec.renewTime) : 0;
    const expired = renewed + (lease.spec.leaseDurationSeconds ?? duration) * 1000 < now.getTime();
    if (holder !== o.identity && holder !== '' && !expired) return false;
    const spec = {
      ...lease.spec,
      holderIdentity: o.identity,
      leaseDurationSeconds: duration,
      renewTime: microTime(now),
      ...(holder !== o.identity ? { acquireTime: microTime(now), leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1 } : {}),
    };
    try {
      await this.kube.request('PUT', this.path, { ...lease, spec });
      this.lastRenew = Date.now();
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.log.info(leading ? 'became leader' : 'stopped leading', { identity: this.options.identity });
    try {
      if (leading) this.options.onStartedLeading();
      else this.options.onStoppedLeading();
    } catch (err) {
      this.log.error('leadership callback failed', { error: errorMessage(err) });
    }
  }
}
