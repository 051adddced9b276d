/**
 * Which environment an injected container gets, and which value wins:
 * what the user set on the container > the SpanProfiling's `env` > what the
 * operator generates. OTEL_RESOURCE_ATTRIBUTES is merged key by key (same
 * order of precedence) and placed last, after the downward-API variables its
 * $(VAR) references need.
 *
 * Credentials are referenced with secretKeyRef, never copied; the reference
 * is optional so that a missing Secret never stops a pod from starting.
 */
import type { V1EnvVar } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import type { SpanProfiling } from '../api';

export const RESOURCE_ATTRIBUTES = 'OTEL_RESOURCE_ATTRIBUTES';
const POD_NAME = 'OTEL_RESOURCE_ATTRIBUTES_POD_NAME';
const POD_UID = 'OTEL_RESOURCE_ATTRIBUTES_POD_UID';
const NODE_NAME = 'OTEL_RESOURCE_ATTRIBUTES_NODE_NAME';

export interface EnvContext {
  serviceName: string;
  podNamespace: string;
  containerName: string;
  /** Workload attributes known at admission (e.g. k8s.deployment.name). */
  workload: Record<string, string>;
  /** service.version: the pod's app.kubernetes.io/version label, else the container image's tag. */
  serviceVersion?: string;
}

/** The SpanProfiling turned into agent environment variables, in a stable order. */
export function generatedEnv(sp: SpanProfiling, ctx: EnvContext): V1EnvVar[] {
  const s = sp.spec;
  const env: V1EnvVar[] = [];
  const add = (name: string, value: string | number | boolean | undefined): void => {
    if (value !== undefined) env.push({ name, value: String(value) });
  };
  const tracing = s.tracing ?? {};
  const profiling = s.profiling ?? {};

  add('OTEL_SERVICE_NAME', ctx.serviceName);
  if (tracing.enabled === false) add('OTEL_SDK_DISABLED', true);
  else {
    if (tracing.mode !== undefined && tracing.mode !== 'auto') add('SPANPROFILING_TRACING', tracing.mode);
    add('OTEL_EXPORTER_OTLP_ENDPOINT', tracing.otlp?.endpoint);
    add('OTEL_EXPORTER_OTLP_PROTOCOL', tracing.otlp?.protocol ?? 'http/protobuf');
    add('OTEL_TRACES_SAMPLER', tracing.sampler?.type);
    add('OTEL_TRACES_SAMPLER_ARG', tracing.sampler?.argument);
    if (tracing.propagators !== undefined && tracing.propagators.length > 0) add('OTEL_PROPAGATORS', tracing.propagators.join(','));
    if (tracing.instrumentations?.enabled?.length) add('OTEL_NODE_ENABLED_INSTRUMENTATIONS', tracing.instrumentations.enabled.join(','));
    if (tracing.instrumentations?.disabled?.length) add('OTEL_NODE_DISABLED_INSTRUMENTATIONS', tracing.instrumentations.disabled.join(','));
  }

  const p = s.pyroscope;
  add('PYROSCOPE_SERVER_ADDRESS', p.address);
  add('PYROSCOPE_TENANT_ID', p.tenantID);
  if (p.authTokenSecretRef !== undefined) env.push(secretEnv('PYROSCOPE_AUTH_TOKEN', p.authTokenSecretRef));
  if (p.basicAuth !== undefined) {
    add('PYROSCOPE_BASIC_AUTH_USER', p.basicAuth.username);
    env.push(secretEnv('PYROSCOPE_BASIC_AUTH_PASSWORD', p.basicAuth.passwordSecretRef));
  }
  if (p.labels !== undefined && Object.keys(p.labels).length > 0) add('PYROSCOPE_LABELS', Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(','));
  add('PYROSCOPE_UPLOAD_INTERVAL', p.uploadInterval);
  add('OTEL_PYROSCOPE_START_PROFILING', profiling.enabled === false ? false : undefined);
  if (profiling.sampleRateHz !== undefined) add('PYROSCOPE_WALL_SAMPLING_INTERVAL_MICROS', Math.round(1e6 / profiling.sampleRateHz));
  if (profiling.cpuTime === false) add('PYROSCOPE_WALL_COLLECT_CPU_TIME', false);
  if (profiling.heap?.enabled === true) add('PYROSCOPE_HEAP_SAMPLING_INTERVAL_BYTES', profiling.heap.samplingIntervalBytes ?? 524288);
  add('OTEL_PYROSCOPE_ROOT_SPAN_ONLY', profiling.spanLabels?.rootSpanOnly);
  add('OTEL_PYROSCOPE_ADD_SPAN_NAME', profiling.spanLabels?.addSpanName);
  add('OTEL_PYROSCOPE_ADD_TRACE_ID', profiling.spanLabels?.addTraceID);

  env.push({ name: POD_NAME, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
  env.push({ name: POD_UID, valueFrom: { fieldRef: { fieldPath: 'metadata.uid' } } });
  env.push({ name: NODE_NAME, valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
  return env;
}

/** Resource attributes the operator contributes (lowest precedence). */
export function generatedResourceAttributes(ctx: EnvContext): Record<string, string> {
  return {
    'k8s.namespace.name': ctx.podNamespace,
    'k8s.pod.name': `$(${POD_NAME})`,
    'k8s.pod.uid': `$(${POD_UID})`,
    'k8s.node.name': `$(${NODE_NAME})`,
    'k8s.container.name': ctx.containerName,
    ...ctx.workload,
    ...(ctx.serviceVersion === undefined ? {} : { 'service.version': ctx.serviceVersion }),
  };
}

/** The tag of an image reference (not a registry port, not a digest), as the OpenTelemetry Operator reads service.version. */
export function imageTag(image: string | undefined): string | undefined {
  if (image === undefined) return undefined;
  const name = image.split('@')[0]!;
  const colon = name.lastIndexOf(':');
  if (colon <= name.lastIndexOf('/')) return undefined;
  const tag = name.slice(colon + 1);
  return tag === '' ? undefined : tag;
}

/** The Secrets a SpanProfiling's pods read their Pyroscope credentials from (in the pod's namespace). */
export function credentialRefs(sp: SpanProfiling): { what: string; name: string; key: string }[] {
  return [
    sp.spec.pyroscope.authTokenSecretRef && { what: 'pyroscope.authTokenSecretRef', ...sp.spec.pyroscope.authTokenSecretRef },
    sp.spec.pyroscope.basicAuth && { what: 'pyroscope.basicAuth.passwordSecretRef', ...sp.spec.pyroscope.basicAuth.passwordSecretRef },
  ].filter((r): r is { what: string; name: string; key: string } => Boolean(r));
}

/** Secret names a SpanProfiling references. */
export function referencedSecrets(sp: SpanProfiling): string[] {
  return [...new Set(credentialRefs(sp).map((r) => r.name))];
}

function secretEnv(name: string, ref: { name: string; key: string }): V1EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: ref.name, key: ref.key, optional: true } } };
}

