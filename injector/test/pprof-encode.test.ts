import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { Function as PprofFunction, Label, Line, Location, Mapping, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { encodeProfile, encodedProfileSize } from '../src/profiling/pprof-encode';
import { shapeHeapProfile, shapeTimeProfile } from '../src/profiling/pprof-shape';

/** The real native profiler, as the agent loads it. */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const pprof = require('@datadog/pprof') as typeof import('@datadog/pprof');

const SHAPE = { ownCode: (): boolean => false };

function burn(ms: number): string {
  const end = Date.now() + ms;
  let h = '';
  while (Date.now() < end) h = createHash('sha256').update(h).digest('hex');
  return h;
}

/** A time profile from @datadog/pprof of work under two labelled contexts, and its heap profile. */
function realProfiles(): { time: Profile; heap: Profile } {
  pprof.heap.start(4096, 64);
  pprof.time.start({ intervalMicros: 1000, durationMillis: 60_000, withContexts: true, collectCpuTime: true, lineNumbers: false });
  const keep: string[] = [];
  for (const span of ['00f067aa0ba902b7', '53995c3f42cd8ad8']) {
    pprof.time.setContext({ span });
    keep.push(burn(60));
    keep.push('x'.repeat(100_000) + span);
  }
  const time = pprof.time.stop(false, ({ context }): Record<string, string | number> => {
    const value = (context as { context?: { span?: string } } | undefined)?.context;
    return value?.span === undefined ? {} : { span_id: value.span, span_name: 'GET /orders/:id — ünïcode', thread_id: 7 };
  });
  const heap = pprof.heap.profile();
  pprof.heap.stop();
  assert.ok(keep.length > 0);
  return { time, heap };
}

const same = (p: Profile): void => {
  const ours = encodeProfile(p);
  const theirs = p.encode();
  assert.equal(ours.length, encodedProfileSize(p));
  assert.equal(Buffer.compare(ours, Buffer.from(theirs.buffer, theirs.byteOffset, theirs.byteLength)), 0, 'the bytes pprof-format writes');
};

describe('pprof encoding without per-field allocation', () => {
  it("writes the bytes pprof-format writes for the native profiler's time and heap profiles, and for their shaped parts", function () {
    this.timeout(20_000);
    const { time, heap } = realProfiles();
    assert.ok(time.sample.length > 10, `a real profile (${time.sample.length} samples)`);
    assert.ok(time.sample.some((s) => s.label.length === 3));
    same(time);
    same(heap);
    const shaped = shapeTimeProfile(time, SHAPE);
    assert.ok(shaped.cpu.length + shaped.wall.length >= 2);
    for (const part of [...shaped.cpu, ...shaped.wall, ...shapeHeapProfile(heap, SHAPE)]) same(part);
  });

  it('writes every field pprof has, numbers of every width, and non-ASCII strings', () => {
    const strings = new StringTable();
    const s = (text: string): number => strings.dedup(text);
    const profile = new Profile({
      sampleType: [new ValueType({ type: s('cpu'), unit: s('nanoseconds') })],
      sample: [
        new Sample({ locationId: [1, 2, 0, 300], value: [0, 127, 128, 16_383, 16_384, 2 ** 31, 2 ** 32 + 5, 2 ** 53 - 1], label: [new Label({ key: s('span_id'), str: s('a1') }), new Label({ key: s('n'), num: 42, numUnit: s('bytes') })] }),
        new Sample({ locationId: [], value: [-1, -300, 12n, 2n ** 63n], label: [] }),
      ],
      mapping: [new Mapping({ id: 1, memoryStart: 4096, memoryLimit: 2 ** 40, fileOffset: 7, filename: s('/app/node'), buildId: s('b'), hasFunctions: true, hasFilenames: true, hasLineNumbers: true, hasInlineFrames: true })],
      location: [
        new Location({ id: 1, mappingId: 1, address: 0xdeadbeef, line: [new Line({ functionId: 1, line: 12, column: 3 }), new Line({ functionId: 2 })], isFolded: true }),
        new Location({ id: 2, line: [] }),
      ],
      function: [new PprofFunction({ id: 1, name: s('résumé'), systemName: s('日本語'), filename: s('/app/ü.js'), startLine: 9 }), new PprofFunction({ id: 2, name: s('emoji 🚀') })],
      stringTable: strings,
      dropFrames: s('drop'),
      keepFrames: s('keep'),
      timeNanos: 1_733_390_000_123 * 1e6,
      durationNanos: 15e9,
      periodType: new ValueType({ type: s('wall'), unit: s('nanoseconds') }),
      period: 10_000_000,
      comment: [s('one'), s('two')],
      defaultSampleType: s('cpu'),
      docUrl: s('https://example.invalid/doc'),
    });
    same(profile);
    const decoded = Profile.decode(encodeProfile(profile));
    assert.deepEqual(decoded.stringTable.strings, strings.strings);
    assert.deepEqual(decoded.sample[0]!.value.map(Number), [0, 127, 128, 16_383, 16_384, 2 ** 31, 2 ** 32 + 5, 2 ** 53 - 1]);
  });

  it('writes an empty profile as pprof-format does, and an empty label as a tag and a zero length', () => {
    same(new Profile());
    const strings = new StringTable();
    const withEmptyLabel = new Profile({ sample: [new Sample({ locationId: [1], value: [1], label: [new Label({})] })], stringTable: strings });
    const bytes = encodeProfile(withEmptyLabel);
    assert.equal(bytes.length, encodedProfileSize(withEmptyLabel));
    assert.equal(Profile.decode(bytes).sample[0]!.label.length, 1);
  });
});
