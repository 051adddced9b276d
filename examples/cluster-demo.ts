/**
 * `npm run demo`: the product end to end in a local kind cluster, then one
 * request followed from its trace to the flame graph of exactly that request.
 *
 * Brings up (or reuses) the kind cluster "span-profiling-demo", installs the
 * chart, Pyroscope and Jaeger, a SpanProfiling and the demo shop in an
 * opted-in namespace, sends the shop traffic, and prints for the slowest
 * recent request: its trace, its span, and the top functions of its span
 * profile; then how to look at it all from the host. The cluster is kept:
 * run it again to redeploy in seconds, or delete it with the command printed.
 *
 * SPANPROF_E2E_IMAGES=local (default, no registry needed) or published.
 */
import { buildImages, imagesMode, KindCluster } from '../e2e/harness/cluster';
import { tagOf } from '../e2e/harness/jaeger';
import { CPU_PROFILE_TYPE, selfTimes, type Flamegraph } from '../e2e/harness/pyroscope';
import {
  deployWorkloads,
  eventually,
  installOperator,
  OBSERVABILITY,
  profiledServerSpans,
  routeOf,
  sendTraffic,
  serviceUrl,
  SHOP_NAMESPACE,
  spanProfile,
  type ShopName,
} from '../e2e/harness/stack';
import { tool } from '../e2e/harness/toolchain';

const CLUSTER = 'span-profiling-demo';
const SHOP: ShopName = 'shop';

const say = (line = ''): void => void process.stdout.write(`${line}\n`);
const step = (line: string): void => say(`\u25b8 ${line}`);
const ms = (micros: number): string => `${(micros / 1000).toFixed(1)} ms`;

interface Node {
  name: string;
  total: number;
  self: number;
  children: Node[];
}

/** Pyroscope's flame graph levels (offset, total, self, name per node; offsets relative) as a tree. */
function flameTree(fg: Flamegraph): Node | undefined {
  const names = fg.flamegraph?.names ?? [];
  const levels = fg.flamegraph?.levels ?? [];
  let parents: { x: number; node: Node }[] = [];
  let root: Node | undefined;
  for (const level of levels) {
    const v = level.values.map(Number);
    const placed: { x: number; node: Node }[] = [];
    let x = 0;
    for (let i = 0; i + 3 < v.length; i += 4) {
      x += v[i]!;
      const node: Node = { name: names[v[i + 3]!] ?? '?', total: v[i + 1]!, self: v[i + 2]!, children: [] };
      const parent = parents.find((p) => x >= p.x && x < p.x + p.node.total);
      if (parent !== undefined) parent.node.children.push(node);
      else root ??= node;
      placed.push({ x, node });
      x += v[i + 1]!;
    }
    parents = placed;
  }
  return root;
}

/**
 * The flame graph as indented text: frames with at least `min` of the time,
 * heaviest first. Anonymous functions are folded into their callers.
 */
function printFlame(node: Node, all: number, depth = 0, min = 0.05): void {
  const share = node.total / all;
  if (share < min || depth > 30) return;
  const shown = !node.name.startsWith('(anonymous');
  if (shown) say(`    ${'  '.repeat(depth)}${node.name}  ${(share * 100).toFixed(0)}%  ${'\u2588'.repeat(Math.max(1, Math.round(share * 30)))}`);
  for (const child of [...node.children].sort((a, b) => b.total - a.total)) printFlame(child, all, shown ? depth + 1 : depth, min);
}

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
    const slowest = spans.reduce((a, b) => (b.duration > a.duration ? b : a));
    const trace = spans.filter((s) => s.traceID === slowest.traceID);

    step('waiting for its span profile in Pyroscope');
    let profile = await eventually('the span profile', async () => {
      const fg = await spanProfile(proxy.url, SHOP, [slowest.spanID], since);
      return Number(fg.flamegraph?.total ?? 0) > 0 ? fg : undefined;
    }, 60_000).catch(() => undefined);
    let scope = 'this span';
    if (profile === undefined) {
      // A request shorter than the sampling interval may have no CPU sample of its own.
      scope = `all ${routeOf(slowest)} spans (this one has no CPU sample of its own)`;
      profile = await spanProfile(proxy.url, SHOP, spans.filter((s) => routeOf(s) === routeOf(slowest)).map((s) => s.spanID), since);
    }

    say();
    say(`The slowest recent request to the shop: GET ${routeOf(slowest)}${tagOf(slowest, 'url.query') !== undefined ? `?${String(tagOf(slowest, 'url.query'))}` : ''} took ${ms(slowest.duration)}`);
    say(`  trace    ${slowest.traceID}  (${trace.length} span${trace.length === 1 ? '' : 's'} of service ${SHOP} in it)`);
    say(`  span     ${slowest.spanID}  ${slowest.operationName}  pyroscope.profile.id=${String(tagOf(slowest, 'pyroscope.profile.id'))}`);
    say();
    const total = Number(profile.flamegraph?.total ?? 0);
    say(`Top functions of the span profile of ${scope} (CPU self time, ${(total / 1e6).toFixed(0)} ms sampled):`);
    const top = [...selfTimes(profile).entries()].filter(([name]) => name !== 'total').sort((a, b) => b[1] - a[1]).slice(0, 8);
    for (const [name, self] of top) say(`  ${((self / total) * 100).toFixed(0).padStart(3)}%  ${(self / 1e6).toFixed(1).padStart(7)} ms  ${name}`);
    say();
    say('Its flame graph (frames with 5% or more of the time):');
    const tree = flameTree(profile);
    if (tree !== undefined) printFlame(tree, tree.total);

    const body = JSON.stringify({ profileTypeID: CPU_PROFILE_TYPE, labelSelector: `{service_name="${SHOP}"}`, spanSelector: [slowest.spanID], start: since, end: Date.now() + 60_000 });
    say();
    say('Look around from this machine:');
    say(`  ${kubectl} get spanprofiling -A                      # Ready, injected pod count`);
    say(`  ${kubectl} get pods -n shop -o yaml                  # the injected init container, volume, env`);
    say(`  ${kubectl} -n ${OBSERVABILITY} port-forward svc/jaeger 16686 &`);
    say(`  curl -s http://127.0.0.1:16686/api/traces/${slowest.traceID}     # the trace (Jaeger's UI, where the image has it: http://127.0.0.1:16686/trace/${slowest.traceID})`);
    say(`  ${kubectl} -n ${OBSERVABILITY} port-forward svc/pyroscope 4040 &`);
    say(`  curl -s -X POST -H 'content-type: application/json' http://127.0.0.1:4040/querier.v1.QuerierService/SelectMergeSpanProfile -d '${body}'`);
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
