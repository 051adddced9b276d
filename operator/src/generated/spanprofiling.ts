// Generated from crds/spanprofiling.io_spanprofilings.yaml (v1alpha1) by operator/scripts/crd-types.ts.
// Do not edit: change the CRD, then run `npm run generate:api`.

/** Where profiles and traces go, and how the agent samples. */
export interface SpanProfilingSpec {
  /** The Grafana Pyroscope server that receives the profiles. */
  pyroscope: {
    /** Base URL of Pyroscope, e.g. http://pyroscope.observability:4040. */
    address: string;
    /** Sent as X-Scope-OrgID, for a multi-tenant Pyroscope. */
    tenantID?: string;
    /** A bearer token, from a Secret key. Pods reference it (never a copy), and Kubernetes reads it in each pod's own namespace: the Secret must exist in every namespace the SpanProfiling's pods run in. */
    authTokenSecretRef?: {
      /** Name of the Secret, in each namespace the pods run in. */
      name: string;
      /** The key in the Secret. */
      key: string;
    };
    /** Basic auth; the password comes from a Secret key, read like authTokenSecretRef in each pod's own namespace. */
    basicAuth?: {
      username: string;
      /** The Secret key holding the password. */
      passwordSecretRef: {
        /** Name of the Secret, in each namespace the pods run in. */
        name: string;
        /** The key in the Secret. */
        key: string;
      };
    };
    /** Static labels added to every profile series (for example team or region). */
    labels?: Record<string, string>;
    /** How often each pod uploads a profile, e.g. 15s (between 1s and 5m). */
    uploadInterval?: string;
  };
  /** What the profiler samples. */
  profiling?: {
    /** False turns profiling off; pods are then only traced. */
    enabled?: boolean;
    /** CPU samples per second. 100 is cheap enough for production. */
    sampleRateHz?: number;
    /** Record CPU time with each sample. Span profiles are CPU profiles, so this should stay on. */
    cpuTime?: boolean;
    /** Heap (allocation) profiling, off by default. */
    heap?: {
      enabled?: boolean;
      /** Average bytes allocated between two heap samples. */
      samplingIntervalBytes?: number;
    };
    /** How samples are labelled with spans. */
    spanLabels?: {
      /** Label with the local-root span (the request). False labels with the innermost span. */
      rootSpanOnly?: boolean;
      /** Add the span_name label. It becomes a series label in Pyroscope, with a cardinality cost. */
      addSpanName?: boolean;
      /** Add the trace_id label. Pyroscope before 2.1 makes it a series label; leave off unless needed. */
      addTraceID?: boolean;
    };
  };
  /** Where traces go, and how they are sampled and propagated. */
  tracing?: {
    /** False turns tracing off. Span profiles need traces, so profiles are then unlabelled. */
    enabled?: boolean;
    /** Who owns OpenTelemetry tracing in the process (SPANPROFILING_TRACING). auto: the app's own SDK when the app registers a tracer provider (before or after the agent loads; the agent then adds only its span processor and follows the app's context manager), else the agent's. agent: always the agent's. app: never the agent's; profiles are linked to the app's spans once it registers its provider, and no OTLP endpoint is needed. */
    mode?: "auto" | "agent" | "app";
    /** The OTLP endpoint of a collector or trace backend. */
    otlp?: {
      /** e.g. http://otel-collector.observability:4318 (http) or :4317 (grpc). */
      endpoint: string;
      /** The OTLP transport. */
      protocol?: "grpc" | "http/protobuf" | "http/json";
    };
    /** Which traces are kept (OTEL_TRACES_SAMPLER). Only sampled spans are linked to profiles. */
    sampler?: {
      type?: "always_on" | "always_off" | "traceidratio" | "parentbased_always_on" | "parentbased_always_off" | "parentbased_traceidratio";
      /** The ratio for the traceidratio samplers, between 0 and 1, e.g. "0.25". */
      argument?: string;
    };
    /** Context propagation formats (OTEL_PROPAGATORS). */
    propagators?: ("tracecontext" | "baggage" | "b3" | "b3multi" | "jaeger" | "none")[];
    /** Which instrumentations run, by short name (http, express, pg, ...). */
    instrumentations?: {
      /** Only these (OTEL_NODE_ENABLED_INSTRUMENTATIONS). Empty means all but fs. */
      enabled?: string[];
      /** All but these (OTEL_NODE_DISABLED_INSTRUMENTATIONS). */
      disabled?: string[];
    };
  };
  /** Extra environment for the injected containers. A variable the container already sets wins over this; this wins over the values the operator generates. */
  env?: ({
    name: string;
    value?: string;
    /** As in a container's env; exactly one of secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef. */
    valueFrom?: {
      secretKeyRef?: {
        name?: string;
        key: string;
        optional?: boolean;
      };
      configMapKeyRef?: {
        name?: string;
        key: string;
        optional?: boolean;
      };
      fieldRef?: {
        apiVersion?: "v1";
        /** A pod field the downward API gives env (metadata.name, metadata.labels['x'], status.podIP, ...). */
        fieldPath: string;
      };
      resourceFieldRef?: {
        containerName?: string;
        resource: "limits.cpu" | "limits.memory" | "limits.ephemeral-storage" | "requests.cpu" | "requests.memory" | "requests.ephemeral-storage";
        divisor?: number | string;
      };
    };
  })[];
  /** Extra OpenTelemetry resource attributes (OTEL_RESOURCE_ATTRIBUTES), e.g. deployment.environment. */
  resourceAttributes?: Record<string, string>;
  /** Only pods matching this label selector are injected. Empty selects every pod that opts in. */
  selector?: {
    matchLabels?: Record<string, string>;
    matchExpressions?: ({
      key: string;
      operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
      values?: string[];
    })[];
  };
  /** Containers to inject, when the pod does not name them with the spanprofiling.io/container-names annotation. Empty means the first container. */
  containerNames?: string[];
  /** The init container that copies the agent into the pod. */
  agent?: {
    /** The agent image. Empty uses the image the operator was installed with. */
    image?: string;
    imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
    /** Size limit of the emptyDir the agent is copied into (a quantity, e.g. 64Mi). */
    volumeSizeLimit?: string;
    /** Resources of the init container (small defaults are set when empty). */
    resources?: {
      /** Limits, by resource name (cpu, memory, ephemeral-storage), as quantities (100m, 64Mi). */
      limits?: Record<string, number | string>;
      /** Requests, by resource name (cpu, memory, ephemeral-storage), as quantities (100m, 64Mi). */
      requests?: Record<string, number | string>;
    };
    /** Security context of the init container. Each field set here replaces that field of the default, which meets the restricted Pod Security level (runAsNonRoot, runAsUser 65532, no privilege escalation, all capabilities dropped, read-only root filesystem, RuntimeDefault seccomp); the fields not set keep their defaults. */
    securityContext?: {
      runAsUser?: number;
      runAsGroup?: number;
      runAsNonRoot?: boolean;
      readOnlyRootFilesystem?: boolean;
      allowPrivilegeEscalation?: boolean;
      privileged?: boolean;
      procMount?: "Default" | "Unmasked";
      capabilities?: {
        add?: string[];
        drop?: string[];
      };
      seccompProfile?: {
        type: "RuntimeDefault" | "Localhost" | "Unconfined";
        localhostProfile?: string;
      };
      appArmorProfile?: {
        type: "RuntimeDefault" | "Localhost" | "Unconfined";
        localhostProfile?: string;
      };
      seLinuxOptions?: {
        user?: string;
        role?: string;
        type?: string;
        level?: string;
      };
    };
  };
  /** What the operator does about running pods that are out of date (injected with an older configuration of this SpanProfiling or another agent image) or missed (started without the agent while the webhook was down, or before the namespace opted in). Changing it never makes pods out of date. */
  rollout?: {
    /** Manual (the default): count them in the status, and restart their workloads only when the SpanProfiling is annotated spanprofiling.io/rollout=now (one pass). Auto: restart them as they appear. A restart is what kubectl rollout restart does, one Deployment, StatefulSet or DaemonSet at a time; bare pods, Jobs and CronJobs are never restarted. Needs the chart's rollout.enabled. */
    policy?: "Manual" | "Auto";
    /** Seconds to wait after one restarted workload is rolled out before restarting the next. */
    pauseSeconds?: number;
    /** At most this many workload restarts in any hour. */
    maxRestartsPerHour?: number;
  };
}

