/**
 * Table tests of the pod mutation, and a property test over generated pods.
 */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import type { V1Container, V1EnvVar, V1Pod } from '@kubernetes/client-node' with { 'resolution-mode': 'import' };
import { ANNOTATION_REASON, ANNOTATION_STATUS, type SpanProfiling } from '../src/api';
import { mutatePod, INIT_CONTAINER, type MutationInput } from '../src/inject/pod';
import { AGENT_PRELOAD, AGENT_VOLUME } from '../src/inject/nodejs';
import { effectiveInject } from '../src/inject/select';
import { parseInject } from '../src/inject/annotations';
import { serviceName } from '../src/inject/service-name';

function sp(name: string, namespace = 'shop', spec: Partial<SpanProfiling['spec']> = {}): SpanProfiling {
  return {
    apiVersion: 'spanprofiling.io/v1alpha1',
    kind: 'SpanProfiling',
    metadata: { name, namespace },
    spec: { pyroscope: { address: 'http://pyroscope.obs:4040' }, tracing: { otlp: { endpoint: 'http://jaeger.obs:4318' } }, ...spec },
  };
}

function pod(opts: { annotations?: Record<string, string>; labels?: Record<string, string>; containers?: V1Container[] } = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'web-7d4b9c-', labels: { 'pod-template-hash': '7d4b9c', ...opts.labels }, annotations: opts.annotations, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4b9c', uid: 'u', controller: true }] },
    spec: { containers: opts.containers ?? [{ name: 'app', image: 'node:24' }] },
  };
}

function input(p: V1Pod, o: { ns?: Record<string, string>; sps?: SpanProfiling[] } = {}): MutationInput {
  return { pod: p, namespace: 'shop', namespaceAnnotations: o.ns, spanProfilings: o.sps ?? [sp('default')], defaults: { agentImage: 'span-profiling-agent:test' } };
}

const env = (c: V1Container | undefined, name: string): V1EnvVar | undefined => c?.env?.find((e) => e.name === name);
const INJECT = 'spanprofiling.io/inject';

describe('inject annotation precedence', () => {
  const cases: [string | undefined, string | undefined, string][] = [
    // pod, namespace -> effective
    [undefined, undefined, 'unset'],
    [undefined, 'true', 'true'],
    [undefined, 'false', 'false'],
    [undefined, 'cpu', 'cpu'],
    ['false', 'true', 'false'],
    ['false', 'cpu', 'false'],
    ['true', undefined, 'true'],
    ['true', 'false', 'true'],
    ['true', 'cpu', 'cpu'],
    ['true', 'obs/cpu', 'obs/cpu'],
    ['cpu', 'true', 'cpu'],
    ['obs/cpu', 'other', 'obs/cpu'],
    ['TRUE', undefined, 'true'],
    ['  false ', 'true', 'false'],
  ];
  for (const [p, n, want] of cases) {
    it(`pod ${p ?? '-'} + namespace ${n ?? '-'} -> ${want}`, () => {
      const { value } = effectiveInject(parseInject(p === undefined ? {} : { [INJECT]: p }), parseInject(n === undefined ? {} : { [INJECT]: n }));
      const got = value.kind === 'name' ? (value.namespace ? `${value.namespace}/${value.name}` : value.name) : value.kind;
      assert.equal(got, want);
    });
  }
});

