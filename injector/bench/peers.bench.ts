/**
 * `npm run bench:peers`: this agent against what Node.js users run today, side
 * by side in one run, on this machine's Node and on Node 24. Figures, not
 * assertions; configurations interleaved round by round, medians reported.
 *
 *   none        the app alone
 *   otel        OpenTelemetry tracing alone (upstream auto-instrumentation register script)
 *   pyroscope   otel + @pyroscope/nodejs (wall + CPU time), each request handler wrapped in
 *               wrapWithLabels({ span_id }) — how a Pyroscope user labels by span today
 *   dd-trace    dd-trace with its profiler, CPU time and code hotspots (span ids in samples)
 *   ours        this agent
 *
 * Options (env): BENCH_SECONDS (default 4), BENCH_ROUNDS (default 2), BENCH_CONCURRENCY (default 16).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AGENT, AppProcess, FIXTURES, REPO_ROOT, loadFor, testNodes } from '../test/harness/app-process';
import { OtlpReceiver } from '../test/harness/otlp-receiver';
import { PyroscopeReceiver, type ReceivedSample } from '../test/harness/pyroscope-receiver';
import { attribution } from '../test/harness/attribution';
import { requestQuery, serverSpans } from '../test/harness/agent-env';
import { DatadogReceiver } from './datadog-receiver';
import { ddTraceEnv, median, percentile, printTable, tracingEnv } from './figures';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 4);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 2);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 16);
const SERVER = path.join(FIXTURES, 'server.js');
const HOT = ['alpha', 'beta', 'gamma', 'delta'];

type Peer = 'none' | 'otel' | 'pyroscope' | 'dd-trace' | 'ours';
const PEERS: Peer[] = ['none', 'otel', 'pyroscope', 'dd-trace', 'ours'];
const APPS = {
  'cpu-bound': (i: number) => `/work?fn=${HOT[i % 4]}&ms=2&rounds=2&via=await&i=${i}`,
  'io-bound (50 awaits)': (i: number) => `/work?fn=${HOT[i % 4]}&ms=0.05&rounds=50&via=immediate&i=${i}`,
} as const;

interface Receivers {
  pyroscope: PyroscopeReceiver;
  otlp: OtlpReceiver;
  datadog: DatadogReceiver;
}

const OTEL_ENV = (r: Receivers): Record<string, string> => tracingEnv(r.otlp.httpUrl, { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '500' });

function launch(peer: Peer, nodeMajor: number, r: Receivers): { nodeArgs: string[]; env: Record<string, string>; agent: boolean } {
  switch (peer) {
    case 'none':
      return { nodeArgs: [], env: {}, agent: false };
    case 'otel':
      return { nodeArgs: ['--require', require.resolve('@opentelemetry/auto-instrumentations-node/register')], env: OTEL_ENV(r), agent: false };
    case 'pyroscope':
      return { nodeArgs: ['--require', path.join(__dirname, 'peers/pyroscope-nodejs.js')], env: { ...OTEL_ENV(r), PYROSCOPE_SERVER_ADDRESS: r.pyroscope.url, PEER_FLUSH_MS: '2000' }, agent: false };
    case 'dd-trace':
      // dd-trace 6 runs on Node 22+; dd-trace 5 on older ones.
      return {
        nodeArgs: ['--require', require.resolve(nodeMajor >= 22 ? 'dd-trace/init' : 'dd-trace-v5/init')],
        env: ddTraceEnv(r.datadog.url, 2, { DD_PROFILING_DEBUG_UPLOAD_COMPRESSION: 'off', DD_TRACE_AGENT_PROTOCOL_VERSION: '0.4', DD_TRACE_FLUSH_INTERVAL: '500' }),
        agent: false,
      };
    case 'ours':
      return { nodeArgs: [], env: { ...OTEL_ENV(r), PYROSCOPE_SERVER_ADDRESS: r.pyroscope.url, PYROSCOPE_UPLOAD_INTERVAL: '2s', PYROSCOPE_LOG_LEVEL: 'warn' }, agent: true };
  }
}

interface Run {
  rps: number;
  p99: number;
  rss: number;
  accuracy?: number;
  coverage?: number;
  samples?: number;
}

/** CPU samples of whatever the receivers got, labelled span_id (hex) where the peer labelled. */
function cpuSamples(peer: Peer, r: Receivers): ReceivedSample[] {
  if (peer === 'dd-trace') return r.datadog.samples;
  return r.pyroscope.profiles.flatMap((p) => {
    const cpu = p.types.indexOf('cpu:nanoseconds');
    if (cpu < 0) return [];
    return p.samples.map((s) => ({ ...s, values: [s.values[cpu] ?? 0] })).filter((s) => s.values[0]! > 0);
  });
}

function routesBySpan(peer: Peer, r: Receivers): Map<string, string> {
  if (peer === 'dd-trace') {
    return new Map(r.datadog.spans.filter((s) => s.name === 'web.request').map((s) => [s.spanId, new URL(s.meta['http.url'] ?? 'http://x/').searchParams.get('fn') ?? '']));
  }
  return new Map(serverSpans(r.otlp.spans).map((s) => [s.spanId, requestQuery(s).get('fn') ?? '']));
}

