/**
 * Worker threads, the main thread's side. Each worker thread of an injected
 * app runs a small profiler of its own (worker-side.ts, started by the
 * preload when the main thread's agent profiles); its profiles come here over
 * a BroadcastChannel and are uploaded with the main thread's.
 *
 * Work that a request hands to a worker while its span is active is labelled
 * with that span: a worker created inside a span starts in it (its labels ride
 * in the environment data the new thread is given), and a message posted to a
 * worker known to run the profiler (it said hello on the channel) is preceded,
 * on the same port, by a small task marker carrying the span's labels (or
 * none). Messages on one port arrive in order, and the worker's side takes
 * every marker out before the app could see it: a marker is only ever sent to
 * a thread that filters them. Ports reach a worker by transfer: a
 * MessageChannel port transferred to such a worker makes the port kept here
 * markable too (piscina's task port is one).
 *
 * A pool that queues tasks posts a queued one when another finishes, in that
 * one's context. Pools that follow Node's pattern for task queues (an
 * AsyncResource per task, as piscina and tinypool make one when a task is
 * submitted) carry the submission: the agent's AsyncResource notes the span
 * that was active when each task resource was made, against the objects the
 * resource holds (the task's payload), and a message that carries such an
 * object (itself, or as a property or array element) is marked with that span.
 * workerpool binds no context to its tasks: its `exec(method, params)` notes
 * the span against `params`, which its message to the worker carries.
 *
 * Threads come and go (pools end idle threads; apps create one per task). A
 * thread's profile is sent from the thread on its own schedule and when it
 * exits by itself; `worker.terminate()` runs nothing in the thread, so before
 * the real terminate the main thread asks the thread for its last interval
 * through the inspector (an in-process session, opened at the first need),
 * which reaches a thread that computes or waits in `Atomics.wait`. Threads
 * idle in `Atomics.wait`, where their own timer never fires, are asked the
 * same way at the process's upload interval, and every thread at the end.
 */
import { BroadcastChannel, MessageChannel, MessagePort, Worker, setEnvironmentData, type TransferListItem } from 'node:worker_threads';
import * as workerThreads from 'node:worker_threads';
import { syncBuiltinESMExports } from 'node:module';
import type { AsyncResource } from 'node:async_hooks';

/** The environment data key a worker's preload reads (present: the main thread profiles). */
export const WORKER_PROFILING_KEY = 'spanprofiling.io/worker-profiling';
/** The environment data key a new thread finds the labels of the span that created it under. */
export const WORKER_SPAN_KEY = 'spanprofiling.io/worker-span';
/** The property that makes a message a task marker (structured clone keeps string keys only). */
export const TASK_MARKER = '@@spanprofiling.io/task';
/** Where a profiled thread keeps its flush function (called through the inspector). */
export const WORKER_FLUSH = Symbol.for('spanprofiling.io/worker-flush');

/** What a worker's preload is given, through worker_threads' environment data. */
export interface WorkerProfilingSettings {
  version: 1;
  channel: string;
  samplingIntervalMicros: number;
  collectCpuTime: boolean;
  uploadIntervalMs: number;
}

export type WorkerMessage =
  | { kind: 'hello'; threadId: number }
  /** A thread's time profile as the native profiler gave it (encoded, unshaped), for the process's next upload. */
  | { kind: 'profile'; threadId: number; threadName: string; pprof: Uint8Array; cpuNanos: number; final: boolean }
  | { kind: 'bye'; threadId: number };

export interface TaskMarker {
  [TASK_MARKER]: 1;
  /** The posting span's labels; null when no profiled span posts. */
  labels: Record<string, string> | null;
}

export function isTaskMarker(data: unknown): data is TaskMarker {
  return data !== null && typeof data === 'object' && (data as Record<string, unknown>)[TASK_MARKER] === 1;
}

export interface WorkerProfileSink {
  /**
   * A thread's time profile (encoded, unshaped), to merge into the process's next upload; its CPU
   * is also in the main thread's profile as "Non JS threads activity".
   */
  profile(pprof: Uint8Array, threadName: string, cpuNanos: number): void;
}

type PostMessage = (this: unknown, value: unknown, transfer?: readonly TransferListItem[] | { transfer?: readonly TransferListItem[] }) => void;

const MAX_WAITING_THREADS = 256;
/** Threads remembered as profiled; a thread that ended unseen is forgotten past this many. */
const MAX_PROFILED_THREADS = 4096;
/** How long a terminate waits for the thread's last interval, at most. */
const TERMINATE_FLUSH_MS = 500;
const INSTALLED = Symbol.for('spanprofiling.io/worker-dispatch');

