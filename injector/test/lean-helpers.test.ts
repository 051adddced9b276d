import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { buildSync } from 'esbuild';
import { REPO_ROOT } from './harness/app-process';

type LeanHelpers = { leanHelpers: Array<[string, string]>; withLeanHelpers(file: string, required: string[]): void };

// A program shaped as the agent's bundle is: CommonJS modules requiring one ES module (as the
// instrumentations require the OpenTelemetry API), and two ES modules whose functions share a name,
// so that esbuild renames one and keepNames gives it its name back.
const SOURCES: Record<string, string> = {
  'api.mjs': 'export let counter = 0;\nexport function bump() { counter += 1; }\nexport class Tracer {}\nexport const VERSION = "1.9.0";\n',
  'a.cjs': 'module.exports = require("./api.mjs");\n',
  'b.cjs': 'module.exports = require("./api.mjs");\n',
  'one.mjs': 'export function handle() { return 1; }\n',
  'two.mjs': 'export function handle() { return 2; }\n',
  'main.mjs': `
import * as one from './one.mjs';
import * as two from './two.mjs';
const a = require('./a.cjs');
const b = require('./b.cjs');
const before = a.counter;
a.bump();
const describe = (fn) => ({ name: fn.name, descriptor: Object.getOwnPropertyDescriptor(fn, 'name'), fast: %HasFastProperties(fn) });
process.stdout.write(JSON.stringify({
  oneView: a === b,
  esModule: a.__esModule === true && b.__esModule === true,
  keys: Object.keys(a),
  live: [before, a.counter, b.counter],
  values: [a.VERSION, typeof b.Tracer, a.Tracer === b.Tracer],
  results: [one.handle(), two.handle()],
  functions: [describe(one.handle), describe(two.handle), describe(a.Tracer), describe(a.bump)],
}));
`,
};

function bundle(dir: string, outfile: string): void {
  buildSync({
    entryPoints: [path.join(dir, 'main.mjs')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node18',
    format: 'cjs',
    minifyWhitespace: true,
    minifySyntax: true,
    keepNames: true,
    logLevel: 'silent',
  });
}

describe("esbuild's helpers in the agent's bundles, made lean", () => {
  let dir: string;
  let lean: LeanHelpers;

  before(async () => {
    lean = (await import(path.join(REPO_ROOT, 'injector/lean-helpers.mjs'))) as LeanHelpers;
    dir = mkdtempSync(path.join(tmpdir(), 'lean-helpers-'));
    // %HasFastProperties needs the natives syntax, which a bundle cannot parse as written: it goes in as a call.
    for (const [name, text] of Object.entries(SOURCES)) writeFileSync(path.join(dir, name), text.replace('%HasFastProperties', 'hasFastProperties'));
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  function run(transform: boolean): Record<string, unknown> {
    const outfile = path.join(dir, transform ? 'lean.js' : 'plain.js');
    bundle(dir, outfile);
    if (transform) lean.withLeanHelpers(outfile, ['__toCommonJS', '__name']);
    const text = readFileSync(outfile, 'utf8').replace(/\bhasFastProperties\(/g, '%HasFastProperties(');
    writeFileSync(outfile, text);
    return JSON.parse(execFileSync(process.execPath, ['--allow-natives-syntax', outfile], { encoding: 'utf8' })) as Record<string, unknown>;
  }

  it('gives every require() of an ES module one view, as Node gives one exports object, with the same exports and live values', () => {
    const plain = run(false);
    const ours = run(true);
    assert.equal(plain['oneView'], false, "esbuild's own helper makes a copy per require (what the change is for)");
    assert.equal(ours['oneView'], true);
    for (const key of ['esModule', 'keys', 'live', 'values', 'results']) assert.deepEqual(ours[key], plain[key], key);
    assert.deepEqual(ours['live'], [0, 1, 1]);
    assert.deepEqual(ours['values'], ['1.9.0', 'function', true]);
  });

  it("keeps every function's name and its descriptor, and leaves a function already so named with fast properties", () => {
    const plain = run(false) as { functions: Array<{ name: string; descriptor: object; fast: boolean }> };
    const ours = run(true) as typeof plain;
    assert.deepEqual(ours.functions.map((f) => f.name), ['handle', 'handle', 'Tracer', 'bump']);
    assert.deepEqual(ours.functions.map((f) => f.descriptor), plain.functions.map((f) => f.descriptor));
    assert.deepEqual(ours.functions[0]?.descriptor, { value: 'handle', writable: false, enumerable: false, configurable: true });
    // esbuild renames two.mjs's handle to handle2, whose name is redefined either way; the others no longer are.
    assert.equal(plain.functions[0]?.fast, false, "esbuild's own helper redefines the name of a function already so named");
    assert.deepEqual(ours.functions.map((f) => f.fast), [true, false, true, true]);
    assert.ok(plain.functions.filter((f) => !f.fast).length > ours.functions.filter((f) => !f.fast).length, 'fewer functions with dictionary properties');
  });

  it('is in the built agent, its worker bundle and the native profiler bundle', () => {
    const dist = path.join(REPO_ROOT, 'injector/dist');
    for (const file of ['agent.js', 'worker.js', 'pprof/out/src/index.js']) {
      const text = readFileSync(path.join(dist, file), 'utf8');
      for (const [helper, leaner] of lean.leanHelpers) {
        assert.ok(!text.includes(helper), `${file} still has ${helper}`);
        assert.ok(text.includes(leaner), `${file} lacks ${leaner}`);
      }
    }
  });

  it('stops the build when a required helper is written differently', () => {
    const file = path.join(dir, 'other.js');
    writeFileSync(file, 'var __name=(t,v)=>Object.defineProperty(t,"name",{value:v});\n');
    assert.throws(() => lean.withLeanHelpers(file, ['__name']), /__name helper found 0 times/);
  });
});
