/**
 * A process ends as it would without the agent: every way an app ends (by
 * itself, process.exit, an uncaught exception, a signal with no handler, the
 * app's own handler that exits or keeps running) and the shutdown helpers apps
 * really use (signal-exit 3 and 4, @godaddy/terminus, close-with-grace,
 * http-terminator, async-exit-hook, pino's exit flushing of its transport),
 * each the real package from the npm registry, run without and with the agent
 * preloaded while its backends are down. The two runs must end the same way
 * (exit code or signal, and what the app printed on the way out), and the run
 * with the agent may take longer only by the agent's bounded last flush.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AppProcess, FIXTURES, load, testNodes, waitFor, type Exit } from './harness/app-process';
import { blackHole, refusingUrl } from './harness/down-backends';

const ENDS = path.join(FIXTURES, 'ends');
const BOUND_MS = 1000;
/** Slack for a busy machine; the fault this guards against costs the whole grace period (10 s here). */
const SLACK_MS = 3000;
/** What Kubernetes would wait before SIGKILL, shortened: a run that needs it did not end by itself. */
const GRACE_MS = 10_000;

export interface Ending extends Exit {
  /** From the trigger (signal sent, or the request that ends it) to the exit. */
  ms: number;
  /** The process did not end within GRACE_MS and was killed. */
  killed: boolean;
  stdout: string;
  stderr: string;
}

interface Case {
  script: string;
  /** The signal sent once it serves; without one, the process ends by itself (or on the trigger request). */
  signal?: NodeJS.Signals;
  /** The app keeps running after the signal: it must still answer, then it is killed. */
  staysUp?: boolean;
  /** Lines the app prints on its way out, which must be there in both runs. */
  prints?: RegExp;
  /** The end expected without the agent (a check on the fixture). */
  expect: Partial<Exit>;
  env?: () => Record<string, string>;
}

/** Runs one case with or without the agent and reports how it ended. */
export async function runEnding(c: Case, agent: boolean, env: Record<string, string>, node?: string): Promise<Ending> {
  const app = await AppProcess.start({ script: path.join(ENDS, c.script), agent, node, env: { ...env, ...c.env?.() }, waitForPort: c.script !== 'natural.js' });
  let started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  let killed = false;
  const kill = (): void => {
    timer = setTimeout(() => {
      killed = true;
      app.child.kill('SIGKILL');
    }, GRACE_MS);
  };
  if (app.port !== 0) {
    // Traffic first, so that spans and profiles exist (some scripts end on their request).
    const results = await load(app.port, ['/a', '/b', '/c'], 1);
    if (c.signal === undefined) started = Date.now() - Math.max(...results.map((r) => r.ms));
  }
  if (c.signal !== undefined) {
    if (c.staysUp) {
      app.child.kill(c.signal);
      await waitFor('the app to say it ignored the signal', () => app.stdout.includes(`ignored ${c.signal}`));
      const after = await load(app.port, ['/still-there'], 1);
      assert.equal(after[0]!.status, 200, `the app still answers after ${c.signal} (agent: ${agent})`);
      app.child.kill('SIGKILL');
      const exit = await app.exited;
      return { ...exit, ms: 0, killed: false, stdout: app.stdout, stderr: app.stderr };
    }
    started = Date.now();
    app.child.kill(c.signal);
  }
  kill();
  const exit = await app.exited;
  clearTimeout(timer);
  return { ...exit, ms: Date.now() - started, killed, stdout: app.stdout, stderr: app.stderr };
}

const CASES: Record<string, Case> = {
  'a job that ends by itself (exit code 3)': { script: 'natural.js', expect: { code: 3, signal: null }, prints: /done [0-9a-f]{8}/ },
  'process.exit(5) with the server still open': { script: 'process-exit.js', expect: { code: 5, signal: null } },
  'an uncaught exception': { script: 'uncaught.js', expect: { code: 1, signal: null }, prints: /Error: boom from the app/ },
  'SIGTERM with no handler': { script: 'plain.js', signal: 'SIGTERM', expect: { code: null, signal: 'SIGTERM' } },
  'SIGINT with no handler': { script: 'plain.js', signal: 'SIGINT', expect: { code: null, signal: 'SIGINT' } },
  'SIGHUP with no handler': { script: 'plain.js', signal: 'SIGHUP', expect: { code: null, signal: 'SIGHUP' } },
  "the app's SIGTERM handler, which exits": { script: 'handler-exits.js', signal: 'SIGTERM', expect: { code: 0, signal: null }, prints: /draining/ },
  "the app's SIGTERM handler, which keeps running": { script: 'handler-stays.js', signal: 'SIGTERM', staysUp: true, expect: { signal: 'SIGKILL' } },
  "the app's SIGINT handler, which keeps running": { script: 'handler-stays.js', signal: 'SIGINT', staysUp: true, expect: { signal: 'SIGKILL' } },
  "the app's SIGHUP handler, which keeps running": { script: 'handler-stays.js', signal: 'SIGHUP', staysUp: true, expect: { signal: 'SIGKILL' } },
  'signal-exit 3, SIGTERM': { script: 'signal-exit-3.js', signal: 'SIGTERM', expect: { code: null, signal: 'SIGTERM' }, prints: /onExit null SIGTERM/ },
  'signal-exit 3, SIGINT': { script: 'signal-exit-3.js', signal: 'SIGINT', expect: { code: null, signal: 'SIGINT' }, prints: /onExit null SIGINT/ },
  'signal-exit 4, SIGTERM': { script: 'signal-exit-4.js', signal: 'SIGTERM', expect: { code: null, signal: 'SIGTERM' }, prints: /onExit null SIGTERM/ },
  'signal-exit 4, SIGHUP': { script: 'signal-exit-4.js', signal: 'SIGHUP', expect: { code: null, signal: 'SIGHUP' }, prints: /onExit null SIGHUP/ },
  '@godaddy/terminus, SIGTERM': { script: 'terminus.js', signal: 'SIGTERM', expect: { code: null, signal: 'SIGTERM' }, prints: /terminus cleanup\nterminus done/ },
  'close-with-grace, SIGTERM': { script: 'close-with-grace.js', signal: 'SIGTERM', expect: { code: 0, signal: null }, prints: /closing on SIGTERM/ },
  'close-with-grace, SIGINT': { script: 'close-with-grace.js', signal: 'SIGINT', expect: { code: 0, signal: null }, prints: /closing on SIGINT/ },
  'http-terminator in the app handler, then the process ends by itself': { script: 'http-terminator.js', signal: 'SIGTERM', expect: { code: 0, signal: null }, prints: /terminating/ },
  'async-exit-hook, SIGTERM': { script: 'async-exit-hook.js', signal: 'SIGTERM', expect: { signal: null }, prints: /cleaning up/ },
  'async-exit-hook, SIGINT': { script: 'async-exit-hook.js', signal: 'SIGINT', expect: { signal: null }, prints: /cleaning up/ },
};

