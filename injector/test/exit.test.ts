/**
 * A backend that is down never delays a process's exit by more than the
 * shutdown bound (PYROSCOPE_SHUTDOWN_TIMEOUT_MS), retries included: a short
 * job ends by itself while the trace and profile backends refuse connections,
 * accept and never answer, or do not resolve, over each OTLP protocol.
 * Before the bound, exporter retry timers and calls in flight kept such a
 * process alive for 8-10 s (the OTLP timeout, 10 s by default; 30 s here).
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import { AppProcess, FIXTURES } from './harness/app-process';
import { OtlpReceiver } from './harness/otlp-receiver';
import { PyroscopeReceiver } from './harness/pyroscope-receiver';
import { blackHole, refusingUrl } from './harness/down-backends';

const JOB = path.join(FIXTURES, 'short-job.js');
const BOUND_MS = 1000;
/** Slack over the bound for a busy machine; the fault it guards against costs 8 s or more. */
const SLACK_MS = 3000;

describe('exit with a backend down', function () {
  this.timeout(60_000);
  let hole: Awaited<ReturnType<typeof blackHole>>;
  let refused: string;
  before(async () => {
    hole = await blackHole();
    refused = await refusingUrl();
  });
  after(() => hole.close());

  const states: [string, () => string][] = [
    ['refusing connections', () => refused],
    ['accepting and never answering', () => hole.url],
    // .invalid never resolves (RFC 6761).
    ['unresolvable', () => 'http://span-profiling-backend.invalid:4318'],
  ];
  for (const protocol of ['http/protobuf', 'grpc', 'http/json']) {
    for (const [state, url] of states) {
      it(`exits within the bound with both backends ${state} (OTLP ${protocol})`, async () => {
        const app = await AppProcess.start({
          script: JOB,
          waitForPort: false,
          env: {
            OTEL_SERVICE_NAME: 'short-job',
            OTEL_EXPORTER_OTLP_ENDPOINT: url(),
            OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
            OTEL_EXPORTER_OTLP_TIMEOUT: '30000',
            PYROSCOPE_SERVER_ADDRESS: url(),
            PYROSCOPE_SHUTDOWN_TIMEOUT_MS: String(BOUND_MS),
            OTEL_LOG_LEVEL: 'none',
          },
        });
        const exit = await app.exited;
        const exitedAt = Date.now();
        assert.deepEqual(exit, { code: 0, signal: null }, app.stderr);
        const done = Number(/done (\d+)/.exec(app.stdout)?.[1]);
        assert.ok(done > 0, app.stdout);
        const delay = exitedAt - done;
        assert.ok(delay < BOUND_MS + SLACK_MS, `exit came ${delay} ms after the work was done (bound ${BOUND_MS} ms)`);
        assert.doesNotMatch(app.stderr, /Unhandled|TypeError/);
      });
    }
  }

  // Not gRPC: its client keeps the process alive while a call is pending (a known limit, README).
  for (const protocol of ['http/protobuf', 'http/json']) {
    it(`exits within the bound when a batch is still being exported to a backend that never answers as the job ends (OTLP ${protocol})`, async () => {
      const app = await AppProcess.start({
        script: JOB,
        waitForPort: false,
        env: {
          OTEL_SERVICE_NAME: 'short-job',
          OTEL_EXPORTER_OTLP_ENDPOINT: hole.url,
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
          OTEL_EXPORTER_OTLP_TIMEOUT: '30000',
          // The first batch leaves after 50 ms and hangs; the job works on for 500 ms.
          OTEL_BSP_SCHEDULE_DELAY: '50',
          JOB_WAIT_MS: '500',
          PYROSCOPE_SERVER_ADDRESS: hole.url,
          PYROSCOPE_SHUTDOWN_TIMEOUT_MS: String(BOUND_MS),
          OTEL_LOG_LEVEL: 'none',
        },
      });
      const exit = await app.exited;
      const delay = Date.now() - Number(/done (\d+)/.exec(app.stdout)?.[1]);
      assert.deepEqual(exit, { code: 0, signal: null }, app.stderr);
      assert.ok(delay < BOUND_MS + SLACK_MS, `exit came ${delay} ms after the work was done (bound ${BOUND_MS} ms)`);
    });
  }

  it('still exports and uploads before a natural exit when the backends are up (the bound only cuts what is stuck)', async () => {
    const otlp = await new OtlpReceiver().start();
    const pyroscope = await new PyroscopeReceiver().start();
    try {
      for (const protocol of ['http/protobuf', 'grpc']) {
        const before = otlp.spans.length;
        const app = await AppProcess.start({
          script: JOB,
          waitForPort: false,
          env: {
            OTEL_SERVICE_NAME: 'short-job',
            OTEL_EXPORTER_OTLP_ENDPOINT: protocol === 'grpc' ? otlp.grpcUrl : otlp.httpUrl,
            OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
            PYROSCOPE_SERVER_ADDRESS: pyroscope.url,
          },
        });
        assert.deepEqual(await app.exited, { code: 0, signal: null }, app.stderr);
        assert.ok(otlp.spans.slice(before).some((s) => s.name === 'GET'), `the job's spans arrived over ${protocol} before it exited`);
      }
      assert.ok(pyroscope.cpuProfiles().length >= 2, 'and its profiles');
    } finally {
      await otlp.close();
      await pyroscope.close();
    }
  });
});
