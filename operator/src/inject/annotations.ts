/**
 * How the operator's annotations are read. Values are trimmed; `true`/`false`
 * are case-insensitive.
 */
import { ANNOTATION_CONTAINER_NAMES, ANNOTATION_INJECT } from '../api';

/** What an inject annotation asks for. */
export type InjectValue =
  | { kind: 'unset' }
  | { kind: 'true' }
  | { kind: 'false' }
  | { kind: 'name'; namespace: string | undefined; name: string }
  | { kind: 'invalid'; raw: string };

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function parseInject(annotations: Readonly<Record<string, string>> | undefined): InjectValue {
  const raw = annotations?.[ANNOTATION_INJECT];
  if (raw === undefined) return { kind: 'unset' };
  const value = raw.trim();
  if (value === '') return { kind: 'unset' };
  if (value.toLowerCase() === 'true') return { kind: 'true' };
  if (value.toLowerCase() === 'false') return { kind: 'false' };
  const parts = value.split('/');
  if (parts.length === 1 && value.length <= 253 && DNS_SUBDOMAIN.test(value)) return { kind: 'name', namespace: undefined, name: value };
  if (parts.length === 2 && DNS_LABEL.test(parts[0]!) && parts[0]!.length <= 63 && DNS_SUBDOMAIN.test(parts[1]!) && parts[1]!.length <= 253) {
    return { kind: 'name', namespace: parts[0], name: parts[1]! };
  }
  return { kind: 'invalid', raw };
}

/** Container names from the pod annotation, or undefined when it is absent or empty. */
export function parseContainerNames(annotations: Readonly<Record<string, string>> | undefined): string[] | undefined {
  const raw = annotations?.[ANNOTATION_CONTAINER_NAMES];
  if (raw === undefined) return undefined;
  const names = raw.split(',').map((n) => n.trim()).filter((n) => n !== '');
  return names.length === 0 ? undefined : [...new Set(names)];
}

export function describeInject(value: InjectValue): string {
  switch (value.kind) {
    case 'name':
      return value.namespace === undefined ? value.name : `${value.namespace}/${value.name}`;
    case 'invalid':
      return JSON.stringify(value.raw);
    default:
      return value.kind;
  }
}
