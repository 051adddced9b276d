/**
 * How a process ends, with the agent as a guest: exactly as it would without it.
 *
 * Node dies of SIGTERM, SIGINT and SIGHUP only while nothing listens for them,
 * and code in the app decides from who else listens: `signal-exit` (deep in
 * many dependency trees) re-raises a signal only when its own listeners are
 * the only ones; other helpers count listeners before adding theirs. An agent
 * listener that stays beside the app's would be "another listener" to all of
 * them, and an agent that then waits for "the app's" handler keeps the process
 * alive until the kubelet's SIGKILL.
 *
 * So the agent listens for a signal only while the app does not: its listener
 * steps aside as soon as the app adds one (in a microtask after the app's
 * `process.on`, before any signal can be dispatched) and comes back when the
 * app's last one is removed. Every count the app's code takes (but one taken
 * synchronously right after adding its first listener) is the count it would
 * take without the agent. When the agent's listener is the one that hears a signal,
 * the process was going to die of it: the agent flushes (bounded by the
 * shutdown timeout) and dies of the same signal. A helper that removes its
 * listener and re-raises (signal-exit, terminus) meets the agent's listener on
 * the way out, and the last profile is flushed before the same death.
 *
 * A natural end (`beforeExit`) flushes and ends with the app's exit code.
 */
import type { Logger } from '../shared/log';

const HANDLED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
type Signal = (typeof HANDLED_SIGNALS)[number];

const INSTALLED = Symbol.for('spanprofiling.io/process-end');

/** Flushes once when the process ends, never changing how it ends (see the file's comment). */
export function hookProcessEnd(shutdown: () => Promise<void>, log: Logger): void {
  const g = globalThis as { [INSTALLED]?: boolean };
  if (g[INSTALLED] === true) return;
  g[INSTALLED] = true;
  process.once('beforeExit', () => void shutdown());
  if (process.platform === 'win32') return;
  const guards = new Map<string | symbol, SignalGuard>(HANDLED_SIGNALS.map((signal) => [signal, new SignalGuard(signal, shutdown, log)]));
  process.on('newListener', (event: string | symbol, listener: unknown) => guards.get(event)?.added(listener));
  process.on('removeListener', (event: string | symbol, listener: unknown) => guards.get(event)?.removed(listener));
  for (const guard of guards.values()) guard.listenIfAlone();
}

class SignalGuard {
  private listening = false;
  private ending = false;
  private stepping = false;
  private readonly listener = (): void => this.heard();

  constructor(
    private readonly signal: Signal,
    private readonly shutdown: () => Promise<void>,
    private readonly log: Logger,
  ) {}

  /**
   * A listener is about to be added for the signal: if it is the app's, the agent's steps aside once it
   * is in. Not before: Node stops watching a signal (and its default action is back) when its last
   * listener goes, and starts again only on the next `newListener`, which has just passed.
   */
  added(listener: unknown): void {
    if (listener === this.listener || !this.listening || this.stepping) return;
    this.stepping = true;
    queueMicrotask(() => {
      this.stepping = false;
      if (process.listenerCount(this.signal) > 1) this.stepAside();
    });
  }

  /** A listener for the signal was removed: with none of the app's left, the agent's comes back. */
  removed(listener: unknown): void {
    if (listener !== this.listener) this.listenIfAlone();
  }

  listenIfAlone(): void {
    if (this.listening || this.ending || process.listenerCount(this.signal) > 0) return;
    try {
      this.listening = true;
      process.prependListener(this.signal, this.listener);
    } catch (err) {
      this.listening = false;
      this.log.debug(`not listening for ${this.signal}: ${String(err)}`);
    }
  }

  private stepAside(): void {
    if (!this.listening) return;
    this.listening = false;
    process.removeListener(this.signal, this.listener);
  }

  /**
   * Nothing of the app's listens: without the agent, the process would be dead
   * now. Flush, then die of the same signal. A second signal meanwhile finds no
   * listener and kills at once, as it would have.
   */
  private heard(): void {
    // The app's listener went in this very tick: it hears the signal, and decides.
    if (process.listenerCount(this.signal) > 1) return this.stepAside();
    this.stepAside();
    this.ending = true;
    void this.shutdown()
      .catch(() => undefined)
      .finally(() => {
        // A listener the app added while the agent flushed was never going to hear this signal: the process
        // would have died before it was added. Taken out, so the signal kills as it would have.
        for (const listener of process.listeners(this.signal)) process.removeListener(this.signal, listener as () => void);
        this.log.debug(`${this.signal}: flushed; ending the process with it, as without the agent`);
        process.kill(process.pid, this.signal);
      });
  }
}
