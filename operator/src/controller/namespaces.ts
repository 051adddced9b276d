/**
 * Which namespaces the webhook must see. Its namespaceSelector can only read
 * labels, so the controller mirrors the opt-in annotation into a label: a
 * namespace is labelled when its annotation is set to anything but "false",
 * or when it holds a SpanProfiling (so that a pod annotation alone can opt a
 * pod in there). Never the operator's own namespace or kube-system.
 */
import { ANNOTATION_INJECT, LABEL_NAMESPACE_INJECTION, NAMESPACE_INJECTION_ENABLED } from '../api';
import { parseInject } from '../inject/annotations';

export interface NamespaceLike {
  metadata?: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
}

export function wantsInjectionLabel(ns: NamespaceLike, spanProfilingsInNamespace: number, excluded: ReadonlySet<string>): boolean {
  const name = ns.metadata?.name ?? '';
  if (excluded.has(name)) return false;
  const inject = parseInject(ns.metadata?.annotations);
  if (inject.kind === 'false') return false;
  return inject.kind !== 'unset' || spanProfilingsInNamespace > 0;
}

/** The merge patch that makes the label right, or undefined when it already is. */
export function namespaceLabelPatch(ns: NamespaceLike, wanted: boolean): Record<string, unknown> | undefined {
  const has = ns.metadata?.labels?.[LABEL_NAMESPACE_INJECTION] === NAMESPACE_INJECTION_ENABLED;
  if (has === wanted) return undefined;
  return { metadata: { labels: { [LABEL_NAMESPACE_INJECTION]: wanted ? NAMESPACE_INJECTION_ENABLED : null } } };
}

/**
 * A namespace's annotations as the operator reads them: namespaces opted in
 * at install (OPT_IN_NAMESPACES) count as annotated "true" unless the
 * namespace says otherwise itself.
 */
export function effectiveNamespaceAnnotations(ns: NamespaceLike | undefined, optIn: ReadonlySet<string>): Record<string, string> | undefined {
  const own = ns?.metadata?.annotations;
  const name = ns?.metadata?.name;
  if (name === undefined || !optIn.has(name) || (own?.[ANNOTATION_INJECT] ?? '').trim() !== '') return own;
  return { ...own, [ANNOTATION_INJECT]: 'true' };
}