/** What the operator observed. */
export interface SpanProfilingStatus {
  /** The generation of the spec this status describes. */
  observedGeneration?: number;
  /** Running pods that the webhook injected with this SpanProfiling. */
  injectedPods?: number;
  /** Injected pods that run an older configuration of this SpanProfiling (a spec change that affects pods) or another agent image than a pod created now would get. */
  outdatedPods?: number;
  /** Running pods that opt in to this SpanProfiling and match its selector but run without the agent: the webhook never saw them (it was down, or the namespace opted in after they started), or this SpanProfiling could not be injected when they were created. */
  missedPods?: number;
  /** Running pods that opt in to this SpanProfiling but run without the agent because a policy of their namespace would refuse them with it (a LimitRange, ResourceQuota or Pod Security level no agent container fits, or a ValidatingAdmissionPolicy, Kyverno, Gatekeeper or other validating webhook the webhook's dry run found). The PodsRefused condition names the policies; each pod's spanprofiling.io/refused-by and spanprofiling.io/reason annotations say which and what to change. */
  refusedPods?: number;
  /** The same counts per namespace, when the pods of this SpanProfiling run in several. */
  namespaces?: {
    namespace: string;
    injectedPods?: number;
    outdatedPods?: number;
    missedPods?: number;
    refusedPods?: number;
  }[];
  /** The last restarts the operator made (spec.rollout). */
  rollout?: {
    /** The last workload restarted, as Kind namespace/name. */
    lastRestart?: string;
    lastRestartTime?: string;
    restartsLastHour?: number;
    /** What the rollout is doing or waiting for. */
    message?: string;
  };
  conditions?: ({
    /** Ready, or an abnormal-true condition such as CredentialsMissing. */
    type: string;
    status: "True" | "False" | "Unknown";
    observedGeneration?: number;
    lastTransitionTime: string;
    reason: string;
    message: string;
  })[];
}
