/**
 * e2e/lib/progress.sh, the progress of the long first-run steps (the toolchain
 * build, the images): what a terminal and a CI log show while a step runs,
 * when it ends, and when it fails.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const PROGRESS = path.join(__dirname, '../lib/progress.sh');

/** Runs a bash snippet with progress.sh sourced; resolves with its stderr and exit code. */
function run(script: string, env: Record<string, string>): Promise<{ stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `set -euo pipefail; source "${PROGRESS}"; ${script}`], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ stderr, code }));
  });
}

describe('progress of long steps (e2e/lib/progress.sh)', function () {
  this.timeout(30_000);
  let cache: string;
  beforeEach(() => (cache = mkdtempSync(path.join(tmpdir(), 'progress-'))));
  afterEach(() => rmSync(cache, { recursive: true, force: true }));

  it('prints plain lines in CI: the step with n of N and its log, the time elapsed while it runs, and when it is done', async () => {
    const log = path.join(cache, 'logs/slow.log');
    const { stderr, code } = await run(`STEP_TOTAL=3; step_run test/slow "building slow 1.0" "${log}" bash -c 'echo go: downloading x; sleep 2.5'`, {
      CI: 'true',
      SPANPROF_CACHE: cache,
      SPANPROF_PROGRESS_EVERY: '1',
    });
    assert.equal(code, 0, stderr);
    const lines = stderr.trim().split('\n');
    assert.equal(lines[0], `[1/3] building slow 1.0 (log: ${log})`);
    assert.ok(lines.some((l) => /^\[1\/3\] building slow 1\.0 {2}\d+s elapsed$/.test(l)), stderr);
    const done = /^\[1\/3\] building slow 1\.0: done in (\d+)s$/.exec(lines.at(-1)!);
    assert.ok(done !== null && Number(done[1]) >= 2, stderr);
    assert.ok(!stderr.includes('\r'), 'no in-place updates in CI');
    // The step's own output went to its log, not to the console.
    assert.ok(!stderr.includes('go: downloading'));
    assert.equal(readFileSync(log, 'utf8'), 'go: downloading x\n');
  });

  it('tells the time the same step took last time', async () => {
    const env = { CI: 'true', SPANPROF_CACHE: cache };
    const log = path.join(cache, 'quick.log');
    await run(`STEP_TOTAL=1; step_run test/quick "quick" "${log}" sleep 1.2`, env);
    const again = await run(`STEP_TOTAL=1; step_run test/quick "quick" "${log}" true`, env);
    assert.match(again.stderr.split('\n')[0]!, /^\[1\/1\] quick \(log: .*, last time [1-9]\d*s\)$/);
    const other = await run(`STEP_TOTAL=1; step_run test/other "other" "${log}" true`, env);
    assert.ok(!other.stderr.includes('last time'), other.stderr);
  });

  it('updates one line in place on a terminal', async () => {
    const { stderr, code } = await run(`STEP_TOTAL=2; step_run test/a "step a" "${cache}/a.log" sleep 2.2; step_run test/b "step b" "${cache}/b.log" true`, {
      SPANPROF_CACHE: cache,
      SPANPROF_PROGRESS: 'inplace',
    });
    assert.equal(code, 0, stderr);
    // Each second shown once, on the same line.
    const shown = [...stderr.matchAll(/\r\x1b\[K\[1\/2\] step a {2}(\d+)s/g)].map((m) => Number(m[1]));
    assert.ok(shown.length >= 2 && new Set(shown).size === shown.length, JSON.stringify(stderr));
    assert.match(stderr, /\r\x1b\[K\[1\/2\] step a: done in \d+s\n/);
    assert.match(stderr, /\r\x1b\[K\[2\/2\] step b: done in \d+s\n$/);
  });

  it('on failure prints the end of the step log and returns the status, and the caller stops', async () => {
    const log = path.join(cache, 'bad.log');
    const { stderr, code } = await run(`STEP_TOTAL=1; step_run test/bad "bad step" "${log}" bash -c 'for i in $(seq 1 40); do echo line $i; done; exit 3'; echo not reached >&2`, {
      CI: 'true',
      SPANPROF_CACHE: cache,
    });
    assert.equal(code, 3);
    assert.match(stderr, /\[1\/1\] bad step: failed after \ds \(exit 3\); the end of .*bad\.log:\n {4}line 11\n/);
    assert.ok(stderr.includes('    line 40\n'));
    assert.ok(!stderr.includes('line 10\n'), 'only the last 30 lines');
    assert.ok(!stderr.includes('not reached'));
    // A failed step's time is not remembered as a duration for the next run.
    const again = await run(`STEP_TOTAL=1; step_run test/bad "bad step" "${log}" true`, { CI: 'true', SPANPROF_CACHE: cache });
    assert.ok(!again.stderr.includes('last time'), again.stderr);
  });
});
