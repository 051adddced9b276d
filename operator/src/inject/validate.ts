/**
 * What the webhook copies from a SpanProfiling into a pod, checked the way
 * the API server checks pods: a value it rejects would make the API server
 * refuse every pod the webhook returns (`failurePolicy: Ignore` does not
 * cover that), so such a SpanProfiling injects nothing and says why.
 *
 * The CRD schema refuses all of this at `kubectl apply`; this is the second
 * line, for objects stored before the schema said so and for anything the
 * schema cannot express.
 */
import type { EnvVar, SpanProfiling } from '../api';

/** A Kubernetes quantity, as the API server parses it. */
const QUANTITY = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))((?:[KMGTPE]i)|[numkMGTPE]|(?:[eE][+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)))?$/;
const SUFFIX: Record<string, number> = {
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'];
const PROFILE_TYPES = ['RuntimeDefault', 'Localhost', 'Unconfined'];
const ENV_SOURCES: Record<string, string[]> = { secretKeyRef: ['key'], configMapKeyRef: ['key'], fieldRef: ['fieldPath'], resourceFieldRef: ['resource'] };
/** What the API server accepts in a pod: object names, Secret keys, downward-API fields and resources for env. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
const FIELD_PATH = /^(metadata\.(name|namespace|uid|labels\['[^']+'\]|annotations\['[^']+'\])|spec\.(nodeName|serviceAccountName)|status\.(hostIP|hostIPs|podIP|podIPs))$/;
const ENV_RESOURCES = ['limits.cpu', 'limits.memory', 'limits.ephemeral-storage', 'requests.cpu', 'requests.memory', 'requests.ephemeral-storage'];
const INIT_RESOURCES = ['cpu', 'memory', 'ephemeral-storage'];

/** The value of a quantity (a number or a string such as 100m or 64Mi), or undefined when it is not one. */
export function parseQuantity(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = QUANTITY.exec(value);
  if (m === null) return undefined;
  const suffix = m[2] ?? '';
  const scale = /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : SUFFIX[suffix];
  return scale === undefined ? undefined : Number(m[1]) * scale;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function resourcesProblems(resources: unknown): string[] {
  if (resources === undefined) return [];
  if (!isObject(resources)) return ['agent.resources is not an object'];
  const problems: string[] = [];
  const values: Record<string, Record<string, number>> = {};
  for (const part of ['limits', 'requests'] as const) {
    const map = resources[part];
    if (map === undefined) continue;
    if (!isObject(map)) {
      problems.push(`agent.resources.${part} is not a map of quantities`);
      continue;
    }
    values[part] = {};
    for (const [name, raw] of Object.entries(map)) {
      if (!INIT_RESOURCES.includes(name)) problems.push(`agent.resources.${part}.${name}: the agent's init container takes ${INIT_RESOURCES.join(', ')} only`);
      const q = parseQuantity(raw);
      if (q === undefined) problems.push(`agent.resources.${part}.${name}: ${JSON.stringify(raw)} is not a quantity (e.g. 100m, 64Mi)`);
      else values[part]![name] = q;
    }
  }
  for (const [name, request] of Object.entries(values['requests'] ?? {})) {
    const limit = values['limits']?.[name];
    if (limit !== undefined && request > limit) problems.push(`agent.resources: the ${name} request is above its limit`);
  }
  return problems;
}

function securityContextProblems(sc: unknown): string[] {
  if (sc === undefined) return [];
  if (!isObject(sc)) return ['agent.securityContext is not an object'];
  const problems: string[] = [];
  for (const key of ['runAsUser', 'runAsGroup']) {
    const v = sc[key];
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < 0)) problems.push(`agent.securityContext.${key}: ${JSON.stringify(v)} is not a non-negative integer`);
  }
  for (const key of ['runAsNonRoot', 'readOnlyRootFilesystem', 'allowPrivilegeEscalation', 'privileged']) {
    const v = sc[key];
    if (v !== undefined && typeof v !== 'boolean') problems.push(`agent.securityContext.${key}: ${JSON.stringify(v)} is not true or false`);
  }
  if (sc['privileged'] === true && sc['allowPrivilegeEscalation'] === false) problems.push('agent.securityContext: allowPrivilegeEscalation cannot be false for a privileged container');
  const caps = sc['capabilities'];
  if (caps !== undefined) {
    if (!isObject(caps)) problems.push('agent.securityContext.capabilities is not an object');
    else for (const key of ['add', 'drop']) {
      const list = caps[key];
      if (list !== undefined && (!Array.isArray(list) || !list.every((c) => typeof c === 'string'))) problems.push(`agent.securityContext.capabilities.${key} is not a list of names`);
    }
  }
  for (const key of ['seccompProfile', 'appArmorProfile']) {
    const profile = sc[key];
    if (profile === undefined) continue;
    if (!isObject(profile) || !PROFILE_TYPES.includes(profile['type'] as string)) {
      problems.push(`agent.securityContext.${key}.type must be one of ${PROFILE_TYPES.join(', ')}`);
    } else if ((profile['type'] === 'Localhost') !== (typeof profile['localhostProfile'] === 'string' && profile['localhostProfile'] !== '')) {
      problems.push(`agent.securityContext.${key}.localhostProfile is set exactly when the type is Localhost`);
    }
  }
  return problems;
}

