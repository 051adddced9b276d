/**
 * Apps that run OpenTelemetry themselves, with the real npm packages, the
 * agent preloaded as the operator does it, and each app exporting to its own
 * receiver. For each setup, in both orders where order applies, against the
 * same app without the agent: the app's exporter gets the same spans (count,
 * names, service, sampler decisions), the hot function's CPU is labelled with
 * span ids the app exported, no duplicate registration, and no
 * `pyroscope.profile.id` on a span whose samples are not labelled.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildSync } from 'esbuild';
import { AGENT, AppProcess, FIXTURES, load, testNodes, waitFor } from './harness/app-process';
import { OtlpReceiver, type ReceivedSpan } from './harness/otlp-receiver';
import { PyroscopeReceiver, type ReceivedSample } from './harness/pyroscope-receiver';
import { agentEnv, allSamples } from './harness/agent-env';

const DIR = path.join(FIXTURES, 'own-otel');
const APP = path.join(DIR, 'app.js');
const TRACING = path.join(DIR, 'tracing.js');
const REGISTER = '@opentelemetry/auto-instrumentations-node/register';
const WORK_REQUESTS = 60;
const HEALTH_REQUESTS = 10;

interface Setup {
  name: string;
  /** The app's entry (default: app.js). */
  script?: () => string;
  /** Preloads in order; AGENT marks where the agent goes. */
  preloads: string[];
  env: Record<string, string>;
  /** The register script exports where OTEL_EXPORTER_OTLP_ENDPOINT points, as the agent would. */
  sharedEndpoint?: boolean;
  service: string;
  namespace?: string;
}

const SETUPS: Setup[] = [
  { name: 'NodeSDK started in the main file', preloads: [AGENT], env: { APP_OTEL: 'sdk' }, service: 'shop-in-code', namespace: 'team-a' },
  { name: "the app's --require ./tracing.js, before the agent", preloads: [TRACING, AGENT], env: {}, service: 'shop-in-code', namespace: 'team-a' },
  { name: "the app's --require ./tracing.js, after the agent", preloads: [AGENT, TRACING], env: {}, service: 'shop-in-code', namespace: 'team-a' },
  { name: 'auto-instrumentations-node/register, before the agent', preloads: [REGISTER, AGENT], env: { OTEL_SERVICE_NAME: 'shop-register' }, sharedEndpoint: true, service: 'shop-register' },
  { name: 'auto-instrumentations-node/register, after the agent', preloads: [AGENT, REGISTER], env: { OTEL_SERVICE_NAME: 'shop-register' }, sharedEndpoint: true, service: 'shop-register' },
  { name: 'its own NodeTracerProvider, spans from provider.getTracer()', preloads: [AGENT], env: { APP_OTEL: 'provider' }, service: 'shop-provider', namespace: 'team-b' },
  { name: 'a BasicTracerProvider registered through the API', preloads: [AGENT], env: { APP_OTEL: 'basic' }, service: 'shop-basic' },
  // The API insists on one exact version for every registration: the agent adopts the app's.
  { name: 'a BasicTracerProvider registered through an older @opentelemetry/api (1.8.0)', preloads: [AGENT], env: { APP_OTEL: 'api-1.8' }, service: 'shop-basic' },
  // A bundled app's copy of @opentelemetry/api has no package.json to tell its version: it is let through as the same version.
  { name: 'NodeSDK in an esbuild bundle of the app', script: bundledApp, preloads: [AGENT], env: { APP_OTEL: 'sdk' }, service: 'shop-in-code', namespace: 'team-a' },
];

let bundle: string | undefined;
/** app.js and its node_modules (express, the OpenTelemetry SDK) in one file, as apps ship in images. */
function bundledApp(): string {
  if (bundle === undefined) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'span-profiling-bundle-'));
    bundle = path.join(dir, 'app.js');
    buildSync({ entryPoints: [APP], outfile: bundle, bundle: true, platform: 'node', format: 'cjs', target: 'node18', logLevel: 'error' });
  }
  return bundle;
}
after(() => {
  if (bundle !== undefined) rmSync(path.dirname(bundle), { recursive: true, force: true });
});

interface Run {
  app: AppProcess;
  appSpans: ReceivedSpan[];
  agentSpans: ReceivedSpan[];
  pyroscope: PyroscopeReceiver;
}