/** `k=v,k2=v2` -> map; values may contain '=' (only the first one splits). */
export function parseResourceAttributes(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of value.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const key = pair.slice(0, eq).trim();
    if (key !== '') out[key] = pair.slice(eq + 1).trim();
  }
  return out;
}

export function formatResourceAttributes(attributes: Record<string, string>): string {
  return Object.entries(attributes)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export interface MergeResult {
  env: V1EnvVar[];
  warnings: string[];
}

/**
 * The container's env after injection. The user's variables keep their
 * values and positions (except OTEL_RESOURCE_ATTRIBUTES, re-made last);
 * the SpanProfiling's and then the generated ones are appended where absent.
 */
export function mergeEnv(user: readonly V1EnvVar[], fromSpanProfiling: readonly V1EnvVar[], generated: readonly V1EnvVar[], resource: { generated: Record<string, string>; fromSpanProfiling: Record<string, string> }): MergeResult {
  const warnings: string[] = [];
  const taken = new Set(user.map((e) => e.name));
  const out: V1EnvVar[] = user.filter((e) => e.name !== RESOURCE_ATTRIBUTES || e.valueFrom !== undefined).map((e) => ({ ...e }));
  for (const e of [...fromSpanProfiling, ...generated]) {
    if (taken.has(e.name) || e.name === RESOURCE_ATTRIBUTES) continue;
    taken.add(e.name);
    out.push({ ...e });
  }

  const userAttrs = user.find((e) => e.name === RESOURCE_ATTRIBUTES);
  const spAttrsVar = fromSpanProfiling.find((e) => e.name === RESOURCE_ATTRIBUTES);
  if (userAttrs?.valueFrom !== undefined) {
    warnings.push(`${RESOURCE_ATTRIBUTES} comes from valueFrom, so the Kubernetes resource attributes were not added to it`);
    return { env: out, warnings };
  }
  const merged = {
    ...resource.generated,
    ...resource.fromSpanProfiling,
    ...(spAttrsVar?.value !== undefined ? parseResourceAttributes(spAttrsVar.value) : {}),
    ...(userAttrs?.value !== undefined ? parseResourceAttributes(userAttrs.value) : {}),
  };
  out.push({ name: RESOURCE_ATTRIBUTES, value: formatResourceAttributes(merged) });
  return { env: out, warnings };
}
