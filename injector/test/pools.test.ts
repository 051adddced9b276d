/**
 * Worker threads as real pools run them (fixtures/pools/README.md): piscina
 * with its defaults (threads started on demand, extra ones ended as soon as
 * they are idle) and with every thread ended when idle, tinypool, workerpool, a
 * `new Worker(file, { workerData })` per request that ends by itself or with
 * `process.exit`, and one ended by `worker.terminate()` in the middle of its
 * task. For each: at least 90% of the CPU the tasks measured in their hot
 * functions reaches the profiles, at least 90% of it on the span of the
 * request that dispatched it, every worker sample carries its thread's name,
 * and the process uploads one CPU and one wall profile per interval however
 * many threads came and went.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import * as path from 'node:path';
import { AppProcess, FIXTURES, load, testNodes, waitFor } from './harness/app-process';
import { OtlpReceiver } from './harness/otlp-receiver';
import { PyroscopeReceiver, type ReceivedSample } from './harness/pyroscope-receiver';
import { agentEnv, allSamples, requestQuery, serverSpans } from './harness/agent-env';
import { attribution, hotRoute } from './harness/attribution';

const SERVER = path.join(FIXTURES, 'pools', 'server.js');
const ROUTES = ['alpha', 'beta'];
const REQUESTS = 40;
const UPLOAD_INTERVAL_MS = 1000;

const getJson = <T>(port: number, p: string): Promise<T> =>
  new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(JSON.parse(body) as T));
    }).on('error', reject);
  });

const workerHot = (samples: ReceivedSample[]): ReceivedSample[] => samples.filter((s) => s.labels['thread_name'] !== undefined && ROUTES.includes(hotRoute(s.stack) ?? ''));
const hotMs = (samples: ReceivedSample[]): number => samples.reduce((n, s) => n + (s.values[0] ?? 0), 0) / 1e6;

interface PoolCase {
  pool: string;
  /** The lowest Node major the package supports. */
  minMajor: number;
  /**
   * How long each task burns its hot function, ms. A one-shot worker's profiler starts with the
   * thread, a few ms before the task: on Node 18 those ms cost about 3 ms of each task's CPU, so its
   * tasks are as long as work worth a thread of its own is.
   */
  ms: number;
  concurrency: number;
}

const POOLS: PoolCase[] = [
  { pool: 'piscina', minMajor: 20, ms: 25, concurrency: 4 },
  { pool: 'piscina-idle', minMajor: 20, ms: 25, concurrency: 4 },
  { pool: 'tinypool', minMajor: 20, ms: 25, concurrency: 4 },
  { pool: 'workerpool', minMajor: 18, ms: 25, concurrency: 4 },
  { pool: 'per-request', minMajor: 18, ms: 80, concurrency: 2 },
  { pool: 'exit', minMajor: 18, ms: 80, concurrency: 2 },
  { pool: 'terminate', minMajor: 18, ms: 60, concurrency: 2 },
];

for (const node of testNodes()) {
  describe(`worker pools as apps run them on ${node.label}`, function () {
    this.timeout(120_000);
    for (const c of POOLS.filter((p) => node.major >= p.minMajor)) {
      it(`${c.pool}: 90% of the workers' hot CPU in the profiles, 90% of it on the dispatching span, one upload per interval`, async () => {
        const pyroscope = await new PyroscopeReceiver().start();
        const otlp = await new OtlpReceiver().start();
        const startedAt = Date.now();
        const app = await AppProcess.start({
          script: SERVER,
          node: node.bin,
          env: { ...agentEnv(pyroscope, otlp), POOL: c.pool, PYROSCOPE_UPLOAD_INTERVAL: `${UPLOAD_INTERVAL_MS}ms`, PYROSCOPE_LOG_LEVEL: 'debug' },
        });
        try {
          const paths = Array.from({ length: REQUESTS }, (_, i) => `/task?fn=${ROUTES[i % 2]}&ms=${c.ms}&i=${i}`);
          const results = await load(app.port, paths, c.concurrency);
          assert.equal(results.filter((r) => r.status !== 200).length, 0, `every request succeeds with the agent loaded; the app's stderr:\n${app.stderr.slice(-3000)}`);
          const measured = await getJson<{ cpuMs: number }>(app.port, '/cpu');
          assert.ok(measured.cpuMs >= 0.5 * REQUESTS * c.ms, `the tasks measured ${measured.cpuMs.toFixed(0)} ms of hot CPU`);
          await waitFor('server spans', () => serverSpans(otlp.spans).filter((s) => s.name.startsWith('GET')).length >= REQUESTS);

          const got = await waitFor(
            `${c.pool}: 90% of ${measured.cpuMs} ms of the workers' hot CPU in the profiles`,
            () => {
              const ms = hotMs(workerHot(allSamples(pyroscope.cpuProfiles())));
              return ms >= 0.9 * measured.cpuMs ? ms : false;
            },
            20_000,
          ).catch(() => hotMs(workerHot(allSamples(pyroscope.cpuProfiles()))));
          const samples = workerHot(allSamples(pyroscope.cpuProfiles()));
          const routeBySpan = new Map(serverSpans(otlp.spans).map((s) => [s.spanId, requestQuery(s).get('fn') ?? '']));
          const result = attribution(samples, routeBySpan);
          const elapsedMs = Date.now() - startedAt;
          const cpuUploads = pyroscope.cpuProfiles().length;
          const wallUploads = pyroscope.profiles.length - cpuUploads;
          process.stdout.write(
            `      ${c.pool}: ${got.toFixed(0)} of ${measured.cpuMs.toFixed(0)} ms in the profiles (${((100 * got) / measured.cpuMs).toFixed(0)}%), ` +
              `on a span ${(result.coverage * 100).toFixed(1)}%, on the dispatching span ${(result.accuracy * 100).toFixed(1)}%, ` +
              `${cpuUploads} CPU uploads in ${(elapsedMs / 1000).toFixed(1)} s; all worker CPU ${hotMs(allSamples(pyroscope.cpuProfiles()).filter((s) => s.labels['thread_name'] !== undefined)).toFixed(0)} ms\n`,
          );
          assert.ok(samples.length > 0, "the workers' samples reach the profiles");
          for (const s of samples) assert.equal(s.labels['thread_name'], 'worker', 'every worker sample carries its thread label');
          assert.ok(got >= 0.9 * measured.cpuMs, `${got.toFixed(0)} ms of the ${measured.cpuMs.toFixed(0)} ms of hot CPU the workers measured is in the profiles`);
          assert.ok(result.coverage >= 0.9, `${(result.coverage * 100).toFixed(1)}% of the workers' hot CPU carries a span (${result.unlabelled} unlabelled samples)`);
          assert.ok(result.accuracy >= 0.9, `${(result.accuracy * 100).toFixed(1)}% of it is on the span of the request that dispatched it (${result.correct}/${result.hotSamples})`);
          // One per interval, plus the partial first and last: never one per thread.
          const intervals = Math.ceil(elapsedMs / UPLOAD_INTERVAL_MS);
          assert.ok(cpuUploads <= intervals + 2, `${cpuUploads} CPU uploads in ${intervals} intervals`);
          assert.ok(wallUploads <= intervals + 2, `${wallUploads} wall uploads in ${intervals} intervals`);
          assert.doesNotMatch(app.stderr, /\] (error|warn):|TypeError/, 'the agent reported no trouble');
        } finally {
          await app.stop('SIGKILL');
          await pyroscope.close();
          await otlp.close();
        }
      });
    }
  });
}
