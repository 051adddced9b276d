/**
 * The operator's Kubernetes client at the wire: an HTTPS server that answers
 * as the API server does, but with the byte boundaries, 410s and continue
 * tokens a real one produces only by chance (the same client against the real
 * kube-apiserver is in integration.test.ts).
 */
import { strict as assert } from 'node:assert';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createCA, createServingCert } from '../src/certs/x509';
import { HttpKube, METADATA, METADATA_LIST, type WatchEvent } from '../src/kube/client';
import { Reflector, type KubeObject } from '../src/kube/reflector';
import { jsonLog } from '../src/log';
import { retryDelay, WorkQueue } from '../src/controller/queue';
import { PodIndex, SelectionInputs } from '../src/controller/pod-index';
import { slimPod } from '../src/controller/controller';
import { EventRecorder } from '../src/controller/events';

type Handler = (req: { method: string; path: string; query: URLSearchParams; accept?: string }, res: import('node:http').ServerResponse) => void;

/** An HTTPS server on loopback, and an HttpKube that trusts it. */
async function scriptedServer(handler: Handler): Promise<{ kube: HttpKube; requests: string[]; close: () => Promise<void> }> {
  const ca = createCA('test-ca', new Date(), 1);
  const serving = createServingCert(ca, ['127.0.0.1'], new Date(), 1);
  const requests: string[] = [];
  const server = https.createServer({ key: serving.key, cert: serving.cert }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x');
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    handler({ method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, ...(req.headers.accept !== undefined ? { accept: req.headers.accept } : {}) }, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const kube = new HttpKube(async () => ({ server: `https://127.0.0.1:${port}`, https: { ca: ca.cert }, headers: {} }));
  return {
    kube,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Writes `body` in chunks that end in the middle of every multi-byte character, each chunk flushed before the next. */
async function writeSplit(res: import('node:http').ServerResponse, body: string): Promise<void> {
  const bytes = Buffer.from(body, 'utf8');
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    // A lead byte of a multi-byte character: end the chunk just after it.
    if (bytes[i]! >= 0xc0) {
      await new Promise<void>((r) => res.write(bytes.subarray(start, i + 1), () => r()));
      await new Promise((r) => setImmediate(r));
      start = i + 1;
    }
  }
  await new Promise<void>((r) => res.write(bytes.subarray(start), () => r()));
}

const until = async (probe: () => boolean): Promise<void> => {
  while (!probe()) await new Promise((r) => setTimeout(r, 10));
};

const STREET = 'Zürich-Straße 7, 東京 🚀';
const log = jsonLog('error', () => undefined);

interface Obj extends KubeObject {
  metadata: { name: string; namespace?: string; resourceVersion: string; annotations?: Record<string, string> };
}
const obj = (name: string, rv: string, street = STREET): Obj => ({ metadata: { name, namespace: 'shop', resourceVersion: rv, annotations: { street } } });

describe('Kubernetes client', () => {
  it('request() decodes a character whose bytes arrive in two chunks', async () => {
    const s = await scriptedServer((_, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      void writeSplit(res, JSON.stringify(obj('lease', '1'))).then(() => res.end());
    });
    try {
      const got = await s.kube.request<Obj>('GET', '/apis/coordination.k8s.io/v1/namespaces/shop/leases/lease');
      assert.equal(got.metadata.annotations?.['street'], STREET);
    } finally {
      await s.close();
    }
  });

  it('an error body split inside a character still reads whole', async () => {
    const s = await scriptedServer((_, res) => {
      res.writeHead(422, { 'content-type': 'application/json' });
      void writeSplit(res, JSON.stringify({ kind: 'Status', reason: 'Invalid', message: `bad value ${STREET}` })).then(() => res.end());
    });
    try {
      await assert.rejects(s.kube.request('POST', '/api/v1/namespaces/shop/pods', {}), (err: Error) => err.message.includes(STREET));
    } finally {
      await s.close();
    }
  });

  it('watch() decodes characters split across chunks, also across event lines', async () => {
    const s = await scriptedServer((_, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const lines = ['a', 'b', 'c'].map((n, i) => JSON.stringify({ type: 'MODIFIED', object: obj(n, String(i + 2)) })).join('\n') + '\n';
      void writeSplit(res, lines).then(() => res.end());
    });
    try {
      const seen: WatchEvent<Obj>[] = [];
      await s.kube.watch<Obj>('/api/v1/pods?watch=true', (e) => seen.push(e)).done;
      assert.deepEqual(
        seen.map((e) => [e.object.metadata.name, e.object.metadata.annotations?.['street']]),
        ['a', 'b', 'c'].map((n) => [n, STREET]),
      );
    } finally {
      await s.close();
    }
  });
});

describe('Reflector', () => {
  /** A collection whose contents the test changes; open watches end with 410 Gone when the test says so. */
  function collection() {
    const state = { items: [obj('a', '1'), obj('b', '2')], rv: '10' };
    const watches: import('node:http').ServerResponse[] = [];
    const accepts: string[] = [];
    const handler: Handler = ({ query, accept }, res) => {
      accepts.push(`${query.get('watch') === 'true' ? 'watch' : 'list'} ${accept ?? ''}`);
      res.writeHead(200, { 'content-type': 'application/json' });
      if (query.get('watch') === 'true') {
        res.write(''); // an open watch with nothing to say yet
        watches.push(res);
        return;
      }
      const offset = Number(query.get('continue') ?? '0');
      const limit = Number(query.get('limit'));
      const page = state.items.slice(offset, offset + limit);
      const next = offset + limit < state.items.length ? String(offset + limit) : undefined;
      res.end(JSON.stringify({ items: page, metadata: { resourceVersion: state.rv, ...(next !== undefined ? { continue: next } : {}) } }));
    };
    const expireWatches = (): void => {
      for (const w of watches.splice(0)) w.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } })}\n`);
    };
    /** Sends an event on every open watch. */
    const send = (type: string, o: Obj): void => {
      for (const w of watches) w.write(`${JSON.stringify({ type, object: o })}\n`);
    };
    return { state, handler, expireWatches, send, accepts, watching: () => watches.length > 0 };
  }

  it('lists from the watch cache (resourceVersion=0), page by page, following continue tokens', async () => {
    const c = collection();
    c.state.items = Array.from({ length: 7 }, (_, i) => obj(`p${i}`, String(i + 1)));
    const s = await scriptedServer(c.handler);
    const r = new Reflector<Obj>(s.kube, '/api/v1/pods', log, { query: 'labelSelector=x%3Dy', pageSize: 3 });
    try {
      await r.start();
      assert.deepEqual(r.list().map((o) => o.metadata.name).sort(), ['p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6']);
      const lists = s.requests.filter((q) => !q.includes('watch=true'));
      assert.deepEqual(lists, [
        'GET /api/v1/pods?labelSelector=x%3Dy&resourceVersion=0&limit=3',
        'GET /api/v1/pods?labelSelector=x%3Dy&limit=3&continue=3',
        'GET /api/v1/pods?labelSelector=x%3Dy&limit=3&continue=6',
      ]);
    } finally {
      r.stop();
      await s.close();
    }
  });

  it('after a re-list, reports each object that changed while no watch was open', async () => {
    const c = collection();
    const s = await scriptedServer(c.handler);
    const r = new Reflector<Obj>(s.kube, '/api/v1/pods', log);
    const events: string[] = [];
    r.onChange((type, o) => events.push(`${type}${o ? ` ${o.metadata?.name}` : ''}`));
    try {
      await r.start();
      assert.deepEqual(events, ['ADDED a', 'ADDED b', 'SYNC']);
      events.length = 0;
      // While no watch is open: a changes, b is deleted, c is created; the watch ends with its version expired.
      const resynced = new Promise<void>((resolve) => r.onChange((type) => type === 'SYNC' && resolve()));
      await until(c.watching);
      c.state.items = [obj('a', '11', 'Bahnhofstraße'), obj('c', '12')];
      c.state.rv = '12';
      c.expireWatches();
      await resynced;
      assert.deepEqual(events, ['MODIFIED a', 'ADDED c', 'DELETED b', 'SYNC']);
      assert.equal(r.get('shop', 'a')?.metadata.annotations?.['street'], 'Bahnhofstraße');
      assert.equal(r.get('shop', 'b'), undefined);
    } finally {
      r.stop();
      await s.close();
    }
  });

  it('asks for metadata only, caches what keep() wants, drops what it stops wanting, and relist() brings in what it wants now', async () => {
    const c = collection();
    c.state.items = [obj('a', '1'), obj('b', '2'), obj('c', '3')];
    const s = await scriptedServer(c.handler);
    const wanted = new Set(['a']);
    const r = new Reflector<Obj>(s.kube, '/api/v1/pods', log, { metadataOnly: true, keep: (o) => wanted.has(o.metadata.name) });
    const events: string[] = [];
    r.onChange((type, o) => events.push(`${type}${o ? ` ${o.metadata?.name}` : ''}`));
    try {
      await r.start();
      await until(c.watching);
      assert.deepEqual(r.list().map((o) => o.metadata.name), ['a']);
      assert.deepEqual(c.accepts, [`list ${METADATA_LIST}`, `watch ${METADATA}`]);
      // A change to an object not wanted is not cached; an object that stops being wanted leaves the cache as deleted.
      c.send('MODIFIED', obj('b', '4'));
      wanted.delete('a');
      c.send('MODIFIED', obj('a', '5'));
      await until(() => events.includes('DELETED a'));
      assert.deepEqual(r.list(), []);
      // Wanted now: the objects already there come in with a new list.
      wanted.add('b').add('c');
      const resynced = new Promise<void>((resolve) => r.onChange((type) => type === 'SYNC' && resolve()));
      r.relist();
      await resynced;
      assert.deepEqual(r.list().map((o) => o.metadata.name).sort(), ['b', 'c']);
      assert.deepEqual(events, ['ADDED a', 'SYNC', 'DELETED a', 'ADDED b', 'ADDED c', 'SYNC']);
    } finally {
      r.stop();
      await s.close();
    }
  });
});

describe('pods by SpanProfiling', () => {
  type P = { metadata: { name: string; namespace: string; owner?: string; selects?: string } };
  const pod = (name: string, owner?: string, selects?: string): P => ({ metadata: { name, namespace: 'shop', ...(owner ? { owner } : {}), ...(selects ? { selects } : {}) } });

  it('answers the pods of each SpanProfiling as pods come, change owner and go', () => {
    const pods = new Map<string, P>();
    const owners = (p: P): string[] => [...new Set([p.metadata.owner, p.metadata.selects].filter((o): o is string => o !== undefined))];
    const index = new PodIndex<P>(owners, () => pods.values());
    const put = (p: P): void => {
      pods.set(p.metadata.name, p);
      index.set(p);
    };
    put(pod('a', 'shop/x'));
    put(pod('b', 'shop/x', 'shop/y'));
    assert.deepEqual(index.of('shop/x').map((p) => p.metadata.name), ['a', 'b']);
    assert.deepEqual(index.of('shop/y').map((p) => p.metadata.name), ['b']);
    put(pod('c', undefined, 'shop/y'));
    put(pod('a', 'shop/y'));
    assert.deepEqual(index.ownersOf(pod('a')), ['shop/y']);
    assert.deepEqual(index.of('shop/x').map((p) => p.metadata.name), ['b']);
    assert.deepEqual(index.of('shop/y').map((p) => p.metadata.name).sort(), ['a', 'b', 'c']);
    pods.delete('b');
    index.delete(pod('b'));
    assert.deepEqual(index.of('shop/x'), []);
    // What pods select changed for all of them: the index is built again from every pod at its next read.
    for (const p of pods.values()) p.metadata.selects = 'shop/z';
    index.invalidate();
    index.set(pod('d', 'shop/z'));
    assert.deepEqual(index.ownersOf(pod('a')), []);
    assert.deepEqual(index.of('shop/z').map((p) => p.metadata.name).sort(), ['a', 'c']);
    assert.deepEqual(index.of('shop/y').map((p) => p.metadata.name), ['a']);
  });

  it('rebuilds only when what pods select by changed, not for a status write or a label the operator set', () => {
    const inputs = new SelectionInputs();
    assert.equal(inputs.changed('sp:shop/x', '1'), true);
    assert.equal(inputs.changed('sp:shop/x', '1'), false);
    assert.equal(inputs.changed('sp:shop/x', '2'), true);
    assert.equal(inputs.changed('ns:shop', undefined), false);
    assert.equal(inputs.changed('ns:shop', 'true'), true);
    assert.equal(inputs.changed('ns:shop', undefined), true);
    assert.equal(inputs.changed('sp:shop/x', undefined), true);
    assert.equal(inputs.changed(undefined, undefined), true);
  });
});

describe('controller work queue', () => {
  it('retries a failing key after 1 s, 2 s, 4 s ... up to 2 min, not every 2 s', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 8, 100].map((n) => retryDelay(n)), [1000, 2000, 4000, 8000, 16_000, 120_000, 120_000]);
  });

  it('backs off per key: a broken key waits longer each time while the others go on, and success forgets', async () => {
    let brokenLeft = 3;
    const done: string[] = [];
    const retries: number[] = [];
    let finished!: () => void;
    const allDone = new Promise<void>((r) => (finished = r));
    const q = new WorkQueue(
      async (key) => {
        if (key === 'broken' && brokenLeft-- > 0) throw new Error('API server said no');
        done.push(key);
        if (done.includes('broken') && done.includes('fine')) finished();
      },
      (key, err, retryMs) => {
        if (err !== undefined) retries.push(retryMs);
        if (key === 'broken' && err === undefined) assert.equal(q.failuresOf('broken'), 0);
      },
      { baseMs: 5, maxMs: 15 },
    );
    q.start();
    q.add('broken');
    q.add('fine');
    await allDone;
    q.stop();
    assert.deepEqual(retries, [5, 10, 15]);
    assert.ok(done.indexOf('fine') < done.indexOf('broken'), `the healthy key was not held up: ${done.join(', ')}`);
  });

  it('works on up to `concurrency` keys at once, never on one key twice at once, and runs a key added meanwhile again after', async () => {
    const running = new Set<string>();
    let most = 0;
    const runs: string[] = [];
    const gates = new Map<string, () => void>();
    const q = new WorkQueue(
      async (key) => {
        assert.ok(!running.has(key), `${key} ran twice at once`);
        running.add(key);
        most = Math.max(most, running.size);
        runs.push(key);
        await new Promise<void>((r) => gates.set(`${key}#${runs.filter((k) => k === key).length}`, r));
        running.delete(key);
      },
      () => undefined,
      undefined,
      3,
    );
    q.start();
    for (const k of ['a', 'b', 'c', 'd']) q.add(k);
    await until(() => running.size === 3);
    assert.deepEqual([...running].sort(), ['a', 'b', 'c']);
    q.add('a'); // while a runs: it waits for that run to end
    gates.get('b#1')!();
    await until(() => running.has('d'));
    assert.ok(!runs.slice(3).includes('a'), 'a ran again while its first run was on');
    gates.get('a#1')!();
    await until(() => runs.filter((k) => k === 'a').length === 2);
    for (const g of ['c#1', 'd#1', 'a#2']) gates.get(g)!();
    await until(() => running.size === 0);
    q.stop();
    assert.equal(most, 3);
    assert.deepEqual([...runs].sort(), ['a', 'a', 'b', 'c', 'd']);
  });

  it('ignores keys while stopped, and stop() cancels waiting retries', async () => {
    let runs = 0;
    const q = new WorkQueue(
      async () => {
        runs++;
        throw new Error('no');
      },
      () => undefined,
      { baseMs: 1, maxMs: 1 },
    );
    q.add('x');
    assert.equal(runs, 0);
    q.start();
    q.add('x');
    await until(() => runs >= 1);
    q.stop();
    const at = runs;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(runs, at);
  });
});

