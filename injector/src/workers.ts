/**
 * Worker threads, the main thread's side. Each worker thread of an injected
 * app runs a small profiler of its own (worker-thread.ts, started by the
 * preload when the main thread's agent profiles); its profiles come here over
 * a BroadcastChannel and are uploaded with the main thread's.
 *
 * Work that a request hands to a worker while its span is active is labelled
 * with that span: a message posted to a worker known to run the profiler (it
 * said hello on the channel) is preceded, on the same port, by a small task
 * marker carrying the span's labels. Messages on one port arrive in order, and
 * the worker's side takes every marker out before the app could see it: a
 * marker is only ever sent to a thread that filters them. Ports reach a
 * worker by transfer: a MessageChannel port transferred to such a worker makes
 * the port kept here markable too (piscina's task port is one).
 */
import { BroadcastChannel, MessageChannel, MessagePort, Worker, setEnvironmentData, type TransferListItem } from 'node:worker_threads';
import * as workerThreads from 'node:worker_threads';
import { syncBuiltinESMExports } from 'node:module';

/** The environment data key a worker's preload reads (present: the main thread profiles). */
export const WORKER_PROFILING_KEY = 'spanprofiling.io/worker-profiling';
/** The property that makes a message a task marker (structured clone keeps string keys only). */
export const TASK_MARKER = '@@spanprofiling.io/task';

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
  | { kind: 'profile'; threadId: number; pprofs: Uint8Array[]; fromMs: number; untilMs: number; cpuNanos: number };

export interface TaskMarker {
  [TASK_MARKER]: 1;
  labels: Record<string, string>;
}

export function isTaskMarker(data: unknown): data is TaskMarker {
  return data !== null && typeof data === 'object' && (data as Record<string, unknown>)[TASK_MARKER] === 1;
}

export interface WorkerProfileSink {
  /** A worker's profile, encoded (not compressed), with its window. */
  upload(pprof: Uint8Array, fromMs: number, untilMs: number): void;
  /** CPU a worker reported, which the main thread's profile also counts as "Non JS threads activity". */
  workerCpu(nanos: number): void;
}

type PostMessage = (this: unknown, value: unknown, transfer?: readonly TransferListItem[] | { transfer?: readonly TransferListItem[] }) => void;

const MAX_WAITING_THREADS = 256;
const INSTALLED = Symbol.for('spanprofiling.io/worker-dispatch');

/**
 * The main thread's half: receives worker profiles, and marks messages to
 * profiled workers with the span that posts them.
 */
export class WorkerDispatch {
  private channel: BroadcastChannel | undefined;
  /** Threads whose worker said hello: its own port and what was transferred to it filter markers. */
  private readonly profiledThreads = new Set<number>();
  /** Ports kept here whose partner went to a thread not heard from yet, by thread id. */
  private readonly waitingPorts = new Map<number, MessagePort[]>();
  private readonly markablePorts = new WeakSet<MessagePort>();
  private readonly partners = new WeakMap<MessagePort, MessagePort>();
  private readonly restore: (() => void)[] = [];

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

  /** Stops receiving and marking; workers created afterwards run without a profiler. */
  uninstall(): void {
    setEnvironmentData(WORKER_PROFILING_KEY, undefined as unknown as workerThreads.Serializable);
    this.channel?.close();
    this.channel = undefined;
    for (const undo of this.restore.splice(0)) undo();
    delete (globalThis as { [INSTALLED]?: boolean })[INSTALLED];
  }

  private receive(message: WorkerMessage): void {
    try {
      if (message.kind === 'hello') {
        this.profiledThreads.add(message.threadId);
        this.log?.debug(`worker thread ${message.threadId} is profiled`);
        for (const port of this.waitingPorts.get(message.threadId) ?? []) this.markablePorts.add(port);
        this.waitingPorts.delete(message.threadId);
      } else if (message.kind === 'profile') {
        this.log?.debug(`worker thread ${message.threadId}: ${message.pprofs.length} profile(s), ${(message.cpuNanos / 1e6).toFixed(0)} ms of CPU`);
        this.sink.workerCpu(message.cpuNanos);
        for (const pprof of message.pprofs) this.sink.upload(pprof, message.fromMs, message.untilMs);
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
      if (!profiled) return;
      const labels = this.labelsNow();
      if (labels !== undefined) post({ [TASK_MARKER]: 1, labels });
    } catch {
      // the app's message goes out unlabelled
    }
  }
}

function transferList(option: Parameters<PostMessage>[1]): readonly TransferListItem[] {
  if (Array.isArray(option)) return option;
  const nested = (option as { transfer?: unknown } | undefined)?.transfer;
  return Array.isArray(nested) ? (nested as TransferListItem[]) : [];
}
