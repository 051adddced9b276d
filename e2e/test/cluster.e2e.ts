/**
 * The acceptance test of the whole product, in a kind cluster: helm install the
 * chart, point a SpanProfiling at in-cluster Pyroscope and Jaeger, opt a
 * namespace in by annotation, deploy the demo shop (CommonJS and ES module),
 * send it traffic, and follow one slow request from its trace to the flame
 * graph of exactly that request. Then the failure and removal paths: the
 * operator gone, and helm uninstall.
 *
 *   npm run e2e            SPANPROF_E2E_IMAGES=local|published (default local)
 *                          SPANPROF_E2E_KEEP=1 keeps the cluster afterwards
 */
import { strict as assert } from 'node:assert';
import { ANNOTATION_REASON, ANNOTATION_STATUS, LABEL_INJECTED, LABEL_NAMESPACE_INJECTION } from '../../operator/src/api';
import { UNSEEN_POD_REASON } from '../../operator/src/controller/controller';
import { buildImages, imagesMode, KindCluster, type Images } from '../harness/cluster';
import { tagOf, type JaegerSpan } from '../harness/jaeger';
import { hotNames } from '../harness/pyroscope';
import {
  deployWorkloads,
  eventually,
  installOperator,
  OPERATOR_DEPLOYMENT,
  OPERATOR_NAMESPACE,
  PLAIN_NAMESPACE,
  profiledServerSpans,
  pyroscopeUrl,
  RELEASE,
  rolledOut,
  routeOf,
  sendTraffic,
  SHOP_NAMESPACE,
  SHOPS,
  spanProfile,
  type ShopName,
} from '../harness/stack';

const CLUSTER = 'span-profiling-e2e';
const REQUESTS = 60;

interface Pod {
  metadata: { name: string; annotations?: Record<string, string>; labels?: Record<string, string>; deletionTimestamp?: string };
  spec: {
    initContainers?: { name: string; image: string }[];
    containers: { name: string; env?: { name: string; value?: string }[]; volumeMounts?: { name: string; mountPath: string }[] }[];
    volumes?: { name: string }[];
  };
  status?: { phase?: string };
}

const log = (line: string): void => void process.stderr.write(`      [e2e] ${line}\n`);
const envOf = (pod: Pod, name: string): string | undefined => pod.spec.containers[0]!.env?.find((e) => e.name === name)?.value;

