import { strict as assert } from 'node:assert';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';

const SRC = path.join(__dirname, '..', 'src');

/** Every source file under src/, relative to it. */
function sources(dir = SRC): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sources(full);
    return name.endsWith('.ts') ? [path.relative(SRC, full)] : [];
  });
}

/** The files under src/ a file imports or requires (type imports too). */
function imports(file: string): string[] {
  const text = readFileSync(path.join(SRC, file), 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\(\s*|require\(\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
  return specs
    .map((spec) => path.relative(SRC, path.resolve(path.dirname(path.join(SRC, file)), spec)) + '.ts')
    .filter((target) => !target.startsWith('..'));
}

/** The folder a file belongs to; files directly in src/ are the entries and their wiring. */
const partOf = (file: string): string => (file.includes(path.sep) ? file.split(path.sep)[0]! : 'entry');

/** Which parts each part may use, besides itself: entries use everything, parts use shared basics and the parts listed. */
const MAY_USE: Record<string, string[]> = {
  entry: ['lifecycle', 'tracing', 'profiling', 'export', 'shared'],
  lifecycle: ['shared'],
  tracing: ['export', 'shared'],
  profiling: ['export', 'shared'],
  export: ['shared'],
  shared: [],
};

describe("the agent's source layout", () => {
  const files = sources();

  it('keeps every file in a known part: entries in src/, the rest in lifecycle, tracing, profiling, export or shared', () => {
    const unknown = files.filter((f) => MAY_USE[partOf(f)] === undefined);
    assert.deepEqual(unknown, []);
    assert.ok(files.length > 25, `${files.length} files`);
  });

  it('points imports one way: entries to parts, parts to shared basics, never back to an entry', () => {
    const wrong: string[] = [];
    for (const file of files) {
      for (const target of imports(file)) {
        assert.ok(files.includes(target), `${file} imports ${target}, which is not a source file`);
        const from = partOf(file);
        const to = partOf(target);
        if (from !== to && !MAY_USE[from]!.includes(to)) wrong.push(`${file} -> ${target}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('has no import cycle between files', () => {
    const graph = new Map(files.map((f) => [f, imports(f)]));
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (file: string, trail: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...trail.slice(trail.indexOf(file)), file].join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) visit(next, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    assert.deepEqual(cycles, []);
  });
});
