/**
 * Child processes for tests: logs to a file each, a readiness probe, and a
 * teardown that always runs — on stop(), on the test process's exit, and on
 * SIGINT/SIGTERM — so nothing is left running after an interrupted test.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, createWriteStream, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const running = new Set<ChildProcess>();
let hooked = false;

function hookTeardown(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const child of running) child.kill('SIGKILL');
      process.kill(process.pid, signal);
    });
  }
}

/** A port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `spanprof-${prefix}-`));
}

export class ManagedProcess {
  readonly logFile: string;
  private readonly stdoutFile: string;
  private readonly child: ChildProcess;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    /**
     * separateStdout: stdout goes to <name>.out (read with stdout()), stderr alone to the log.
     * echoStderr: stderr also goes to this stream as it comes (a long step's progress).
     */
    options: { cwd?: string; env?: NodeJS.ProcessEnv; logDir: string; separateStdout?: boolean; echoStderr?: NodeJS.WritableStream },
  ) {
    hookTeardown();
    this.logFile = path.join(options.logDir, `${name}.log`);
    this.stdoutFile = options.separateStdout === true ? path.join(options.logDir, `${name}.out`) : this.logFile;
    const fd = openSync(this.logFile, 'a');
    const out = options.separateStdout === true ? openSync(this.stdoutFile, 'w') : fd;
    const echo = options.echoStderr;
    this.child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', out, echo === undefined ? fd : 'pipe'] });
    if (echo !== undefined) {
      const log = createWriteStream('', { fd: openSync(this.logFile, 'a') });
      this.child.stderr?.on('data', (chunk: Buffer) => {
        log.write(chunk);
        echo.write(chunk);
      });
      this.child.stderr?.on('end', () => log.end());
    }
    closeSync(fd);
    if (out !== fd) closeSync(out);
    running.add(this.child);
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        running.delete(this.child);
        resolve();
      }),
    );
    this.child.on('error', () => running.delete(this.child));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Exit code once exited (null: killed by a signal, undefined: still running). */
  get exitCode(): number | null | undefined {
    return this.exitInfo?.code;
  }

  stdout(): string {
    try {
      return readFileSync(this.stdoutFile, 'utf8');
    } catch {
      return '';
    }
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** The last lines of the log, for failure messages. */
  tail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Polls `probe` until it answers true, failing early (with the log) if the process dies. */
  async waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.alive) throw new Error(`${this.name} exited (${JSON.stringify(this.exitInfo)}) before ${what}; log ${this.logFile}:\n${this.tail()}`);
      if (await probe().catch(() => false)) return;
      if (Date.now() > deadline) throw new Error(`${this.name}: timed out after ${timeoutMs}ms waiting for ${what}; log ${this.logFile}:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async stop(graceMs = 10_000): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export async function httpOk(url: string, init?: RequestInit): Promise<boolean> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.ok;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; resolves with its exit code and output instead of throwing. */
export function runCommand(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { maxBuffer: 256 << 20, env: options.env ?? process.env, timeout: options.timeoutMs ?? 0 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0, stdout, stderr }),
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** runCommand that throws (with the output) on a non-zero exit. */
export async function runChecked(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  const r = await runCommand(command, args, options);
  if (r.code !== 0) throw new Error(`${path.basename(command)} ${args.join(' ')}: exit ${r.code}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}