/**
 * The main thread's half: receives worker profiles, and marks messages to
 * profiled workers with the span that posts them.
 */
export class WorkerDispatch {
  private channel: BroadcastChannel | undefined;
  /** Threads whose worker said hello (its own port and what was transferred to it filter markers), and when each last sent a profile. */
  private readonly profiledThreads = new Map<number, number>();
  private readonly inspector = new ThreadInspector();
  /** Ports kept here whose partner went to a thread not heard from yet, by thread id. */
  private readonly waitingPorts = new Map<number, MessagePort[]>();
  private readonly markablePorts = new WeakSet<MessagePort>();
  private readonly partners = new WeakMap<MessagePort, MessagePort>();
  private readonly restore: (() => void)[] = [];
  /** Objects held by a task resource (an AsyncResource) made while a span was active: that span's labels. */
  private readonly submitted = new WeakMap<object, Record<string, string>>();

  constructor(
    private readonly settings: Omit<WorkerProfilingSettings, 'version' | 'channel'>,
    /** The active span's labels now, or undefined when none is profiled. */
    private readonly labelsNow: () => Record<string, string> | undefined,
    private readonly sink: WorkerProfileSink,
    private readonly log?: { debug(message: string): void },
  ) {}

  /** Workers created from now on start their profiler; false when this process has one already. */
  install(): boolean {
    const g = globalThis as { [INSTALLED]?: boolean };
    if (g[INSTALLED] === true) return false;
    g[INSTALLED] = true;
    const name = `spanprofiling.io/workers/${process.pid}`;
    const channel = new BroadcastChannel(name);
    channel.unref();
    channel.onmessage = (event: unknown) => this.receive((event as { data: WorkerMessage }).data);
    this.channel = channel;
    const settings: WorkerProfilingSettings = { version: 1, channel: name, ...this.settings };
    setEnvironmentData(WORKER_PROFILING_KEY, settings as unknown as workerThreads.Serializable);
    this.patchPosting();
    return true;
  }

  /**
   * Asks the profiled threads that sent nothing for `quietMs` (waiting in `Atomics.wait`, where their
   * timer never fires), or all of them, for their profile; waits at most `timeoutMs` for the answers.
   */
  async flushThreads(quietMs: number, timeoutMs: number): Promise<void> {
    const now = Date.now();
    const quiet = [...this.profiledThreads].filter(([, last]) => now - last >= quietMs).map(([threadId]) => threadId);
    if (quiet.length === 0) return;
    for (const threadId of quiet) this.profiledThreads.set(threadId, now);
    await Promise.all(quiet.map((threadId) => this.inspector.flush(threadId, false, timeoutMs)));
  }

  /** Stops receiving and marking; workers created afterwards run without a profiler. */
  uninstall(): void {
    setEnvironmentData(WORKER_PROFILING_KEY, undefined as unknown as workerThreads.Serializable);
    this.channel?.close();
    this.channel = undefined;
    this.inspector.close();
    for (const undo of this.restore.splice(0)) undo();
    delete (globalThis as { [INSTALLED]?: boolean })[INSTALLED];
  }

  private receive(message: WorkerMessage): void {
    try {
      if (message.kind === 'hello') {
        if (this.profiledThreads.size >= MAX_PROFILED_THREADS) this.profiledThreads.delete(this.profiledThreads.keys().next().value!);
        this.profiledThreads.set(message.threadId, Date.now());
        this.log?.debug(`worker thread ${message.threadId} is profiled`);
        for (const port of this.waitingPorts.get(message.threadId) ?? []) this.markablePorts.add(port);
        this.waitingPorts.delete(message.threadId);
      } else if (message.kind === 'profile') {
        this.log?.debug(`worker thread ${message.threadId}: a profile, ${(message.cpuNanos / 1e6).toFixed(0)} ms of CPU${message.final ? ', its last' : ''}`);
        if (message.final) this.profiledThreads.delete(message.threadId);
        else if (this.profiledThreads.has(message.threadId)) this.profiledThreads.set(message.threadId, Date.now());
        this.sink.profile(message.pprof, message.threadName, message.cpuNanos);
      } else if (message.kind === 'bye') {
        this.profiledThreads.delete(message.threadId);
      }
    } catch {
      // a malformed message loses one profile
    }
  }