describe('pod cache', () => {
  it('keeps only what the controller reads', () => {
    const pod = {
      metadata: {
        name: 'web-1',
        namespace: 'shop',
        uid: 'u1',
        resourceVersion: '7',
        labels: { app: 'web' },
        annotations: { 'spanprofiling.io/spanprofiling': 'shop/default', 'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(10_000) },
        managedFields: [{ manager: 'kubectl' }],
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f', uid: 'rs1', controller: true, blockOwnerDeletion: true },
          { apiVersion: 'v1', kind: 'ConfigMap', name: 'other', uid: 'c1' },
        ],
      },
      spec: { containers: [{ name: 'app', image: 'node:24' }] },
      status: { phase: 'Running', conditions: [{ type: 'Ready' }] },
    };
    assert.deepEqual(slimPod(pod as never), {
      metadata: {
        name: 'web-1',
        namespace: 'shop',
        uid: 'u1',
        resourceVersion: '7',
        labels: { app: 'web' },
        annotations: { 'spanprofiling.io/spanprofiling': 'shop/default' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f', uid: 'rs1', controller: true }],
      },
      status: { phase: 'Running' },
    });
  });
});

describe('events on SpanProfilings', () => {
  /** Records what would be POSTed (the Event itself is checked against the real API server in integration.test.ts). */
  const recordingKube = (posted: { path: string; body: { message: string; type: string; reason: string } }[]) => ({
    request: async <T>(_method: string, path: string, body?: unknown): Promise<T> => {
      posted.push({ path, body: body as never });
      return undefined as T;
    },
    get: async <T>(): Promise<T | undefined> => undefined,
    watch: () => ({ done: Promise.resolve(), abort: () => undefined }),
  });
  const sp = { apiVersion: 'spanprofiling.io/v1alpha1', kind: 'SpanProfiling', metadata: { name: 'default', namespace: 'shop', uid: 'u' }, spec: { pyroscope: { address: 'http://p' } } } as const;

  it('records one Warning per SpanProfiling and message within the window, so a ReplicaSet of 100 writes one', async () => {
    const posted: { path: string; body: { message: string; type: string; reason: string } }[] = [];
    let now = Date.parse('2026-11-29T10:00:00Z');
    const events = new EventRecorder(recordingKube(posted), log, () => new Date(now), 60_000);
    const recorded = Array.from({ length: 100 }, () => events.warnOnce(sp as never, 'PodWarning', 'pod web-7d4b9c- in namespace shop (injected): no container named worker')).filter(Boolean).length;
    assert.equal(recorded, 1);
    assert.equal(events.warnOnce(sp as never, 'PodWarning', 'pod api-5f- in namespace shop (injected): no container named x'), true, 'another message is recorded');
    now += 61_000;
    assert.equal(events.warnOnce(sp as never, 'PodWarning', 'pod web-7d4b9c- in namespace shop (injected): no container named worker'), true, 'again after the window');
    await new Promise((r) => setImmediate(r));
    assert.equal(posted.length, 3);
    assert.equal(posted[0]!.path, '/api/v1/namespaces/shop/events');
    assert.equal(posted[0]!.body.type, 'Warning');
    assert.equal(posted[0]!.body.reason, 'PodWarning');
  });
});
