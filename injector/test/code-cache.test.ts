/**
 * Loading agent.js (src/lifecycle/code-cache.ts): with V8's code cache, written by the
 * first process and used by the next ones; and with the bundle's source off
 * the JavaScript heap, as an external string.
 */
import { strict as assert } from 'node:assert';
import * as buffer from 'node:buffer';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AGENT } from './harness/app-process';

const CODE_CACHE = path.join(__dirname, '../src/lifecycle/code-cache.ts');

/** Runs `script` in a new Node.js process (TypeScript through tsx), and answers its stdout. */
function run(args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** In a new process: the heap grown by loading `module` with loadWithCodeCache, and what the module answers. */
async function load(module: string, env: Record<string, string>): Promise<{ heapGrowth: number; answer: unknown }> {
  const script = `
    const v8 = require('node:v8');
    const { loadWithCodeCache } = require(${JSON.stringify(CODE_CACHE)});
    const heap = () => { globalThis.gc(); globalThis.gc(); return v8.getHeapStatistics().used_heap_size; };
    const before = heap();
    const loaded = loadWithCodeCache(${JSON.stringify(module)}, process.env);
    const answer = loaded.answer();
    process.stdout.write(JSON.stringify({ heapGrowth: heap() - before, answer }));`;
  return JSON.parse(await run(['--expose-gc', '--require', 'tsx/cjs', '-e', script], env)) as { heapGrowth: number; answer: unknown };
}

describe('loading agent.js', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'agent-code-cache-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps a large ASCII source off the heap, and reads any other as UTF-8', async () => {
    // 3 MB of source, most of it a comment: V8 keeps all of it as the script's source.
    const big = path.join(dir, 'big.js');
    writeFileSync(big, `// ${'x'.repeat(3_000_000)}\nexports.answer = () => ({ file: __filename, dir: __dirname, same: require('node:path') === require('path'), text: answer.toString() });\nfunction answer() { return 42; }\n`);
    const ascii = await load(big, { SPANPROFILING_CODE_CACHE_DIR: 'off' });
    assert.deepEqual(ascii.answer, { file: big, dir, same: true, text: 'function answer() { return 42; }' });
    // buffer.isAscii came in Node.js 18.15: before it, every source is read as UTF-8.
    if ('isAscii' in buffer) assert.ok(ascii.heapGrowth < 1_000_000, `the source grew the heap by ${ascii.heapGrowth} bytes`);
    else assert.ok(ascii.heapGrowth > 3_000_000);

    const accented = path.join(dir, 'accented.js');
    writeFileSync(accented, `// ${'x'.repeat(3_000_000)}\nexports.answer = () => 'café ☕';\n`);
    const utf8 = await load(accented, { SPANPROFILING_CODE_CACHE_DIR: 'off' });
    assert.equal(utf8.answer, 'café ☕');
    assert.ok(utf8.heapGrowth > 3_000_000, 'a source read as UTF-8 is on the heap (this test would not see a difference otherwise)');
  });

  it('writes the code cache once, in the first process, and the next ones use it', async () => {
    const env = { SPANPROFILING_CODE_CACHE_DIR: dir, OTEL_TRACES_EXPORTER: 'none', OTEL_PYROSCOPE_START_PROFILING: 'false' };
    const app = ['--require', AGENT, '-e', 'process.stdout.write(String(globalThis[Symbol.for("spanprofiling.io/agent")] !== undefined))'];
    assert.equal(await run(app, env), 'true');
    const written = readdirSync(dir);
    assert.equal(written.length, 1, `one cache file: ${written.join(', ')}`);
    assert.match(written[0]!, new RegExp(`^agent-${process.version}-${process.arch}-\\d+-\\d+\\.cache$`));
    const first = statSync(path.join(dir, written[0]!));
    assert.ok(first.size > 100_000, `the cache holds the compiled agent (${first.size} bytes)`);

    assert.equal(await run(app, env), 'true');
    assert.deepEqual(readdirSync(dir), written, 'no other file');
    // Rewritten only when V8 rejects it (another Node.js, another build).
    assert.equal(statSync(path.join(dir, written[0]!)).mtimeMs, first.mtimeMs, 'the second process used the cache as it was');
  });

  it('runs without a cache when told to, or when the directory is not its own', async () => {
    const env = { OTEL_TRACES_EXPORTER: 'none', OTEL_PYROSCOPE_START_PROFILING: 'false' };
    const app = ['--require', AGENT, '-e', 'const a = globalThis[Symbol.for("spanprofiling.io/agent")]; process.stdout.write(typeof a === "object" ? "started" : String(a))'];
    assert.equal(await run(app, { ...env, SPANPROFILING_CODE_CACHE_DIR: 'off' }), 'started');
    const open = path.join(dir, 'shared');
    mkdirSync(open);
    chmodSync(open, 0o777);
    assert.equal(await run(app, { ...env, SPANPROFILING_CODE_CACHE_DIR: open }), 'started');
    assert.deepEqual(readdirSync(open), [], 'a directory others can write to is not used');
  });
});