describe('pod mutation', () => {
  it("warns that a SpanProfiling of another namespace has its credentials read in the pod's namespace", () => {
    const secured = sp('secured', 'obs', { pyroscope: { address: 'https://p:4040', authTokenSecretRef: { name: 'pyroscope-token', key: 'token' } } });
    const there = mutatePod({ ...input(pod(), { ns: { [INJECT]: 'obs/secured' }, sps: [secured] }), namespace: 'billing' });
    assert.equal(there.status, 'injected');
    const warning = /credentials of SpanProfiling obs\/secured are read from Secret pyroscope-token in the pod's namespace billing, not obs/;
    assert.ok(there.warnings.some((w) => warning.test(w)), there.warnings.join('\n'));
    assert.match(there.pod.metadata!.annotations![ANNOTATION_REASON]!, warning);
    const token = env(there.pod.spec!.containers[0], 'PYROSCOPE_AUTH_TOKEN');
    assert.deepEqual(token?.valueFrom?.secretKeyRef, { name: 'pyroscope-token', key: 'token', optional: true }, 'optional: a missing Secret never stops the pod');
    const home = mutatePod({ ...input(pod(), { ns: { [INJECT]: 'true' }, sps: [secured] }), namespace: 'obs' });
    assert.deepEqual(home.warnings, []);
    const noCredentials = mutatePod({ ...input(pod(), { ns: { [INJECT]: 'shop/default' } }), namespace: 'billing' });
    assert.deepEqual(noCredentials.warnings, []);
  });

  it("lays the SpanProfiling's agent.securityContext over the secure default field by field (so Pod Security restricted still admits it)", () => {
    const initOf = (securityContext: Record<string, unknown>) =>
      mutatePod(input(pod(), { ns: { [INJECT]: 'true' }, sps: [sp('default', 'shop', { agent: { securityContext } as never })] })).pod.spec!.initContainers![0]!.securityContext;
    assert.deepEqual(initOf({ runAsUser: 1000 }), {
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 65532,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    assert.deepEqual(initOf({ capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } })?.capabilities, { drop: ['ALL'], add: ['NET_BIND_SERVICE'] }, 'a field set replaces that field');
    // Defaults that would contradict what is set are left out, so the pod stays valid and startable.
    const privileged = initOf({ privileged: true });
    assert.equal(privileged?.privileged, true);
    assert.equal(privileged?.allowPrivilegeEscalation, undefined, 'the API server rejects privileged with allowPrivilegeEscalation=false');
    const root = initOf({ runAsUser: 0 });
    assert.equal(root?.runAsUser, 0);
    assert.equal(root?.runAsNonRoot, undefined, 'the kubelet would refuse runAsNonRoot with user 0');
    assert.equal(initOf({ runAsUser: 0, runAsNonRoot: true })?.runAsNonRoot, true, 'what the user sets is kept, even so');
  });

  it("leaves a pod untouched, with the reason, where the agent's security context would break the namespace's Pod Security level", () => {
    const run = (level: string, securityContext: Record<string, unknown>) =>
      mutatePod({ ...input(pod(), { ns: { [INJECT]: 'true' }, sps: [sp('default', 'shop', { agent: { securityContext } as never })] }), podSecurityLevel: level });
    const privileged = run('restricted', { privileged: true });
    assert.equal(privileged.status, 'skipped');
    assert.equal(privileged.code, 'pod-security');
    assert.equal(privileged.pod.spec!.initContainers, undefined);
    assert.match(privileged.reason, /enforces the restricted Pod Security level, which the agent's init container would break \(privileged\)/);
    assert.equal(run('baseline', { capabilities: { add: ['NET_ADMIN'] } }).code, 'pod-security');
    assert.equal(run('restricted', { allowPrivilegeEscalation: true }).code, 'pod-security');
    assert.equal(run('restricted', { runAsUser: 0 }).code, 'pod-security', 'root breaks restricted');
    assert.equal(run('baseline', { runAsUser: 0 }).status, 'injected', 'baseline allows root');
    assert.equal(run('restricted', { runAsUser: 1000 }).status, 'injected');
    assert.equal(run('privileged', { privileged: true }).status, 'injected');
  });

  it('injects the first container of a pod in an opted-in namespace', () => {
    const r = mutatePod(input(pod(), { ns: { [INJECT]: 'true' } }));
    assert.equal(r.status, 'injected');
    assert.equal(r.pod.metadata?.annotations?.[ANNOTATION_STATUS], 'injected');
    assert.match(r.pod.metadata!.annotations![ANNOTATION_REASON]!, /injected app with SpanProfiling shop\/default/);
    const init = r.pod.spec!.initContainers![0]!;
    assert.equal(init.name, INIT_CONTAINER);
    assert.equal(init.image, 'span-profiling-agent:test');
    assert.deepEqual(init.securityContext?.capabilities, { drop: ['ALL'] });
    assert.equal(init.securityContext?.runAsNonRoot, true);
    assert.equal(init.securityContext?.allowPrivilegeEscalation, false);
    assert.deepEqual(r.pod.spec!.volumes, [{ name: AGENT_VOLUME, emptyDir: { sizeLimit: '64Mi' } }]);
    const app = r.pod.spec!.containers[0]!;
    assert.equal(env(app, 'NODE_OPTIONS')?.value, AGENT_PRELOAD);
    assert.deepEqual(app.volumeMounts, [{ name: AGENT_VOLUME, mountPath: '/spanprofiling', readOnly: true }]);
    assert.equal(env(app, 'OTEL_SERVICE_NAME')?.value, 'web');
    assert.equal(env(app, 'PYROSCOPE_SERVER_ADDRESS')?.value, 'http://pyroscope.obs:4040');
    assert.equal(env(app, 'OTEL_EXPORTER_OTLP_ENDPOINT')?.value, 'http://jaeger.obs:4318');
    assert.equal(env(app, 'OTEL_RESOURCE_ATTRIBUTES_POD_NAME')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name');
    const last = app.env![app.env!.length - 1]!;
    assert.equal(last.name, 'OTEL_RESOURCE_ATTRIBUTES', 'placed last so $(VAR) references expand');
    assert.equal(
      last.value,
      'k8s.namespace.name=shop,k8s.pod.name=$(OTEL_RESOURCE_ATTRIBUTES_POD_NAME),k8s.pod.uid=$(OTEL_RESOURCE_ATTRIBUTES_POD_UID),k8s.node.name=$(OTEL_RESOURCE_ATTRIBUTES_NODE_NAME),k8s.container.name=app,k8s.replicaset.name=web-7d4b9c,k8s.deployment.name=web,service.version=24',
    );
  });

  const skips: [string, MutationInput, RegExp][] = [
    ['not opted in', input(pod()), /neither the pod nor namespace shop has spanprofiling.io\/inject/],
    ['pod opted out of an opted-in namespace', input(pod({ annotations: { [INJECT]: 'false' } }), { ns: { [INJECT]: 'true' } }), /inject=false on the pod/],
    ['namespace opted out', input(pod(), { ns: { [INJECT]: 'false' } }), /inject=false on namespace shop/],
    ['selector does not match', input(pod(), { ns: { [INJECT]: 'true' }, sps: [sp('default', 'shop', { selector: { matchLabels: { tier: 'api' } } })] }), /do not match the selector of SpanProfiling shop\/default/],
  ];
  for (const [what, inp, reason] of skips) {
    it(`skips, with a reason, when ${what}`, () => {
      const r = mutatePod(inp);
      assert.equal(r.status, 'skipped');
      assert.match(r.reason, reason);
      assert.equal(r.pod.metadata?.annotations?.[ANNOTATION_STATUS], 'skipped');
      assert.equal(r.pod.spec!.initContainers, undefined);
      assert.deepEqual(r.pod.spec!.containers, inp.pod.spec!.containers);
    });
  }

  const errors: [string, MutationInput, RegExp][] = [
    ['"true" and no SpanProfiling', input(pod(), { ns: { [INJECT]: 'true' }, sps: [] }), /namespace shop has no SpanProfiling/],
    ['"true" and several', input(pod(), { ns: { [INJECT]: 'true' }, sps: [sp('a'), sp('b')] }), /several SpanProfilings \(a, b\); name the one to use/],
    ['a name that does not exist', input(pod({ annotations: { [INJECT]: 'nope' } }), { ns: { [INJECT]: 'true' } }), /SpanProfiling shop\/nope, named by spanprofiling.io\/inject on the pod, does not exist/],
    ['an invalid value', input(pod({ annotations: { [INJECT]: 'Not A Name' } })), /is not "true", "false", "<name>" or "<namespace>\/<name>"/],
  ];
  for (const [what, inp, reason] of errors) {
    it(`admits the pod untouched, with an error reason and a warning, for ${what}`, () => {
      const r = mutatePod(inp);
      assert.equal(r.status, 'error');
      assert.match(r.reason, reason);
      assert.deepEqual(r.warnings, [r.reason]);
      assert.deepEqual(r.pod.spec, inp.pod.spec);
    });
  }

  it('picks a named SpanProfiling, also from another namespace', () => {
    const r = mutatePod(input(pod({ annotations: { [INJECT]: 'obs/cpu' } }), { sps: [sp('default'), sp('cpu', 'obs', { pyroscope: { address: 'http://other:4040' } })] }));
    assert.equal(r.status, 'injected');
    assert.equal(env(r.pod.spec!.containers[0], 'PYROSCOPE_SERVER_ADDRESS')?.value, 'http://other:4040');
  });

  it('uses the namespace name when the pod says "true"', () => {
    const r = mutatePod(input(pod({ annotations: { [INJECT]: 'true' } }), { ns: { [INJECT]: 'b' }, sps: [sp('a'), sp('b', 'shop', { pyroscope: { address: 'http://b:4040' } })] }));
    assert.equal(env(r.pod.spec!.containers[0], 'PYROSCOPE_SERVER_ADDRESS')?.value, 'http://b:4040');
  });

  describe('NODE_OPTIONS', () => {
    const cases: [string, V1EnvVar | undefined, string | undefined, RegExp | undefined][] = [
      ['absent', undefined, AGENT_PRELOAD, undefined],
      ['plain', { name: 'NODE_OPTIONS', value: '--max-old-space-size=512' }, `--max-old-space-size=512 ${AGENT_PRELOAD}`, undefined],
      ['empty', { name: 'NODE_OPTIONS', value: '' }, AGENT_PRELOAD, undefined],
      ['already containing the agent', { name: 'NODE_OPTIONS', value: `--inspect ${AGENT_PRELOAD}` }, `--inspect ${AGENT_PRELOAD}`, undefined],
      ['from valueFrom', { name: 'NODE_OPTIONS', valueFrom: { configMapKeyRef: { name: 'cm', key: 'k' } } }, undefined, /NODE_OPTIONS comes from valueFrom/],
    ];
    for (const [what, given, want, skipReason] of cases) {
      it(`${what}`, () => {
        const r = mutatePod(input(pod({ containers: [{ name: 'app', image: 'x', env: given ? [given] : [] }] }), { ns: { [INJECT]: 'true' } }));
        const app = r.pod.spec!.containers[0]!;
        if (skipReason) {
          assert.equal(r.status, 'skipped');
          assert.match(r.reason, skipReason);
          assert.deepEqual(app.env, [given]);
        } else {
          assert.equal(r.status, 'injected');
          assert.equal(app.env!.filter((e) => e.name === 'NODE_OPTIONS').length, 1);
          assert.equal(env(app, 'NODE_OPTIONS')?.value, want);
        }
      });
    }
  });

  it('lets the container beat the SpanProfiling, and the SpanProfiling beat generated values', () => {
    const s = sp('default', 'shop', { env: [{ name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: 'http://from-sp:4318' }, { name: 'PYROSCOPE_UPLOAD_INTERVAL', value: '30s' }, { name: 'TEAM', value: 'shop' }] });
    const c: V1Container = { name: 'app', image: 'x', env: [{ name: 'PYROSCOPE_UPLOAD_INTERVAL', value: '5s' }, { name: 'OTEL_SERVICE_NAME', value: 'checkout' }] };
    const app = mutatePod(input(pod({ containers: [c] }), { ns: { [INJECT]: 'true' }, sps: [s] })).pod.spec!.containers[0]!;
    assert.equal(env(app, 'PYROSCOPE_UPLOAD_INTERVAL')?.value, '5s');
    assert.equal(env(app, 'OTEL_SERVICE_NAME')?.value, 'checkout');
    assert.equal(env(app, 'OTEL_EXPORTER_OTLP_ENDPOINT')?.value, 'http://from-sp:4318');
    assert.equal(env(app, 'TEAM')?.value, 'shop');
    assert.deepEqual(app.env!.slice(0, 2), c.env, "the user's variables keep their place");
  });

  it('merges OTEL_RESOURCE_ATTRIBUTES key by key, the user winning', () => {
    const s = sp('default', 'shop', { resourceAttributes: { 'deployment.environment': 'prod', team: 'a' } });
    const c: V1Container = { name: 'app', image: 'x', env: [{ name: 'OTEL_RESOURCE_ATTRIBUTES', value: 'team=b,service.name=cart' }, { name: 'X', value: '1' }] };
    const app = mutatePod(input(pod({ containers: [c] }), { ns: { [INJECT]: 'true' }, sps: [s] })).pod.spec!.containers[0]!;
    const attrs = env(app, 'OTEL_RESOURCE_ATTRIBUTES')!.value!;
    assert.match(attrs, /deployment\.environment=prod/);
    assert.match(attrs, /team=b/);
    assert.match(attrs, /service\.name=cart/);
    assert.equal(app.env![app.env!.length - 1]!.name, 'OTEL_RESOURCE_ATTRIBUTES');
    assert.equal(env(app, 'OTEL_SERVICE_NAME'), undefined, 'service.name from the user is not overridden by a generated OTEL_SERVICE_NAME');
  });

  it('references credentials by optional secretKeyRef, never copying them', () => {
    const s = sp('default', 'shop', { pyroscope: { address: 'https://p:4040', authTokenSecretRef: { name: 'pyro', key: 'token' }, basicAuth: undefined } });
    const app = mutatePod(input(pod(), { ns: { [INJECT]: 'true' }, sps: [s] })).pod.spec!.containers[0]!;
    assert.deepEqual(env(app, 'PYROSCOPE_AUTH_TOKEN'), { name: 'PYROSCOPE_AUTH_TOKEN', valueFrom: { secretKeyRef: { name: 'pyro', key: 'token', optional: true } } });
  });

  it('injects the containers the annotation names, and warns about unknown ones', () => {
    const p = pod({ annotations: { 'spanprofiling.io/container-names': 'api, worker ,nope' }, containers: [{ name: 'sidecar', image: 'envoy' }, { name: 'api', image: 'x' }, { name: 'worker', image: 'x' }] });
    const r = mutatePod(input(p, { ns: { [INJECT]: 'true' } }));
    const names = r.pod.spec!.containers.filter((c) => env(c, 'NODE_OPTIONS') !== undefined).map((c) => c.name);
    assert.deepEqual(names, ['api', 'worker']);
    assert.deepEqual(r.pod.spec!.containers[0], p.spec!.containers[0]);
    assert.ok(r.warnings.some((w) => /no container named nope/.test(w)));
  });

  it('warns that injected values replace what envFrom sets (env beats envFrom)', () => {
    const p = pod({ containers: [{ name: 'app', image: 'x', envFrom: [{ configMapRef: { name: 'settings' } }] }] });
    const r = mutatePod(input(p, { ns: { [INJECT]: 'true' } }));
    assert.equal(r.status, 'injected');
    assert.ok(r.warnings.some((w) => /container app uses envFrom: NODE_OPTIONS, OTEL_\* and PYROSCOPE_\* set there are replaced/.test(w)), r.warnings.join('\n'));
  });

  it('uses the SpanProfiling containerNames when the pod does not name any', () => {
    const p = pod({ containers: [{ name: 'sidecar', image: 'envoy' }, { name: 'api', image: 'x' }] });
    const r = mutatePod(input(p, { ns: { [INJECT]: 'true' }, sps: [sp('default', 'shop', { containerNames: ['api'] })] }));
    assert.deepEqual(r.pod.spec!.containers.filter((c) => env(c, 'NODE_OPTIONS')).map((c) => c.name), ['api']);
  });

  it('is idempotent: a pod it injected comes back unchanged', () => {
    const once = mutatePod(input(pod(), { ns: { [INJECT]: 'true' } }));
    const twice = mutatePod({ ...input(once.pod, { ns: { [INJECT]: 'true' } }) });
    assert.deepEqual(twice.pod, once.pod);
    assert.equal(twice.status, 'injected');
  });

  it('takes the agent image and volume size from the SpanProfiling', () => {
    const r = mutatePod(input(pod(), { ns: { [INJECT]: 'true' }, sps: [sp('default', 'shop', { agent: { image: 'registry.local/agent:1', volumeSizeLimit: '32Mi' } })] }));
    assert.equal(r.pod.spec!.initContainers![0]!.image, 'registry.local/agent:1');
    assert.deepEqual(r.pod.spec!.volumes![0], { name: AGENT_VOLUME, emptyDir: { sizeLimit: '32Mi' } });
  });

  it('turns SpanProfiling settings into agent variables', () => {
    const s = sp('default', 'shop', {
      pyroscope: { address: 'http://p:4040', tenantID: 't1', labels: { team: 'shop' }, uploadInterval: '10s' },
      profiling: { sampleRateHz: 50, heap: { enabled: true }, spanLabels: { addSpanName: false } },
      tracing: { otlp: { endpoint: 'http://c:4317', protocol: 'grpc' }, sampler: { type: 'parentbased_traceidratio', argument: '0.5' }, propagators: ['tracecontext', 'b3'], instrumentations: { disabled: ['dns', 'net'] } },
    });
    const app = mutatePod(input(pod(), { ns: { [INJECT]: 'true' }, sps: [s] })).pod.spec!.containers[0]!;
    const want: Record<string, string> = {
      PYROSCOPE_TENANT_ID: 't1',
      PYROSCOPE_LABELS: 'team=shop',
      PYROSCOPE_UPLOAD_INTERVAL: '10s',
      PYROSCOPE_WALL_SAMPLING_INTERVAL_MICROS: '20000',
      PYROSCOPE_HEAP_SAMPLING_INTERVAL_BYTES: '524288',
      OTEL_PYROSCOPE_ADD_SPAN_NAME: 'false',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.5',
      OTEL_PROPAGATORS: 'tracecontext,b3',
      OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'dns,net',
    };
    for (const [k, v] of Object.entries(want)) assert.equal(env(app, k)?.value, v, k);
  });

  it('passes tracing.mode to the agent as SPANPROFILING_TRACING (auto, the default, needs no variable)', () => {
    const modeOf = (mode: 'auto' | 'agent' | 'app' | undefined): string | undefined => {
      const s = sp('default', 'shop', { pyroscope: { address: 'http://p:4040' }, tracing: { ...(mode === undefined ? {} : { mode }), otlp: { endpoint: 'http://c:4318' } } });
      return env(mutatePod(input(pod(), { ns: { [INJECT]: 'true' }, sps: [s] })).pod.spec!.containers[0]!, 'SPANPROFILING_TRACING')?.value;
    };
    assert.equal(modeOf('app'), 'app');
    assert.equal(modeOf('agent'), 'agent');
    assert.equal(modeOf('auto'), undefined);
    assert.equal(modeOf(undefined), undefined);
  });

  it('derives the service name from labels, owner, or pod name', () => {
    assert.equal(serviceName(pod({ labels: { 'app.kubernetes.io/name': 'cart', app: 'x' } })), 'cart');
    assert.equal(serviceName(pod({ labels: { app: 'x' } })), 'x');
    assert.equal(serviceName(pod()), 'web');
    assert.equal(serviceName({ metadata: { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: 'u', controller: true }] } }), 'db');
    assert.equal(serviceName({ metadata: { ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'report-29384750', uid: 'u', controller: true }] } }), 'report');
    assert.equal(serviceName({ metadata: { name: 'standalone' } }), 'standalone');
  });
});

