/**
 * What the end-to-end suite and the demo put in the cluster, and how they read
 * it back: the chart, Pyroscope and Jaeger, a SpanProfiling pointing at them,
 * the demo shop (CommonJS and ES module variants) in an opted-in namespace, and
 * the same shop in a namespace that is not opted in.
 */
import * as path from 'node:path';
import { load } from '../../injector/test/harness/app-process';
import { API_VERSION, ANNOTATION_INJECT, KIND } from '../../operator/src/api';
import type { Images, KindCluster } from './cluster';
import { jaegerConfig, jaegerTraces, type JaegerSpan, tagOf } from './jaeger';
import { pyroscopeStorageArgs, selectMergeSpanProfile, type Flamegraph } from './pyroscope';
import { REPO_ROOT } from './toolchain';

/** The release name: the chart then names its objects span-profiling-operator[-...]. */
export const RELEASE = 'span-profiling-operator';
export const OPERATOR_NAMESPACE = 'span-profiling-system';
export const OPERATOR_DEPLOYMENT = RELEASE;
export const OBSERVABILITY = 'observability';
export const SHOP_NAMESPACE = 'shop';
export const PLAIN_NAMESPACE = 'plain';
/**
 * The demo's workloads in the opted-in namespace: name → entry file. shop-sdk
 * starts its own NodeSDK in code (service.namespace "shops"); the agent joins it.
 */
export const SHOPS = { shop: 'server.js', 'shop-esm': 'server.mjs', 'shop-sdk': 'server-sdk.js' } as const;
export type ShopName = keyof typeof SHOPS;

const JAEGER_PORTS = { otlpGrpc: 4317, otlpHttp: 4318, queryHttp: 16686, queryGrpc: 16685, health: 13133 };
const PYROSCOPE_PORT = 4040;

/** repository and tag of an image reference (registry ports are not tags). */
export function splitImage(image: string): { repository: string; tag: string } {
  const i = image.lastIndexOf(':');
  if (i <= image.lastIndexOf('/')) return { repository: image, tag: 'latest' };
  return { repository: image.slice(0, i), tag: image.slice(i + 1) };
}

const labels = (name: string): Record<string, string> => ({ 'app.kubernetes.io/name': name, 'app.kubernetes.io/part-of': 'span-profiling-e2e' });

function deployment(namespace: string, name: string, pod: Record<string, unknown>, annotations: Record<string, string> = {}): object {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels: labels(name) },
    spec: { replicas: 1, selector: { matchLabels: { 'app.kubernetes.io/name': name } }, template: { metadata: { labels: labels(name), annotations }, spec: pod } },
  };
}

function service(namespace: string, name: string, ports: Record<string, number>): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace, labels: labels(name) },
    spec: { selector: { 'app.kubernetes.io/name': name }, ports: Object.entries(ports).map(([port, number]) => ({ name: port, port: number, targetPort: number })) },
  };
}

const namespace = (name: string, annotations: Record<string, string> = {}): object => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, annotations } });

