/**
 * `npm run bench:agent`: what the agent costs and how well it attributes, side
 * by side in one run. Figures, not assertions: this machine is shared and noisy,
 * so configurations are interleaved round by round and medians are reported.
 *
 * For a CPU-bound and an I/O-bound (many awaits) HTTP app, on this machine's
 * Node and on Node 24 (and any other binary in SPANPROF_TEST_NODES):
 *   none      the app alone
 *   otel      OpenTelemetry tracing alone (the upstream auto-instrumentation register script)
 *   tracing   this agent with profiling off (OTEL_PYROSCOPE_START_PROFILING=false)
 *   agent     this agent: tracing + span-linked CPU/wall profiling at 100 Hz
 *   otel+agent  an app with its own SDK (the register script preloaded first) and this agent,
 *             which joins that SDK: span-linked profiling on top of the app's own tracing
 * "profiling cost" is agent against tracing: what span-linked profiling adds; "on the app's SDK"
 * is otel+agent against otel: what it adds to an app that already traces itself.
 * Also: attribution accuracy under concurrency, agent size on disk, start-up delay.
 *
 * Options (env): BENCH_SECONDS (per measurement, default 4), BENCH_ROUNDS (default 3),
 * BENCH_CONCURRENCY (default 16), BENCH_PARTS (throughput,startup,short).
 *
 * short: a trivial script (ends at once) and a short job (serves one request to itself, then
 * ends), without the agent and with it while the backends are up, refusing connections or
 * black-holed: wall time, and for the job the exit delay (its exit after its work was done).
 * BENCH_BASELINE_AGENT=<path to another build's register.js> adds the same runs with that build.
 */
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { AGENT, AppProcess, FIXTURES, REPO_ROOT, loadFor, testNodes } from '../test/harness/app-process';
import { OtlpReceiver } from '../test/harness/otlp-receiver';
import { PyroscopeReceiver } from '../test/harness/pyroscope-receiver';
import { attribution } from '../test/harness/attribution';
import { allSamples, requestQuery, serverSpans } from '../test/harness/agent-env';
import { median, percentile, printTable, tracingEnv } from './figures';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 4);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 16);
/** Which parts to run: throughput (includes attribution), startup, short (short-lived processes). */
const PARTS = new Set((process.env['BENCH_PARTS'] ?? 'throughput,startup,short').split(','));
const SERVER = path.join(FIXTURES, 'server.js');
const OTEL_REGISTER = require.resolve('@opentelemetry/auto-instrumentations-node/register');
const HOT = ['alpha', 'beta', 'gamma', 'delta'];

/** tracing: this agent with profiling off, to isolate what span-linked profiling adds. */
type Config = 'none' | 'otel' | 'tracing' | 'agent' | 'otel+agent';
const CONFIGS: Config[] = ['none', 'otel', 'tracing', 'agent', 'otel+agent'];

const APPS = {
  'cpu-bound': (i: number) => `/work?fn=${HOT[i % 4]}&ms=2&rounds=2&via=await&i=${i}`,
  'io-bound (50 awaits)': (i: number) => `/work?fn=${HOT[i % 4]}&ms=0.02&rounds=50&via=immediate&i=${i}`,
} as const;

interface Run {
  rps: number;
  p99: number;
}

function envFor(config: Config, pyroscope: PyroscopeReceiver, otlp: OtlpReceiver): Record<string, string> {
  const common = tracingEnv(otlp.httpUrl);
  if (config === 'none') return {};
  if (config === 'otel') return common;
  if (config === 'tracing') return { ...common, OTEL_PYROSCOPE_START_PROFILING: 'false' };
  // The app's SDK and the agent read the same environment, as in an injected pod.
  return { ...common, PYROSCOPE_SERVER_ADDRESS: pyroscope.url, PYROSCOPE_UPLOAD_INTERVAL: '5s', PYROSCOPE_LOG_LEVEL: 'warn' };
}

function nodeArgsFor(config: Config): string[] {
  if (config === 'otel') return ['--require', OTEL_REGISTER];
  if (config === 'otel+agent') return ['--require', OTEL_REGISTER, '--require', AGENT];
  return [];
}

const preloadsAgent = (config: Config): boolean => config === 'agent' || config === 'tracing';

async function measure(node: string, config: Config, pathFor: (i: number) => string): Promise<Run> {
  const pyroscope = await new PyroscopeReceiver().start();
  const otlp = await new OtlpReceiver().start();
  const app = await AppProcess.start({ script: SERVER, node, agent: preloadsAgent(config), nodeArgs: nodeArgsFor(config), env: envFor(config, pyroscope, otlp) });
  try {
    await loadFor(app.port, pathFor, 1, CONCURRENCY); // warm-up
    const results = await loadFor(app.port, pathFor, SECONDS, CONCURRENCY);
    const ok = results.filter((r) => r.status === 200);
    return { rps: ok.length / SECONDS, p99: percentile(ok.map((r) => r.ms), 99) };
  } finally {
    await app.stop('SIGKILL');
    await pyroscope.close();
    await otlp.close();
  }
}

