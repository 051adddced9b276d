/**
 * Worker threads: CPU that a request hands to a worker (a plain Worker's
 * message loop, a piscina pool) appears in the profiles with the worker's own
 * stacks, labelled with the thread and with the span that dispatched it.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import * as path from 'node:path';
import { AppProcess, FIXTURES, load, testNodes, waitFor } from './harness/app-process';
import { OtlpReceiver } from './harness/otlp-receiver';
import { PyroscopeReceiver, type ReceivedSample } from './harness/pyroscope-receiver';
import { agentEnv, allSamples, requestQuery, serverSpans } from './harness/agent-env';
import { attribution, hotRoute } from './harness/attribution';

const SERVER = path.join(FIXTURES, 'workers.js');

const PISCINA = require.resolve('piscina');
const ROUTES = { plain: ['alpha', 'beta'], pool: ['gamma', 'delta'] } as const;

const get = (port: number, p: string): Promise<string> =>
  new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });

/** Samples of a worker thread (the main thread's carry no thread_name) in the hot functions of one route kind. */
const workerHot = (samples: ReceivedSample[], routes: readonly string[]): ReceivedSample[] =>
  samples.filter((s) => s.labels['thread_name'] !== undefined && routes.includes(hotRoute(s.stack) ?? ''));

/** CPU (ms) in the workers' hot functions of one route kind, as the profiles hold it. */
const profiledHotMs = (samples: ReceivedSample[], routes: readonly string[]): number => workerHot(samples, routes).reduce((n, s) => n + (s.values[0] ?? 0), 0) / 1e6;

for (const node of testNodes()) {
  // piscina 5 supports Node 20 and later.
  const kinds = node.major >= 20 ? (['plain', 'pool'] as const) : (['plain'] as const);
  describe(`worker threads on ${node.label}`, function () {
    this.timeout(120_000);
    const pyroscope = new PyroscopeReceiver();
    const otlp = new OtlpReceiver();
    let app: AppProcess;
    let measured: Record<string, number>;

    before(async () => {
      await pyroscope.start();
      await otlp.start();
      app = await AppProcess.start({ script: SERVER, node: node.bin, env: { ...agentEnv(pyroscope, otlp), PYROSCOPE_LOG_LEVEL: 'debug', PISCINA_PATH: node.major >= 20 ? PISCINA : undefined } });
      // Messages are marked once the worker's profiler said hello (until then they go unmarked, as to any thread).
      const threads = kinds.length === 2 ? 3 : 1;
      await waitFor('the workers to be profiled', () => (app.stderr.match(/worker thread \d+ is profiled/g) ?? []).length >= threads);
      const paths: string[] = [];
      for (let i = 0; i < 48; i++) for (const kind of kinds) paths.push(`/${kind}?fn=${ROUTES[kind][i % 2]}&ms=15&i=${i}`);
      const results = await load(app.port, paths, 4);
      assert.deepEqual(results.filter((r) => r.status !== 200), [], 'every request succeeds with the agent loaded');
      measured = JSON.parse(await get(app.port, '/cpu')) as Record<string, number>;
      // piscina's idle workers wait in Atomics.wait, where no timer fires: their profile goes out with the next task.
      // So, once the upload interval (1 s) has passed, a few short tasks keep both workers busy once more.
      if (kinds.length > 1) {
        await new Promise((r) => setTimeout(r, 1200));
        await load(app.port, Array.from({ length: 8 }, () => '/pool?fn=gamma&ms=10'), 2);
      }
      // The plain worker ends on its own: its last profile is sent from its exit.
      assert.equal(await get(app.port, '/stop'), 'stopped');
      await waitFor('server spans', () => serverSpans(otlp.spans).length >= paths.length);
    });

    after(async () => {
      await app?.stop('SIGKILL');
      await pyroscope.close();
      await otlp.close();
    });

    for (const kind of kinds) {
      it(`profiles the ${kind === 'plain' ? 'plain Worker' : 'piscina pool'}'s CPU with its own stacks: at least 90% of what the worker measured`, async () => {
        const expected = measured[kind]!;
        assert.ok(expected > 300, `the workers measured ${expected} ms of hot CPU`);
        const got = await waitFor(`${kind} worker profiles`, () => {
          const ms = profiledHotMs(allSamples(pyroscope.cpuProfiles()), ROUTES[kind]);
          return ms >= 0.9 * expected ? ms : false;
        }).catch(() => profiledHotMs(allSamples(pyroscope.cpuProfiles()), ROUTES[kind]));
        assert.ok(got >= 0.9 * expected, `${got.toFixed(0)} ms of ${expected} ms of the worker's hot CPU is in the profiles`);
      });

      it(`labels the ${kind} worker's samples with the thread and with the span that dispatched the work`, () => {
        const routeBySpan = new Map(serverSpans(otlp.spans).map((s) => [s.spanId, requestQuery(s).get('fn') ?? '']));
        const samples = workerHot(allSamples(pyroscope.cpuProfiles()), ROUTES[kind]);
        assert.ok(samples.length > 0);
        for (const s of samples) assert.equal(s.labels['thread_name'], 'worker');
        // Hot functions run in workers only in this app: none of their CPU is on the main thread.
        assert.equal(allSamples(pyroscope.cpuProfiles()).filter((s) => s.labels['thread_name'] === undefined && hotRoute(s.stack) !== undefined).length, 0);
        const result = attribution(samples, routeBySpan);
        assert.ok(result.coverage >= 0.95, `${(result.coverage * 100).toFixed(1)}% of the ${kind} worker's hot CPU carries a span (${result.unlabelled} unlabelled samples)`);
        assert.ok(result.accuracy >= 0.95, `${(result.accuracy * 100).toFixed(1)}% of it is on the span of the request that dispatched it (${result.correct}/${result.hotSamples})`);
      });
    }

    it("takes the workers' CPU out of the main thread's 'Non JS threads activity', counting it once", () => {
      const samples = allSamples(pyroscope.cpuProfiles());
      const nonJs = samples.filter((s) => s.stack[0] === 'Non JS threads activity').reduce((n, s) => n + (s.values[0] ?? 0), 0) / 1e6;
      const workers = kinds.reduce((n, kind) => n + measured[kind]!, 0);
      assert.ok(nonJs < 0.5 * workers, `'Non JS threads activity' holds ${nonJs.toFixed(0)} ms against ${workers} ms of worker CPU`);
    });

    it("never lets a marker reach the app's listeners", () => {
      assert.equal(measured['strays'], 0);
    });

    it('leaves the app working: the worker ended on its own, nothing on stderr but the agent', () => {
      assert.doesNotMatch(app.stderr, /error|TypeError|not profiled/i);
    });
  });
}

