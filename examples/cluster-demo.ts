/**
 * `npm run demo`: the product end to end in a local kind cluster, then one
 * request followed from its trace to the flame graph of exactly that request.
 *
 * Brings up (or reuses) the kind cluster "span-profiling-demo", installs the
 * chart, Pyroscope and Jaeger, a SpanProfiling and the demo shop in an
 * opted-in namespace, sends the shop traffic, and tells the story of the
 * request whose own CPU explains it most (examples/lib/story.ts):
 * its trace, its span profile's top functions and flame graph, the flame
 * graph as an HTML page in demo-output/; then how to look at it all from the
 * host. The cluster is kept:
 * run it again to redeploy in seconds, or delete it with the command printed.
 *
 * SPANPROF_E2E_IMAGES=local (default, no registry needed) or published.
 */
import * as path from 'node:path';
import { buildImages, imagesMode, KindCluster } from '../e2e/harness/cluster';
import { tagOf } from '../e2e/harness/jaeger';
import { CPU_PROFILE_TYPE } from '../e2e/harness/pyroscope';
import {
  deployWorkloads,
  eventually,
  installOperator,
  jaegerUrl,
  OBSERVABILITY,
  profiledServerSpans,
  pyroscopeUrl,
  routeOf,
  sendTraffic,
  serviceUrl,
  SHOP_NAMESPACE,
  spanProfile,
  type ShopName,
} from '../e2e/harness/stack';
import { REPO_ROOT, tool } from '../e2e/harness/toolchain';
import { tellStory } from './lib/story';
import { SHOP_FUNCTIONS } from './shop/functions';

const CLUSTER = 'span-profiling-demo';
const SHOP: ShopName = 'shop';

const say = (line = ''): void => void process.stdout.write(`${line}\n`);
const step = (line: string): void => say(`\u25b8 ${line}`);
const OUT_DIR = path.join(REPO_ROOT, 'demo-output');

async function main(): Promise<void> {
  const started = Date.now();
  const mode = imagesMode();
  const images = await buildImages(mode, step);
  const cluster = await KindCluster.up(CLUSTER, images, step);
  const kubectl = `${tool('kubectl')} --kubeconfig ${cluster.kubeconfig}`;
  step('helm upgrade --install span-profiling-operator');
  await installOperator(cluster, images);
  step('Pyroscope, Jaeger, a SpanProfiling, the shop (opted-in namespace "shop") and its twin in "plain"');
  await deployWorkloads(cluster, images);

  const proxy = await cluster.proxy();
  try {
    const since = Date.now() - 60_000;
    step('sending the shop 120 requests (checkout: CPU-heavy; catalog: mostly waiting)');
    const traffic = await sendTraffic(proxy.url, SHOP, 120);
    if (traffic.failed.length > 0) say(`  ${traffic.failed.length} requests failed, e.g. ${traffic.failed[0]}`);
    step('and one customer with a very big basket: GET /checkout?items=250');
    const big = await fetch(`${serviceUrl(proxy.url, SHOP_NAMESPACE, SHOP, 8080)}/checkout?items=250`, { signal: AbortSignal.timeout(60_000) });
    await big.arrayBuffer();

    step('waiting for the spans in Jaeger');
    const spans = await eventually('server spans with pyroscope.profile.id in Jaeger', async () => {
      const s = (await profiledServerSpans(proxy.url, SHOP)).filter((span) => routeOf(span) !== '/healthz' && span.startTime >= since * 1000);
      return s.length >= traffic.ok * 0.9 && s.some((span) => String(tagOf(span, 'url.query') ?? '').includes('items=250')) ? s : undefined;
    });
    // The big basket was sent last: once its samples are in Pyroscope, every earlier request's are too.
    step('waiting for the span profiles in Pyroscope');
    const bigBasket = spans.find((span) => String(tagOf(span, 'url.query') ?? '').includes('items=250'))!;
    await eventually('the last request\'s span profile', async () => (Number((await spanProfile(proxy.url, SHOP, [bigBasket.spanID], since)).flamegraph?.total ?? 0) > 0 ? true : undefined), 60_000).catch(() => say('  (the last request has no samples in Pyroscope after 60 s: what follows may miss some)'));
    const story = await tellStory({ jaeger: jaegerUrl(proxy.url), pyroscope: pyroscopeUrl(proxy.url), service: SHOP, sinceMs: since }, spans, SHOP_FUNCTIONS, OUT_DIR);
    say();
    for (const line of story.lines) say(line);
    if (story.htmlFile !== undefined) {
      say();
      say(`Its flame graph as a picture (zoom, search; opens offline): file://${story.htmlFile}`);
    }
    const slowest = story.chosen?.span ?? spans.reduce((a, b) => (b.duration > a.duration ? b : a));

    const body = JSON.stringify({ profileTypeID: CPU_PROFILE_TYPE, labelSelector: `{service_name="${SHOP}"}`, spanSelector: [slowest.spanID], start: since, end: Date.now() + 60_000 });
    say();
    say('Look around from this machine:');
    say(`  ${kubectl} get spanprofiling -A                      # Ready, injected pod count`);
    say(`  ${kubectl} get pods -n shop -o yaml                  # the injected init container, volume, env`);
    say(`  ${kubectl} -n ${OBSERVABILITY} port-forward svc/jaeger 16686 &`);
    say(`  curl -s http://127.0.0.1:16686/api/traces/${slowest.traceID}     # the trace (Jaeger's query API; its UI, in published images: http://127.0.0.1:16686/trace/${slowest.traceID})`);
    say(`  ${kubectl} -n ${OBSERVABILITY} port-forward svc/pyroscope 4040 &`);
    const uiQuery = encodeURIComponent(`${CPU_PROFILE_TYPE}{service_name="${SHOP}"}`);
    say(`  open http://127.0.0.1:4040/?query=${uiQuery}&from=now-1h&until=now      # Pyroscope's UI: the shop's CPU flame graph`);
    say(`  curl -s -X POST -H 'content-type: application/json' http://127.0.0.1:4040/querier.v1.QuerierService/SelectMergeSpanProfile -d '${body}'   # one span's profile, as Grafana asks`);
    say(`  ${tool('kind')} delete cluster --name ${CLUSTER}   # when done`);
    say();
    say(`Done in ${((Date.now() - started) / 1000).toFixed(0)} s (${mode} images).`);
  } finally {
    await proxy.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
