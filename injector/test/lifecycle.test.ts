/**
 * The agent as a guest in someone else's process: exit and signal behaviour,
 * loading twice, bad configuration, backends that are down, slow or failing,
 * no native prebuild, the kill switch, and ES module apps.
 */
import { strict as assert } from 'node:assert';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AGENT, AppProcess, FIXTURES, load, testNodes, waitFor } from './harness/app-process';
import { agentEnv, receiversPerTest, serverSpans } from './harness/agent-env';
import { timeShare } from './harness/attribution';
import type { ReceivedSample } from './harness/pyroscope-receiver';

const SERVER = path.join(FIXTURES, 'server.js');
const CLOSED_PORT_URL = 'http://127.0.0.1:9';
const work = (n: number) => Array.from({ length: n }, (_, i) => `/work?fn=alpha&ms=1&rounds=3&i=${i}`);

describe('agent lifecycle and faults', function () {
  this.timeout(60_000);
  const bed = receiversPerTest();

  it('uploads before a natural exit and keeps the exit code (profiling start-up with SPANPROFILING_PROFILE_STARTUP)', async () => {
    bed.app = await AppProcess.start({ script: path.join(FIXTURES, 'exit-code.js'), env: agentEnv(bed.pyroscope, bed.otlp, { SPANPROFILING_PROFILE_STARTUP: 'true' }), waitForPort: false });
    const exit = await bed.app!.exited;
    assert.deepEqual(exit, { code: 3, signal: null });
    assert.ok(bed.pyroscope.cpuProfiles().length > 0, 'the last profile was uploaded on beforeExit');
    assert.ok(
      bed.pyroscope.cpuProfiles().some((p) => p.samples.some((s) => s.stack.includes('busyUntilTheEnd'))),
      'it holds the work done before the exit',
    );
  });

  it('does not start the profiler in a script that ends at once, before its first span', async () => {
    // Only the env detector: the file-reading ones would give the event loop a turn of their own.
    const env = agentEnv(bed.pyroscope, bed.otlp, { PYROSCOPE_LOG_LEVEL: 'debug', OTEL_NODE_RESOURCE_DETECTORS: 'env' });
    bed.app = await AppProcess.start({ script: path.join(FIXTURES, 'ends-at-once.js'), env, waitForPort: false });
    assert.deepEqual(await bed.app.exited, { code: 3, signal: null });
    assert.doesNotMatch(bed.app.stderr, /profiling agent-test to/, 'the profiler never started');
    assert.equal(bed.pyroscope.requests.length, 0, 'nothing to upload');
  });

  it('starts the profiler at the first span, so even the first request of a server is profiled', async () => {
    bed.app = await AppProcess.start({ script: SERVER, env: agentEnv(bed.pyroscope, bed.otlp) });
    // At once: before the deferred start would have begun.
    await load(bed.app.port, ['/work?fn=alpha&ms=5&rounds=2'], 1);
    await waitFor('the span', () => serverSpans(bed.otlp.spans).length >= 1);
    await bed.app.stop();
    const span = serverSpans(bed.otlp.spans)[0]!;
    assert.equal(span.attributes['pyroscope.profile.id'], span.spanId);
  });

  it('leaves SIGINT as deadly as without the agent', async () => {
    bed.app = await AppProcess.start({ script: SERVER, env: agentEnv(bed.pyroscope, bed.otlp) });
    await load(bed.app!.port, work(5), 2);
    assert.deepEqual(await bed.app!.stop('SIGINT'), { code: null, signal: 'SIGINT' });
  });

  it("lets an app's own SIGTERM handler decide how the process ends", async () => {
    bed.app = await AppProcess.start({ script: path.join(FIXTURES, 'sigterm-handler.js'), env: agentEnv(bed.pyroscope, bed.otlp) });
    await load(bed.app!.port, ['/', '/'], 1);
    const exit = await bed.app!.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.match(bed.app!.stdout, /app handler ran/);
  });

  it("counts an app's `once` SIGTERM handler loaded before the agent, and lets it drain", async () => {
    bed.app = await AppProcess.start({
      script: SERVER,
      env: agentEnv(bed.pyroscope, bed.otlp),
      agent: false,
      nodeArgs: ['--require', path.join(FIXTURES, 'sigterm-once-preload.js'), '--require', AGENT],
    });
    await load(bed.app.port, work(5), 2);
    assert.deepEqual(await bed.app.stop('SIGTERM'), { code: 0, signal: null });
    assert.match(bed.app.stdout, /graceful shutdown started/);
  });

  it('loads once when required twice', async () => {
    bed.app = await AppProcess.start({ script: SERVER, env: agentEnv(bed.pyroscope, bed.otlp), nodeArgs: ['--require', AGENT] });
    await load(bed.app!.port, work(10), 2);
    await waitFor('spans', () => serverSpans(bed.otlp.spans).length >= 10);
    await bed.app!.stop();
    assert.equal(bed.app!.stderr.match(/profiling agent-test to/g)?.length, 1, bed.app!.stderr);
    assert.equal(serverSpans(bed.otlp.spans).length, 10, 'one server span per request, not two');
  });

  it('gives one clear warning for a malformed value and runs with the default', async () => {
    bed.app = await AppProcess.start({ script: SERVER, env: agentEnv(bed.pyroscope, bed.otlp, { PYROSCOPE_UPLOAD_INTERVAL: 'soon', PYROSCOPE_LOG_LEVEL: 'warn' }) });
    const results = await load(bed.app!.port, work(5), 2);
    assert.ok(results.every((r) => r.status === 200));
    await bed.app!.stop();
    const warnings = bed.app!.stderr.split('\n').filter((l) => l.includes('[span-profiling] warn'));
    assert.equal(warnings.length, 1, bed.app!.stderr);
    assert.match(warnings[0]!, /PYROSCOPE_UPLOAD_INTERVAL="soon" is not a duration .* using 15000ms/);
    assert.ok(bed.pyroscope.cpuProfiles().length > 0, 'profiling still works');
  });

  it('keeps serving with both backends down, without unhandled errors, and still exits promptly', async () => {
    bed.app = await AppProcess.start({
      script: SERVER,
      env: { ...agentEnv(bed.pyroscope, bed.otlp), PYROSCOPE_SERVER_ADDRESS: CLOSED_PORT_URL, OTEL_EXPORTER_OTLP_ENDPOINT: CLOSED_PORT_URL },
      nodeArgs: ['--unhandled-rejections=strict'],
    });
    for (let round = 0; round < 3; round++) {
      const results = await load(bed.app!.port, work(20), 4);
      assert.ok(results.every((r) => r.status === 200));
      await new Promise((r) => setTimeout(r, 1000));
    }
    const started = Date.now();
    const exit = await bed.app!.stop('SIGTERM');
    assert.deepEqual(exit, { code: null, signal: 'SIGTERM' });
    assert.ok(Date.now() - started < 8000, `exit within the shutdown bound, took ${Date.now() - started}ms`);
    assert.doesNotMatch(bed.app!.stderr, /Unhandled|TypeError|ReferenceError/);
    assert.equal(bed.app!.stderr.match(/profile upload to .* failed/g)?.length, 1, `one warning per outage:\n${bed.app!.stderr}`);
    // Each failed span export says the same: one line, without a stack.
    assert.ok((bed.app!.stderr.match(/opentelemetry: .*ECONNREFUSED/g)?.length ?? 0) <= 1, `one line for the trace backend:\n${bed.app!.stderr}`);
    assert.doesNotMatch(bed.app!.stderr, /"stack"/);
  });

  it('keeps agent memory bounded while Pyroscope answers 500', async () => {
    bed.pyroscope.behaviour = { status: 500 };
    bed.app = await AppProcess.start({ script: SERVER, env: agentEnv(bed.pyroscope, bed.otlp, { PYROSCOPE_MAX_QUEUED_UPLOADS: '4' }) });
    const rss: number[] = [];
    for (let round = 0; round < 8; round++) {
      const results = await load(bed.app!.port, work(30), 4);
      assert.ok(results.every((r) => r.status === 200));
      await new Promise((r) => setTimeout(r, 700));
      rss.push(await bed.app!.rssBytes());
    }
    assert.ok(bed.pyroscope.requests.length >= 4, `uploads were attempted and retried (${bed.pyroscope.requests.length})`);
    const growth = rss[rss.length - 1]! - rss[2]!;
    assert.ok(growth < 40 * 1024 * 1024, `RSS grew ${(growth / 1048576).toFixed(1)} MiB after warm-up: ${rss.map((b) => (b / 1048576).toFixed(0)).join(', ')} MiB`);
  });

  it('bounds the final flush when Pyroscope is slow', async () => {
    bed.pyroscope.behaviour = { delayMs: 30_000 };
    bed.app = await AppProcess.start({ script: SERVER, env: agentEnv(bed.pyroscope, bed.otlp, { PYROSCOPE_SHUTDOWN_TIMEOUT_MS: '1000' }) });
    await load(bed.app!.port, work(10), 2);
    const started = Date.now();
    assert.deepEqual(await bed.app!.stop('SIGTERM', 20_000), { code: null, signal: 'SIGTERM' });
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started}ms`);
  });

  it('uploads heap profiles too when PYROSCOPE_HEAP_SAMPLING_INTERVAL_BYTES is set', async () => {
    bed.app = await AppProcess.start({ script: SERVER, env: agentEnv(bed.pyroscope, bed.otlp, { PYROSCOPE_HEAP_SAMPLING_INTERVAL_BYTES: '65536' }) });
    await load(bed.app.port, work(20), 4);
    await bed.app.stop();
    const heap = bed.pyroscope.profiles.filter((p) => p.types.includes('inuse_space:bytes'));
    assert.ok(heap.length > 0, `a heap profile arrived: ${bed.pyroscope.profiles.map((p) => p.types.join('+')).join(', ')}`);
    assert.ok(heap.every((p) => p.samples.length > 0));
  });

  it('runs at the fastest sampling rate it accepts (1 kHz): the app lives and is profiled', async () => {
    // The native profiler sizes its buffers from the profile's duration: an unbounded one aborted the process here.
    bed.app = await AppProcess.start({ script: SERVER, env: agentEnv(bed.pyroscope, bed.otlp, { PYROSCOPE_WALL_SAMPLING_INTERVAL_MICROS: '1000', SPANPROFILING_PROFILE_STARTUP: 'true' }) });
    await load(bed.app.port, work(20), 4);
    assert.deepEqual(await bed.app.stop('SIGTERM'), { code: null, signal: 'SIGTERM' });
    assert.ok(bed.pyroscope.cpuProfiles().length > 0);
  });

  it('does nothing at all with the kill switch on', async () => {
    bed.app = await AppProcess.start({ script: SERVER, env: agentEnv(bed.pyroscope, bed.otlp, { SPANPROFILING_DISABLED: 'true' }) });
    await load(bed.app!.port, work(10), 2);
    assert.deepEqual(await bed.app!.stop('SIGTERM'), { code: null, signal: 'SIGTERM' });
    assert.equal(bed.pyroscope.requests.length, 0);
    assert.equal(bed.otlp.spans.length, 0);
  });

  it('falls back to tracing only, with one warning, when no native prebuild fits', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agent-no-prebuild-'));
    try {
      cpSync(path.dirname(AGENT), dir, { recursive: true });
      rmSync(path.join(dir, 'pprof/prebuilds'), { recursive: true });
      bed.app = await AppProcess.start({ script: SERVER, env: agentEnv(bed.pyroscope, bed.otlp, { PYROSCOPE_LOG_LEVEL: 'warn' }), agent: false, nodeArgs: ['--require', path.join(dir, 'register.js')] });
      const results = await load(bed.app!.port, work(5), 2);
      assert.ok(results.every((r) => r.status === 200));
      await waitFor('spans', () => serverSpans(bed.otlp.spans).length >= 5);
      await bed.app!.stop();
      const warnings = bed.app!.stderr.split('\n').filter((l) => l.includes('[span-profiling] warn'));
      assert.equal(warnings.length, 1, bed.app!.stderr);
      assert.match(warnings[0]!, /profiling is off: no native profiler for Node v\d+.* Tracing continues/);
      assert.equal(bed.pyroscope.requests.length, 0);
      for (const span of serverSpans(bed.otlp.spans)) assert.equal(span.attributes['pyroscope.profile.id'], undefined, 'no profile id without profiles');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const node of testNodes()) {
    it(`traces and span-profiles an ES module app on ${node.label}`, async () => {
      bed.app = await AppProcess.start({ script: path.join(FIXTURES, 'express-esm.mjs'), node: node.bin, env: agentEnv(bed.pyroscope, bed.otlp) });
      await load(bed.app!.port, Array.from({ length: 20 }, (_, i) => `/orders/${i}`), 4);
      await waitFor('server spans', () => serverSpans(bed.otlp.spans).length >= 20);
      await bed.app!.stop();
      const routes = new Set(serverSpans(bed.otlp.spans).map((s) => s.attributes['http.route']));
      assert.deepEqual([...routes], ['/orders/:id'], 'express is instrumented through import');
      assert.ok(bed.otlp.spans.some((s) => s.name.startsWith('request handler')), 'express handler spans exist');
      const ids = new Set(serverSpans(bed.otlp.spans).map((s) => s.attributes['pyroscope.profile.id']));
      const hot = bed.pyroscope.cpuProfiles().flatMap((p) => p.samples).filter((s) => s.stack.includes('hotEsm'));
      assert.ok(hot.length > 0);
      const onServerSpan = (s: ReceivedSample): boolean => ids.has(s.labels['span_id']);
      const { share, rest } = timeShare(hot, onServerSpan);
      assert.ok(share >= 0.9, `hot time on a server span: ${rest}`);
      const labelled = hot.filter(onServerSpan);
      // Requests still running at a collection too: their span is named from the route express found.
      const names = new Set(labelled.map((s) => s.labels['span_name']));
      assert.deepEqual([...names], ['GET /orders/:id'], 'span_name carries the route');
    });
  }
});