describe('AsyncResource as the app knows it', function () {
  this.timeout(30_000);
  it('answers instanceof, name, static helpers and runInAsyncScope the same with the agent (which notes task resources)', async () => {
    const outputs: string[] = [];
    for (const agent of [false, true]) {
      const app = await AppProcess.start({ script: path.join(FIXTURES, 'async-resource.js'), agent, waitForPort: false, env: { PYROSCOPE_SERVER_ADDRESS: 'http://127.0.0.1:9', OTEL_TRACES_EXPORTER: 'none' } });
      assert.deepEqual(await app.exited, { code: 0, signal: null }, app.stderr);
      outputs.push(app.stdout);
    }
    assert.equal(outputs[1], outputs[0]);
    assert.match(outputs[0]!, /"t_is_TaskInfo":true,"r_is_TaskInfo":false,"r_is_AR":true/);
  });
});

describe("Node's own threads", function () {
  this.timeout(60_000);
  it('leaves the ES module loader thread alone: no worker profiler there', async () => {
    const pyroscope = await new PyroscopeReceiver().start();
    const otlp = await new OtlpReceiver().start();
    // An ES module app: the agent registers its loader hook, and Node runs the hooks in a thread of its own.
    const app = await AppProcess.start({ script: path.join(FIXTURES, 'express-esm.mjs'), env: { ...agentEnv(pyroscope, otlp), PYROSCOPE_LOG_LEVEL: 'debug' } });
    try {
      const results = await load(app.port, ['/orders/1', '/orders/2'], 2);
      assert.deepEqual(results.map((r) => r.status), [200, 200]);
      await waitFor('a profile', () => pyroscope.profiles.length > 0);
      assert.match(app.stderr, /span context: (cped|hooks)/);
      assert.doesNotMatch(app.stderr, /worker thread \d+ is profiled/);
    } finally {
      await app.stop('SIGKILL');
      await pyroscope.close();
      await otlp.close();
    }
  });
});
