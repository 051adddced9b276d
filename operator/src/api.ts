/**
 * The names every part of the operator, the chart and the tests agree on
 * (DESIGN.md section 3), and the SpanProfiling API types. The CRD in
 * crds/spanprofiling.io_spanprofilings.yaml is the source of truth for the
 * schema; the spec and status types are generated from it.
 */
import type { SpanProfilingSpec, SpanProfilingStatus } from './generated/spanprofiling';

export const GROUP = 'spanprofiling.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'SpanProfiling';
export const PLURAL = 'spanprofilings';

export const ANNOTATION_INJECT = 'spanprofiling.io/inject';
export const ANNOTATION_CONTAINER_NAMES = 'spanprofiling.io/container-names';
export const ANNOTATION_STATUS = 'spanprofiling.io/status';
export const ANNOTATION_REASON = 'spanprofiling.io/reason';
/** On injected pods: which SpanProfiling, as namespace/name. */
export const ANNOTATION_SPANPROFILING = 'spanprofiling.io/spanprofiling';
/** On injected pods: the SpanProfiling's metadata.generation they were given. */
export const ANNOTATION_GENERATION = 'spanprofiling.io/generation';
/** On injected pods: the agent image their init container copied the agent from. */
export const ANNOTATION_AGENT_IMAGE = 'spanprofiling.io/agent-image';
/**
 * On injected pods: a digest of what the SpanProfiling gave them (its spec
 * without rollout and selector), so that only changes that affect pods make
 * them out of date.
 */
export const ANNOTATION_CONFIG = 'spanprofiling.io/config';
/** On a SpanProfiling: "now" asks for one rollout pass (spec.rollout); the operator removes it when done. */
export const ANNOTATION_ROLLOUT = 'spanprofiling.io/rollout';
/**
 * On a pod left without the agent because a policy of its namespace would refuse it: which
 * (`LimitRange/<name>`, `PodSecurity/<level>`, `ResourceQuota/<name>`,
 * `ValidatingAdmissionPolicy/<name>`, `ValidatingWebhook/<name>`, or `admission`). Counted in the
 * SpanProfiling's status (refusedPods, the PodsRefused condition).
 */
export const ANNOTATION_REFUSED_BY = 'spanprofiling.io/refused-by';
/** Label on injected pods, so the controller can count them. */
export const LABEL_INJECTED = 'spanprofiling.io/injected';
/**
 * Label the controller puts on namespaces whose pods the webhook must see
 * (namespaceSelector cannot read annotations).
 */
export const LABEL_NAMESPACE_INJECTION = 'spanprofiling.io/injection';
export const NAMESPACE_INJECTION_ENABLED = 'enabled';

export type InjectionStatus = 'injected' | 'skipped' | 'error';

// The spec and status come from the CRD (generated, see operator/scripts/crd-types.ts); the names
// below are the parts the code refers to.
export type { SpanProfilingSpec, SpanProfilingStatus } from './generated/spanprofiling';
export type SecretKeySelector = NonNullable<SpanProfilingSpec['pyroscope']['authTokenSecretRef']>;
export type EnvVar = NonNullable<SpanProfilingSpec['env']>[number];
export type LabelSelector = NonNullable<SpanProfilingSpec['selector']>;
export type Condition = NonNullable<SpanProfilingStatus['conditions']>[number];

export interface SpanProfiling {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: { name: string; namespace: string; generation?: number; uid?: string; resourceVersion?: string; annotations?: Record<string, string> };
  spec: SpanProfilingSpec;
  status?: SpanProfilingStatus;
}

export const ref = (sp: { metadata: { namespace?: string; name?: string } }): string => `${sp.metadata.namespace ?? ''}/${sp.metadata.name ?? ''}`;
