/**
 * The demo's answer, piece by piece: Pyroscope's flame graph levels as a
 * tree, the share of the app's own code, which request is chosen, and the
 * page's HTML (no name can break out of its data).
 */
import { strict as assert } from 'node:assert';
import type { JaegerSpan } from '../../e2e/harness/jaeger';
import type { Flamegraph } from '../../e2e/harness/pyroscope';
import { appFunctions, appTime, flameLines, flameTree } from '../lib/flame';
import { flamegraphHtml } from '../lib/flamegraph-html';
import { choose, requestName, requestTarget, waitingLine, type Candidate } from '../lib/story';

/**
 * total 100: handle 90 (self 0) -> checkout 90 -> signReceipt 60 (self 60), priceBasket 30 (self 30);
 * gc 10 (self 10). Pyroscope's levels: per node (offset from the previous node's end, total, self, name).
 */
const names = ['total', 'handle', 'gc', 'checkout', 'signReceipt', 'priceBasket'];
const profile: Flamegraph = {
  flamegraph: {
    names,
    total: '100',
    levels: [
      { values: ['0', '100', '0', '0'] },
      { values: ['0', '90', '0', '1', '0', '10', '10', '2'] },
      { values: ['0', '90', '0', '3'] },
      { values: ['0', '60', '60', '4', '0', '30', '30', '5'] },
    ],
  },
};

function span(id: string, durationMs: number, tags: Record<string, unknown> = {}, name = 'GET'): JaegerSpan {
  return {
    traceID: `t${id}`,
    spanID: id,
    operationName: name,
    tags: Object.entries(tags).map(([key, value]) => ({ key, type: 'string', value })),
    startTime: 0,
    duration: durationMs * 1000,
  };
}
const candidate = (id: string, wallMs: number, cpuMs: number): Candidate => ({ span: span(id, wallMs), profile: {}, cpu: cpuMs * 1e6 });

