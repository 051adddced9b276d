/**
 * Answers reused for the pods of one template. A ReplicaSet's, a Job's or a
 * DaemonSet's pods reach the webhook alike: their names are generated after
 * admission, and what differs is the service account token volume's suffix
 * and the managed fields' timestamp. mutatePod is a pure function of the pod
 * and of the objects the webhook answers from, so the same pod with the same
 * objects gets the same answer: it is computed once and kept until one of
 * those objects changes in a part the webhook reads.
 *
 * The key is the whole pod as it came (managed fields aside, the token
 * volume's suffix made alike), hashed, and its namespace. An answer whose
 * patch, reason or warnings name a token volume is not kept: it would not be
 * the same for the next pod.
 */
import type { V1Pod } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { SpanProfiling } from '../api';
import { Reflector, type KubeObject } from '../kube/reflector';
import type { MutationResult } from '../inject/pod';
import { templateKey } from './admission-check';

const MAX_ANSWERS = 1000;

/** What an answer says, the request's own parts (uid, pod name, dry run) aside. */
export interface Answer {
  /** The JSONPatch, base64, when the answer changes the pod. */
  patch?: string;
  /** The warnings as the response carries them. */
  responseWarnings: string[];
  status: MutationResult['status'];
  code: MutationResult['code'];
  reason: string;
  warnings: string[];
  spanProfiling?: SpanProfiling;
  /** The admission check's key for the mutated pod, once the check admitted it (reviewChecked). */
  verdictKey?: string;
}

export class AnswerCache {
  private readonly answers = new Map<string, Answer>();
  private version: number;
  /** Answers given from the cache, and computed: for tests and the benchmark's figures. */
  reused = 0;
  computed = 0;

  constructor(private readonly inputsVersion: () => number) {
    this.version = inputsVersion();
  }

  keyOf(namespace: string, pod: V1Pod): string {
    const { managedFields: _mf, ...metadata } = pod.metadata ?? {};
    return templateKey(namespace, { ...pod, metadata });
  }

  get(key: string): Answer | undefined {
    const version = this.inputsVersion();
    if (version !== this.version) {
      this.answers.clear();
      this.version = version;
    }
    const answer = this.answers.get(key);
    if (answer !== undefined) this.reused++;
    else this.computed++;
    return answer;
  }

  /** Keeps `answer` for the pods that give `key`, unless it names something of this pod alone. */
  set(key: string, answer: Answer): void {
    const said = `${answer.patch === undefined ? '' : Buffer.from(answer.patch, 'base64').toString()}\n${answer.reason}\n${answer.warnings.join('\n')}`;
    if (said.includes('kube-api-access-')) return;
    this.answers.set(key, answer);
    while (this.answers.size > MAX_ANSWERS) this.answers.delete(this.answers.keys().next().value as string);
  }
}

/**
 * A number that changes whenever an object the webhook answers from changes
 * in a part it reads: a namespace's labels and annotations, the metadata and
 * spec of SpanProfilings, LimitRanges and ResourceQuotas. Status writes (a
 * SpanProfiling's pod counts, a quota's usage, every few seconds in a busy
 * cluster) and resource versions leave it alone.
 */
export class InputsVersion {
  private value = 0;
  private readonly seen = new Map<string, Map<string, string>>();

  get current(): number {
    return this.value;
  }

  /** The kind's objects listed again: any change counts. */
  reset(kind: string, objects: readonly KubeObject[]): void {
    this.seen.set(kind, new Map(objects.map((o) => [Reflector.keyOf(o), readPart(kind, o)])));
    this.value++;
  }

  observe(kind: string, type: string, obj: KubeObject): void {
    const objects = this.seen.get(kind) ?? new Map<string, string>();
    this.seen.set(kind, objects);
    const key = Reflector.keyOf(obj);
    if (type === 'DELETED') {
      objects.delete(key);
      this.value++;
      return;
    }
    const part = readPart(kind, obj);
    if (objects.get(key) === part) return;
    objects.set(key, part);
    this.value++;
  }
}

/** The part of an object the webhook's answer depends on. */
function readPart(kind: string, obj: KubeObject): string {
  const { resourceVersion: _rv, managedFields: _mf, ...metadata } = (obj.metadata ?? {}) as Record<string, unknown>;
  if (kind === 'namespaces') return JSON.stringify([metadata['name'], metadata['labels'], metadata['annotations']]);
  return JSON.stringify([metadata, (obj as { spec?: unknown }).spec]);
}