async function accuracy(node: string, pathFor: (i: number) => string, config: 'agent' | 'otel+agent'): Promise<{ accuracy: number; coverage: number; samples: number }> {
  const pyroscope = await new PyroscopeReceiver().start();
  const otlp = await new OtlpReceiver().start();
  const env = { ...envFor(config, pyroscope, otlp), OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', PYROSCOPE_UPLOAD_INTERVAL: '1s' };
  const app = await AppProcess.start({ script: SERVER, node, agent: preloadsAgent(config), nodeArgs: nodeArgsFor(config), env });
  await loadFor(app.port, pathFor, SECONDS, CONCURRENCY);
  await new Promise((r) => setTimeout(r, 1000));
  // The register script's SIGTERM handler keeps the process alive: a bounded stop.
  await app.stop('SIGTERM', 3000);
  await pyroscope.close();
  await otlp.close();
  const routeBySpan = new Map(serverSpans(otlp.spans).map((s) => [s.spanId, requestQuery(s).get('fn') ?? '']));
  const result = attribution(allSamples(pyroscope.cpuProfiles()), routeBySpan);
  return { accuracy: result.accuracy, coverage: result.coverage, samples: result.hotSamples };
}

async function startupMs(node: string, config: Config): Promise<number> {
  const pyroscope = await new PyroscopeReceiver().start();
  const otlp = await new OtlpReceiver().start();
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    const app = await AppProcess.start({ script: SERVER, node, agent: preloadsAgent(config), nodeArgs: nodeArgsFor(config), env: envFor(config, pyroscope, otlp) });
    times.push(performance.now() - start);
    await app.stop('SIGKILL');
  }
  await pyroscope.close();
  await otlp.close();
  return median(times);
}

type Backend = 'up' | 'refused' | 'black-holed';

/** One run of a short-lived script: wall time, and the time from its "done <ms>" line to its exit. */
async function runShort(node: string, script: string, agent: boolean | string, env: Record<string, string>): Promise<{ wall: number; exitDelay: number | undefined }> {
  const start = performance.now();
  // A path: another build of the agent (BENCH_BASELINE_AGENT), to compare side by side.
  const app = await AppProcess.start({ script, node, agent: agent === true, nodeArgs: typeof agent === 'string' ? ['--require', agent] : [], env, waitForPort: false });
  await app.exited;
  const exitedAt = Date.now();
  const wall = performance.now() - start;
  const done = /done (\d+)/.exec(app.stdout)?.[1];
  return { wall, exitDelay: done === undefined ? undefined : exitedAt - Number(done) };
}

async function shortLived(node: string): Promise<string[][]> {
  const pyroscope = await new PyroscopeReceiver().start();
  const otlp = await new OtlpReceiver().start();
  const net = await import('node:net');
  const hole = net.createServer((s) => s.resume());
  await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
  const holeUrl = `http://127.0.0.1:${(hole.address() as import('node:net').AddressInfo).port}`;
  const envOf = (backend: Backend): Record<string, string> => {
    const url = backend === 'up' ? undefined : backend === 'refused' ? 'http://127.0.0.1:9' : holeUrl;
    return {
      OTEL_SERVICE_NAME: 'short',
      OTEL_EXPORTER_OTLP_ENDPOINT: url ?? otlp.httpUrl,
      PYROSCOPE_SERVER_ADDRESS: url ?? pyroscope.url,
      OTEL_LOG_LEVEL: 'none',
      PYROSCOPE_LOG_LEVEL: 'error',
    };
  };
  const configs: [string, boolean | string, Backend][] = [['none', false, 'up'], ['agent, backends up', true, 'up'], ['agent, refused', true, 'refused'], ['agent, black-holed', true, 'black-holed']];
  const baseline = process.env['BENCH_BASELINE_AGENT'];
  if (baseline !== undefined && baseline !== '') {
    configs.push(['baseline, backends up', baseline, 'up'], ['baseline, refused', baseline, 'refused'], ['baseline, black-holed', baseline, 'black-holed']);
  }
  const rows: string[][] = [];
  for (const [scriptName, script] of [['trivial script', path.join(FIXTURES, 'ends-at-once.js')], ['short job', path.join(FIXTURES, 'short-job.js')]] as const) {
    const wall = new Map<string, number[]>();
    const exit = new Map<string, number[]>();
    // Interleaved: each round runs every configuration once.
    for (let round = 0; round < 15; round++) {
      for (const [name, agent, backend] of configs) {
        const r = await runShort(node, script, agent, envOf(backend));
        wall.set(name, [...(wall.get(name) ?? []), r.wall]);
        if (r.exitDelay !== undefined) exit.set(name, [...(exit.get(name) ?? []), r.exitDelay]);
      }
    }
    const none = median(wall.get('none')!);
    for (const [name] of configs) {
      const w = median(wall.get(name)!);
      const e = exit.get(name);
      rows.push([node.replace(' (runs mocha)', ''), scriptName, name, w.toFixed(0), name === 'none' ? '' : `+${(w - none).toFixed(0)}`, e === undefined ? '' : median(e).toFixed(0)]);
    }
  }
  hole.close();
  await pyroscope.close();
  await otlp.close();
  return rows;
}

