/**
 * Real apps, driven as their users drive them, without and with the agent:
 * the same responses, server spans named with the route, the request's CPU in
 * the span profile of its span, and the same end on SIGTERM.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';
import { AppProcess, FIXTURES, REPO_ROOT, testNodes, waitFor } from './harness/app-process';
import { OtlpReceiver } from './harness/otlp-receiver';
import { PyroscopeReceiver } from './harness/pyroscope-receiver';
import { agentEnv, allSamples, serverSpans } from './harness/agent-env';

interface Call {
  method: string;
  path: string;
  body?: unknown;
}
interface Answer {
  status: number;
  type: string;
  body: string;
}

function call(port: number, c: Call): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = c.body === undefined ? undefined : JSON.stringify(c.body);
    const req = http.request({ host: '127.0.0.1', port, method: c.method, path: c.path, headers: payload ? { 'content-type': 'application/json' } : {} }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** express 4 under its own name, from the corpus (injector/test/corpus.sh). */
const corpus = (): string => execFileSync('bash', [path.join(REPO_ROOT, 'injector/test/corpus.sh')], { encoding: 'utf8' }).trim();

const EXPRESS4_CALLS: Call[] = [
  { method: 'GET', path: '/users/7' },
  { method: 'POST', path: '/users', body: { name: 'ada' } },
  { method: 'GET', path: '/report/daily?ms=30' },
  { method: 'GET', path: '/fail' },
  { method: 'GET', path: '/nowhere' },
];

for (const node of testNodes()) {
  describe(`a real Express 4 app on ${node.label}`, function () {
    this.timeout(60_000);
    it('answers the same with the agent, names its spans with the route, profiles each request on its span, and dies of SIGTERM the same', async () => {
      const expressPath = path.join(corpus(), 'node_modules', 'express');
      const runs: { answers: Answer[]; exit: unknown }[] = [];
      const pyroscope = await new PyroscopeReceiver().start();
      const otlp = await new OtlpReceiver().start();
      try {
        for (const agent of [false, true]) {
          const app = await AppProcess.start({ script: path.join(FIXTURES, 'real', 'express4.js'), node: node.bin, agent, env: { ...agentEnv(pyroscope, otlp), EXPRESS_PATH: expressPath } });
          const answers: Answer[] = [];
          for (const c of EXPRESS4_CALLS) answers.push(await call(app.port, c));
          if (agent) {
            await waitFor('the spans', () => serverSpans(otlp.spans).length >= EXPRESS4_CALLS.length);
            await waitFor('a profile of the report', () => allSamples(pyroscope.cpuProfiles()).some((s) => s.stack.includes('hotAlpha')));
          }
          runs.push({ answers, exit: await app.stop('SIGTERM') });
        }
        assert.deepEqual(runs[1]!.answers, runs[0]!.answers, 'the same status, content type and body for every request');
        assert.deepEqual(runs[1]!.exit, runs[0]!.exit);
        assert.deepEqual(runs[0]!.exit, { code: null, signal: 'SIGTERM' });
        const names = serverSpans(otlp.spans).map((s) => s.name);
        for (const route of ['GET /users/:id', 'POST /users', 'GET /report/:kind']) assert.ok(names.includes(route), `a server span named ${route} (got ${names.join(', ')})`);
        const report = serverSpans(otlp.spans).find((s) => s.name === 'GET /report/:kind')!;
        assert.equal(report.attributes['pyroscope.profile.id'], report.spanId);
        const hotOnSpan = allSamples(pyroscope.cpuProfiles()).filter((s) => s.stack.includes('hotAlpha'));
        const onSpan = hotOnSpan.filter((s) => s.labels['span_id'] === report.spanId);
        assert.ok(onSpan.length > 0 && onSpan.length >= 0.9 * hotOnSpan.length, `the report's CPU is on its span (${onSpan.length} of ${hotOnSpan.length} samples)`);
        assert.equal(onSpan[0]!.labels['span_name'], 'GET /report/:kind');
      } finally {
        await pyroscope.close();
        await otlp.close();
      }
    });
  });
}