/** Pyroscope (single binary, local disk) and Jaeger (in-memory) in the observability namespace. */
export function backendObjects(images: Images): object[] {
  return [
    namespace(OBSERVABILITY),
    deployment(OBSERVABILITY, 'pyroscope', {
      containers: [
        {
          name: 'pyroscope',
          image: images.pyroscope,
          imagePullPolicy: 'IfNotPresent',
          args: [`-server.http-listen-port=${PYROSCOPE_PORT}`, ...pyroscopeStorageArgs('/data')],
          workingDir: '/data',
          ports: [{ name: 'http', containerPort: PYROSCOPE_PORT }],
          readinessProbe: { httpGet: { path: '/ready', port: PYROSCOPE_PORT }, periodSeconds: 2 },
          volumeMounts: [{ name: 'data', mountPath: '/data' }],
        },
      ],
      volumes: [{ name: 'data', emptyDir: {} }],
    }),
    service(OBSERVABILITY, 'pyroscope', { http: PYROSCOPE_PORT }),
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'jaeger', namespace: OBSERVABILITY }, data: { 'config.yaml': jaegerConfig('0.0.0.0', JAEGER_PORTS) } },
    deployment(OBSERVABILITY, 'jaeger', {
      containers: [
        {
          name: 'jaeger',
          image: images.jaeger,
          imagePullPolicy: 'IfNotPresent',
          args: ['--config', '/etc/jaeger/config.yaml'],
          env: [{ name: 'OTEL_TRACES_EXPORTER', value: 'none' }],
          ports: Object.entries(JAEGER_PORTS).map(([name, port]) => ({ name: name.toLowerCase().slice(0, 15), containerPort: port })),
          readinessProbe: { httpGet: { path: '/api/services', port: JAEGER_PORTS.queryHttp }, periodSeconds: 2 },
          volumeMounts: [{ name: 'config', mountPath: '/etc/jaeger' }],
        },
      ],
      volumes: [{ name: 'config', configMap: { name: 'jaeger' } }],
    }),
    service(OBSERVABILITY, 'jaeger', { 'otlp-grpc': JAEGER_PORTS.otlpGrpc, 'otlp-http': JAEGER_PORTS.otlpHttp, query: JAEGER_PORTS.queryHttp }),
  ];
}

/** The opted-in namespace (by annotation) and its SpanProfiling; the namespace that is not opted in. */
export function namespaceObjects(): object[] {
  return [
    namespace(SHOP_NAMESPACE, { [ANNOTATION_INJECT]: 'true' }),
    namespace(PLAIN_NAMESPACE),
    {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: 'default', namespace: SHOP_NAMESPACE },
      spec: {
        pyroscope: { address: `http://pyroscope.${OBSERVABILITY}:${PYROSCOPE_PORT}`, uploadInterval: '5s' },
        tracing: { otlp: { endpoint: `http://jaeger.${OBSERVABILITY}:${JAEGER_PORTS.otlpHttp}`, protocol: 'http/protobuf' } },
      },
    },
  ];
}

function shopPod(images: Images, entry: string): Record<string, unknown> {
  return {
    containers: [
      {
        name: 'shop',
        image: images.shop,
        imagePullPolicy: 'IfNotPresent',
        command: ['node', path.posix.join('/app', entry)],
        ports: [{ name: 'http', containerPort: 8080 }],
        readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 2 },
      },
    ],
  };
}

/** The shop in both module flavours in the opted-in namespace, and once more where nothing is injected. */
export function shopObjects(images: Images): object[] {
  const objects: object[] = [];
  // In a reused cluster, a new agent image restarts the shops so that they get it.
  const stamp = { 'span-profiling-e2e/agent-image': images.agent };
  for (const [name, entry] of Object.entries(SHOPS)) objects.push(deployment(SHOP_NAMESPACE, name, shopPod(images, entry), stamp), service(SHOP_NAMESPACE, name, { http: 8080 }));
  objects.push(deployment(PLAIN_NAMESPACE, 'shop', shopPod(images, SHOPS.shop)));
  return objects;
}

/** helm upgrade --install of the chart with the images under test (and `--set` values); waits until the operator is ready. */
export async function installOperator(cluster: KindCluster, images: Images, values: string[] = []): Promise<void> {
  const operator = splitImage(images.operator);
  const agent = splitImage(images.agent);
  const r = await cluster.helm([
    'upgrade', '--install', RELEASE, path.join(REPO_ROOT, 'charts/span-profiling-operator'),
    '--namespace', OPERATOR_NAMESPACE, '--create-namespace',
    '--set', `image.repository=${operator.repository}`, '--set', `image.tag=${operator.tag}`,
    '--set', `agent.image.repository=${agent.repository}`, '--set', `agent.image.tag=${agent.tag}`,
    ...values.flatMap((v) => ['--set', v]),
    '--wait', '--timeout', '5m',
  ]);
  if (r.code !== 0) throw new Error(`helm install: exit ${r.code}\n${r.stderr}${r.stdout}`);
}

