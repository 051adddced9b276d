/**
 * Package-manager and tool processes are left alone: with the agent in
 * NODE_OPTIONS (as in a pod), `npm run` starts the agent only in the app's
 * process, not in npm's own.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AGENT } from './harness/app-process';
import { toolName } from '../src/lifecycle/tools';

describe('tool processes', function () {
  this.timeout(60_000);

  it('recognises npm, npx, yarn, pnpm and corepack by their main script', () => {
    const cases: [string, string | undefined][] = [
      ['/usr/local/lib/node_modules/npm/bin/npm-cli.js', 'npm'],
      ['/usr/local/lib/node_modules/npm/bin/npx-cli.js', 'npx'],
      ['/usr/local/bin/npm', 'npm'],
      ['/app/.yarn/releases/yarn-4.5.0.cjs', 'yarn'],
      ['/usr/local/lib/node_modules/yarn/bin/yarn.js', 'yarn'],
      ['/usr/local/lib/node_modules/pnpm/bin/pnpm.cjs', 'pnpm'],
      ['/usr/local/lib/node_modules/corepack/dist/corepack.js', 'corepack'],
      ['/usr/local/lib/node_modules/corepack/dist/pnpm.js', 'pnpm'],
      ['C:\\Program Files\\nodejs\\node_modules\\npm\\bin\\npm-cli.js', 'npm'],
      ['/app/server.js', undefined],
      ['/app/dist/npm-stats.js', undefined],
      ['/app/yarn-report.js', undefined],
      [undefined as unknown as string, undefined],
    ];
    for (const [script, expected] of cases) assert.equal(toolName(script, {}), expected, script);
    assert.equal(toolName('/usr/local/bin/npm', { SPANPROFILING_SKIP_TOOLS: 'none' }), undefined, 'none profiles every process');
    assert.equal(toolName('/app/worker.js', { SPANPROFILING_SKIP_TOOLS: 'npm,worker' }), 'worker', 'the list can be replaced');
    assert.equal(toolName('/usr/local/bin/npm', { SPANPROFILING_SKIP_TOOLS: 'yarn' }), undefined);
  });

  const npmRun = (env: Record<string, string>): Promise<string> => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agent-npm-'));
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true, scripts: { start: 'node app.js' } }));
    writeFileSync(path.join(dir, 'app.js'), "console.log('app ran');\n");
    return new Promise((resolve, reject) =>
      execFile('npm', ['run', '--silent', 'start'], { cwd: dir, env: { PATH: process.env['PATH'], HOME: dir, NODE_OPTIONS: `--require ${AGENT}`, PYROSCOPE_LOG_LEVEL: 'info', OTEL_TRACES_EXPORTER: 'none', ...env } }, (err, stdout, stderr) => {
        rmSync(dir, { recursive: true, force: true });
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else {
          assert.match(stdout, /app ran/);
          resolve(stderr);
        }
      }),
    );
  };

  it('starts the agent in the app that `npm run` starts, not in npm', async () => {
    const stderr = await npmRun({});
    assert.equal(stderr.match(/\[span-profiling\] info: tracing: agent/g)?.length, 1, stderr);
  });

  it('starts it in npm too with SPANPROFILING_SKIP_TOOLS=none', async () => {
    const stderr = await npmRun({ SPANPROFILING_SKIP_TOOLS: 'none' });
    assert.equal(stderr.match(/\[span-profiling\] info: tracing: agent/g)?.length, 2, stderr);
  });
});