  private patchPosting(): void {
    const dispatch = this;
    // A MessageChannel that remembers which two ports belong together.
    const Original = MessageChannel;
    const partners = this.partners;
    class TrackedMessageChannel extends Original {
      constructor() {
        super();
        partners.set(this.port1, this.port2);
        partners.set(this.port2, this.port1);
      }
    }
    Object.defineProperty(TrackedMessageChannel, 'name', { value: 'MessageChannel' });
    // The module's own exports object (a bundler's namespace copy of it would take the assignment for nothing).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const moduleExports = require('node:worker_threads') as Record<string, unknown>;
    const global = globalThis as unknown as Record<string, unknown>;
    const replace = (holder: Record<string, unknown>, key: string, value: unknown): void => {
      const before = holder[key];
      try {
        holder[key] = value;
        this.restore.push(() => {
          if (holder[key] === value) holder[key] = before;
        });
      } catch {
        // not writable here: ports made through it are not followed
      }
    };
    replace(moduleExports, 'MessageChannel', TrackedMessageChannel);
    if (global['MessageChannel'] === Original) replace(global, 'MessageChannel', TrackedMessageChannel);

    // A thread created inside a span starts in it: the span's labels go in the environment data it is given.
    const labelsNow = this.labelsNow;
    // Task resources are noted only once the app has made a worker: apps without threads pay one check per resource.
    let threads = false;
    class SpanWorker extends Worker {
      constructor(...args: ConstructorParameters<typeof Worker>) {
        threads = true;
        let labels: Record<string, string> | undefined;
        try {
          labels = labelsNow();
          if (labels !== undefined) setEnvironmentData(WORKER_SPAN_KEY, labels);
        } catch {
          labels = undefined;
        }
        try {
          super(...args);
        } finally {
          if (labels !== undefined) setEnvironmentData(WORKER_SPAN_KEY, undefined as unknown as workerThreads.Serializable);
        }
      }
    }
    Object.defineProperty(SpanWorker, 'name', { value: 'Worker' });
    replace(moduleExports, 'Worker', SpanWorker);

    // Task resources note the span they were made in, against what they hold (see the file's comment).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const asyncHooks = require('node:async_hooks') as Record<string, unknown>;
    const OriginalResource = asyncHooks['AsyncResource'] as typeof AsyncResource;
    const submitted = this.submitted;
    class TaskAsyncResource extends OriginalResource {
      constructor(...args: ConstructorParameters<typeof AsyncResource>) {
        super(...args);
        if (!threads) return;
        let labels: Record<string, string> | undefined;
        try {
          labels = labelsNow();
        } catch {
          labels = undefined;
        }
        if (labels === undefined) return;
        // The subclass (a pool's TaskInfo) sets its fields after this constructor returns.
        queueMicrotask(() => {
          try {
            for (const value of Object.values(this)) if (value !== null && typeof value === 'object' && !submitted.has(value)) submitted.set(value, labels);
          } catch {
            // nothing noted
          }
        });
      }
      // Resources made from Node's own class are still AsyncResources; a subclass (a pool's TaskInfo) checks as usual.
      static [Symbol.hasInstance](this: unknown, value: unknown): boolean {
        return this === TaskAsyncResource ? value instanceof OriginalResource : (Function.prototype[Symbol.hasInstance] as (v: unknown) => boolean).call(this, value);
      }
    }
    Object.defineProperty(TaskAsyncResource, 'name', { value: 'AsyncResource' });
    replace(asyncHooks, 'AsyncResource', TaskAsyncResource);

    // workerpool binds no context to its tasks: its pools' exec() notes the span against the params it posts.
    const ModuleProto = (require('node:module') as { prototype: { require: (this: unknown, id: string) => unknown } }).prototype;
    const moduleRequire = ModuleProto.require;
    const notedPools = new WeakSet<object>();
    const notePool = (pool: unknown): void => {
      const proto = pool !== null && typeof pool === 'object' ? (Object.getPrototypeOf(pool) as { exec?: unknown } | null) : null;
      if (proto === null || typeof proto.exec !== 'function' || notedPools.has(proto)) return;
      notedPools.add(proto);
      const exec = proto.exec as (this: unknown, method: unknown, params: unknown, ...rest: unknown[]) => unknown;
      proto.exec = function (this: unknown, method: unknown, params: unknown, ...rest: unknown[]): unknown {
        try {
          const labels = Array.isArray(params) ? labelsNow() : undefined;
          if (labels !== undefined && !submitted.has(params as object)) submitted.set(params as object, labels);
        } catch {
          // the task goes out with the posting context
        }
        return exec.call(this, method, params, ...rest);
      };
    };
    const noting = function require(this: unknown, id: string): unknown {
      const exported = moduleRequire.call(this, id) as { pool?: unknown } | undefined;
      if (id === 'workerpool' && exported !== null && typeof exported === 'object' && typeof exported.pool === 'function' && !notedPools.has(exported)) {
        notedPools.add(exported);
        const pool = exported.pool as (...args: unknown[]) => unknown;
        try {
          exported.pool = function (this: unknown, ...args: unknown[]): unknown {
            const made = pool.apply(this, args);
            notePool(made);
            return made;
          };
        } catch {
          // not writable: its queued tasks go out with the posting context
        }
      }
      return exported;
    };
    ModuleProto.require = noting;
    this.restore.push(() => {
      if (ModuleProto.require === noting) ModuleProto.require = moduleRequire;
    });

    // A terminated thread runs no exit listener: it is asked for its last interval first.
    const terminate = Worker.prototype.terminate;
    Worker.prototype.terminate = function (this: Worker, ...args: unknown[]): Promise<number> {
      const threadId = this.threadId;
      if (!dispatch.profiledThreads.delete(threadId)) return (terminate as (...a: unknown[]) => Promise<number>).apply(this, args);
      return dispatch.inspector.flush(threadId, true, TERMINATE_FLUSH_MS).then(() => (terminate as (...a: unknown[]) => Promise<number>).apply(this, args));
    } as Worker['terminate'];
    this.restore.push(() => (Worker.prototype.terminate = terminate));

    const workerPost = Worker.prototype.postMessage as unknown as PostMessage;
    const portPost = MessagePort.prototype.postMessage as unknown as PostMessage;
    Worker.prototype.postMessage = function (this: Worker, ...args: Parameters<PostMessage>) {
      dispatch.beforePost(this.threadId, undefined, args, (marker) => workerPost.call(this, marker));
      return workerPost.apply(this, args);
    } as Worker['postMessage'];
    MessagePort.prototype.postMessage = function (this: MessagePort, ...args: Parameters<PostMessage>) {
      dispatch.beforePost(undefined, this, args, (marker) => portPost.call(this, marker));
      return portPost.apply(this, args);
    } as MessagePort['postMessage'];
    this.restore.push(() => {
      Worker.prototype.postMessage = workerPost as unknown as Worker['postMessage'];
      MessagePort.prototype.postMessage = portPost as unknown as MessagePort['postMessage'];
    });
    syncBuiltinESMExports();
    this.restore.push(() => syncBuiltinESMExports());
  }

