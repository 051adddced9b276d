/**
 * The agent's hold on the OpenTelemetry API registry at its edges: an app
 * that wraps the agent's provider and registers the wrapper, and a bundled
 * API copy of another version whose registration fails.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildSync } from 'esbuild';
import { AppProcess, FIXTURES } from './harness/app-process';

const DIR = path.join(FIXTURES, 'registry');

async function runToEnd(script: string): Promise<{ out: Record<string, unknown>; stderr: string }> {
  const app = await AppProcess.start({ script, waitForPort: false, env: { PYROSCOPE_LOG_LEVEL: 'info', OTEL_TRACES_EXPORTER: 'none' } });
  const exit = await app.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, app.stderr);
  return { out: JSON.parse(app.stdout.trim().split('\n').pop()!) as Record<string, unknown>, stderr: app.stderr };
}

describe('the agent and the API registry, at the edges', function () {
  this.timeout(60_000);

  it("lets an app register a wrapper of the agent's provider, and a span started through it does not loop", async () => {
    const { out, stderr } = await runToEnd(path.join(DIR, 'wraps-global.js'));
    assert.deepEqual(out, { registered: true, ok: true });
    assert.match(stderr, /tracing: app's SDK \(Object, registered after the agent\)/);
  });

  it('puts its own instances back at once when a bundled copy of another API version fails to register', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'span-profiling-registry-'));
    try {
      const bundle = path.join(dir, 'app.js');
      buildSync({ entryPoints: [path.join(DIR, 'bundled-older-api.js')], outfile: bundle, bundle: true, platform: 'node', format: 'cjs', logLevel: 'error' });
      const { out, stderr } = await runToEnd(bundle);
      assert.deepEqual(out, { registered: false, contextBack: true, contextName: 'AsyncLocalStorageContextManager' });
      assert.match(stderr, /registration of its OpenTelemetry context failed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
