/**
 * The traces-to-profiles round trip with no Kubernetes, against the real
 * backends: an app with the agent preloaded sends traces to Jaeger and
 * profiles to Pyroscope; the test reads root spans carrying
 * pyroscope.profile.id from Jaeger's query API and asks Pyroscope exactly
 * what Grafana asks (SelectMergeSpanProfile, process_cpu CPU type) for them.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { AppProcess, FIXTURES, load } from '../../injector/test/harness/app-process';
import { jaegerTraces, startJaeger, tagOf, type Jaeger, type JaegerSpan } from '../harness/jaeger';
import { CPU_PROFILE_TYPE as PROFILE_TYPE, hotNames, pyroscopeCall, startPyroscope, type Flamegraph, type Pyroscope } from '../harness/pyroscope';
import { agentEnv } from '../harness/backends';
import { requireTools } from '../harness/toolchain';

const SERVICE = 'roundtrip';

describe('traces to profiles, against real Jaeger and Pyroscope', function () {
  this.timeout(240_000);
  let pyroscope: Pyroscope;
  let jaeger: Jaeger;
  const start = Date.now() - 60_000;
  let roots: JaegerSpan[] = [];

  before(async () => {
    requireTools('pyroscope', 'jaeger');
    [pyroscope, jaeger] = await Promise.all([startPyroscope(), startJaeger()]);
    const app = await AppProcess.start({
      script: path.join(FIXTURES, 'server.js'),
      env: { ...agentEnv(SERVICE, jaeger, pyroscope), PYROSCOPE_HEAP_SAMPLING_INTERVAL_BYTES: '65536' },
    });
    const paths = Array.from({ length: 40 }, (_, i) => `/work?fn=${i % 2 === 0 ? 'alpha' : 'beta'}&ms=4&rounds=8&i=${i}`);
    await load(app.port, paths, 6);
    await app.stop('SIGTERM');
    assert.doesNotMatch(app.stderr, /upload to .* failed/, `uploads to Pyroscope worked:\n${app.stderr}`);
    for (let i = 0; i < 50 && roots.length < paths.length; i++) {
      const traces = await jaegerTraces(jaeger.queryUrl, SERVICE);
      roots = traces.flatMap((t) => t.spans).filter((s) => tagOf(s, 'pyroscope.profile.id') !== undefined);
      if (roots.length < paths.length) await new Promise((r) => setTimeout(r, 200));
    }
  });

  after(async () => {
    await Promise.all([pyroscope?.stop(), jaeger?.stop()]);
  });

  const spansFor = (fn: string): JaegerSpan[] =>
    roots.filter((s) => String(tagOf(s, 'url.query') ?? tagOf(s, 'http.target') ?? '').includes(`fn=${fn}`));

  it('Jaeger holds the root spans with pyroscope.profile.id = span id', () => {
    assert.ok(roots.length >= 40, `${roots.length} root spans with the attribute`);
    for (const s of roots) assert.equal(tagOf(s, 'pyroscope.profile.id'), s.spanID);
  });

  it('Pyroscope lists the CPU profile type Grafana asks for, and wall and heap types', async () => {
    const types = await pyroscopeCall<{ profileTypes?: { ID: string }[] }>(pyroscope.url, 'querier.v1.QuerierService/ProfileTypes', { start, end: Date.now() + 60_000 });
    const ids = (types.profileTypes ?? []).map((t) => t.ID);
    assert.ok(ids.includes(PROFILE_TYPE), ids.join(', '));
    assert.ok(ids.some((id) => id.startsWith('wall:wall:nanoseconds')), ids.join(', '));
    assert.ok(ids.some((id) => id.startsWith('memory:inuse_space:bytes')), ids.join(', '));
  });

  for (const [fn, hot, other] of [['alpha', 'hotAlpha', 'hotBeta'], ['beta', 'hotBeta', 'hotAlpha']] as const) {
    it(`SelectMergeSpanProfile for the ${fn} requests' spans shows ${hot} and not ${other}`, async () => {
      const ids = spansFor(fn).map((s) => s.spanID);
      assert.ok(ids.length >= 10, `${ids.length} ${fn} spans`);
      const fg = await pyroscopeCall<Flamegraph>(pyroscope.url, 'querier.v1.QuerierService/SelectMergeSpanProfile', {
        profileTypeID: PROFILE_TYPE,
        labelSelector: `{service_name="${SERVICE}"}`,
        spanSelector: ids,
        start,
        end: Date.now() + 60_000,
        maxNodes: 1024,
      });
      const total = hotNames(fg);
      assert.ok((total.get(hot) ?? 0) > 0, `${hot} in the span profile: ${[...total.keys()].join(', ')}`);
      assert.equal(total.get(other) ?? 0, 0, `${other} belongs to other requests`);
    });
  }
});
