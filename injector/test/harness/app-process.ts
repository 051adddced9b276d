/**
 * Runs a Node.js app in a child process, with or without the built agent
 * preloaded, and drives HTTP load at it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '../../..');
export const AGENT = path.join(REPO_ROOT, 'injector/dist/register.js');
export const FIXTURES = path.join(REPO_ROOT, 'injector/test/fixtures');

/**
 * The Node binaries the agent suites run on: the machine's own, plus any listed
 * in SPANPROF_TEST_NODES (colon-separated paths, see injector/test/node-versions.sh).
 */
export function testNodes(): { label: string; bin: string; major: number }[] {
  const extra = (process.env['SPANPROF_TEST_NODES'] ?? '').split(':').filter((p) => p !== '');
  const bins = [process.execPath, ...extra.filter((p) => p !== process.execPath)];
  return bins.map((bin) => {
    const version = bin === process.execPath ? process.version : execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
    return { bin, major: Number(/^v(\d+)/.exec(version)?.[1]), label: `node ${version}${bin === process.execPath ? ' (runs mocha)' : ''}` };
  });
}

export interface AppOptions {
  script: string;
  env?: Record<string, string | undefined>;
  node?: string;
  /** --require the agent (default true). */
  agent?: boolean;
  /** Extra node flags before the script. */
  nodeArgs?: string[];
  /** Waits for the app's "listening <port>" line (default true). */
  waitForPort?: boolean;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class AppProcess {
  stdout = '';
  stderr = '';
  port = 0;
  readonly exited: Promise<Exit>;
  private constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  static async start(options: AppOptions): Promise<AppProcess> {
    const args = [...(options.agent === false ? [] : ['--require', AGENT]), ...(options.nodeArgs ?? []), options.script];
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ PATH: process.env['PATH'], HOME: process.env['HOME'], ...options.env })) if (v !== undefined) env[k] = v;
    const child = spawn(options.node ?? process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const app = new AppProcess(child);
    if (options.waitForPort === false) return app;
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`app did not start within 20s; stderr:\n${app.stderr}`)), 20_000);
      const check = (): void => {
        const m = /listening (\d+)/.exec(app.stdout);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      };
      child.stdout!.on('data', check);
      void app.exited.then((e) => reject(new Error(`app exited early (${JSON.stringify(e)}); stderr:\n${app.stderr}`)));
    });
    app.port = port;
    return app;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Sends a signal and waits for the exit, killing after a grace period. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<Exit> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const exit = await this.exited;
    clearTimeout(timer);
    return exit;
  }

  /** Resident set size of the child in bytes (Linux /proc). */
  async rssBytes(): Promise<number> {
    const { readFile } = await import('node:fs/promises');
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+) kB/.exec(status);
    return kb ? Number(kb[1]) * 1024 : 0;
  }
}

export interface RequestResult {
  path: string;
  status: number;
  ms: number;
}

/**
 * Closed-loop HTTP load over keep-alive connections: `concurrency` workers
 * each send the next path until `done(i)` says stop (i = requests started).
 */
async function drive(port: number, concurrency: number, pathFor: (i: number) => string, done: (i: number) => boolean): Promise<RequestResult[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const results: RequestResult[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (!done(next)) {
      const p = pathFor(next++);
      const start = performance.now();
      const status = await new Promise<number>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', () => resolve(0));
      });
      results.push({ path: p, status, ms: performance.now() - start });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return results;
}

/** Sends every path, `concurrency` at a time. */
export function load(port: number, paths: string[], concurrency: number): Promise<RequestResult[]> {
  return drive(port, concurrency, (i) => paths[i]!, (i) => i >= paths.length);
}

/** Sends requests for `seconds`, `concurrency` at a time. */
export function loadFor(port: number, pathFor: (i: number) => string, seconds: number, concurrency: number): Promise<RequestResult[]> {
  const end = performance.now() + seconds * 1000;
  return drive(port, concurrency, pathFor, () => performance.now() >= end);
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
