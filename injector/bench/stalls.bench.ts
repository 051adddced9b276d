/**
 * `npm run bench:stalls`: how long the app's event loop stalls, and what garbage collection costs
 * it, with this agent, with upstream OpenTelemetry, with tracing alone and with dd-trace, side by
 * side in one run. Two HTTP apps serve an open-loop load of about 300 requests/s: a light one, and
 * one whose handler allocates as most services do (300 sha256 digests per request, as JSON, buffers
 * and templates would). A 1 ms timer preloaded into every configuration (stall-monitor.js) records
 * how late each tick comes, and V8's collections as perf_hooks reports them. Figures, not
 * assertions: configurations interleaved round by round.
 *
 *   none      the app alone
 *   otel      upstream OpenTelemetry: the auto-instrumentations' register script, same exporter
 *   tracing   this agent with profiling off
 *   agent     this agent: tracing + span profiling (and its profile collections)
 *   dd-trace  dd-trace with its wall/CPU profiler and code hotspots, at the same upload period
 *
 * Printed per app and configuration (medians over rounds): the stall per tick at p50, p99 and max,
 * the median of the six worst stalls of each window ("the worst six gaps"); young-generation
 * collections (scavenges) per second, the pause of each (median) and their total per second; the
 * heap in use after a scavenge (median, garbage promoted since the last full collection included);
 * the heap still in use after a full collection at the window's end ("live heap"); the RSS at the
 * window's end; for the agent, the main
 * thread's pause per profile collection as the agent measured it. From V8's own trace of each
 * scavenge (--trace-gc-nvp, the app's stdout): the bytes it promoted to the old generation per
 * second (objects that outlived two scavenges); the part of each pause spent running the weak
 * callbacks of dead native-backed objects (the allocating app's sha256 Hash objects), how many
 * global handles died in each scavenge, and that time per dead handle: whether a longer phase
 * means more dead objects or each one freed more slowly.
 *
 * Options (env): BENCH_SECONDS (window, default 12), BENCH_ROUNDS (default 3), BENCH_RPS
 * (default 300), BENCH_UPLOAD_SECONDS (profile upload period for agent and dd-trace, default 5),
 * BENCH_AGENT_ENV (a JSON object of extra variables for the tracing and agent configurations),
 * BENCH_CONFIGS (default none,otel,tracing,agent,dd-trace), BENCH_APPS (default light,allocating),
 * BENCH_SEMI_SPACE_MB (gives every configuration the same young generation, V8's semi-space size in
 * MB, to compare what each scavenge costs at equal size; default: V8's own sizing),
 * BENCH_WARMUP_SECONDS (load before the window, default the upload period + 1.5 s; minutes of it
 * show the young generation V8 settles on under a steady load).
 *
 * V8 grows the young generation while objects keep surviving scavenges (once the survivors since
 * its last growth exceed its size), and under a steady load each scavenge pauses about in
 * proportion to that size. "young MB" shows the size V8 chose at the window's scavenges: a process
 * whose start-up left more surviving objects gets there sooner; the app alone gets there too, later.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AppProcess, FIXTURES, testNodes, waitFor } from '../test/harness/app-process';
import { OtlpReceiver } from '../test/harness/otlp-receiver';
import { PyroscopeReceiver } from '../test/harness/pyroscope-receiver';
import { DatadogReceiver } from './datadog-receiver';
import { ddTraceEnv, median, percentile, printTable, tracingEnv } from './figures';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 12);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const RPS = Number(process.env['BENCH_RPS'] ?? 300);
const UPLOAD_SECONDS = Number(process.env['BENCH_UPLOAD_SECONDS'] ?? 5);
const WARMUP_SECONDS = Number(process.env['BENCH_WARMUP_SECONDS'] ?? UPLOAD_SECONDS + 1.5);
const SERVER = path.join(FIXTURES, 'server.js');
const MONITOR = path.join(__dirname, 'stall-monitor.js');
const APPS: Record<string, (i: number) => string> = {
  light: (i) => `/work?fn=alpha&ms=0.2&rounds=2&via=await&i=${i}`,
  allocating: (i) => `/work?fn=alpha&ms=0.05&rounds=1&alloc=300&via=await&i=${i}`,
};
const APP_NAMES = (process.env['BENCH_APPS'] ?? 'light,allocating').split(',').filter((a) => a in APPS);

type Config = 'none' | 'otel' | 'tracing' | 'agent' | 'dd-trace';
const CONFIGS = (process.env['BENCH_CONFIGS'] ?? 'none,otel,tracing,agent,dd-trace').split(',') as Config[];

interface Window {
  p50: number;
  p99: number;
  max: number;
  worst6: number;
  /** Scavenges in the window: per second, the pause of each (median), their pauses per second. */
  scavengesPerSecond: number;
  scavengeMs: number;
  scavengeMsPerSecond: number;
  /** Heap in use right after a scavenge (median, bytes), and the RSS at the window's end. */
  heapAfterScavenge: number;
  /** Full collections (mark-compact and the like) in the window, and the longest of their pauses (ms). */
  fullCollections: number;
  fullCollectionMaxMs: number;
  /** The young generation's size at the window's scavenges (median, bytes). */
  young: number;
  /**
   * From V8's own trace (--trace-gc-nvp) of the window's scavenges: bytes promoted to the old
   * generation per second; the part of each pause spent in the weak callbacks of native-backed
   * objects (median ms); the global handles that died with the young generation in each (median);
   * and the weak-callback time per handle that died (median of each scavenge's ratio, us).
   */
  promotedPerSecond: number;
  weakCallbackMs: number;
  deadHandles: number;
  weakUsPerDeadHandle: number;
  rss: number;
  /** The heap in use after a full collection at the window's end (bytes): what the process keeps. */
  liveHeap: number;
  /** The agent's own measure of its pause per collection (ms), when it reports one. */
  collections: number[];
}