/** Runs the app once (with or without the agent), drives its requests and waits until its spans and profiles are in. */
async function runApp(node: string, setup: Setup, withAgent: boolean, receivers: { app: OtlpReceiver; agent: OtlpReceiver; pyroscope: PyroscopeReceiver }): Promise<Run> {
  const preloads = setup.preloads.filter((p) => withAgent || p !== AGENT).flatMap((p) => ['--require', p]);
  const env = {
    ...agentEnv(receivers.pyroscope, setup.sharedEndpoint ? receivers.app : receivers.agent),
    OTEL_SERVICE_NAME: 'from-the-environment',
    APP_OTLP_URL: receivers.app.httpUrl,
    OTEL_NODE_RESOURCE_DETECTORS: 'env,host,os',
    ...setup.env,
  };
  const app = await AppProcess.start({ script: setup.script?.() ?? APP, node, agent: false, nodeArgs: preloads, env });
  const paths = [...Array.from({ length: WORK_REQUESTS }, (_, i) => `/work?i=${i}`), ...Array.from({ length: HEALTH_REQUESTS }, (_, i) => `/health?i=${i}`)];
  const results = await load(app.port, paths, 4);
  assert.deepEqual(results.filter((r) => r.status !== 200), [], `every request succeeds; stderr:\n${app.stderr}`);
  const loadEnd = Date.now();
  const expectedRoots = setup.sharedEndpoint ? WORK_REQUESTS + HEALTH_REQUESTS : WORK_REQUESTS;
  await waitFor(`the app's ${expectedRoots} request spans`, () => roots(receivers.app.spans).length >= expectedRoots, 30_000);
  if (withAgent) {
    // A profile whose window starts after the load holds everything sampled during it.
    await waitFor('the profiles of the whole load', () => receivers.pyroscope.cpuProfiles().some((p) => Number(p.query.get('from')) * 1000 >= loadEnd - 1000), 30_000);
  }
  await app.stop('SIGKILL');
  return { app, appSpans: [...receivers.app.spans], agentSpans: [...receivers.agent.spans], pyroscope: receivers.pyroscope };
}

/** The request's own spans: local roots (no parent in the process). */
function roots(spans: ReceivedSpan[]): ReceivedSpan[] {
  return spans.filter((s) => s.parentSpanId === '');
}

