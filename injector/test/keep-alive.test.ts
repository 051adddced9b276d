/**
 * An idle keep-alive connection lets go of the last request it served (src/tracing/keep-alive.ts):
 * the server's keep-alive timer runs in the root context, not in the finished request's, and
 * everything else about the connection's timeouts is as without the agent.
 */
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import * as path from 'node:path';
import { AppProcess, FIXTURES, testNodes, waitFor } from './harness/app-process';
import { agentEnv, receiversPerTest } from './harness/agent-env';

const SERVER = path.join(FIXTURES, 'keep-alive.js');

interface Report {
  kind: 'idle' | 'app';
  span: string | null;
  store: string | null;
}

/** HTTP/1.1 requests one after another on one TCP connection, as a keep-alive client sends them; the connection stays open. */
class Connection {
  private readonly socket: net.Socket;
  private buffered = '';
  private waiting: (() => void) | undefined;

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => {
      this.buffered += d;
      this.waiting?.();
    });
    this.socket.on('error', () => undefined);
  }

  async get(p: string): Promise<{ span: string | null }> {
    this.socket.write(`GET ${p} HTTP/1.1\r\nHost: test\r\n\r\n`);
    for (;;) {
      const head = this.buffered.indexOf('\r\n\r\n');
      const length = Number(/content-length: (\d+)/i.exec(this.buffered)?.[1] ?? NaN);
      if (head >= 0 && this.buffered.length >= head + 4 + length) {
        const body = this.buffered.slice(head + 4, head + 4 + length);
        this.buffered = this.buffered.slice(head + 4 + length);
        return JSON.parse(body) as { span: string | null };
      }
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

const reports = (app: AppProcess): Report[] =>
  app.stdout
    .split('\n')
    .filter((l) => l.startsWith('timeout '))
    .map((l) => JSON.parse(l.slice('timeout '.length)) as Report);

/** Two requests on one kept-alive connection (the second sets a timeout of its own), then the connection left idle until the server closes it. */
async function serve(app: AppProcess): Promise<{ spans: (string | null)[]; app: Report; idle: Report }> {
  const connection = new Connection(app.port);
  const first = await connection.get('/work?n=1');
  const second = await connection.get('/work?n=2&app-timeout=1');
  const idle = await waitFor('the idle connection timing out', () => reports(app).find((r) => r.kind === 'idle'));
  connection.close();
  return { spans: [first.span, second.span], app: reports(app).find((r) => r.kind === 'app')!, idle };
}

describe('keep-alive connections and the request context', function () {
  this.timeout(60_000);
  const bed = receiversPerTest();

  for (const node of testNodes()) {
    it(`lets the keep-alive timer of an idle connection go of the last request's span, and keeps the app's own stores and timeouts, on ${node.label}`, async () => {
      bed.app = await AppProcess.start({ script: SERVER, node: node.bin, env: agentEnv(bed.pyroscope, bed.otlp) });
      const withAgent = await serve(bed.app);
      await bed.app.stop();
      const [, second] = withAgent.spans;
      assert.match(String(second), /^[0-9a-f]{16}$/, 'the request runs in its server span');
      // The app's own timeout, set with a callback while the request ran: in the request's span, as always.
      assert.deepEqual(withAgent.app, { kind: 'app', span: second, store: '/work?n=2&app-timeout=1' });
      // The server's keep-alive timer, between requests: no span; the app's store as the app left it.
      assert.deepEqual(withAgent.idle, { kind: 'idle', span: null, store: '/work?n=2&app-timeout=1' });

      bed.app = await AppProcess.start({ script: SERVER, node: node.bin, agent: false });
      const without = await serve(bed.app);
      assert.deepEqual(without.app, { kind: 'app', span: null, store: '/work?n=2&app-timeout=1' });
      assert.deepEqual(without.idle, withAgent.idle, "the app's stores in the keep-alive timer are the same without the agent");
    });
  }
});