function launch(config: Config, major: number, r: { pyroscope: PyroscopeReceiver; otlp: OtlpReceiver; datadog: DatadogReceiver }): { nodeArgs: string[]; env: Record<string, string>; agent: boolean } {
  const otel = { ...tracingEnv(r.otlp.httpUrl), ...(JSON.parse(process.env['BENCH_AGENT_ENV'] ?? '{}') as Record<string, string>) };
  switch (config) {
    case 'none':
      return { nodeArgs: [], env: {}, agent: false };
    case 'otel':
      return { nodeArgs: ['--require', require.resolve('@opentelemetry/auto-instrumentations-node/register')], env: tracingEnv(r.otlp.httpUrl), agent: false };
    case 'tracing':
      return { nodeArgs: [], env: { ...otel, OTEL_PYROSCOPE_START_PROFILING: 'false' }, agent: true };
    case 'agent':
      return { nodeArgs: [], env: { ...otel, PYROSCOPE_SERVER_ADDRESS: r.pyroscope.url, PYROSCOPE_UPLOAD_INTERVAL: `${UPLOAD_SECONDS}s`, PYROSCOPE_LOG_LEVEL: 'debug' }, agent: true };
    case 'dd-trace':
      return {
        nodeArgs: ['--require', require.resolve(major >= 22 ? 'dd-trace/init' : 'dd-trace-v5/init')],
        env: ddTraceEnv(r.datadog.url, UPLOAD_SECONDS),
        agent: false,
      };
  }
}

/** The scavenges in V8's --trace-gc-nvp lines: bytes promoted in all; each pause's time in weak callbacks and the global handles that died in it. */
function scavengeTrace(stdout: string): { promoted: number; weakCallbackMs: number[]; deadHandles: number[] } {
  let promoted = 0;
  const weakCallbackMs: number[] = [];
  const deadHandles: number[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.includes(' gc=s ')) continue;
    promoted += Number(/ promoted=(\d+)/.exec(line)?.[1] ?? 0);
    weakCallbackMs.push(Number(/ heap\.external_weak_global_handles=([\d.]+)/.exec(line)?.[1] ?? 0));
    deadHandles.push(Number(/ nodes_died_in_new=(\d+)/.exec(line)?.[1] ?? 0));
  }
  return { promoted, weakCallbackMs, deadHandles };
}

