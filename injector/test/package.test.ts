/**
 * The library form as a user gets it: `npm pack` of the package built from
 * injector/, installed with npm into a fresh app next to the app's own
 * OpenTelemetry packages, running examples/already-otel/app.js with each kind
 * of tracer provider, in both span-context modes (hooks, and cped on Node 24+).
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AppProcess, REPO_ROOT, load, testNodes, waitFor } from './harness/app-process';
import { OtlpReceiver } from './harness/otlp-receiver';
import { PyroscopeReceiver } from './harness/pyroscope-receiver';
import { allSamples, serverSpans } from './harness/agent-env';

const EXAMPLE = path.join(REPO_ROOT, 'examples/already-otel');
const PACKAGE = path.join(REPO_ROOT, 'injector/dist/package');
const PROVIDERS = ['node-sdk', 'node-tracer-provider', 'basic-tracer-provider'] as const;
const REQUESTS = 30;

/** Every installed copy of a package under a node_modules tree. */
function copiesOf(root: string, name: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    const modules = path.join(dir, 'node_modules');
    if (!existsSync(modules)) return;
    if (existsSync(path.join(modules, name, 'package.json'))) found.push(path.join(modules, name));
    for (const entry of readdirSync(modules)) {
      const scoped = entry.startsWith('@') ? readdirSync(path.join(modules, entry)).map((e) => path.join(entry, e)) : [entry];
      for (const pkg of scoped) walk(path.join(modules, pkg));
    }
  };
  walk(root);
  return found;
}

describe('the npm package @span-profiling/node in a fresh app', function () {
  this.timeout(600_000);
  let tmp: string;
  let appDir: string;

  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'span-profiling-package-'));
    const tarball = execFileSync('npm', ['pack', PACKAGE, '--pack-destination', tmp, '--silent'], { encoding: 'utf8' }).trim().split('\n').pop()!;
    appDir = path.join(tmp, 'app');
    cpSync(EXAMPLE, appDir, { recursive: true, filter: (src) => !src.includes('node_modules') });
    const pkg = JSON.parse(readFileSync(path.join(appDir, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    pkg.dependencies['@span-profiling/node'] = `file:${path.join(tmp, tarball)}`;
    writeFileSync(path.join(appDir, 'package.json'), JSON.stringify(pkg, null, 2));
    // From the npm registry (or npm's cache), as a user installs it.
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: appDir, stdio: ['ignore', 'ignore', 'inherit'] });
  });

  after(() => {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it("installs no second copy of @opentelemetry/api: the package uses the app's", () => {
    assert.deepEqual(copiesOf(appDir, '@opentelemetry/api'), [path.join(appDir, 'node_modules/@opentelemetry/api')]);
    const bundle = readFileSync(path.join(appDir, 'node_modules/@span-profiling/node/index.js'), 'utf8');
    assert.doesNotMatch(bundle, /Attempted duplicate registration/, 'the API is not bundled');
    assert.ok(existsSync(path.join(appDir, 'node_modules/@span-profiling/node/index.d.ts')));
  });

  // hooks on the Node running mocha (when older than 24), cped on the first Node 24+.
  const nodes = testNodes().filter((n, i, all) => (n.major < 24 && i === 0) || (n.major >= 24 && all.findIndex((m) => m.major >= 24) === i));
  for (const node of nodes) {
    for (const provider of PROVIDERS) {
      it(`links the app's spans to profiles with a ${provider}, on ${node.label} (${node.major >= 24 ? 'cped' : 'hooks'})`, async () => {
        const otlp = await new OtlpReceiver().start();
        const pyroscope = await new PyroscopeReceiver().start();
        let app: AppProcess | undefined;
        try {
          app = await AppProcess.start({
            script: path.join(appDir, 'app.js'),
            node: node.bin,
            agent: false,
            env: {
              PORT: '0',
              TRACER_PROVIDER: provider,
              OTEL_EXPORTER_OTLP_ENDPOINT: otlp.httpUrl,
              OTEL_BSP_SCHEDULE_DELAY: '200',
              PYROSCOPE_SERVER_ADDRESS: pyroscope.url,
              PYROSCOPE_UPLOAD_INTERVAL: '1s',
              PYROSCOPE_LOG_LEVEL: 'info',
            },
          });
          const results = await load(app.port, Array.from({ length: REQUESTS }, (_, i) => `/checkout?items=30&i=${i}`), 3);
          assert.deepEqual(results.filter((r) => r.status !== 200), []);
          const loadEnd = Date.now();
          await waitFor('the server spans', () => serverSpans(otlp.spans).length >= REQUESTS, 30_000);
          await waitFor('the profiles of the whole load', () => pyroscope.cpuProfiles().some((p) => Number(p.query.get('from')) * 1000 >= loadEnd - 1000), 30_000);
          assert.match(app.stderr, new RegExp(`span context: ${node.major >= 24 ? 'cped' : 'hooks'}\\)`));

          const servers = serverSpans(otlp.spans);
          for (const s of servers) assert.equal(s.attributes['pyroscope.profile.id'], s.spanId);
          const ids = new Set(servers.map((s) => s.spanId));
          const hot = allSamples(pyroscope.cpuProfiles()).filter((s) => s.stack.includes('priceBasket'));
          assert.ok(hot.length >= 10, `hot samples: ${hot.length}`);
          const cpu = (list: typeof hot): number => list.reduce((sum, s) => sum + (s.values[0] ?? 0), 0);
          const share = cpu(hot.filter((s) => ids.has(s.labels['span_id'] ?? ''))) / cpu(hot);
          assert.ok(share >= 0.95, `${(share * 100).toFixed(1)}% of priceBasket's CPU on the app's exported server spans`);
          const linked = pyroscope.cpuProfiles().filter((p) => p.samples.some((s) => s.labels['span_id'] !== undefined));
          for (const p of linked) assert.equal(p.query.get('name'), 'shop{service_namespace=examples}');

          const exit = await app.stop('SIGTERM');
          assert.deepEqual(exit, { code: 0, signal: null }, "the app's own shutdown path runs");
        } finally {
          await app?.stop('SIGKILL');
          await otlp.close();
          await pyroscope.close();
        }
      });
    }
  }
});
