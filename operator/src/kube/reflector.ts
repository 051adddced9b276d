/**
 * A cache of one kind of object, kept current by list + watch: the piece of
 * an informer the operator needs. Re-lists when the watch's resourceVersion
 * expires (410 Gone) and retries with backoff on errors; calls onChange after
 * every update so reconcilers can react.
 */
import type { Kube, WatchEvent } from './client';
import { KubeError } from './client';
import type { Log } from '../log';
import { errorMessage } from '../log';

export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
}

export class Reflector<T extends KubeObject> {
  private readonly items = new Map<string, T>();
  private synced = false;
  private stopped = false;
  private abortWatch: (() => void) | undefined;
  private readonly listeners: ((type: WatchEvent<T>['type'] | 'SYNC', obj: T | undefined) => void)[] = [];

  constructor(
    private readonly kube: Kube,
    /** Collection path, e.g. /api/v1/namespaces or /apis/spanprofiling.io/v1alpha1/spanprofilings */
    private readonly path: string,
    private readonly log: Log,
    /** Extra query, e.g. labelSelector=... */
    private readonly query = '',
  ) {}

  static keyOf(obj: KubeObject): string {
    return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
  }

  onChange(listener: (type: WatchEvent<T>['type'] | 'SYNC', obj: T | undefined) => void): void {
    this.listeners.push(listener);
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  list(): T[] {
    return [...this.items.values()];
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.items.get(`${namespace ?? ''}/${name}`);
  }

  /** Runs until stop(); resolves once the first list is in the cache. */
  start(): Promise<void> {
    let resolveSynced!: () => void;
    const firstSync = new Promise<void>((r) => (resolveSynced = r));
    void this.run(resolveSynced);
    return firstSync;
  }

  stop(): void {
    this.stopped = true;
    this.abortWatch?.();
  }

  private async run(onFirstSync: () => void): Promise<void> {
    let backoff = 500;
    while (!this.stopped) {
      try {
        const sep = this.query === '' ? '?' : `?${this.query}&`;
        const list = await this.kube.request<{ items: T[]; metadata: { resourceVersion: string } }>('GET', `${this.path}${this.query === '' ? '' : `?${this.query}`}`);
        this.items.clear();
        for (const item of list.items) this.items.set(Reflector.keyOf(item), item);
        this.synced = true;
        onFirstSync();
        this.emit('SYNC', undefined);
        let resourceVersion = list.metadata.resourceVersion;
        backoff = 500;
        while (!this.stopped) {
          let expired = false;
          const watch = this.kube.watch<T>(`${this.path}${sep}watch=true&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion=${resourceVersion}`, (event) => {
            if (event.type === 'ERROR') {
              const status = event.object as unknown as { code?: number; message?: string };
              if (status.code === 410) expired = true;
              else this.log.warn('watch error', { path: this.path, message: status.message });
              return;
            }
            resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion;
            if (event.type === 'BOOKMARK') return;
            const key = Reflector.keyOf(event.object);
            if (event.type === 'DELETED') this.items.delete(key);
            else this.items.set(key, event.object);
            this.emit(event.type, event.object);
          });
          this.abortWatch = watch.abort;
          const opened = Date.now();
          await watch.done;
          if (expired) break; // re-list
          // A watch the server closes at once is not re-opened in a tight loop.
          if (Date.now() - opened < 1000) await new Promise((r) => setTimeout(r, 1000));
        }
      } catch (err) {
        if (this.stopped) return;
        const gone = err instanceof KubeError && err.status === 410;
        if (!gone) this.log.warn('list/watch failed, retrying', { path: this.path, error: errorMessage(err), retryMs: backoff });
        await new Promise((r) => setTimeout(r, gone ? 0 : backoff));
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  private emit(type: WatchEvent<T>['type'] | 'SYNC', obj: T | undefined): void {
    for (const l of this.listeners) {
      try {
        l(type, obj);
      } catch (err) {
        this.log.error('change listener failed', { path: this.path, error: errorMessage(err) });
      }
    }
  }
}