/** An open-loop load: RPS requests a second, spread evenly, whatever the answers take. */
async function openLoop(port: number, seconds: number, pathFor: (i: number) => string): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let ok = 0;
  let i = 0;
  const pending: Promise<void>[] = [];
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    const due = Math.floor(((performance.now() - started) / 1000) * RPS);
    for (; i < due; i++) {
      pending.push(
        new Promise<void>((resolve) => {
          http
            .get({ host: '127.0.0.1', port, path: pathFor(i), agent }, (res) => {
              res.resume();
              res.on('end', () => {
                if (res.statusCode === 200) ok++;
                resolve();
              });
            })
            .on('error', () => resolve());
        }),
      );
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(pending);
  agent.destroy();
  return ok;
}

async function measure(node: { bin: string; major: number }, config: Config, pathFor: (i: number) => string): Promise<Window> {
  const r = { pyroscope: await new PyroscopeReceiver().start(), otlp: await new OtlpReceiver().start(), datadog: await new DatadogReceiver().start() };
  const dir = mkdtempSync(path.join(tmpdir(), 'spanprof-stalls-'));
  const report = path.join(dir, 'gaps.json');
  const how = launch(config, node.major, r);
  const semi = process.env['BENCH_SEMI_SPACE_MB'];
  const young = semi === undefined ? [] : [`--min-semi-space-size=${semi}`, `--max-semi-space-size=${semi}`];
  const app = await AppProcess.start({ script: SERVER, node: node.bin, agent: how.agent, nodeArgs: [...young, '--trace-gc-nvp', '--expose-gc', '--require', MONITOR, ...how.nodeArgs], env: { ...how.env, STALL_REPORT: report } });
  try {
    // Warm-up: instrumentations made, profiler started, a first collection and export made (their code runs cold once).
    await openLoop(app.port, WARMUP_SECONDS, pathFor);
    const from = Date.now();
    const traced = app.stdout.length;
    await openLoop(app.port, SECONDS, pathFor);
    const until = Date.now();
    const trace = scavengeTrace(app.stdout.slice(traced));
    process.kill(app.pid, 'SIGUSR2');
    await waitFor('the stall report', () => existsSync(report) && readFileSync(report, 'utf8').endsWith('}'));
    const got = JSON.parse(readFileSync(report, 'utf8')) as { ticks: [number, number][]; gcs: [number, number, number, number, number][]; rss: number; live: number | null };
    const gaps = got.ticks.filter(([t]) => t >= from && t <= until).map(([, g]) => Math.max(0, g - 1));
    const worst = [...gaps].sort((a, b) => b - a).slice(0, 6);
    const scavenges = got.gcs.filter(([t, minor]) => minor === 1 && t >= from && t <= until);
    const fullCollections = got.gcs.filter(([t, minor]) => minor === 0 && t >= from && t <= until);
    const seconds = (until - from) / 1000;
    const collections = [...app.stderr.matchAll(/profile: collected in ([\d.]+)ms, shaped and queued in ([\d.]+)ms/g)].map((m) => Number(m[1]) + Number(m[2]));
    return {
      p50: percentile(gaps, 50),
      p99: percentile(gaps, 99),
      max: Math.max(...gaps),
      worst6: median(worst),
      scavengesPerSecond: scavenges.length / seconds,
      scavengeMs: median(scavenges.map(([, , ms]) => ms)),
      scavengeMsPerSecond: scavenges.reduce((sum, [, , ms]) => sum + ms, 0) / seconds,
      heapAfterScavenge: median(scavenges.map(([, , , heap]) => heap)),
      fullCollections: fullCollections.length,
      fullCollectionMaxMs: Math.max(0, ...fullCollections.map(([, , ms]) => ms)),
      young: median(scavenges.map(([, , , , young]) => young)),
      promotedPerSecond: trace.promoted / seconds,
      weakCallbackMs: median(trace.weakCallbackMs),
      deadHandles: median(trace.deadHandles),
      weakUsPerDeadHandle: median(trace.weakCallbackMs.flatMap((ms, i) => (trace.deadHandles[i]! > 0 ? [(1000 * ms) / trace.deadHandles[i]!] : []))),
      rss: got.rss,
      liveHeap: got.live ?? NaN,
      collections,
    };
  } finally {
    await app.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await Promise.all([r.pyroscope.close(), r.otlp.close(), r.datadog.close()]);
  }
}

