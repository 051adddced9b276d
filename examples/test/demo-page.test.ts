/**
 * The demo's story and its picture, end to end without Kubernetes: the shop
 * with the agent preloaded sends its traces to a real Jaeger and its profiles
 * to a real Pyroscope, gets the demo's traffic and its big basket, and the
 * demo's own code (tellStory) picks the request and writes its flame graph
 * page. Headless Chromium (Debian's, through playwright-core) then opens the
 * page from disk: the shop's hot functions are drawn, clicking zooms,
 * searching highlights, nothing is fetched, and a screenshot is taken.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { AppProcess, REPO_ROOT, load } from '../../injector/test/harness/app-process';
import { jaegerTraces, startJaeger, tagOf, type Jaeger, type JaegerSpan } from '../../e2e/harness/jaeger';
import { selectMergeSpanProfile, startPyroscope, type Pyroscope } from '../../e2e/harness/pyroscope';
import { eventually, routeOf } from '../../e2e/harness/stack';
import { agentEnv } from '../../e2e/harness/backends';
import { requireTools } from '../../e2e/harness/toolchain';
import { tellStory, type Story } from '../lib/story';
import { SHOP_FUNCTIONS } from '../shop/functions';

const SERVICE = 'shop';
const BIG_BASKET = 'items=250';

function chromiumPath(): string {
  const bin = process.env['SPANPROF_CHROMIUM'];
  if (bin === undefined || bin === '') throw new Error('SPANPROF_CHROMIUM is not set: npm test sets it (scripts/chromium.sh finds or installs Debian\'s chromium)');
  return bin;
}

describe('the demo: its story against real Jaeger and Pyroscope, and its flame graph page in Chromium', function () {
  this.timeout(240_000);
  let pyroscope: Pyroscope;
  let jaeger: Jaeger;
  let out: string;
  let story: Story;
  let spans: JaegerSpan[] = [];
  let browser: Browser | undefined;

  before(async () => {
    requireTools('pyroscope', 'jaeger');
    [pyroscope, jaeger] = await Promise.all([startPyroscope(), startJaeger()]);
    out = mkdtempSync(path.join(os.tmpdir(), 'span-profiling-demo-page-'));
    const since = Date.now() - 60_000;
    const shop = await AppProcess.start({
      script: path.join(REPO_ROOT, 'examples/shop/server.js'),
      env: { PORT: '0', HOST: '127.0.0.1', ...agentEnv(SERVICE, jaeger, pyroscope) },
    });
    // The cluster demo's traffic (e2e/harness/stack.ts sendTraffic), then the big basket on its own.
    const paths = Array.from({ length: 120 }, (_, i) => (i % 2 === 0 ? `/checkout?items=${20 + (i % 7) * 5}` : '/catalog'));
    const results = await load(shop.port, paths, 4);
    const big = await load(shop.port, [`/checkout?${BIG_BASKET}`], 1);
    await shop.stop('SIGTERM');
    assert.deepEqual([...results, ...big].filter((r) => r.status !== 200), [], 'every request answered');
    assert.doesNotMatch(shop.stderr, /upload to .* failed/, `uploads to Pyroscope worked:\n${shop.stderr}`);

    spans = await eventually('the shop\'s server spans in Jaeger', async () => {
      const s = (await jaegerTraces(jaeger.queryUrl, SERVICE))
        .flatMap((t) => t.spans)
        .filter((span) => tagOf(span, 'span.kind') === 'server' && tagOf(span, 'pyroscope.profile.id') !== undefined);
      return s.length >= paths.length + 1 ? s : undefined;
    });
    const bigBasket = spans.find((s) => String(tagOf(s, 'url.query') ?? '') === BIG_BASKET)!;
    await eventually('the big basket\'s span profile in Pyroscope', async () =>
      Number((await selectMergeSpanProfile(pyroscope.url, SERVICE, [bigBasket.spanID], since)).flamegraph?.total ?? 0) > 0 ? true : undefined,
    );
    story = await tellStory({ jaeger: jaeger.queryUrl, pyroscope: pyroscope.url, service: SERVICE, sinceMs: since }, spans, SHOP_FUNCTIONS, out);
  });

  after(async () => {
    await browser?.close();
    await Promise.all([pyroscope?.stop(), jaeger?.stop()]);
    if (out !== undefined && process.env['SPANPROF_KEEP_DEMO_PAGE'] === undefined) rmSync(out, { recursive: true, force: true });
  });

  it('chooses the big basket, GET /checkout?items=250: the request that computed the most', () => {
    const chosen = story.chosen;
    assert.ok(chosen !== undefined, story.lines.join('\n'));
    assert.equal(routeOf(chosen.span), '/checkout');
    assert.equal(tagOf(chosen.span, 'url.query'), BIG_BASKET, story.lines.join('\n'));
    assert.ok(chosen.cpu >= 0.2 * chosen.span.duration * 1000, `${chosen.cpu} ns of CPU in ${chosen.span.duration} µs`);
    assert.match(story.lines[0]!, /^The request whose own CPU explains it: GET \/checkout\?items=250, /);
  });

  it("prints its trace and a flame graph where the shop's functions dominate", () => {
    const text = story.lines.join('\n');
    assert.match(text, new RegExp(`Its trace ${story.chosen!.span.traceID} `));
    // A plain http server knows no route: its span is named by the method alone, the demo names it by its path.
    assert.match(text, /shop  GET \/checkout \(span name "GET"\)/);
    assert.ok(story.appShare >= 0.6, `app share ${story.appShare}:\n${text}`);
    assert.match(text, /^ +signReceipt {2}\d+%/m, text);
  });

  describe('the page, in headless Chromium', () => {
    let page: Page;
    const requests: string[] = [];
    const errors: string[] = [];
    const widthOf = (selector: string): Promise<number> =>
      page.$eval(selector, (el) => el.getBoundingClientRect().width / el.parentElement!.getBoundingClientRect().width);

    before(async () => {
      assert.ok(story.htmlFile !== undefined, 'the story wrote a page');
      browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
      page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
      page.on('request', (r) => requests.push(r.url()));
      page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(pathToFileURL(story.htmlFile).href);
    });

    it("draws the hot functions, the shop's own in its colours, and fetches nothing", async () => {
      assert.equal(await page.textContent('#title'), 'GET /checkout?items=250: its span profile');
      const appFrames = await page.$$eval('.frame.app', (els) => els.map((el) => el.getAttribute('data-name')));
      for (const fn of ['checkout', 'signReceipt']) assert.ok(appFrames.includes(fn), `${fn} among ${appFrames.join(', ')}`);
      assert.ok((await widthOf('.frame[data-name="signReceipt"]')) >= 0.3, 'signReceipt spans at least 30% of the graph');
      assert.deepEqual(requests.filter((u) => !u.startsWith('file:')), []);
      assert.deepEqual(errors, []);
    });

    it('zooms into a frame on click, and out again with Escape', async () => {
      const before = await widthOf('.frame[data-name="signReceipt"]');
      const ancestors = (): Promise<(string | null)[]> => page.$$eval('.frame.ancestor', (els) => els.map((el) => el.getAttribute('data-name')));
      await page.click('.frame[data-name="signReceipt"]');
      assert.ok((await widthOf('.frame[data-name="signReceipt"]')) > 0.99, 'zoomed: full width');
      const chain = await ancestors();
      assert.equal(chain[0], 'total', 'the root is drawn above it, faded');
      assert.ok(chain.includes('checkout'), chain.join(' > '));
      await page.keyboard.press('Escape');
      assert.deepEqual(await ancestors(), chain.slice(0, -1), 'zoomed out one level: its parent is the frame in focus');
      await page.click('#reset');
      assert.deepEqual(await ancestors(), []);
      assert.ok(Math.abs((await widthOf('.frame[data-name="signReceipt"]')) - before) < 0.001, 'reset: the original widths');
    });

    it('highlights the frames a search matches and says how much of the span they hold', async () => {
      await page.fill('#search', 'signreceipt');
      const matched = await page.$$eval('.frame.match', (els) => els.map((el) => el.getAttribute('data-name')));
      assert.ok(matched.length >= 1);
      assert.deepEqual([...new Set(matched)], ['signReceipt']);
      assert.match((await page.textContent('#matched')) ?? '', /^matched: [\d.]+ ms \((?:[3-9]\d|100)\.\d% of the span\)$/);
      assert.ok((await page.$$eval('.frame.dim', (els) => els.length)) > 0, 'the others are dimmed');
      await page.fill('#search', '');
      assert.equal(await page.$$eval('.frame.match, .frame.dim', (els) => els.length), 0);
    });

    it('takes the search from the address (#search=) and renders a screenshot', async () => {
      await page.goto(`${pathToFileURL(story.htmlFile!).href}#search=priceBasket`);
      await page.reload();
      assert.deepEqual([...new Set(await page.$$eval('.frame.match', (els) => els.map((el) => el.getAttribute('data-name'))))], ['priceBasket']);
      await page.fill('#search', '');
      const file = path.join(out, 'span-page.png');
      await page.screenshot({ path: file, fullPage: true });
      const png = readFileSync(file);
      assert.equal(png.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'a PNG');
      assert.ok(png.length > 10_000, `${png.length} bytes`);
      assert.deepEqual(requests.filter((u) => !u.startsWith('file:')), []);
      assert.deepEqual(errors, []);
    });
  });
});
