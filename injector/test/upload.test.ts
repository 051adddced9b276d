import { strict as assert } from 'node:assert';
import { PyroscopeUploader, type Send, type UploadTarget } from '../src/export/pyroscope';
import type { Logger } from '../src/shared/log';
import { PyroscopeReceiver } from './harness/pyroscope-receiver';
import { Profile, StringTable, ValueType } from 'pprof-format';

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, debug: (m) => lines.push(`debug ${m}`), info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`) };
}

function target(overrides: Partial<UploadTarget> = {}): UploadTarget {
  return {
    serverAddress: 'http://127.0.0.1:1',
    applicationName: 'shop',
    authToken: undefined,
    basicAuthUser: undefined,
    basicAuthPassword: undefined,
    tenantId: undefined,
    labels: {},
    headers: {},
    maxQueuedUploads: 4,
    sampleRate: 100,
    ...overrides,
  };
}

function emptyProfile(): Uint8Array {
  const strings = new StringTable();
  return new Profile({ sampleType: [new ValueType({ type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') })], stringTable: strings }).encode();
}

const upload = () => ({ pprof: emptyProfile(), fromMs: 1_700_000_000_000, untilMs: 1_700_000_015_000 });

describe('Pyroscope uploader', function () {
  this.timeout(30_000);

  it('sends the pprof, series labels, auth and tenant the way Pyroscope reads them', async () => {
    const receiver = await new PyroscopeReceiver().start();
    try {
      const log = recordingLogger();
      const uploader = new PyroscopeUploader(
        target({ serverAddress: receiver.url, tenantId: 'team-a', authToken: 'secret', labels: { region: 'eu-west 1' }, headers: { 'X-Team': 'shop' } }),
        log,
      );
      uploader.enqueue(upload());
      await uploader.close(5000);
      assert.equal(receiver.profiles.length, 1);
      const p = receiver.profiles[0]!;
      assert.equal(p.query.get('name'), 'shop{region=eu-west_1}');
      assert.equal(p.query.get('from'), '1700000000');
      assert.equal(p.query.get('until'), '1700000015');
      assert.equal(p.query.get('format'), 'pprof');
      assert.equal(p.query.get('spyName'), 'nodespy');
      assert.equal(p.query.get('sampleRate'), '100');
      assert.equal(p.headers['authorization'], 'Bearer secret');
      assert.equal(p.headers['x-scope-orgid'], 'team-a');
      assert.equal(p.headers['x-team'], 'shop');
      assert.deepEqual(p.types, ['cpu:nanoseconds']);
      assert.deepEqual(log.lines, []);
    } finally {
      await receiver.close();
    }
  });

  it('uses basic auth when no token is set', async () => {
    const receiver = await new PyroscopeReceiver().start();
    try {
      const uploader = new PyroscopeUploader(target({ serverAddress: receiver.url, basicAuthUser: 'u', basicAuthPassword: 'p' }), recordingLogger());
      uploader.enqueue(upload());
      await uploader.close(5000);
      assert.equal(receiver.profiles[0]!.headers['authorization'], `Basic ${Buffer.from('u:p').toString('base64')}`);
    } finally {
      await receiver.close();
    }
  });

  it('retries server errors with backoff until the upload lands', async () => {
    const receiver = await new PyroscopeReceiver().start();
    try {
      receiver.behaviour = { status: 503 };
      const log = recordingLogger();
      const uploader = new PyroscopeUploader(target({ serverAddress: receiver.url }), log);
      uploader.enqueue(upload());
      while (receiver.requests.length < 2) await new Promise((r) => setTimeout(r, 20));
      receiver.behaviour = {};
      while (receiver.profiles.length < 1) await new Promise((r) => setTimeout(r, 20));
      await uploader.close(1000);
      assert.equal(receiver.profiles.length, 1);
      assert.equal(log.lines.filter((l) => l.startsWith('warn')).length, 1, `one warning for the outage: ${log.lines.join(' | ')}`);
      assert.ok(log.lines.some((l) => /work again/.test(l)));
    } finally {
      await receiver.close();
    }
  });

  it('drops a profile the server rejects (4xx) without retrying, and says what to check', async () => {
    let calls = 0;
    const send: Send = async () => {
      calls++;
      return { status: 401, body: 'unauthorized' };
    };
    const log = recordingLogger();
    const uploader = new PyroscopeUploader(target(), log, send);
    uploader.enqueue(upload());
    await uploader.close(2000);
    assert.equal(calls, 1);
    assert.ok(log.lines.some((l) => l.startsWith('error') && /HTTP 401/.test(l) && /credentials/.test(l)), log.lines.join('\n'));
  });

  it('keeps at most maxQueuedUploads profiles while the server is down, newest kept', async () => {
    const attempted: string[] = [];
    const send: Send = async (url) => {
      attempted.push(url.searchParams.get('from')!);
      throw new Error('connect ECONNREFUSED');
    };
    const log = recordingLogger();
    const uploader = new PyroscopeUploader(target({ maxQueuedUploads: 4 }), log, send);
    for (let i = 0; i < 100; i++) uploader.enqueue({ ...upload(), fromMs: i * 1000, untilMs: i * 1000 + 500 });
    assert.ok(uploader.pending <= 4, `pending ${uploader.pending}`);
    await uploader.close(200);
    assert.equal(log.lines.filter((l) => /failed \(connect ECONNREFUSED\)/.test(l)).length, 1, 'one warning per outage');
    assert.ok(!attempted.includes('50'), 'old profiles were dropped, not retried');
  });

  it('bounds close() by its timeout when the server hangs', async () => {
    const send: Send = () => new Promise(() => {});
    const uploader = new PyroscopeUploader(target(), recordingLogger(), send);
    uploader.enqueue(upload());
    const start = Date.now();
    await uploader.close(300);
    assert.ok(Date.now() - start < 2000);
  });

  it('reports a connection failure against a closed port, not a crash', async () => {
    const log = recordingLogger();
    const uploader = new PyroscopeUploader(target({ serverAddress: 'http://127.0.0.1:9' }), log);
    uploader.enqueue(upload());
    await uploader.close(3000);
    assert.ok(log.lines.some((l) => /ECONNREFUSED/.test(l)), log.lines.join('\n'));
  });
});