async function main(): Promise<void> {
  const nodes = testNodes().filter((n, i, all) => all.findIndex((m) => m.major === n.major) === i);
  const semi = process.env['BENCH_SEMI_SPACE_MB'];
  console.log(`event-loop stalls and garbage collection: ~${RPS} req/s for ${SECONDS} s per window after ${WARMUP_SECONDS} s of load, ${ROUNDS} interleaved rounds, uploads every ${UPLOAD_SECONDS} s (stall = how late a 1 ms timer tick came)${semi === undefined ? '' : `; every configuration with a ${semi} MB semi-space`}\n`);
  const rows = [['node', 'app', 'config', 'p50 ms', 'p99 ms', 'max ms', 'worst six ms', 'scavenges/s', 'ms each', 'ms/s', 'young MB', 'full GCs (max ms)', 'promoted kB/s', 'weak callbacks ms each', 'dead handles each', 'weak us per dead handle', 'heap after MB', 'live heap MB', 'RSS MiB', 'agent pause per collection ms (median / max)']];
  for (const node of nodes) {
    for (const appName of APP_NAMES) {
      const results = new Map<Config, Window[]>(CONFIGS.map((c) => [c, []]));
      for (let round = 0; round < ROUNDS; round++) {
        for (const config of round % 2 === 0 ? CONFIGS : [...CONFIGS].reverse()) {
          try {
            results.get(config)!.push(await measure(node, config, APPS[appName]!));
          } catch (err) {
            console.error(`${node.major} ${appName} ${config}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
          }
        }
      }
      for (const config of CONFIGS) {
        const w = results.get(config)!;
        if (w.length === 0) {
          rows.push([String(node.major), appName, config, 'did not run']);
          continue;
        }
        const m = (f: (x: Window) => number): number => median(w.map(f));
        const pauses = w.flatMap((x) => x.collections);
        rows.push([
          String(node.major),
          appName,
          config,
          m((x) => x.p50).toFixed(2),
          m((x) => x.p99).toFixed(1),
          m((x) => x.max).toFixed(1),
          m((x) => x.worst6).toFixed(1),
          m((x) => x.scavengesPerSecond).toFixed(1),
          m((x) => x.scavengeMs).toFixed(2),
          m((x) => x.scavengeMsPerSecond).toFixed(1),
          (m((x) => x.young) / 1048576).toFixed(0),
          `${m((x) => x.fullCollections).toFixed(0)} (${m((x) => x.fullCollectionMaxMs).toFixed(1)})`,
          (m((x) => x.promotedPerSecond) / 1000).toFixed(0),
          m((x) => x.weakCallbackMs).toFixed(2),
          m((x) => x.deadHandles).toFixed(0),
          m((x) => x.weakUsPerDeadHandle).toFixed(3),
          (m((x) => x.heapAfterScavenge) / 1e6).toFixed(1),
          (m((x) => x.liveHeap) / 1e6).toFixed(1),
          (m((x) => x.rss) / 1048576).toFixed(0),
          pauses.length === 0 ? '' : `${median(pauses).toFixed(1)} / ${Math.max(...pauses).toFixed(1)} (${pauses.length})`,
        ]);
      }
      console.error(`done: ${node.major} ${appName}`);
    }
  }
  printTable(rows);
}

// Ends once the table is printed, whatever handles the receivers or a peer left behind.
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