/** Waits for a Deployment's rollout. */
export async function rolledOut(cluster: KindCluster, namespace: string, name: string, timeout = '240s'): Promise<void> {
  await cluster.kubectl(['rollout', 'status', '-n', namespace, `deployment/${name}`, `--timeout=${timeout}`]);
}

/** Polls until `probe` returns a value (not undefined), or throws with the last error. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000, everyMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last !== undefined ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** URL of an in-cluster service port through `kubectl proxy` (the API server's service proxy). */
export const serviceUrl = (proxy: string, ns: string, name: string, port: string | number): string => `${proxy}/api/v1/namespaces/${ns}/services/${name}:${port}/proxy`;

export const jaegerUrl = (proxy: string): string => serviceUrl(proxy, OBSERVABILITY, 'jaeger', JAEGER_PORTS.queryHttp);
export const pyroscopeUrl = (proxy: string): string => serviceUrl(proxy, OBSERVABILITY, 'pyroscope', PYROSCOPE_PORT);

export interface TrafficResult {
  ok: number;
  failed: string[];
}

/** Requests to a shop through the API server: heavy checkouts and light catalog reads, `concurrency` at a time. */
export async function sendTraffic(proxy: string, shop: ShopName, requests: number, concurrency = 4): Promise<TrafficResult> {
  // kubectl proxy listens on 127.0.0.1, so the agent suites' load driver serves here too.
  const base = new URL(serviceUrl(proxy, SHOP_NAMESPACE, shop, 8080));
  const paths = Array.from({ length: requests }, (_, i) => `${base.pathname}${i % 2 === 0 ? `/checkout?items=${20 + (i % 7) * 5}` : '/catalog'}`);
  const results = await load(Number(base.port), paths, concurrency);
  return { ok: results.filter((r) => r.status === 200).length, failed: results.filter((r) => r.status !== 200).map((r) => `${r.path}: ${r.status === 0 ? 'no answer' : `HTTP ${r.status}`}`) };
}

/** Server spans of a service that carry pyroscope.profile.id, newest traces first as Jaeger returns them. */
export async function profiledServerSpans(proxy: string, service: string): Promise<JaegerSpan[]> {
  const traces = await jaegerTraces(jaegerUrl(proxy), service);
  return traces.flatMap((t) => t.spans).filter((s) => tagOf(s, 'span.kind') === 'server' && tagOf(s, 'pyroscope.profile.id') !== undefined);
}

/** The route a server span served (http.route, else the path of its target). */
export function routeOf(span: JaegerSpan): string {
  const route = tagOf(span, 'http.route') ?? tagOf(span, 'url.path') ?? tagOf(span, 'http.target') ?? span.operationName;
  return String(route).split('?')[0]!;
}

/** selectMergeSpanProfile through the proxy. */
export async function spanProfile(proxy: string, service: string, spanIds: string[], sinceMs: number, serviceNamespace?: string): Promise<Flamegraph> {
  return selectMergeSpanProfile(pyroscopeUrl(proxy), service, spanIds, sinceMs, serviceNamespace);
}

/** Deploys everything but the chart, and waits for it to run. */
export async function deployWorkloads(cluster: KindCluster, images: Images): Promise<void> {
  await cluster.apply(backendObjects(images));
  await cluster.apply(namespaceObjects());
  // The webhook only sees namespaces the operator has labelled: wait for it before creating pods there.
  await eventually(`namespace ${SHOP_NAMESPACE} labelled for injection`, async () => {
    const ns = await cluster.getJson<{ metadata: { labels?: Record<string, string> } }>(['get', 'namespace', SHOP_NAMESPACE]);
    return ns.metadata.labels?.['spanprofiling.io/injection'] === 'enabled' ? true : undefined;
  });
  await cluster.apply(shopObjects(images));
  await Promise.all([
    rolledOut(cluster, OBSERVABILITY, 'pyroscope'),
    rolledOut(cluster, OBSERVABILITY, 'jaeger'),
    ...Object.keys(SHOPS).map((name) => rolledOut(cluster, SHOP_NAMESPACE, name)),
    rolledOut(cluster, PLAIN_NAMESPACE, 'shop'),
  ]);
}
