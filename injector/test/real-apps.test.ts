/**
 * Real apps, driven as their users drive them, without and with the agent:
 * the same responses, server spans named with the route, the request's CPU in
 * the span profile of its span, and the same end on SIGTERM. Their packages
 * come from the npm registry under their own names, installed once into a
 * cache (injector/test/corpus.sh).
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { cpSync, copyFileSync, existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as path from 'node:path';
import { AppProcess, FIXTURES, REPO_ROOT, testNodes, waitFor } from './harness/app-process';
import { OtlpReceiver } from './harness/otlp-receiver';
import { PyroscopeReceiver } from './harness/pyroscope-receiver';
import { agentEnv, allSamples, serverSpans } from './harness/agent-env';
import { freePort } from './harness/down-backends';

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
      // The Date header and the like differ between runs; status, content type and body must not.
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * A fixture app placed where its packages are installed (injector/test/corpus.sh, on first use),
 * beside the package.json that lists them, as an app is deployed: returns the script's path.
 */
function deploy(corpus: string, fixture: string): string {
  const script = path.join(corpusDir(corpus), `main-${fixture}`);
  copyFileSync(path.join(FIXTURES, 'real', fixture), script);
  return script;
}

/** The corpus directory of an app (installed on first use). */
const corpusDir = (corpus: string): string => execFileSync('bash', [path.join(REPO_ROOT, 'injector/test/corpus.sh'), corpus], { encoding: 'utf8' }).trim();

/** Every file under a directory, sorted, for a content hash. */
function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]))
    .sort();
}

/**
 * The Next.js app built as teams ship it (`next build`, standalone output) in the corpus
 * directory, once per content of the fixture; answers the script that starts it.
 */
function deployNext(): string {
  const dir = corpusDir('next');
  const source = path.join(FIXTURES, 'real', 'next-app');
  const hash = createHash('sha256');
  for (const f of files(source)) hash.update(path.relative(source, f)).update(readFileSync(f));
  const stamp = path.join(dir, '.next', `built-${hash.digest('hex').slice(0, 16)}`);
  if (!existsSync(stamp)) {
    rmSync(path.join(dir, '.next'), { recursive: true, force: true });
    rmSync(path.join(dir, 'app'), { recursive: true, force: true });
    cpSync(source, dir, { recursive: true });
    execFileSync(path.join(dir, 'node_modules', '.bin', 'next'), ['build'], { cwd: dir, env: { ...process.env, NEXT_TELEMETRY_DISABLED: '1' }, stdio: ['ignore', 'ignore', 'inherit'] });
    cpSync(source, stamp.replace(/built-.*/, 'source'), { recursive: true });
    execFileSync('touch', [stamp]);
  }
  const script = path.join(dir, 'main-next.js');
  copyFileSync(path.join(FIXTURES, 'real', 'next-main.js'), script);
  return script;
}


interface RealApp {
  name: string;
  minMajor: number;
  /** Deploys the app, answering its script. */
  script: () => string;
  env?: () => Promise<Record<string, string>>;
  calls: Call[];
  /** Server span names the app's routes must give. */
  routes: string[];
  /** The route whose handler burns hotAlpha. */
  hotRoute: string;
  /** How it ends on SIGTERM without the agent (a check on the fixture). */
  sigterm: { code: number | null; signal: NodeJS.Signals | null };
}

const APPS: RealApp[] = [
  {
    name: 'Express 4',
    minMajor: 18,
    script: () => deploy('express4', 'express4.js'),
    calls: [
      { method: 'GET', path: '/users/7' },
      { method: 'POST', path: '/users', body: { name: 'ada' } },
      { method: 'GET', path: '/report/daily?ms=30' },
      { method: 'GET', path: '/fail' },
      { method: 'GET', path: '/nowhere' },
    ],
    routes: ['GET /users/:id', 'POST /users', 'GET /report/:kind'],
    hotRoute: 'GET /report/:kind',
    sigterm: { code: null, signal: 'SIGTERM' },
  },
  {
    name: 'NestJS 12 (express platform, shutdown hooks on)',
    minMajor: 20,
    script: () => deploy('nestjs', 'nest.js'),
    calls: [
      { method: 'GET', path: '/users/7' },
      { method: 'POST', path: '/users', body: { name: 'ada' } },
      { method: 'GET', path: '/report/daily?ms=30' },
      { method: 'GET', path: '/users/0' },
      { method: 'GET', path: '/nowhere' },
    ],
    routes: ['GET /users/:id', 'POST /users', 'GET /report/:kind'],
    hotRoute: 'GET /report/:kind',
    sigterm: { code: null, signal: 'SIGTERM' },
  },
  {
    name: 'Next.js 16 (standalone output, app router)',
    minMajor: 20,
    script: deployNext,
    env: async () => ({ PORT: String(await freePort()), NEXT_TELEMETRY_DISABLED: '1' }),
    calls: [
      { method: 'GET', path: '/api/users/7' },
      { method: 'GET', path: '/api/users/0' },
      { method: 'GET', path: '/api/report/daily?ms=30' },
      { method: 'GET', path: '/nowhere' },
    ],
    // Next.js names its own server span (a child of the HTTP span) with the route.
    routes: ['GET /api/users/[id]', 'GET /api/report/[kind]'],
    hotRoute: 'GET /api/report/[kind]',
    // Next.js handles SIGTERM itself and exits with 128 + 15.
    sigterm: { code: 143, signal: null },
  },
];