function nameCounts(spans: ReceivedSpan[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const s of spans) counts[s.name] = (counts[s.name] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}

/** A span of a /work request: the app's own `work` span, or the server span of GET /work. */
function isWork(span: ReceivedSpan): boolean {
  return span.name === 'work' || String(span.attributes['url.path'] ?? span.attributes['http.target'] ?? '').startsWith('/work');
}

const isHot = (s: ReceivedSample): boolean => s.stack.includes('hotHash');
const cpuOf = (samples: ReceivedSample[]): number => samples.reduce((sum, s) => sum + (s.values[0] ?? 0), 0);

/** An app whose provider has no context manager: nothing can carry its spans into samples, so none is marked. */
describe('an app whose tracer provider has no context manager', function () {
  this.timeout(60_000);
  const receivers = { app: new OtlpReceiver(), agent: new OtlpReceiver(), pyroscope: new PyroscopeReceiver() };
  before(() => Promise.all([receivers.app.start(), receivers.agent.start(), receivers.pyroscope.start()]));
  after(() => Promise.all([receivers.app.close(), receivers.agent.close(), receivers.pyroscope.close()]));

  it('gets its spans, none with pyroscope.profile.id, and no context manager from the agent', async () => {
    const setup: Setup = { name: 'no context', preloads: [AGENT], env: { APP_OTEL: 'no-context' }, service: 'shop-basic' };
    const run = await runApp(process.execPath, setup, true, receivers);
    assert.equal(roots(run.appSpans).filter(isWork).length, WORK_REQUESTS);
    assert.deepEqual(run.appSpans.filter((s) => s.attributes['pyroscope.profile.id'] !== undefined), []);
    assert.deepEqual(allSamples(run.pyroscope.cpuProfiles()).filter((s) => s.labels['span_id'] !== undefined), []);
    assert.match(run.app.stderr, /tracing: app's SDK/);
  });
});

for (const node of testNodes()) {
  describe(`apps with their own OpenTelemetry, on ${node.label}`, function () {
    this.timeout(180_000);

    for (const setup of SETUPS) {
      describe(setup.name, () => {
        const receivers = { app: new OtlpReceiver(), agent: new OtlpReceiver(), pyroscope: new PyroscopeReceiver() };
        const baselineReceivers = { app: new OtlpReceiver(), agent: new OtlpReceiver(), pyroscope: new PyroscopeReceiver() };
        let run: Run;
        let baseline: Run;

        before(async () => {
          for (const r of [receivers, baselineReceivers]) await Promise.all([r.app.start(), r.agent.start(), r.pyroscope.start()]);
          baseline = await runApp(node.bin, setup, false, baselineReceivers);
          run = await runApp(node.bin, setup, true, receivers);
        });

        after(async () => {
          for (const r of [receivers, baselineReceivers]) await Promise.all([r.app.close(), r.agent.close(), r.pyroscope.close()]);
        });

        it("leaves the app's tracing as it is without the agent: the same spans, service and sampler decisions", () => {
          assert.deepEqual(nameCounts(run.appSpans), nameCounts(baseline.appSpans));
          // The register script brings no sampler of the app's: /health is traced there.
          assert.equal(roots(run.appSpans).length, setup.sharedEndpoint ? WORK_REQUESTS + HEALTH_REQUESTS : WORK_REQUESTS, 'one root per request the app samples');
          assert.equal(roots(run.appSpans).filter(isWork).length, WORK_REQUESTS);
          for (const s of run.appSpans) {
            assert.equal(s.resource['service.name'], setup.service);
            assert.equal(s.resource['service.namespace'], setup.namespace);
          }
          if (!setup.sharedEndpoint) assert.deepEqual(run.agentSpans, [], 'the agent exports nothing of its own');
          assert.match(run.app.stderr, /tracing: app's SDK/);
        });

        it('prints no duplicate-registration error', () => {
          assert.doesNotMatch(run.app.stderr, /duplicate registration|does not match previously registered/i, run.app.stderr);
          assert.doesNotMatch(baseline.app.stderr, /duplicate registration/i);
        });

        it("labels the hot function's CPU with span ids the app exported", () => {
          const exported = new Set(run.appSpans.map((s) => s.spanId));
          const hot = allSamples(run.pyroscope.cpuProfiles()).filter(isHot);
          assert.ok(hot.length >= 20, `enough hot samples: ${hot.length}`);
          const onExported = hot.filter((s) => exported.has(s.labels['span_id'] ?? ''));
          const share = cpuOf(onExported) / cpuOf(hot);
          assert.ok(share >= 0.95, `${(share * 100).toFixed(1)}% of hot CPU on exported spans (${onExported.length}/${hot.length} samples)`);
        });

        it('puts pyroscope.profile.id only on spans whose samples are labelled', () => {
          const labelled = new Set(allSamples(run.pyroscope.cpuProfiles()).map((s) => s.labels['span_id']).filter((id) => id !== undefined));
          const marked = run.appSpans.filter((s) => s.attributes['pyroscope.profile.id'] !== undefined);
          for (const s of marked) assert.equal(s.attributes['pyroscope.profile.id'], s.spanId);
          assert.deepEqual(marked.filter((s) => s.parentSpanId !== ''), [], 'only local roots are marked');
          const work = marked.filter(isWork);
          assert.equal(work.length, WORK_REQUESTS, 'each /work request root is marked');
          const markedIds = new Set(marked.map((s) => s.spanId));
          assert.deepEqual([...labelled].filter((id) => !markedIds.has(id!)), [], 'every labelled sample points at a marked span');
          // Each burns 20 ms of CPU, about two samples at 100 Hz; a starved sampling thread on a busy machine misses some.
          const withSamples = work.filter((s) => labelled.has(s.spanId));
          assert.ok(withSamples.length >= work.length * 0.8, `${withSamples.length}/${work.length} marked /work spans have labelled samples`);
        });

        it("uploads profiles under the spans' service_name and service_namespace", () => {
          const withSpans = run.pyroscope.cpuProfiles().filter((p) => p.samples.some((s) => s.labels['span_id'] !== undefined));
          assert.ok(withSpans.length > 0);
          const expected = `${setup.service}{${setup.namespace === undefined ? '' : `service_namespace=${setup.namespace}`}}`;
          for (const p of withSpans) assert.equal(p.query.get('name'), expected);
        });
      });
    }
  });
}
