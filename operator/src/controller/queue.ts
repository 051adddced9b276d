/**
 * The controller's work queue: each key at most once in the queue, up to
 * `concurrency` keys processed at a time but never one key twice at once (a
 * key added while it is processed waits for that to end), and a key whose reconcile failed retried after a delay that
 * doubles with each failure in a row (1 s, 2 s, 4 s, ... up to 2 min), so one
 * broken object does not hammer the API server while the others go on.
 * A new event for a key processes it at once; a success forgets its failures.
 */
export interface Backoff {
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: Backoff = { baseMs: 1000, maxMs: 120_000 };

/** Delay before the retry that follows `failures` failures in a row (1 or more). */
export function retryDelay(failures: number, backoff: Backoff = DEFAULT_BACKOFF): number {
  return Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(Math.max(failures - 1, 0), 30));
}

export class WorkQueue {
  private readonly queue = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly processing = new Set<string>();
  private workers = 0;
  private active = false;

  constructor(
    private readonly work: (key: string) => Promise<void>,
    private readonly onResult: (key: string, error: unknown, retryMs: number) => void,
    private readonly backoff: Backoff = DEFAULT_BACKOFF,
    /** Reconciles at a time: status writes wait on the API server, so one at a time left 200 SpanProfilings 20 s behind a change. */
    private readonly concurrency = 1,
  ) {}

  start(): void {
    this.active = true;
  }

  /** Drops everything queued or waiting; keys added later are ignored until start(). */
  stop(): void {
    this.active = false;
    this.queue.clear();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.failures.clear();
  }

  add(key: string): void {
    if (!this.active) return;
    this.queue.add(key);
    if (this.workers < this.concurrency) {
      this.workers++;
      void this.drain();
    }
  }

  /** Adds the key after `ms`, unless it is already waiting. */
  addAfter(key: string, ms: number): void {
    if (!this.active || this.timers.has(key)) return;
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, timer);
  }

  /** Failures in a row for a key (0 once it succeeds). */
  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The first queued key no worker is processing. */
  private next(): string | undefined {
    for (const key of this.queue) if (!this.processing.has(key)) return key;
    return undefined;
  }

  private async drain(): Promise<void> {
    try {
      for (let key = this.next(); this.active && key !== undefined; key = this.next()) {
        this.queue.delete(key);
        this.processing.add(key);
        try {
          await this.work(key);
          this.failures.delete(key);
          this.onResult(key, undefined, 0);
        } catch (err) {
          const failures = (this.failures.get(key) ?? 0) + 1;
          this.failures.set(key, failures);
          const delay = retryDelay(failures, this.backoff);
          this.onResult(key, err, delay);
          this.addAfter(key, delay);
        } finally {
          this.processing.delete(key);
        }
      }
    } finally {
      this.workers--;
    }
  }
}
