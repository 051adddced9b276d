/**
 * How one Node.js container is changed: the agent's volume mounted read-only,
 * `--require <agent>` in NODE_OPTIONS, and the merged environment.
 */
import type { V1Container, V1EnvVar } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { mergeEnv, parseResourceAttributes, RESOURCE_ATTRIBUTES } from './env';

export const AGENT_VOLUME = 'spanprofiling-agent';
export const AGENT_MOUNT_PATH = '/spanprofiling';
export const AGENT_PRELOAD = `--require ${AGENT_MOUNT_PATH}/register.js`;
const NODE_OPTIONS = 'NODE_OPTIONS';

export type ContainerResult =
  | { injected: true; container: V1Container; warnings: string[] }
  | { injected: false; reason: string };

export interface ContainerEnvPlan {
  fromSpanProfiling: V1EnvVar[];
  generated: V1EnvVar[];
  resource: { generated: Record<string, string>; fromSpanProfiling: Record<string, string> };
}

/** NODE_OPTIONS with the agent preload appended, or why it cannot be. */
export function withPreload(env: readonly V1EnvVar[]): { env: V1EnvVar[] } | { reason: string } {
  const current = env.find((e) => e.name === NODE_OPTIONS);
  if (current?.valueFrom !== undefined) {
    return { reason: `${NODE_OPTIONS} comes from valueFrom, so the agent cannot be added to it; set it as a plain value to allow injection` };
  }
  if (current === undefined) return { env: [...env, { name: NODE_OPTIONS, value: AGENT_PRELOAD }] };
  const value = current.value ?? '';
  if (value.includes(`${AGENT_MOUNT_PATH}/register.js`)) return { env: [...env] };
  return { env: env.map((e) => (e === current ? { ...e, value: value.trim() === '' ? AGENT_PRELOAD : `${value.trimEnd()} ${AGENT_PRELOAD}` } : e)) };
}

export function injectContainer(container: V1Container, plan: ContainerEnvPlan): ContainerResult {
  const userEnv = container.env ?? [];
  const preload = withPreload(userEnv);
  if ('reason' in preload) return { injected: false, reason: `container ${container.name}: ${preload.reason}` };

  // A service name the user put in OTEL_RESOURCE_ATTRIBUTES wins over the one derived from labels.
  const userAttrs = userEnv.find((e) => e.name === RESOURCE_ATTRIBUTES)?.value;
  const generated = userAttrs !== undefined && 'service.name' in parseResourceAttributes(userAttrs) ? plan.generated.filter((e) => e.name !== 'OTEL_SERVICE_NAME') : plan.generated;

  const merged = mergeEnv(preload.env, plan.fromSpanProfiling, generated, plan.resource);
  const warnings = merged.warnings.map((w) => `container ${container.name}: ${w}`);
  if ((container.envFrom?.length ?? 0) > 0) {
    // env beats envFrom in Kubernetes, and the webhook cannot read the ConfigMaps and Secrets behind envFrom.
    warnings.push(
      `container ${container.name} uses envFrom: NODE_OPTIONS, OTEL_* and PYROSCOPE_* set there are replaced by the injected values; set them in env to keep them`,
    );
  }
  const mounts = container.volumeMounts ?? [];
  const clash = mounts.find((m) => m.mountPath.replace(/\/+$/, '') === AGENT_MOUNT_PATH && m.name !== AGENT_VOLUME);
  if (clash !== undefined) return { injected: false, reason: `container ${container.name} already mounts volume ${clash.name} at ${AGENT_MOUNT_PATH}` };
  const volumeMounts = mounts.some((m) => m.name === AGENT_VOLUME) ? mounts : [...mounts, { name: AGENT_VOLUME, mountPath: AGENT_MOUNT_PATH, readOnly: true }];
  return { injected: true, container: { ...container, env: merged.env, volumeMounts }, warnings };
}