function dirBytes(p: string): number {
  return statSync(p).isDirectory() ? readdirSync(p).reduce((n, f) => n + dirBytes(path.join(p, f)), 0) : statSync(p).size;
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const ratio = (a: number, b: number): string => `${((a / b - 1) * 100 >= 0 ? '+' : '')}${((a / b - 1) * 100).toFixed(1)}%`;

async function main(): Promise<void> {
  const nodes = testNodes().filter((n, i, all) => all.findIndex((m) => m.major === n.major) === i);
  console.log(`agent benchmark: ${SECONDS}s per measurement, ${ROUNDS} interleaved rounds, ${CONCURRENCY} concurrent connections, medians`);
  console.log(`agent size on disk: ${(dirBytes(path.dirname(AGENT)) / 1e6).toFixed(1)} MB (${path.relative(REPO_ROOT, path.dirname(AGENT))})\n`);

  const rows: string[][] = [['node', 'app', 'none req/s', 'otel req/s', 'tracing req/s', 'agent req/s', 'otel+agent req/s', 'agent vs otel', 'profiling cost (rounds: min..max)', 'on the app\'s SDK', 'agent vs none', 'p99 none/otel/tracing/agent/otel+agent ms', 'attribution agent / on app SDK', 'labelled']];
  const startup: string[][] = [['node', 'start none ms', 'start otel ms', 'start agent ms', 'agent delay ms']];
  const short: string[][] = [['node', 'process', 'configuration', 'wall ms (median of 15)', 'added ms', 'exit after work done ms']];
  for (const node of nodes) {
    if (PARTS.has('short')) short.push(...(await shortLived(node.bin)).map((r) => [node.label, ...r.slice(1)]));
    for (const [appName, pathFor] of PARTS.has('throughput') ? Object.entries(APPS) : []) {
      const runs: Record<Config, Run[]> = { none: [], otel: [], tracing: [], agent: [], 'otel+agent': [] };
      for (let round = 0; round < ROUNDS; round++) {
        for (const config of round % 2 === 0 ? CONFIGS : [...CONFIGS].reverse()) runs[config].push(await measure(node.bin, config, pathFor));
      }
      const rps = (c: Config): number => median(runs[c].map((r) => r.rps));
      const p99 = (c: Config): number => median(runs[c].map((r) => r.p99));
      // Paired within each round, so the spread shows the machine's noise.
      const perRound = runs.agent.map((r, i) => r.rps / runs.tracing[i]!.rps - 1);
      const spread = `${(Math.min(...perRound) * 100).toFixed(1)}..${(Math.max(...perRound) * 100).toFixed(1)}%`;
      const acc = await accuracy(node.bin, pathFor, 'agent');
      const joined = await accuracy(node.bin, pathFor, 'otel+agent');
      rows.push([
        node.label.replace(' (runs mocha)', ''),
        appName,
        rps('none').toFixed(0),
        rps('otel').toFixed(0),
        rps('tracing').toFixed(0),
        rps('agent').toFixed(0),
        rps('otel+agent').toFixed(0),
        ratio(rps('agent'), rps('otel')),
        `${ratio(rps('agent'), rps('tracing'))} (${spread})`,
        ratio(rps('otel+agent'), rps('otel')),
        ratio(rps('agent'), rps('none')),
        `${p99('none').toFixed(1)} / ${p99('otel').toFixed(1)} / ${p99('tracing').toFixed(1)} / ${p99('agent').toFixed(1)} / ${p99('otel+agent').toFixed(1)}`,
        `${pct(acc.accuracy)} / ${pct(joined.accuracy)} (${acc.samples} / ${joined.samples} samples)`,
        `${pct(acc.coverage)} / ${pct(joined.coverage)}`,
      ]);
      console.error(`done: ${node.label} ${appName}`);
    }
    if (!PARTS.has('startup')) continue;
    const s = { none: await startupMs(node.bin, 'none'), otel: await startupMs(node.bin, 'otel'), agent: await startupMs(node.bin, 'agent') };
    startup.push([node.label.replace(' (runs mocha)', ''), s.none.toFixed(0), s.otel.toFixed(0), s.agent.toFixed(0), (s.agent - s.none).toFixed(0)]);
  }
  printTable(rows);
  console.log('');
  printTable(startup);
  if (short.length > 1) {
    console.log('');
    printTable(short);
  }
  console.log('\nattribution: share of hot-function CPU time labelled with the span of a request that ran that function;');
  console.log('labelled: share of hot-function CPU time that carries any span label. Start-up: spawn to listening, median of 5.');
}


// Ends once the table is printed, whatever handle a receiver or a peer left open (a run went on for 30 minutes after its table).
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