async function measure(node: { bin: string; major: number }, peer: Peer, pathFor: (i: number) => string): Promise<Run> {
  const r: Receivers = { pyroscope: await new PyroscopeReceiver().start(), otlp: await new OtlpReceiver().start(), datadog: await new DatadogReceiver().start() };
  const how = launch(peer, node.major, r);
  const app = await AppProcess.start({ script: SERVER, node: node.bin, agent: how.agent, nodeArgs: how.nodeArgs, env: how.env });
  try {
    await loadFor(app.port, pathFor, 1, CONCURRENCY);
    const results = await loadFor(app.port, pathFor, SECONDS, CONCURRENCY);
    const rss = await app.rssBytes();
    await new Promise((res) => setTimeout(res, 2500)); // a last upload interval
    await app.stop('SIGTERM');
    await new Promise((res) => setTimeout(res, 300));
    const ok = results.filter((x) => x.status === 200);
    const run: Run = { rps: ok.length / SECONDS, p99: percentile(ok.map((x) => x.ms), 99), rss };
    if (peer !== 'none' && peer !== 'otel') {
      const a = attribution(cpuSamples(peer, r), routesBySpan(peer, r));
      Object.assign(run, { accuracy: a.accuracy, coverage: a.coverage, samples: a.hotSamples });
    }
    return run;
  } finally {
    await app.stop('SIGKILL');
    await Promise.all([r.pyroscope.close(), r.otlp.close(), r.datadog.close()]);
  }
}

/** What a user installs for each peer, measured by installing it into an empty directory. */
function shippedBytes(): Record<Peer, number> {
  const dirBytes = (p: string): number => (statSync(p).isDirectory() ? readdirSync(p).reduce((n, f) => n + dirBytes(path.join(p, f)), 0) : statSync(p).size);
  const installed = (packages: string[]): number => {
    const dir = mkdtempSync(path.join(tmpdir(), 'spanprof-peer-size-'));
    try {
      execFileSync('npm', ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--silent', ...packages], { cwd: dir, stdio: 'ignore' });
      return dirBytes(path.join(dir, 'node_modules'));
    } catch {
      return NaN;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const v = (name: string): string => {
    const manifest = JSON.parse(readFileSync(path.join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string };
    return `${name}@${manifest.version}`;
  };
  return {
    none: 0,
    otel: installed([v('@opentelemetry/auto-instrumentations-node')]),
    pyroscope: installed([v('@opentelemetry/auto-instrumentations-node'), v('@pyroscope/nodejs')]),
    'dd-trace': installed([v('dd-trace')]),
    ours: dirBytes(path.dirname(AGENT)),
  };
}


async function main(): Promise<void> {
  const nodes = testNodes().filter((n, i, all) => all.findIndex((m) => m.major === n.major) === i);
  console.log(`peers benchmark: ${SECONDS}s per measurement, ${ROUNDS} interleaved rounds, ${CONCURRENCY} connections; ratios against no agent in the same run`);
  const size = shippedBytes();
  const rows: string[][] = [['node', 'app', 'peer', 'req/s', 'vs none', 'p99 ms', 'RSS MiB', 'attribution', 'labelled', 'shipped MB']];
  for (const node of nodes) {
    for (const [appName, pathFor] of Object.entries(APPS)) {
      const runs: Record<Peer, Run[]> = { none: [], otel: [], pyroscope: [], 'dd-trace': [], ours: [] };
      const failed = new Map<Peer, string>();
      for (let round = 0; round < ROUNDS; round++) {
        for (const peer of round % 2 === 0 ? PEERS : [...PEERS].reverse()) {
          if (failed.has(peer)) continue;
          try {
            runs[peer].push(await measure(node, peer, pathFor));
          } catch (err) {
            // A peer that cannot run on this Node is a finding, not a reason to stop.
            const text = err instanceof Error ? err.message : String(err);
            failed.set(peer, /ERR_[A-Z_]+/.exec(text)?.[0] ?? /incompatible[^\n]*/.exec(text)?.[0] ?? text.split('\n')[0]!);
          }
        }
      }
      const base = median(runs.none.map((x) => x.rps));
      for (const peer of PEERS) {
        if (failed.has(peer)) {
          rows.push([node.label.replace(' (runs mocha)', ''), appName, peer, `does not run: ${failed.get(peer)}`, '', '', '', '', '', (size[peer] / 1e6).toFixed(1)]);
          continue;
        }
        const m = (f: (x: Run) => number | undefined): number => median(runs[peer].map((x) => f(x) ?? NaN));
        const pct = (x: number): string => (Number.isNaN(x) ? '-' : `${(x * 100).toFixed(1)}%`);
        rows.push([
          node.label.replace(' (runs mocha)', ''),
          appName,
          peer,
          m((x) => x.rps).toFixed(0),
          `${((m((x) => x.rps) / base - 1) * 100).toFixed(1)}%`,
          m((x) => x.p99).toFixed(1),
          (m((x) => x.rss) / 1048576).toFixed(0),
          pct(m((x) => x.accuracy)),
          pct(m((x) => x.coverage)),
          (size[peer] / 1e6).toFixed(1),
        ]);
      }
      console.error(`done: ${node.label} ${appName}`);
    }
  }
  printTable(rows);
  console.log('\nattribution: share of hot-function CPU time labelled with the span of a request that ran that function (among labelled);');
  console.log('labelled: share of hot-function CPU time carrying any span label. shipped: what a user installs (for ours: the agent directory).');
}

// Ends once the table is printed, whatever handle a receiver or a peer left open (a run went on for 30 minutes after its table).
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