describe('pod mutation over generated pods (property)', () => {
  const envVar = fc.oneof(
    fc.record({ name: fc.constantFrom('NODE_OPTIONS', 'OTEL_SERVICE_NAME', 'OTEL_RESOURCE_ATTRIBUTES', 'PYROSCOPE_LABELS', 'A', 'B', 'PORT'), value: fc.string({ maxLength: 20 }).map((s) => s.replace(/,/g, ' ')) }),
    fc.record({ name: fc.constantFrom('NODE_OPTIONS', 'SECRET', 'OTEL_RESOURCE_ATTRIBUTES'), valueFrom: fc.constant({ secretKeyRef: { name: 's', key: 'k' } }) }),
  );
  const container = fc.record({
    name: fc.constantFrom('app', 'api', 'worker', 'sidecar', 'web'),
    image: fc.constant('img'),
    env: fc.option(fc.uniqueArray(envVar, { selector: (e) => e.name, maxLength: 6 }), { nil: undefined }),
    envFrom: fc.option(fc.constant([{ configMapRef: { name: 'cm' } }]), { nil: undefined }),
    volumeMounts: fc.option(fc.constant([{ name: 'data', mountPath: '/data' }]), { nil: undefined }),
  });
  const arbPod = fc.record({
    containers: fc.uniqueArray(container, { selector: (c) => c.name, minLength: 1, maxLength: 4 }),
    inject: fc.constantFrom(undefined, 'true', 'false', 'default', 'obs/cpu', 'missing', 'Bad Value'),
    containerNames: fc.constantFrom(undefined, 'api', 'app,worker', 'nope'),
    labels: fc.constantFrom<Record<string, string>>({}, { app: 'x' }, { 'app.kubernetes.io/name': 'y', tier: 'api' }),
    nsInject: fc.constantFrom(undefined, 'true', 'false', 'default'),
  });

  it('gives a valid pod, keeps everything the user set, and is idempotent', () => {
    fc.assert(
      fc.property(arbPod, (g) => {
        const annotations: Record<string, string> = {};
        if (g.inject !== undefined) annotations[INJECT] = g.inject;
        if (g.containerNames !== undefined) annotations['spanprofiling.io/container-names'] = g.containerNames;
        const p: V1Pod = { metadata: { name: 'p', labels: g.labels, annotations }, spec: { containers: g.containers as V1Container[], volumes: [{ name: 'data', emptyDir: {} }] } };
        const inp: MutationInput = { pod: p, namespace: 'shop', namespaceAnnotations: g.nsInject ? { [INJECT]: g.nsInject } : {}, spanProfilings: [sp('default'), sp('cpu', 'obs')], defaults: { agentImage: 'agent' } };
        const r = mutatePod(inp);
        const out = r.pod;

        // valid: unique names everywhere
        const all = [...(out.spec!.initContainers ?? []), ...out.spec!.containers].map((c) => c.name);
        assert.equal(new Set(all).size, all.length);
        const vols = out.spec!.volumes!.map((v) => v.name);
        assert.equal(new Set(vols).size, vols.length);
        for (const c of out.spec!.containers) {
          const names = (c.env ?? []).map((e) => e.name);
          assert.equal(new Set(names).size, names.length, `unique env in ${c.name}`);
          for (const m of c.volumeMounts ?? []) assert.ok(vols.includes(m.name), `mount ${m.name} has a volume`);
          if (c.env?.some((e) => e.name === 'OTEL_RESOURCE_ATTRIBUTES_POD_NAME')) {
            const ra = c.env.findIndex((e) => e.name === 'OTEL_RESOURCE_ATTRIBUTES' && e.value !== undefined);
            if (ra >= 0) assert.ok(ra > c.env.findIndex((e) => e.name === 'OTEL_RESOURCE_ATTRIBUTES_POD_NAME'), 'attributes after what they reference');
          }
        }
        assert.ok(['injected', 'skipped', 'error'].includes(r.status));

        // nothing the user set is lost
        for (const [i, before] of p.spec!.containers.entries()) {
          const after = out.spec!.containers[i]!;
          assert.equal(after.name, before.name);
          assert.deepEqual(after.envFrom, before.envFrom);
          for (const m of before.volumeMounts ?? []) assert.ok(after.volumeMounts?.some((x) => x.name === m.name && x.mountPath === m.mountPath));
          for (const e of before.env ?? []) {
            const kept = after.env?.find((x) => x.name === e.name);
            assert.ok(kept !== undefined, `${e.name} kept in ${before.name}`);
            if (e.valueFrom !== undefined) assert.deepEqual(kept.valueFrom, e.valueFrom);
            else if (e.name === 'NODE_OPTIONS') assert.ok(kept.value!.startsWith(e.value!.trimEnd()));
            else if (e.name === 'OTEL_RESOURCE_ATTRIBUTES') for (const pair of e.value!.split(',').filter((x) => x.includes('=') && x.split('=')[0]!.trim() !== '')) assert.ok(kept.value!.includes(pair.split('=')[0]!.trim()));
            else assert.equal(kept.value, e.value);
          }
        }
        assert.ok(p.spec!.volumes!.every((v) => out.spec!.volumes!.some((x) => x.name === v.name)));
        for (const [k, v] of Object.entries(annotations)) assert.equal(out.metadata!.annotations![k], v);

        // idempotent
        const again = mutatePod({ ...inp, pod: out });
        assert.deepEqual(again.pod, out);
      }),
      { numRuns: 500 },
    );
  });
});