for (const node of testNodes()) {
  for (const real of APPS.filter((a) => node.major >= a.minMajor)) {
    describe(`a real ${real.name} app on ${node.label}`, function () {
      // The first run installs the app from the npm registry (and builds Next.js): minutes, once.
      this.timeout(600_000);
      it('answers the same with the agent, names its spans with the route, profiles each request on its span, and ends on SIGTERM the same', async () => {
        const script = real.script();
        const runs: { answers: Answer[]; exit: unknown; stdout: string }[] = [];
        const pyroscope = await new PyroscopeReceiver().start();
        const otlp = await new OtlpReceiver().start();
        try {
          for (const agent of [false, true]) {
            const app = await AppProcess.start({ script, node: node.bin, agent, env: { ...agentEnv(pyroscope, otlp), ...(await real.env?.()) } });
            const answers: Answer[] = [];
            for (const c of real.calls) answers.push(await call(app.port, c));
            if (agent) {
              await waitFor('the spans', () => serverSpans(otlp.spans).length >= real.calls.length);
              // A 30 ms request may get no CPU sample on a machine busy with other work: ask the hot route again until one comes.
              const hotCall = real.calls.find((c) => c.path.includes('ms='))!;
              let asked = Date.now();
              await waitFor('a profile of the hot route', () => {
                if (allSamples(pyroscope.cpuProfiles()).some((s) => s.stack.includes('hotAlpha'))) return true;
                if (Date.now() - asked > 3000) {
                  asked = Date.now();
                  void call(app.port, hotCall).catch(() => undefined);
                }
                return false;
              }, 60_000);
            }
            // The port and the times an app prints differ from run to run.
            const stdout = app.stdout.split(String(app.port)).join('<port>').replace(/\b\d+(\.\d+)?m?s\b/g, '<time>');
            runs.push({ answers, exit: await app.stop('SIGTERM'), stdout });
          }
          assert.deepEqual(runs[1]!.answers, runs[0]!.answers, 'the same status, content type and body for every request');
          assert.equal(runs[1]!.stdout, runs[0]!.stdout, 'the same output');
          assert.deepEqual(runs[0]!.exit, real.sigterm, 'the fixture ends on SIGTERM as expected without the agent');
          assert.deepEqual(runs[1]!.exit, runs[0]!.exit, 'the same end on SIGTERM with the agent');
          const names = serverSpans(otlp.spans).map((s) => s.name);
          for (const route of real.routes) assert.ok(names.includes(route), `a server span named ${route} (got ${names.join(', ')})`);
          // Each hot request's local root: the route's span, or the HTTP span a framework's own span runs under.
          const roots = serverSpans(otlp.spans)
            .filter((s) => s.name === real.hotRoute)
            .map((named) => (named.attributes['pyroscope.profile.id'] !== undefined ? named : otlp.spans.find((s) => s.spanId === named.parentSpanId)!));
          for (const root of roots) assert.equal(root.attributes['pyroscope.profile.id'], root.spanId);
          const hotSamples = allSamples(pyroscope.cpuProfiles()).filter((s) => s.stack.includes('hotAlpha'));
          const onSpan = hotSamples.filter((s) => roots.some((r) => r.spanId === s.labels['span_id']));
          assert.ok(onSpan.length > 0 && onSpan.length >= 0.9 * hotSamples.length, `the hot route's CPU is on its requests' spans (${onSpan.length} of ${hotSamples.length} samples)`);
          assert.equal(onSpan[0]!.labels['span_name'], real.hotRoute);
        } finally {
          await pyroscope.close();
          await otlp.close();
        }
      });
    });
  }
}
