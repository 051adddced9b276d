/**
 * The built agent in real child processes serving concurrent HTTP, against
 * receivers that decode what arrives. Runs once per Node binary in testNodes().
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { AGENT, AppProcess, FIXTURES, load, testNodes, waitFor } from './harness/app-process';
import { OtlpReceiver } from './harness/otlp-receiver';
import { PyroscopeReceiver } from './harness/pyroscope-receiver';
import { agentEnv, allSamples, requestQuery, serverSpans } from './harness/agent-env';
import { attribution, hotRoute } from './harness/attribution';
import { AGENT_FRAME } from '../src/profiling/pprof-shape';

const SERVER = path.join(FIXTURES, 'server.js');
const HOT = ['alpha', 'beta', 'gamma', 'delta'] as const;
const VIA = ['await', 'timer', 'immediate', 'emitter', 'chain'] as const;

for (const node of testNodes()) {
  describe(`agent on ${node.label}`, function () {
    this.timeout(120_000);
    const pyroscope = new PyroscopeReceiver();
    const otlp = new OtlpReceiver();
    let app: AppProcess;
    let exit: { code: number | null; signal: NodeJS.Signals | null };
    const paths: string[] = [];

    before(async () => {
      await pyroscope.start();
      await otlp.start();
      app = await AppProcess.start({ script: SERVER, node: node.bin, env: agentEnv(pyroscope, otlp) });
      for (let i = 0; i < 60; i++) paths.push(`/work?fn=${HOT[i % HOT.length]}&via=${VIA[i % VIA.length]}&ms=3&rounds=8&i=${i}`);
      const results = await load(app.port, paths, 8);
      assert.deepEqual(results.filter((r) => r.status !== 200), [], 'every request succeeds with the agent loaded');
      await waitFor('server spans', () => serverSpans(otlp.spans).length >= paths.length);
      exit = await app.stop('SIGTERM');
    });

    after(async () => {
      await app?.stop('SIGKILL');
      await pyroscope.close();
      await otlp.close();
    });

    it('carries the span with the mechanism this runtime has', () => {
      // Node 24+ keeps AsyncLocalStorage in AsyncContextFrame; older ones (without the flag) need async hooks.
      const expected = node.major >= 24 ? 'cped' : 'hooks';
      assert.match(app.stderr, new RegExp(`span context: ${expected}\\)`));
    });

    it('still dies of SIGTERM as an app with no handler does, after uploading', () => {
      assert.deepEqual(exit, { code: null, signal: 'SIGTERM' });
      assert.ok(pyroscope.cpuProfiles().length > 0, 'the final flush uploaded a CPU profile');
    });

    it('marks each sampled local-root span with pyroscope.profile.id = its span id', () => {
      const servers = serverSpans(otlp.spans);
      assert.ok(servers.length >= paths.length);
      for (const span of servers) {
        assert.equal(span.parentSpanId, '', 'server spans are local roots here');
        assert.equal(span.attributes['pyroscope.profile.id'], span.spanId);
        assert.match(span.spanId, /^[0-9a-f]{16}$/);
      }
      for (const span of otlp.spans.filter((s) => s.parentSpanId !== '')) {
        assert.equal(span.attributes['pyroscope.profile.id'], undefined, 'only local roots carry the attribute by default');
      }
    });

    it('uploads CPU profiles under the type Grafana asks for, and wall profiles', () => {
      const cpu = pyroscope.cpuProfiles();
      assert.ok(cpu.length > 0);
      const wall = pyroscope.profiles.filter((p) => p.types.includes('wall:nanoseconds'));
      assert.ok(wall.length > 0, 'wall profiles uploaded');
      for (const p of pyroscope.profiles) {
        assert.equal(p.query.get('name'), 'agent-test{}');
        assert.equal(p.query.get('format'), 'pprof');
        assert.equal(p.query.get('spyName'), 'nodespy');
        assert.ok(Number(p.query.get('from')) < Number(p.query.get('until')), 'from < until');
        assert.ok(p.sampleCount <= 16_000 && p.uncompressedBytes <= 4 * 1024 * 1024, 'within Pyroscope limits');
        for (const s of p.samples) for (const key of Object.keys(s.labels)) assert.match(key, /^[a-z_]+$/);
      }
    });

    it('labels samples only with span ids of exported spans', () => {
      const profileIds = new Set(otlp.spans.map((s) => s.attributes['pyroscope.profile.id']).filter((v) => v !== undefined));
      const labelled = allSamples(pyroscope.cpuProfiles()).filter((s) => s.labels['span_id'] !== undefined);
      assert.ok(labelled.length > 0, 'some CPU samples carry span_id');
      for (const s of labelled) {
        assert.ok(profileIds.has(s.labels['span_id']), `span_id ${s.labels['span_id']} is a pyroscope.profile.id of an exported span`);
        assert.match(s.labels['span_id']!, /^[0-9a-f]{16}$/);
      }
      const names = new Set(labelled.map((s) => s.labels['span_name']));
      assert.ok([...names].every((n) => typeof n === 'string' && n.startsWith('GET')), `span_name is the server span's name: ${[...names].join(', ')}`);
    });

    it("shows the app's frames with none of the agent's between them, and the agent's own work under its name", () => {
      const samples = allSamples(pyroscope.cpuProfiles());
      const agentDir = path.dirname(AGENT) + path.sep;
      const hot = samples.filter((s) => hotRoute(s.stack) !== undefined);
      assert.ok(hot.length > 0);
      for (const s of hot) {
        assert.deepEqual(s.files.filter((f) => f.startsWith(agentDir)), [], `no agent frame in a hot stack: ${[...s.stack].reverse().join(' > ')}`);
        // Root first: Node's HTTP parser hands the request to the server's own handler, as without the agent.
        const root = [...s.stack].reverse();
        if (root.includes('parserOnIncoming')) assert.equal(root[root.indexOf('parserOnIncoming') + 1], 'emit', root.join(' > '));
      }
      for (const s of samples) {
        // Leaf first: the agent's frames come only before (leafward of) the frame that names them.
        const named = s.stack.indexOf(AGENT_FRAME);
        const last = s.files.reduce((at, f, i) => (f.startsWith(agentDir) ? i : at), -1);
        assert.ok(last < named || last === -1, `agent frames only under '${AGENT_FRAME}': ${[...s.stack].reverse().join(' > ')}`);
      }
    });

    it("puts the CPU a request burns on that request's span, across every kind of continuation", () => {
      const fnBySpan = new Map<string, string>();
      const viaBySpan = new Map<string, string>();
      for (const span of serverSpans(otlp.spans)) {
        const q = requestQuery(span);
        fnBySpan.set(span.spanId, q.get('fn') ?? '');
        viaBySpan.set(span.spanId, q.get('via') ?? '');
      }
      assert.ok([...fnBySpan.values()].every((f) => f !== ''), 'every server span records its query');
      const samples = allSamples(pyroscope.cpuProfiles());
      for (const via of VIA) {
        const result = attribution(samples, fnBySpan, (spanId) => viaBySpan.get(spanId) === via);
        assert.ok(result.hotSamples >= 10, `enough CPU samples for via=${via}: ${result.hotSamples}`);
        assert.ok(result.accuracy >= 0.95, `via=${via}: ${(result.accuracy * 100).toFixed(1)}% of hot CPU time on its own span (${result.correct}/${result.hotSamples} samples)`);
      }
      const overall = attribution(samples, fnBySpan);
      assert.ok(overall.coverage >= 0.95, `${(overall.coverage * 100).toFixed(1)}% of hot CPU time carries a span label (${overall.unlabelled} unlabelled samples)`);
    });
  });
}
