/**
 * The webhook's thread (started by thread.ts): the HTTPS server and the
 * admission check, answering from its own copy of the objects the main
 * thread's caches hold, kept current by the main thread's messages. Its only
 * other traffic with the main thread is one message per answer (for metrics,
 * the log line and Events) and the /metrics page of its port, neither of
 * which an answer waits for.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { SpanProfiling } from '../api';
import type { NamespaceLike } from '../controller/namespaces';
import type { LimitRangeLike, ResourceQuotaLike } from '../inject/resources';
import { HttpKube, type Credentials } from '../kube/client';
import { Reflector, type KubeObject } from '../kube/reflector';
import { errorMessage, jsonLog } from '../log';
import { AdmissionCheck } from './admission-check';
import { InputsVersion } from './answers';
import { cachedContext, type ContextSource } from './review';
import { WebhookServer } from './server';
import { MIRRORED, type FromThread, type MirroredKind, type ToThread, type WebhookThreadInit } from './thread';

/** The main thread's caches, as far as the webhook reads them. */
export class Mirror implements ContextSource {
  private readonly objects = new Map<MirroredKind, Map<string, KubeObject>>(MIRRORED.map((k) => [k, new Map()]));
  private readonly received = new Set<MirroredKind>();
  private spanProfilingList: SpanProfiling[] | undefined;
  private readonly version = new InputsVersion();

  apply(message: Extract<ToThread, { t: 'reset' | 'change' }>): void {
    const objects = this.objects.get(message.kind)!;
    if (message.t === 'reset') this.version.reset(message.kind, message.objects);
    else this.version.observe(message.kind, message.type, message.obj);
    if (message.t === 'reset') {
      objects.clear();
      for (const obj of message.objects) objects.set(Reflector.keyOf(obj), obj);
      this.received.add(message.kind);
    } else if (message.type === 'DELETED') {
      objects.delete(Reflector.keyOf(message.obj));
    } else {
      objects.set(Reflector.keyOf(message.obj), message.obj);
    }
    if (message.kind === 'spanProfilings') this.spanProfilingList = undefined;
  }

  /** Every kind has been received once. */
  get synced(): boolean {
    return this.received.size === MIRRORED.length;
  }

  inputsVersion(): number {
    return this.version.current;
  }

  namespace(name: string): NamespaceLike | undefined {
    return this.objects.get('namespaces')!.get(`/${name}`) as NamespaceLike | undefined;
  }

  spanProfilings(): readonly SpanProfiling[] {
    return (this.spanProfilingList ??= [...this.objects.get('spanProfilings')!.values()] as SpanProfiling[]);
  }

  limitRangesOf(namespace: string): LimitRangeLike[] {
    return this.inNamespace('limitRanges', namespace);
  }

  resourceQuotasOf(namespace: string): ResourceQuotaLike[] {
    return this.inNamespace('resourceQuotas', namespace);
  }

  private inNamespace<T>(kind: MirroredKind, namespace: string): T[] {
    return [...this.objects.get(kind)!.values()].filter((o) => o.metadata?.namespace === namespace) as T[];
  }
}

/** The last value received; get() waits for the first. */
class Latest<T> {
  private value: T | undefined;
  private readonly waiting: ((value: T) => void)[] = [];
  set(value: T): void {
    this.value = value;
    for (const resolve of this.waiting.splice(0)) resolve(value);
  }
  get(): Promise<T> {
    return this.value !== undefined ? Promise.resolve(this.value) : new Promise((resolve) => this.waiting.push(resolve));
  }
}

async function run(init: WebhookThreadInit): Promise<void> {
  const port = parentPort!;
  const post = (message: FromThread): void => port.postMessage(message);
  const log = jsonLog(init.logLevel);
  const mirror = new Mirror();
  let server: WebhookServer | undefined;
  let nextMetrics = 0;
  const metricsAsked = new Map<number, (text: string) => void>();
  const credentials = new Latest<Credentials>();

  port.on('message', (m: ToThread) => {
    if (m.t === 'reset' || m.t === 'change') mirror.apply(m);
    else if (m.t === 'credentials') credentials.set(m.credentials);
    else if (m.t === 'cert') server?.setCertificate(m.cert, m.key);
    else if (m.t === 'metrics') {
      metricsAsked.get(m.id)?.(m.text);
      metricsAsked.delete(m.id);
    } else if (m.t === 'close') {
      // process.exit in a worker ends this thread alone.
      if (server === undefined) process.exit(0);
      else void server.close().finally(() => process.exit(0));
    }
  });

  const admissionCheck = init.admissionCheck === undefined ? undefined : new AdmissionCheck(new HttpKube(() => credentials.get()), init.admissionCheck);
  server = new WebhookServer({
    port: init.port,
    ...(init.host !== undefined ? { host: init.host } : {}),
    tls: init.tls,
    context: cachedContext(mirror, new Set(init.optInNamespaces), init.defaults),
    log,
    ready: () => (mirror.synced ? true : 'caches not synced'),
    report: (seconds, result) => post({ t: 'answered', seconds, result }),
    metricsText: () =>
      new Promise<string>((resolve) => {
        const id = nextMetrics++;
        metricsAsked.set(id, resolve);
        post({ t: 'metrics', id });
      }),
    ...(admissionCheck !== undefined ? { admissionCheck } : {}),
  });
  post({ t: 'listening', port: await server.start() });
}

if (parentPort !== null && workerData !== null && typeof workerData === 'object' && 'tls' in workerData) {
  run(workerData as WebhookThreadInit).catch((err: unknown) => {
    parentPort!.postMessage({ t: 'failed', error: errorMessage(err) } satisfies FromThread);
    process.exit(1);
  });
}