describe('the demo story', () => {
  describe('flameTree', () => {
    it('rebuilds the call tree from the levels, each child under the parent its offset falls in', () => {
      const root = flameTree(profile)!;
      assert.equal(root.name, 'total');
      assert.deepEqual(root.children.map((c) => [c.name, c.total]), [['handle', 90], ['gc', 10]]);
      const checkout = root.children[0]!.children[0]!;
      assert.equal(checkout.name, 'checkout');
      assert.deepEqual(checkout.children.map((c) => [c.name, c.total, c.self]), [['signReceipt', 60, 60], ['priceBasket', 30, 30]]);
      assert.deepEqual(root.children[1]!.children, []);
    });

    it('is undefined for an empty profile', () => {
      assert.equal(flameTree({}), undefined);
      assert.equal(flameTree({ flamegraph: { names: [], levels: [], total: '0' } }), undefined);
    });
  });

  describe("the app's share", () => {
    const root = flameTree(profile)!;
    it('counts each stack once, at its outermost app frame', () => {
      assert.equal(appTime(root, new Set(['checkout', 'signReceipt', 'priceBasket'])), 90);
      assert.equal(appTime(root, new Set(['signReceipt'])), 60);
      assert.equal(appTime(root, new Set(['nothing'])), 0);
    });

    it("lists the app's functions heaviest first", () => {
      assert.deepEqual(appFunctions(root, new Set(['priceBasket', 'signReceipt', 'checkout', 'absent'])), ['checkout', 'signReceipt', 'priceBasket']);
    });

    it('prints frames of at least 5%, heaviest first, folding anonymous frames into their callers', () => {
      const withAnonymous = flameTree({
        flamegraph: { names: ['total', '(anonymous:1)', 'work', 'tiny'], total: '100', levels: [{ values: ['0', '100', '0', '0'] }, { values: ['0', '100', '0', '1'] }, { values: ['0', '97', '97', '2', '0', '3', '3', '3'] }] },
      })!;
      const lines = flameLines(withAnonymous);
      assert.equal(lines.length, 2);
      assert.match(lines[0]!, /^total {2}100%/);
      assert.match(lines[1]!, /^ {2}work {2}97%/);
    });
  });

  describe('choose', () => {
    it('takes, of the requests whose own CPU is a fifth of their time or more, the one with the most CPU; the slower ones were waiting', () => {
      const { chosen, waiting } = choose([candidate('a', 180, 2), candidate('b', 120, 24), candidate('c', 90, 80), candidate('d', 40, 39)]);
      assert.equal(chosen?.span.spanID, 'c');
      assert.deepEqual(waiting.map((c) => c.span.spanID), ['a', 'b']);
    });

    it('takes the slowest when it computed', () => {
      const { chosen, waiting } = choose([candidate('a', 90, 45), candidate('b', 20, 20)]);
      assert.equal(chosen?.span.spanID, 'a');
      assert.deepEqual(waiting, []);
    });

    it('takes the request that computed when a busy machine made it wait for a core too', () => {
      const { chosen, waiting } = choose([candidate('big', 206.7, 91.9), candidate('catalog', 135.1, 5.3), candidate('small', 133.7, 9.2), candidate('quick', 20, 18)]);
      assert.equal(chosen?.span.spanID, 'big');
      assert.deepEqual(waiting, []);
    });

    it('chooses none when every request was waiting', () => {
      const { chosen, waiting } = choose([candidate('a', 100, 10), candidate('b', 50, 0)]);
      assert.equal(chosen, undefined);
      assert.equal(waiting.length, 2);
    });

    it('says in one line that a request was waiting: wall time against CPU time', () => {
      const line = waitingLine({ ...candidate('a', 183.3, 1.2), span: span('a', 183.3, { 'http.request.method': 'GET', 'http.route': '/catalog' }) });
      assert.match(line, /^GET \/catalog took longer \(183\.3 ms\) but spent 1\.2 ms on its own CPU: it was waiting/);
    });
  });

  describe('request names', () => {
    it('are the method and the route, with the query for the target', () => {
      const s = span('a', 1, { 'http.request.method': 'GET', 'http.route': '/checkout', 'url.query': 'items=250' });
      assert.equal(requestName(s), 'GET /checkout');
      assert.equal(requestTarget(s), 'GET /checkout?items=250');
    });

    it('fall back to the path and the span name', () => {
      assert.equal(requestName(span('a', 1, { 'url.path': '/x' }, 'POST')), 'POST /x');
      assert.equal(requestTarget(span('a', 1, { 'url.path': '/x', 'url.query': '' }, 'POST')), 'POST /x');
    });
  });

  describe('flamegraphHtml', () => {
    const root = flameTree(profile)!;
    const dataOf = (html: string): unknown => JSON.parse(/<script id="flame-data" type="application\/json">(.*?)<\/script>/s.exec(html)![1]!);

    it('inlines the tree, its names once each, and the facts', () => {
      const html = flamegraphHtml(root, { title: 'GET /checkout', facts: ['span abc'], app: ['checkout'] });
      const data = dataOf(html) as { names: string[]; root: unknown[]; facts: string[]; app: string[] };
      assert.deepEqual([...data.names].sort(), [...names].sort());
      assert.equal(data.root[1], 100);
      assert.deepEqual(data.facts, ['span abc']);
      assert.deepEqual(data.app, ['checkout']);
      assert.match(html, /<title>GET \/checkout<\/title>/);
    });

    it('lets no function name or title close the script element or inject markup', () => {
      const evil = '</script><script>alert(1)</script>';
      const tree = { name: 'total', total: 1, self: 0, children: [{ name: evil, total: 1, self: 1, children: [] }] };
      const html = flamegraphHtml(tree, { title: `<b>${evil}</b> & $& $1`, facts: [evil], app: [] });
      assert.equal(html.match(/<script/g)?.length, 2, 'only the page\'s two script elements');
      assert.match(html, /<title>&lt;b&gt;&lt;\/script&gt;.*&amp; \$&amp; \$1<\/title>/);
      const data = dataOf(html) as { names: string[]; facts: string[] };
      assert.ok(data.names.includes(evil));
      assert.deepEqual(data.facts, [evil]);
    });

    it('allows no network access: a Content-Security-Policy of default-src none', () => {
      const html = flamegraphHtml(root, { title: 't', facts: [], app: [] });
      assert.match(html, /http-equiv="Content-Security-Policy" content="default-src 'none';/);
      assert.doesNotMatch(html, /\b(?:src|href)="?(?:https?:)?\/\//);
    });
  });
});
