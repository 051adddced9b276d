import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { Function as PprofFunction, Line, Location, Profile, Sample, StringTable, ValueType, emptyTableToken } from 'pprof-format';
import { lazyStringTable } from '../src/profiling/string-table';
import { REPO_ROOT } from './harness/app-process';

type Table = InstanceType<typeof StringTable>;
const Lazy = lazyStringTable(StringTable, emptyTableToken) as typeof StringTable;

const STRINGS = ['', 'GET /orders/:id', 'ünïcode — 注文', '🚀 rocket', 'lone \ud800 surrogate', 'a'.repeat(300), 'GET /orders/:id', '', 'x', '🚀 rocket'];

function filled(table: Table): number[] {
  return STRINGS.map((s) => table.dedup(s));
}

function profileWith(strings: Table): Profile {
  const id = (s: string): number => strings.dedup(s);
  return new Profile({
    sampleType: [new ValueType({ type: id('wall'), unit: id('nanoseconds') })],
    function: [new PprofFunction({ id: 1, name: id('handle'), systemName: id('handle'), filename: id('/app/server.js'), startLine: 12 })],
    location: [new Location({ id: 1, line: [new Line({ functionId: 1, line: 14 })] })],
    sample: [new Sample({ locationId: [1], value: [10_000_000] })],
    stringTable: strings,
    period: 10_000_000,
  });
}

describe("pprof-format's string table, replaced", () => {
  it('dedups, lists and encodes every string as pprof-format does', () => {
    const theirs = new StringTable();
    const ours = new Lazy();
    assert.deepEqual(filled(ours), filled(theirs));
    assert.deepEqual(ours.strings, theirs.strings);
    assert.equal(ours.encodedLength, theirs.encodedLength);
    assert.deepEqual(Buffer.from(ours.encode()), Buffer.from(theirs.encode()));
    // A number is a position already.
    assert.equal(ours.dedup(3 as unknown as string), 3);
    // The empty table starts without the empty string, as pprof-format's does.
    assert.deepEqual(new Lazy(emptyTableToken).strings, new StringTable(emptyTableToken).strings);
    assert.deepEqual(new Lazy(emptyTableToken).strings, []);
  });

  it("keeps each table's positions in the table itself, and encodes only when pprof-format's encoder asks", () => {
    const ours = new Lazy();
    filled(ours);
    // pprof-format kept them in module-level WeakMaps, whose values V8 keeps through young collections.
    assert.deepEqual(Object.keys(ours).sort(), ['positions', 'strings']);
    assert.ok((ours as unknown as { positions: Map<string, number> }).positions instanceof Map);
  });

  it('makes profiles pprof-format encodes and decodes byte for byte as with its own table', () => {
    const theirs = profileWith(new StringTable()).encode();
    const ours = profileWith(new Lazy()).encode();
    assert.deepEqual(Buffer.from(ours), Buffer.from(theirs));
    // Decoding builds the table through _decodeString: the same strings, and the same bytes again.
    const decoded = Profile.decode(ours);
    assert.deepEqual(decoded.stringTable.strings, profileWith(new StringTable()).stringTable.strings);
    assert.deepEqual(Buffer.from(decoded.encode()), Buffer.from(theirs));
  });

  it('is the table the built profiler serializes with', function () {
    // In a process of its own: the bundle loads its own copy of the native addon.
    const bundle = path.join(REPO_ROOT, 'injector', 'dist', 'pprof', 'out', 'src', 'index.js');
    const script = `
      const pprof = require(${JSON.stringify(bundle)});
      pprof.time.start({ intervalMicros: 1000, durationMillis: 60000, withContexts: false, lineNumbers: false });
      const end = Date.now() + 30; let spin = 0; while (Date.now() < end) spin++;
      const profile = pprof.time.stop(false);
      process.stdout.write(JSON.stringify({ keys: Object.keys(profile.stringTable).sort(), strings: profile.stringTable.strings.length }));`;
    const got = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as { keys: string[]; strings: number };
    assert.ok(got.strings > 1, 'the profile has strings');
    assert.deepEqual(got.keys, ['positions', 'strings'], "the bundle's pprof-format carries the replaced table");
  });
});
