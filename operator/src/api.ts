/**
 * The names every part of the operator, the chart and the tests agree on
 * (DESIGN.md section 3), and the SpanProfiling API types. The CRD in
 * crds/spanprofiling.io_spanprofilings.yaml is the source of truth for the
 * schema; these types describe it for the code.
 */
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
/** Label on injected pods, so the controller can count them. */
export const LABEL_INJECTED = 'spanprofiling.io/injected';
/**
 * Label the controller puts on namespaces whose pods the webhook must see
 * (namespaceSelector cannot read annotations).
 */
export const LABEL_NAMESPACE_INJECTION = 'spanprofiling.io/injection';
export const NAMESPACE_INJECTION_ENABLED = 'enabled';

export type InjectionStatus = 'injected' | 'skipped' | 'error';

export interface SecretKeySelector {
  name: string;
  key: string;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: Record<string, unknown>;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

export interface SpanProfilingSpec {
  pyroscope: {
    address: string;
    tenantID?: string;
    authTokenSecretRef?: SecretKeySelector;
    basicAuth?: { username: string; passwordSecretRef: SecretKeySelector };
    labels?: Record<string, string>;
    uploadInterval?: string;
  };
  profiling?: {
    enabled?: boolean;
    sampleRateHz?: number;
    cpuTime?: boolean;
    heap?: { enabled?: boolean; samplingIntervalBytes?: number };
    spanLabels?: { rootSpanOnly?: boolean; addSpanName?: boolean; addTraceID?: boolean };
  };
  tracing?: {
    enabled?: boolean;
    mode?: 'auto' | 'agent' | 'app';
    otlp?: { endpoint: string; protocol?: 'grpc' | 'http/protobuf' | 'http/json' };
    sampler?: { type?: string; argument?: string };
    propagators?: string[];
    instrumentations?: { enabled?: string[]; disabled?: string[] };
  };
  env?: EnvVar[];
  resourceAttributes?: Record<string, string>;
  selector?: LabelSelector;
  containerNames?: string[];
  agent?: {
    image?: string;
    imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
    volumeSizeLimit?: string;
    resources?: Record<string, unknown>;
    securityContext?: Record<string, unknown>;
  };
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface SpanProfilingStatus {
  observedGeneration?: number;
  injectedPods?: number;
  conditions?: Condition[];
}

export interface SpanProfiling {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: { name: string; namespace: string; generation?: number; uid?: string; resourceVersion?: string; annotations?: Record<string, string> };
  spec: SpanProfilingSpec;
  status?: SpanProfilingStatus;
}

export const ref = (sp: { metadata: { namespace?: string; name?: string } }): string => `${sp.metadata.namespace ?? ''}/${sp.metadata.name ?? ''}`;