function envProblems(env: readonly EnvVar[] | undefined): string[] {
  const problems: string[] = [];
  for (const [i, e] of (env ?? []).entries()) {
    const at = `env[${i}]${typeof e?.name === 'string' ? ` (${e.name})` : ''}`;
    if (!isObject(e) || typeof e.name !== 'string' || !ENV_NAME.test(e.name)) {
      problems.push(`${at}: the name must match ${ENV_NAME.source}`);
      continue;
    }
    if (e.value !== undefined && typeof e.value !== 'string') problems.push(`${at}: value is not a string`);
    if (e.value !== undefined && e.valueFrom !== undefined) problems.push(`${at}: takes value or valueFrom, not both`);
    if (e.valueFrom === undefined) continue;
    const sources = isObject(e.valueFrom) ? Object.keys(e.valueFrom).filter((k) => k in ENV_SOURCES) : [];
    if (sources.length !== 1) {
      problems.push(`${at}: valueFrom takes exactly one of ${Object.keys(ENV_SOURCES).join(', ')}`);
      continue;
    }
    const source = sources[0]!;
    const body = (e.valueFrom as Record<string, unknown>)[source];
    for (const required of ENV_SOURCES[source]!) {
      if (!isObject(body) || typeof body[required] !== 'string' || body[required] === '') problems.push(`${at}: valueFrom.${source}.${required} is required`);
    }
    if (!isObject(body)) continue;
    if (source === 'secretKeyRef' || source === 'configMapKeyRef') problems.push(...secretRefProblems(`${at}: valueFrom.${source}`, body));
    if (source === 'fieldRef' && typeof body['fieldPath'] === 'string' && !FIELD_PATH.test(body['fieldPath'])) problems.push(`${at}: valueFrom.fieldRef.fieldPath ${JSON.stringify(body['fieldPath'])} is not a field the downward API gives env`);
    if (source === 'resourceFieldRef' && typeof body['resource'] === 'string' && !ENV_RESOURCES.includes(body['resource'])) problems.push(`${at}: valueFrom.resourceFieldRef.resource must be one of ${ENV_RESOURCES.join(', ')}`);
  }
  return problems;
}

/** A reference to a key of a Secret (or ConfigMap), as a pod's env may hold it. */
function secretRefProblems(at: string, ref: Record<string, unknown>): string[] {
  const problems: string[] = [];
  if (ref['name'] !== undefined && (typeof ref['name'] !== 'string' || !DNS_SUBDOMAIN.test(ref['name']))) problems.push(`${at}.name ${JSON.stringify(ref['name'])} is not a valid object name`);
  if (typeof ref['key'] === 'string' && !SECRET_KEY.test(ref['key'])) problems.push(`${at}.key ${JSON.stringify(ref['key'])} is not a valid key`);
  return problems;
}

/** Everything in the SpanProfiling that would make the API server reject an injected pod; empty when none. */
export function podSpecProblems(sp: SpanProfiling): string[] {
  const agent = (sp.spec.agent ?? {}) as NonNullable<SpanProfiling['spec']['agent']>;
  const problems: string[] = [];
  if (agent.image !== undefined && agent.image !== '' && (typeof agent.image !== 'string' || /\s/.test(agent.image))) problems.push(`agent.image ${JSON.stringify(agent.image)} is not an image reference`);
  if (agent.imagePullPolicy !== undefined && !PULL_POLICIES.includes(agent.imagePullPolicy)) problems.push(`agent.imagePullPolicy must be one of ${PULL_POLICIES.join(', ')}`);
  if (agent.volumeSizeLimit !== undefined && parseQuantity(agent.volumeSizeLimit) === undefined) problems.push(`agent.volumeSizeLimit ${JSON.stringify(agent.volumeSizeLimit)} is not a quantity`);
  problems.push(...resourcesProblems(agent.resources), ...securityContextProblems(agent.securityContext), ...envProblems(sp.spec.env));
  // The credentials become secretKeyRefs in the pod.
  const p = sp.spec.pyroscope;
  if (p.authTokenSecretRef !== undefined) problems.push(...secretRefProblems('pyroscope.authTokenSecretRef', p.authTokenSecretRef as unknown as Record<string, unknown>));
  if (p.basicAuth !== undefined) problems.push(...secretRefProblems('pyroscope.basicAuth.passwordSecretRef', p.basicAuth.passwordSecretRef as unknown as Record<string, unknown>));
  return problems;
}