  /** The span a message's task was submitted in, when a task resource noted it: for the message, a property of it, or an element of an array property. */
  private submittedLabels(message: unknown): Record<string, string> | undefined {
    if (message === null || typeof message !== 'object') return undefined;
    const own = this.submitted.get(message);
    if (own !== undefined) return own;
    for (const value of Object.values(message)) {
      if (value === null || typeof value !== 'object') continue;
      const labels = this.submitted.get(value) ?? (Array.isArray(value) ? firstNoted(value, this.submitted) : undefined);
      if (labels !== undefined) return labels;
    }
    return undefined;
  }

  /** Before the app's message goes out: note transferred ports, and post the span's marker first. */
  private beforePost(threadId: number | undefined, port: MessagePort | undefined, args: Parameters<PostMessage>, post: (marker: TaskMarker) => void): void {
    try {
      const profiled = threadId !== undefined ? this.profiledThreads.has(threadId) : port !== undefined && this.markablePorts.has(port);
      const transfer = transferList(args[1]);
      for (const item of transfer) {
        const partner = item instanceof MessagePort ? this.partners.get(item) : undefined;
        if (partner === undefined) continue;
        if (profiled) this.markablePorts.add(partner);
        else if (threadId !== undefined) {
          // Bounded: a thread that never says hello (created before the agent, or without its preload) is forgotten.
          if (!this.waitingPorts.has(threadId) && this.waitingPorts.size >= MAX_WAITING_THREADS) this.waitingPorts.delete(this.waitingPorts.keys().next().value!);
          const waiting = this.waitingPorts.get(threadId) ?? [];
          waiting.push(partner);
          this.waitingPorts.set(threadId, waiting);
        }
      }
      // Always a marker, with labels or none: on a profiled thread, an unmarked message is one sent before it was known.
      if (profiled) post({ [TASK_MARKER]: 1, labels: this.submittedLabels(args[0]) ?? this.labelsNow() ?? null });
    } catch {
      // the app's message goes out unlabelled
    }
  }
}