describe(`kind cluster (${imagesMode()} images): from helm install to the flame graph of one span`, function () {
  this.timeout(1_800_000);
  let images: Images;
  let cluster: KindCluster;
  let proxy: { url: string; stop: () => Promise<void> };
  const since = Date.now() - 60_000;
  const spans = new Map<ShopName, JaegerSpan[]>();

  before(async () => {
    images = await buildImages(imagesMode(), log);
    // A fresh cluster each run: a leftover from an interrupted run is replaced.
    cluster = await KindCluster.up(CLUSTER, images, log, { fresh: true });
    proxy = await cluster.proxy();
  });

  after(async function () {
    await proxy?.stop();
    if (cluster === undefined) return;
    if (this.currentTest?.state === 'failed' || process.env['SPANPROF_E2E_KEEP'] === '1') {
      log(`keeping cluster ${CLUSTER}: kubectl --kubeconfig ${cluster.kubeconfig} get pods -A`);
      log(`node logs: ${await cluster.exportLogs()}`);
      return;
    }
    await cluster.delete();
  });

  it('helm install: the operator becomes ready and its webhook gets a CA bundle', async () => {
    await installOperator(cluster, images);
    const dep = await cluster.getJson<{ spec: { replicas: number }; status: { availableReplicas?: number } }>(['get', 'deployment', '-n', OPERATOR_NAMESPACE, OPERATOR_DEPLOYMENT]);
    assert.equal(dep.status.availableReplicas, dep.spec.replicas);
    await eventually('the caBundle in the webhook configuration', async () => {
      const hook = await cluster.getJson<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(['get', 'mutatingwebhookconfiguration', RELEASE]);
      return hook.webhooks.every((w) => (w.clientConfig.caBundle ?? '') !== '') ? true : undefined;
    });
  });

  it('the namespace opted in by annotation is labelled for the webhook, the other is not, and the workloads start', async () => {
    await deployWorkloads(cluster, images);
    const plain = await cluster.getJson<{ metadata: { labels?: Record<string, string> } }>(['get', 'namespace', PLAIN_NAMESPACE]);
    assert.equal(plain.metadata.labels?.[LABEL_NAMESPACE_INJECTION], undefined);
  });

  it("the shop's pods (CommonJS and ES module) carry the init container, volume, NODE_OPTIONS, env and the injected status", async () => {
    for (const shop of Object.keys(SHOPS)) {
      const pods = await cluster.getJson<{ items: Pod[] }>(['get', 'pods', '-n', SHOP_NAMESPACE, '-l', `app.kubernetes.io/name=${shop}`]);
      assert.equal(pods.items.length, 1, `${shop}: one pod`);
      const pod = pods.items[0]!;
      assert.equal(pod.metadata.annotations?.[ANNOTATION_STATUS], 'injected', JSON.stringify(pod.metadata.annotations));
      assert.equal(pod.metadata.labels?.[LABEL_INJECTED], 'true');
      assert.deepEqual(pod.spec.initContainers?.map((c) => c.image), [images.agent]);
      assert.ok(pod.spec.volumes?.some((v) => v.name === 'spanprofiling-agent'));
      assert.ok(pod.spec.containers[0]!.volumeMounts?.some((m) => m.name === 'spanprofiling-agent' && m.mountPath === '/spanprofiling'));
      assert.match(envOf(pod, 'NODE_OPTIONS') ?? '', /--require \/spanprofiling\/register\.js/);
      assert.equal(envOf(pod, 'OTEL_SERVICE_NAME'), shop);
      assert.equal(envOf(pod, 'OTEL_EXPORTER_OTLP_ENDPOINT'), 'http://jaeger.observability:4318');
      assert.equal(envOf(pod, 'PYROSCOPE_SERVER_ADDRESS'), 'http://pyroscope.observability:4040');
    }
  });

  it('a pod in a namespace not opted in is untouched', async () => {
    const pods = await cluster.getJson<{ items: Pod[] }>(['get', 'pods', '-n', PLAIN_NAMESPACE]);
    assert.equal(pods.items.length, 1);
    const pod = pods.items[0]!;
    assert.equal(pod.spec.initContainers, undefined);
    assert.equal(envOf(pod, 'NODE_OPTIONS'), undefined);
    assert.equal(pod.metadata.annotations?.[ANNOTATION_STATUS], undefined);
  });

  it('every shop answers every request through its Service', async () => {
    for (const shop of Object.keys(SHOPS) as ShopName[]) {
      const r = await sendTraffic(proxy.url, shop, REQUESTS);
      assert.deepEqual(r.failed, [], `${shop}: ${r.failed.slice(0, 5).join('; ')}`);
      assert.equal(r.ok, REQUESTS);
    }
  });

  it('Jaeger holds their server spans, each with pyroscope.profile.id = its span id', async () => {
    for (const shop of Object.keys(SHOPS) as ShopName[]) {
      const found = await eventually(`${REQUESTS} profiled server spans of ${shop} in Jaeger`, async () => {
        const s = await profiledServerSpans(proxy.url, shop);
        return s.length >= REQUESTS ? s : undefined;
      });
      for (const s of found) assert.equal(tagOf(s, 'pyroscope.profile.id'), s.spanID);
      assert.ok(found.some((s) => routeOf(s) === '/checkout') && found.some((s) => routeOf(s) === '/catalog'), found.map(routeOf).join(','));
      spans.set(shop, found);
    }
  });

  for (const shop of Object.keys(SHOPS) as ShopName[]) {
    it(`${shop}: the span profile of its checkout spans has the heavy route's functions among its top frames, the catalog spans' profile has none of them`, async () => {
      const checkout = spans.get(shop)!.filter((s) => routeOf(s) === '/checkout').map((s) => s.spanID);
      const catalog = spans.get(shop)!.filter((s) => routeOf(s) === '/catalog').map((s) => s.spanID);
      // shop-sdk sets service.namespace in code: Grafana then asks for it too, and the profiles must carry it.
      const namespace = spans.get(shop)![0]!.serviceNamespace;
      assert.equal(namespace, shop === 'shop-sdk' ? 'shops' : undefined);
      // checkout() and signReceipt() (priceBasket() is small enough for V8 to inline into checkout).
      const heavy = ['checkout', 'signReceipt'];
      const top = await eventually(`${heavy.join(' and ')} in the span profile of ${shop}'s checkout spans`, async () => {
        const total = hotNames(await spanProfile(proxy.url, shop, checkout, since, namespace));
        const ranked = [...total.entries()].filter(([name]) => name !== 'total').sort((a, b) => b[1] - a[1]).map(([name]) => name);
        // Among the top ten (the agent's context frames wrap every request and rank high too), and
        // checkout() holding at least a quarter of the time.
        const share = (total.get('checkout') ?? 0) / (total.get('total') ?? Infinity);
        return heavy.every((fn) => ranked.slice(0, 10).includes(fn)) && share >= 0.25 ? ranked : undefined;
      });
      log(`${shop} checkout span profile, top frames: ${top.slice(0, 6).join(', ')}`);
      const light = hotNames(await spanProfile(proxy.url, shop, catalog, since, namespace));
      for (const fn of heavy) assert.equal(light.get(fn) ?? 0, 0, `${fn} belongs to other requests`);
    });
  }

  it("Pyroscope serves its web UI (local images: built by e2e/toolchain/pyroscope-ui.sh), for a port-forward and a browser", async () => {
    const res = await fetch(`${pyroscopeUrl(proxy.url)}/`, { signal: AbortSignal.timeout(30_000) });
    assert.equal(res.status, 200);
    const html = await res.text();
    assert.match(html, /<title>Grafana Pyroscope<\/title>/);
    const script = /<script[^>]+src="([^"]+\.js)"/.exec(html)?.[1];
    assert.ok(script !== undefined, 'the page loads its app bundle');
    const bundle = await fetch(`${pyroscopeUrl(proxy.url)}/${script.replace(/^\//, '')}`, { signal: AbortSignal.timeout(30_000) });
    assert.equal(bundle.status, 200, `GET ${script}`);
  });

  it('the SpanProfiling is Ready and counts the injected pods', async () => {
    await eventually(`Ready with ${Object.keys(SHOPS).length} injected pods`, async () => {
      const sp = await cluster.getJson<{ status?: { injectedPods?: number; conditions?: { type: string; status: string }[] } }>(['get', 'spanprofiling', '-n', SHOP_NAMESPACE, 'default']);
      const ready = sp.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.status === 'True' && sp.status?.injectedPods === Object.keys(SHOPS).length ? true : undefined;
    });
  });

  it("with the operator's pods gone, new pods are admitted uninstrumented; back with rollout Auto, it restarts their Deployment and they come back injected, and a bare pod gets a reason", async () => {
    await cluster.kubectl(['scale', 'deployment', '-n', OPERATOR_NAMESPACE, OPERATOR_DEPLOYMENT, '--replicas=0']);
    await cluster.kubectl(['wait', '--for=delete', 'pod', '-n', OPERATOR_NAMESPACE, '-l', 'app.kubernetes.io/name=span-profiling-operator', '--timeout=120s']);
    const shopContainer = { name: 'shop', image: images.shop, imagePullPolicy: 'IfNotPresent', readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 2 } };
    const bare = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'while-operator-down', namespace: SHOP_NAMESPACE, labels: { 'app.kubernetes.io/name': 'shop-extra' } }, spec: { containers: [shopContainer] } };
    const late = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'shop-late', namespace: SHOP_NAMESPACE },
      spec: { replicas: 2, selector: { matchLabels: { 'app.kubernetes.io/name': 'shop-late' } }, template: { metadata: { labels: { 'app.kubernetes.io/name': 'shop-late' } }, spec: { containers: [shopContainer] } } },
    };
    await cluster.apply([bare, late]);
    await rolledOut(cluster, SHOP_NAMESPACE, 'shop-late');
    const admitted = await cluster.getJson<Pod>(['get', 'pod', '-n', SHOP_NAMESPACE, 'while-operator-down']);
    assert.equal(admitted.spec.initContainers, undefined, 'admitted without injection');
    assert.equal(envOf(admitted, 'NODE_OPTIONS'), undefined);
    const latePods = await cluster.getJson<{ items: Pod[] }>(['get', 'pods', '-n', SHOP_NAMESPACE, '-l', 'app.kubernetes.io/name=shop-late']);
    assert.ok(latePods.items.every((p) => p.spec.initContainers === undefined), 'the Deployment started without the agent');

    await cluster.kubectl(['patch', 'spanprofiling', '-n', SHOP_NAMESPACE, 'default', '--type=merge', '-p', JSON.stringify({ spec: { rollout: { policy: 'Auto', pauseSeconds: 2 } } })]);
    const back = Date.now();
    await installOperator(cluster, images, ['rollout.enabled=true']);
    const annotations = await eventually('the reason on the bare pod', async () => {
      const p = await cluster.getJson<Pod>(['get', 'pod', '-n', SHOP_NAMESPACE, 'while-operator-down']);
      return p.metadata.annotations?.[ANNOTATION_REASON] !== undefined ? p.metadata.annotations : undefined;
    });
    assert.equal(annotations[ANNOTATION_STATUS], 'skipped');
    assert.equal(annotations[ANNOTATION_REASON], UNSEEN_POD_REASON);

    const injected = await eventually('shop-late restarted and its pods injected', async () => {
      const pods = await cluster.getJson<{ items: Pod[] }>(['get', 'pods', '-n', SHOP_NAMESPACE, '-l', 'app.kubernetes.io/name=shop-late']);
      const live = pods.items.filter((p) => p.metadata.deletionTimestamp === undefined);
      return live.length === 2 && live.every((p) => p.metadata.annotations?.[ANNOTATION_STATUS] === 'injected' && p.status?.phase === 'Running') ? live : undefined;
    }, 240_000);
    log(`operator back with rollout Auto: shop-late's ${injected.length} pods injected ${((Date.now() - back) / 1000).toFixed(0)} s after helm upgrade started`);
    await rolledOut(cluster, SHOP_NAMESPACE, 'shop-late');
    const events = await cluster.getJson<{ items: { reason: string; involvedObject: { kind: string; name: string } }[] }>(['get', 'events', '-n', SHOP_NAMESPACE]);
    assert.ok(events.items.some((e) => e.reason === 'SpanProfilingRestart' && e.involvedObject.kind === 'Deployment' && e.involvedObject.name === 'shop-late'), 'an Event on the Deployment');
    // The counts and the rollout's message come from separate steps: the message may still say it waits for
    // shop-late's rollout (its next look is ROLLOUT_POLL_MS away) when the counts are already right.
    const sp = await eventually('the bare pod counted as the one missed pod, and named in the rollout message', async () => {
      const s = await cluster.getJson<{ status?: { missedPods?: number; outdatedPods?: number; rollout?: { message?: string } } }>(['get', 'spanprofiling', '-n', SHOP_NAMESPACE, 'default']);
      return s.status?.missedPods === 1 && s.status.outdatedPods === 0 && !/^waiting for /.test(s.status.rollout?.message ?? '') ? s : undefined;
    });
    assert.match(sp.status?.rollout?.message ?? '', /not restarted: pod shop\/while-operator-down: a bare pod/);
    await cluster.kubectl(['delete', 'pod', '-n', SHOP_NAMESPACE, 'while-operator-down', '--wait=false']);
  });

  it('an edit of the sample rate makes every pod outdated; Auto rolls them one workload at a time, and the new pods have the new env', async () => {
    const deployments = [...Object.keys(SHOPS), 'shop-late'];
    const edited = Date.now();
    await cluster.kubectl(['patch', 'spanprofiling', '-n', SHOP_NAMESPACE, 'default', '--type=merge', '-p', JSON.stringify({ spec: { profiling: { sampleRateHz: 50 } } })]);
    await eventually('the pods counted as outdated', async () => {
      const s = await cluster.getJson<{ metadata: { generation: number }; status?: { observedGeneration?: number; outdatedPods?: number } }>(['get', 'spanprofiling', '-n', SHOP_NAMESPACE, 'default']);
      return s.status?.observedGeneration === s.metadata.generation && (s.status?.outdatedPods ?? 0) > 0 ? true : undefined;
    }, 60_000).catch(() => undefined); // Auto may already have restarted some by the first look.
    const updated = await eventually('every pod of every shop with the new sample rate', async () => {
      const s = await cluster.getJson<{ status?: { outdatedPods?: number; missedPods?: number } }>(['get', 'spanprofiling', '-n', SHOP_NAMESPACE, 'default']);
      if (s.status?.outdatedPods !== 0 || s.status.missedPods !== 0) return undefined;
      const pods = await cluster.getJson<{ items: Pod[] }>(['get', 'pods', '-n', SHOP_NAMESPACE]);
      const live = pods.items.filter((p) => p.metadata.deletionTimestamp === undefined);
      return live.length === 2 + Object.keys(SHOPS).length && live.every((p) => envOf(p, 'PYROSCOPE_WALL_SAMPLING_INTERVAL_MICROS') === '20000' && p.status?.phase === 'Running') ? live : undefined;
    }, 600_000, 2000);
    log(`sample rate edited: all ${updated.length} pods of ${deployments.length} Deployments updated in ${((Date.now() - edited) / 1000).toFixed(0)} s (pauseSeconds 2)`);
    for (const name of deployments) {
      await rolledOut(cluster, SHOP_NAMESPACE, name);
      const d = await cluster.getJson<{ status: { conditions?: { type: string; status: string }[] } }>(['get', 'deployment', '-n', SHOP_NAMESPACE, name]);
      assert.equal(d.status.conditions?.find((c) => c.type === 'Available')?.status, 'True', `${name} is Available`);
    }
    const events = await cluster.getJson<{ items: { reason: string; involvedObject: { kind: string; name: string } }[] }>(['get', 'events', '-n', SHOP_NAMESPACE]);
    for (const name of deployments) assert.ok(events.items.some((e) => e.reason === 'SpanProfilingRestart' && e.involvedObject.name === name), `an Event on ${name}`);
  });

  it('helm uninstall leaves nothing of ours behind but the CRD and its objects, and new pods are no longer injected', async () => {
    const r = await cluster.helm(['uninstall', RELEASE, '--namespace', OPERATOR_NAMESPACE, '--wait', '--timeout', '3m']);
    assert.equal(r.code, 0, r.stderr);
    const left = await cluster.kubectl([
      'get', 'deployments,services,serviceaccounts,secrets,configmaps,roles,rolebindings,leases,poddisruptionbudgets,jobs', '-n', OPERATOR_NAMESPACE, '-o', 'name',
    ]);
    assert.deepEqual(left.split('\n').filter((l) => l !== '' && l !== 'configmap/kube-root-ca.crt' && l !== 'serviceaccount/default'), []);
    const cluster_ = await cluster.kubectl(['get', 'mutatingwebhookconfigurations,validatingwebhookconfigurations,clusterroles,clusterrolebindings', '-o', 'name']);
    assert.deepEqual(cluster_.split('\n').filter((l) => l.includes('span-profiling')), []);
    const namespaces = await cluster.getJson<{ items: { metadata: { name: string; labels?: Record<string, string> } }[] }>(['get', 'namespaces']);
    assert.deepEqual(namespaces.items.filter((n) => n.metadata.labels?.[LABEL_NAMESPACE_INJECTION] !== undefined).map((n) => n.metadata.name), [], 'no namespace keeps the injection label');
    assert.equal((await cluster.kubectlResult(['get', 'crd', 'spanprofilings.spanprofiling.io'])).code, 0, 'Helm keeps CRDs (documented)');

    await cluster.kubectl(['rollout', 'restart', 'deployment', '-n', SHOP_NAMESPACE, 'shop']);
    await rolledOut(cluster, SHOP_NAMESPACE, 'shop');
    const at = (await cluster.getJson<{ spec: { template: { metadata: { annotations?: Record<string, string> } } } }>(['get', 'deployment', '-n', SHOP_NAMESPACE, 'shop'])).spec.template.metadata.annotations?.['kubectl.kubernetes.io/restartedAt'];
    const pods = await cluster.getJson<{ items: Pod[] }>(['get', 'pods', '-n', SHOP_NAMESPACE, '-l', 'app.kubernetes.io/name=shop', '--field-selector=status.phase=Running']);
    const restarted = pods.items.filter((p) => at !== undefined && p.metadata.annotations?.['kubectl.kubernetes.io/restartedAt'] === at && p.metadata.deletionTimestamp === undefined);
    assert.ok(restarted.length > 0, 'the restarted pod is running');
    for (const pod of restarted) {
      assert.equal(pod.spec.initContainers, undefined, `${pod.metadata.name} is not injected after uninstall`);
    }
  });
});
