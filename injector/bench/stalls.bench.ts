/**
 * `npm run bench:stalls`: how long the app's event loop stalls, with this agent, with tracing alone
 * and with dd-trace, side by side in one run. A light HTTP app serves an open-loop load of about
 * 300 requests/s; a 1 ms timer preloaded into every configuration (stall-monitor.js) records how
 * late each tick comes. Figures, not assertions: configurations interleaved round by round.
 *
 *   none      the app alone
 *   tracing   this agent with profiling off
 *   agent     this agent: tracing + span profiling (and its profile collections)
 *   dd-trace  dd-trace with its wall/CPU profiler and code hotspots, at the same upload period
 *
 * Printed per configuration (medians over rounds): the stall per tick at p50, p99 and max, and
 * the median of the six worst stalls of each window ("the worst six gaps"); for the agent, the
 * main thread's pause per profile collection as the agent measured it.
 *
 * Options (env): BENCH_SECONDS (window, default 12), BENCH_ROUNDS (default 3), BENCH_RPS
 * (default 300), BENCH_UPLOAD_SECONDS (profile upload period for agent and dd-trace, default 5),
 * BENCH_AGENT_ENV (a JSON object of extra variables for the tracing and agent configurations).
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
const SERVER = path.join(FIXTURES, 'server.js');
const MONITOR = path.join(__dirname, 'stall-monitor.js');
const LIGHT = (i: number): string => `/work?fn=alpha&ms=0.2&rounds=2&via=await&i=${i}`;

type Config = 'none' | 'tracing' | 'agent' | 'dd-trace';
const CONFIGS = (process.env['BENCH_CONFIGS'] ?? 'none,tracing,agent,dd-trace').split(',') as Config[];

interface Window {
  p50: number;
  p99: number;
  max: number;
  worst6: number;
  /** The agent's own measure of its pause per collection (ms), when it reports one. */
  collections: number[];
}

function launch(config: Config, major: number, r: { pyroscope: PyroscopeReceiver; otlp: OtlpReceiver; datadog: DatadogReceiver }): { nodeArgs: string[]; env: Record<string, string>; agent: boolean } {
  const otel = { ...tracingEnv(r.otlp.httpUrl), ...(JSON.parse(process.env['BENCH_AGENT_ENV'] ?? '{}') as Record<string, string>) };
  switch (config) {
    case 'none':
      return { nodeArgs: [], env: {}, agent: false };
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

/** An open-loop load: RPS requests a second, spread evenly, whatever the answers take. */
async function openLoop(port: number, seconds: number): Promise<number> {
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
            .get({ host: '127.0.0.1', port, path: LIGHT(i), agent }, (res) => {
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

async function measure(node: { bin: string; major: number }, config: Config): Promise<Window> {
  const r = { pyroscope: await new PyroscopeReceiver().start(), otlp: await new OtlpReceiver().start(), datadog: await new DatadogReceiver().start() };
  const dir = mkdtempSync(path.join(tmpdir(), 'spanprof-stalls-'));
  const report = path.join(dir, 'gaps.json');
  const how = launch(config, node.major, r);
  const app = await AppProcess.start({ script: SERVER, node: node.bin, agent: how.agent, nodeArgs: ['--require', MONITOR, ...how.nodeArgs], env: { ...how.env, STALL_REPORT: report } });
  try {
    // Warm-up: instrumentations made, profiler started, a first collection and export made (their code runs cold once).
    await openLoop(app.port, UPLOAD_SECONDS + 1.5);
    const from = Date.now();
    await openLoop(app.port, SECONDS);
    const until = Date.now();
    process.kill(app.pid, 'SIGUSR2');
    await waitFor('the stall report', () => existsSync(report) && readFileSync(report, 'utf8').endsWith(']'));
    const gaps = (JSON.parse(readFileSync(report, 'utf8')) as [number, number][]).filter(([t]) => t >= from && t <= until).map(([, g]) => Math.max(0, g - 1));
    const worst = [...gaps].sort((a, b) => b - a).slice(0, 6);
    const collections = [...app.stderr.matchAll(/profile: collected in ([\d.]+)ms, shaped and queued in ([\d.]+)ms/g)].map((m) => Number(m[1]) + Number(m[2]));
    return { p50: percentile(gaps, 50), p99: percentile(gaps, 99), max: Math.max(...gaps), worst6: median(worst), collections };
  } finally {
    await app.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await Promise.all([r.pyroscope.close(), r.otlp.close(), r.datadog.close()]);
  }
}

async function main(): Promise<void> {
  const nodes = testNodes().filter((n, i, all) => all.findIndex((m) => m.major === n.major) === i);
  console.log(`event-loop stalls: ~${RPS} req/s for ${SECONDS} s per window, ${ROUNDS} interleaved rounds, uploads every ${UPLOAD_SECONDS} s (ms; stall = how late a 1 ms timer tick came)\n`);
  const rows = [['node', 'config', 'p50', 'p99', 'max', 'worst six (median)', 'agent pause per collection (median / max)']];
  for (const node of nodes) {
    const results = new Map<Config, Window[]>(CONFIGS.map((c) => [c, []]));
    for (let round = 0; round < ROUNDS; round++) for (const config of CONFIGS) results.get(config)!.push(await measure(node, config));
    for (const config of CONFIGS) {
      const w = results.get(config)!;
      const pauses = w.flatMap((x) => x.collections);
      rows.push([
        String(node.major),
        config,
        median(w.map((x) => x.p50)).toFixed(2),
        median(w.map((x) => x.p99)).toFixed(1),
        median(w.map((x) => x.max)).toFixed(1),
        median(w.map((x) => x.worst6)).toFixed(1),
        pauses.length === 0 ? '' : `${median(pauses).toFixed(1)} / ${Math.max(...pauses).toFixed(1)} (${pauses.length})`,
      ]);
    }
  }
  printTable(rows);
}

void main();