function firstNoted(values: unknown[], noted: WeakMap<object, Record<string, string>>): Record<string, string> | undefined {
  for (const value of values.slice(0, 8)) {
    if (value !== null && typeof value === 'object') {
      const labels = noted.get(value);
      if (labels !== undefined) return labels;
    }
  }
  return undefined;
}

function transferList(option: Parameters<PostMessage>[1]): readonly TransferListItem[] {
  if (Array.isArray(option)) return option;
  const nested = (option as { transfer?: unknown } | undefined)?.transfer;
  return Array.isArray(nested) ? (nested as TransferListItem[]) : [];
}

/**
 * Runs a profiled thread's flush in that thread through an in-process
 * inspector session (NodeWorker domain): an inspector message interrupts a
 * thread that computes or waits in `Atomics.wait`, where nothing else reaches
 * it. Opened at the first need; every failure means only a lost interval.
 */
class ThreadInspector {
  private session: import('node:inspector').Session | undefined;
  private enabled: Promise<boolean> | undefined;
  /** Inspector session ids of the attached threads, by thread id. */
  private readonly sessions = new Map<string, string>();
  private readonly attachWaiters = new Map<string, () => void>();
  private readonly replies = new Map<number, () => void>();
  private nextId = 1;

  async flush(threadId: number, final: boolean, timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    try {
      await Promise.race([this.run(String(threadId), final), deadline]);
    } catch {
      // the interval is lost
    } finally {
      clearTimeout(timer);
    }
  }

  private async run(threadId: string, final: boolean): Promise<void> {
    if (!(await this.enable())) return;
    let sessionId = this.sessions.get(threadId);
    if (sessionId === undefined) {
      // A thread created after the session opened is attached as it starts.
      await new Promise<void>((resolve) => this.attachWaiters.set(threadId, resolve));
      sessionId = this.sessions.get(threadId);
      if (sessionId === undefined) return;
    }
    const id = this.nextId++;
    const expression = `globalThis[Symbol.for('spanprofiling.io/worker-flush')]?.(${final})`;
    await new Promise<void>((resolve) => {
      this.replies.set(id, resolve);
      this.session!.post('NodeWorker.sendMessageToWorker', { sessionId, message: JSON.stringify({ id, method: 'Runtime.evaluate', params: { expression, silent: true } }) }, (err) => {
        if (err) resolve();
      });
    }).finally(() => this.replies.delete(id));
  }

  private enable(): Promise<boolean> {
    this.enabled ??= new Promise<boolean>((resolve) => {
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const inspector = require('node:inspector') as typeof import('node:inspector');
        const session = new inspector.Session();
        session.connect();
        session.on('NodeWorker.attachedToWorker', (message: { params: { sessionId: string; workerInfo: { title?: string } } }) => {
          // The inspector numbers workers its own way; the title names the thread: `[worker <threadId>]`.
          const threadId = /\[worker (\d+)\]/.exec(message.params.workerInfo.title ?? '')?.[1];
          if (threadId === undefined) return;
          this.sessions.set(threadId, message.params.sessionId);
          this.attachWaiters.get(threadId)?.();
          this.attachWaiters.delete(threadId);
        });
        session.on('NodeWorker.detachedFromWorker', (message: { params: { sessionId: string } }) => {
          for (const [threadId, sessionId] of this.sessions) if (sessionId === message.params.sessionId) this.sessions.delete(threadId);
        });
        session.on('NodeWorker.receivedMessageFromWorker', (message: { params: { message: string } }) => {
          try {
            const id = (JSON.parse(message.params.message) as { id?: number }).id;
            if (id !== undefined) this.replies.get(id)?.();
          } catch {
            // not an answer of ours
          }
        });
        this.session = session;
        session.post('NodeWorker.enable', { waitForDebuggerOnStart: false }, (err) => resolve(err === null || err === undefined));
      } catch {
        resolve(false);
      }
    });
    return this.enabled;
  }

  close(): void {
    try {
      this.session?.disconnect();
    } catch {
      // already gone
    }
    this.session = undefined;
    this.enabled = Promise.resolve(false);
    for (const resolve of [...this.attachWaiters.values(), ...this.replies.values()]) resolve();
  }
}
