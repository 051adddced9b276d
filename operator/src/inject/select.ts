/**
 * Which SpanProfiling applies to a pod, from the inject annotations of the
 * pod and its namespace, with the precedence of the OpenTelemetry Operator's
 * inject annotations:
 * - a pod value other than "true" wins ("false" opts the pod out, a name picks a resource);
 * - a pod "true" in a namespace whose value is a name uses that name;
 * - "true" means the one SpanProfiling in the pod's namespace: none or several is an error.
 */
import { ANNOTATION_INJECT, ref, type LabelSelector, type SpanProfiling } from '../api';
import { describeInject, parseInject, type InjectValue } from './annotations';

/** Short, stable reason codes (metrics labels); the reason text says the details. */
export type ReasonCode =
  | 'not-opted-in'
  | 'opted-out'
  | 'invalid-annotation'
  | 'no-spanprofiling'
  | 'several-spanprofilings'
  | 'spanprofiling-not-found'
  | 'selector-mismatch';

export type Selection =
  | { outcome: 'inject'; spanProfiling: SpanProfiling }
  | { outcome: 'skip'; code: ReasonCode; reason: string }
  | { outcome: 'error'; code: ReasonCode; reason: string };

export interface SelectInput {
  podNamespace: string;
  podAnnotations: Readonly<Record<string, string>> | undefined;
  podLabels: Readonly<Record<string, string>> | undefined;
  namespaceAnnotations: Readonly<Record<string, string>> | undefined;
  /** Every SpanProfiling the operator knows, in any namespace. */
  spanProfilings: readonly SpanProfiling[];
}

export function effectiveInject(pod: InjectValue, namespace: InjectValue): { value: InjectValue; from: 'pod' | 'namespace' } {
  if (pod.kind !== 'unset' && pod.kind !== 'true') return { value: pod, from: 'pod' };
  if (pod.kind === 'true') return namespace.kind === 'name' ? { value: namespace, from: 'namespace' } : { value: pod, from: 'pod' };
  return { value: namespace, from: 'namespace' };
}

export function selectSpanProfiling(input: SelectInput): Selection {
  const { value, from } = effectiveInject(parseInject(input.podAnnotations), parseInject(input.namespaceAnnotations));
  const where = from === 'pod' ? 'the pod' : `namespace ${input.podNamespace}`;
  switch (value.kind) {
    case 'unset':
      return { outcome: 'skip', code: 'not-opted-in', reason: `neither the pod nor namespace ${input.podNamespace} has ${ANNOTATION_INJECT}` };
    case 'false':
      return { outcome: 'skip', code: 'opted-out', reason: `${ANNOTATION_INJECT}=false on ${where}` };
    case 'invalid':
      return {
        outcome: 'error',
        code: 'invalid-annotation',
        reason: `${ANNOTATION_INJECT}=${describeInject(value)} on ${where} is not "true", "false", "<name>" or "<namespace>/<name>"`,
      };
    case 'true': {
      const local = input.spanProfilings.filter((sp) => sp.metadata.namespace === input.podNamespace);
      if (local.length === 0) {
        return { outcome: 'error', code: 'no-spanprofiling', reason: `${ANNOTATION_INJECT}=true but namespace ${input.podNamespace} has no SpanProfiling; create one, or name one as <namespace>/<name>` };
      }
      if (local.length > 1) {
        const names = local.map((sp) => sp.metadata.name).sort().join(', ');
        return { outcome: 'error', code: 'several-spanprofilings', reason: `${ANNOTATION_INJECT}=true but namespace ${input.podNamespace} has several SpanProfilings (${names}); name the one to use` };
      }
      return matchSelector(local[0]!, input.podLabels);
    }
    case 'name': {
      const namespace = value.namespace ?? input.podNamespace;
      const found = input.spanProfilings.find((sp) => sp.metadata.namespace === namespace && sp.metadata.name === value.name);
      if (found === undefined) {
        return { outcome: 'error', code: 'spanprofiling-not-found', reason: `SpanProfiling ${namespace}/${value.name}, named by ${ANNOTATION_INJECT} on ${where}, does not exist` };
      }
      return matchSelector(found, input.podLabels);
    }
  }
}

function matchSelector(sp: SpanProfiling, labels: Readonly<Record<string, string>> | undefined): Selection {
  if (sp.spec.selector !== undefined && !matchesLabelSelector(sp.spec.selector, labels ?? {})) {
    return { outcome: 'skip', code: 'selector-mismatch', reason: `the pod's labels do not match the selector of SpanProfiling ${ref(sp)}` };
  }
  return { outcome: 'inject', spanProfiling: sp };
}

export function matchesLabelSelector(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const values = e.values ?? [];
    const ok =
      e.operator === 'In' ? has && values.includes(labels[e.key]!)
      : e.operator === 'NotIn' ? !has || !values.includes(labels[e.key]!)
      : e.operator === 'Exists' ? has
      : !has;
    if (!ok) return false;
  }
  return true;
}