for (const node of testNodes()) describe(`a process ends as it would without the agent (real packages, backends down) on ${node.label}`, function () {
  this.timeout(90_000);
  let env: Record<string, string>;
  before(async () => {
    const down = await refusingUrl();
    env = {
      OTEL_SERVICE_NAME: 'ends-test',
      OTEL_EXPORTER_OTLP_ENDPOINT: down,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_LOG_LEVEL: 'none',
      PYROSCOPE_SERVER_ADDRESS: down,
      PYROSCOPE_UPLOAD_INTERVAL: '1s',
      PYROSCOPE_SHUTDOWN_TIMEOUT_MS: String(BOUND_MS),
    };
  });

  for (const [name, c] of Object.entries(CASES)) {
    it(name, async () => {
      const without = await runEnding(c, false, env, node.bin);
      const withAgent = await runEnding(c, true, env, node.bin);
      assert.equal(without.killed, false, `without the agent the fixture ended by itself (${without.ms} ms)`);
      for (const [key, value] of Object.entries(c.expect)) assert.equal(without[key as keyof Exit], value, `the fixture ends as expected without the agent: ${JSON.stringify(without)}`);
      assert.equal(withAgent.killed, false, `with the agent it is still running ${GRACE_MS} ms after the trigger; without it ended in ${without.ms} ms`);
      assert.deepEqual({ code: withAgent.code, signal: withAgent.signal }, { code: without.code, signal: without.signal }, 'the same exit code or signal with the agent as without');
      if (c.prints) {
        assert.match(without.stdout + without.stderr, c.prints);
        assert.match(withAgent.stdout + withAgent.stderr, c.prints, 'what the app prints on its way out, also with the agent');
      }
      assert.ok(withAgent.ms <= without.ms + BOUND_MS + SLACK_MS, `with the agent the end took ${withAgent.ms} ms, without ${without.ms} ms (the last flush is bounded by ${BOUND_MS} ms)`);
      assert.doesNotMatch(withAgent.stderr, /\[span-profiling\] error|TypeError/);
    });
  }

  it("pino's transport (its own worker thread) gets every line, the last one written on process.exit", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'spanprof-pino-'));
    try {
      const runs: Ending[] = [];
      for (const agent of [false, true]) {
        const file = path.join(dir, `${agent ? 'with' : 'without'}.log`);
        const c: Case = { script: 'pino-transport.js', signal: 'SIGTERM', expect: { code: 0 }, env: () => ({ LOG_FILE: file }) };
        const ending = await runEnding(c, agent, env, node.bin);
        assert.equal(ending.killed, false, `ended by itself (agent: ${agent})`);
        const lines = readFileSync(file, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { msg: string; url?: string });
        assert.deepEqual(
          lines.map((l) => l.url ?? l.msg),
          ['/a', '/b', '/c', 'shutting down'],
          `the log file's lines (agent: ${agent})`,
        );
        runs.push(ending);
      }
      assert.deepEqual({ code: runs[1]!.code, signal: runs[1]!.signal }, { code: runs[0]!.code, signal: runs[0]!.signal });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the agent's last flush on a signal is bounded when a backend never answers", function () {
  this.timeout(60_000);
  it('SIGTERM with no handler: dies of SIGTERM within the bound', async () => {
    const hole = await blackHole();
    try {
      const env = { OTEL_SERVICE_NAME: 'ends-test', OTEL_EXPORTER_OTLP_ENDPOINT: hole.url, OTEL_LOG_LEVEL: 'none', PYROSCOPE_SERVER_ADDRESS: hole.url, PYROSCOPE_SHUTDOWN_TIMEOUT_MS: String(BOUND_MS) };
      const ending = await runEnding({ script: 'plain.js', signal: 'SIGTERM', expect: {} }, true, env);
      assert.deepEqual({ code: ending.code, signal: ending.signal, killed: ending.killed }, { code: null, signal: 'SIGTERM', killed: false });
      assert.ok(ending.ms < BOUND_MS + SLACK_MS, `the end came ${ending.ms} ms after SIGTERM (bound ${BOUND_MS} ms)`);
    } finally {
      await hole.close();
    }
  });
});
