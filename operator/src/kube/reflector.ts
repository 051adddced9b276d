/**
 * A cache of one kind of object, kept current by list + watch: the piece of
 * an informer the operator needs. Re-lists when the watch's resourceVersion
 * expires (410 Gone) and retries with backoff on errors; calls onChange after
 * every update so reconcilers can react.
 *
 * - Lists ask for resourceVersion=0 (the API server answers from its watch
 *   cache, not etcd) in pages of `pageSize`, following continue tokens.
 * - A re-list compares the new list with the cache and reports each object
 *   that was added, changed or deleted while no watch was open, so a
 *   reconciler hears of it at once, not at its next periodic resync.
 * - `transform` keeps only the fields the readers use (pods are large);
 *   `metadataOnly` has the API server send metadata alone (PartialObjectMetadata),
 *   so a pod is not even decoded whole.
 * - `keep` caches only the objects its reader wants (the cache reports an
 *   object that stops being kept as deleted); `relist()` lists again, for
 *   when what `keep` answers changed.
 */
import type { Kube, WatchEvent } from './client';
import { KubeError, METADATA, METADATA_LIST } from './client';
import type { Log } from '../log';
import { errorMessage } from '../log';

export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
}

export interface ReflectorOptions<T> {
  /** Extra query, e.g. labelSelector=... */
  query?: string;
  /** Applied to every object before it is cached and reported. */
  transform?: (obj: T) => T;
  /** Objects per list page (default 500). */
  pageSize?: number;
  /** Ask for the objects' metadata only. */
  metadataOnly?: boolean;
  /** Cache only the objects this answers true for (after transform). */
  keep?: (obj: T) => boolean;
}

type ListPage<T> = { items: T[]; metadata: { resourceVersion: string; continue?: string } };

export class Reflector<T extends KubeObject> {
  private readonly items = new Map<string, T>();
  private synced = false;
  private stopped = false;
  private abortWatch: (() => void) | undefined;
  private relistWanted = false;
  private readonly listeners: ((type: WatchEvent<T>['type'] | 'SYNC', obj: T | undefined) => void)[] = [];

  constructor(
    private readonly kube: Kube,
    /** Collection path, e.g. /api/v1/namespaces or /apis/spanprofiling.io/v1alpha1/spanprofilings */
    private readonly path: string,
    private readonly log: Log,
    private readonly options: ReflectorOptions<T> = {},
  ) {}

  private get query(): string {
    return this.options.query ?? '';
  }

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

  /** Lists again now (the objects `keep` wants changed); what the new list adds or drops is reported. */
  relist(): void {
    this.relistWanted = true;
    this.abortWatch?.();
  }

  private async run(onFirstSync: () => void): Promise<void> {
    let backoff = 500;
    while (!this.stopped) {
      try {
        const sep = this.query === '' ? '?' : `?${this.query}&`;
        this.relistWanted = false;
        const listed = await this.listAll(sep);
        const changes = this.replace(listed.items);
        this.synced = true;
        onFirstSync();
        for (const [type, obj] of changes) this.emit(type, obj);
        this.emit('SYNC', undefined);
        let resourceVersion = listed.resourceVersion;
        backoff = 500;
        // A relist asked for while listing is done before a watch opens.
        while (!this.stopped && !this.relistWanted) {
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
            const obj = this.transform(event.object);
            const key = Reflector.keyOf(obj);
            if (event.type !== 'DELETED' && !this.kept(obj)) {
              // No longer wanted (or never was): gone from the cache, as if deleted.
              if (this.items.delete(key)) this.emit('DELETED', obj);
              return;
            }
            if (event.type === 'DELETED') this.items.delete(key);
            else this.items.set(key, obj);
            this.emit(event.type, obj);
          }, this.options.metadataOnly === true ? METADATA : undefined);
          this.abortWatch = watch.abort;
          const opened = Date.now();
          await watch.done;
          if (expired || this.relistWanted) break; // re-list
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

  private transform(obj: T): T {
    return this.options.transform === undefined ? obj : this.options.transform(obj);
  }

  private kept(obj: T): boolean {
    return this.options.keep === undefined || this.options.keep(obj);
  }

  /** The whole collection, page by page; the first page from the watch cache (resourceVersion=0). */
  private async listAll(sep: string): Promise<{ items: T[]; resourceVersion: string }> {
    const limit = this.options.pageSize ?? 500;
    const items: T[] = [];
    const accept = this.options.metadataOnly === true ? METADATA_LIST : undefined;
    const get = (query: string): Promise<ListPage<T>> => this.kube.request<ListPage<T>>('GET', `${this.path}${sep}${query}`, undefined, undefined, undefined, accept);
    let page = await get(`resourceVersion=0&limit=${limit}`);
    for (;;) {
      for (const item of page.items) {
        const obj = this.transform(item);
        if (this.kept(obj)) items.push(obj);
      }
      const token = page.metadata.continue;
      if (token === undefined || token === '') return { items, resourceVersion: page.metadata.resourceVersion };
      // The API server refuses resourceVersion together with continue: the token carries it.
      page = await get(`limit=${limit}&continue=${encodeURIComponent(token)}`);
    }
  }

  /** Makes the cache the listed objects; answers what changed, as the watch would have reported it. */
  private replace(listed: T[]): [WatchEvent<T>['type'], T][] {
    const changes: [WatchEvent<T>['type'], T][] = [];
    const before = new Map(this.items);
    this.items.clear();
    for (const item of listed) {
      const key = Reflector.keyOf(item);
      this.items.set(key, item);
      const old = before.get(key);
      before.delete(key);
      if (old === undefined) changes.push(['ADDED', item]);
      else if (old.metadata?.resourceVersion !== item.metadata?.resourceVersion) changes.push(['MODIFIED', item]);
    }
    for (const gone of before.values()) changes.push(['DELETED', gone]);
    return changes;
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
