import { strict as assert } from 'node:assert';
import { gzipSync } from 'node:zlib';
import { Function as PprofFunction, Label, Line, Location, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { AGENT_FRAME, emptyTimeProfile, mergeTimeProfile, shapeTimeProfile } from '../src/profiling/pprof-shape';
import { decodePprof, readSamples } from './harness/pyroscope-receiver';

/** A time profile as the native profiler writes it: sample/count, wall/ns, cpu/ns, one sample per labelled hit. */
function timeProfile(samples: { stack: string[]; cpu: number; labels?: Record<string, string | number> }[], files: Record<string, string> = {}): Profile {
  const strings = new StringTable();
  const functions = new Map<string, PprofFunction>();
  const locations = new Map<string, Location>();
  const location = (name: string): Location => {
    let loc = locations.get(name);
    if (!loc) {
      const fn = new PprofFunction({ id: functions.size + 1, name: strings.dedup(name), filename: strings.dedup(files[name] ?? '') });
      functions.set(name, fn);
      loc = new Location({ id: locations.size + 1, line: [new Line({ functionId: fn.id })] });
      locations.set(name, loc);
    }
    return loc;
  };
  return new Profile({
    sampleType: [
      new ValueType({ type: strings.dedup('sample'), unit: strings.dedup('count') }),
      new ValueType({ type: strings.dedup('wall'), unit: strings.dedup('nanoseconds') }),
      new ValueType({ type: strings.dedup('cpu'), unit: strings.dedup('nanoseconds') }),
    ],
    periodType: new ValueType({ type: strings.dedup('wall'), unit: strings.dedup('nanoseconds') }),
    period: 10_000_000,
    sample: samples.map(
      (s) =>
        new Sample({
          locationId: s.stack.map((name) => location(name).id),
          value: [1, 10_000_000, s.cpu],
          label: Object.entries(s.labels ?? {}).map(([k, v]) =>
            typeof v === 'number' ? new Label({ key: strings.dedup(k), num: v }) : new Label({ key: strings.dedup(k), str: strings.dedup(v) }),
          ),
        }),
    ),
    location: [...locations.values()],
    function: [...functions.values()],
    stringTable: strings,
    timeNanos: Date.now() * 1e6,
    durationNanos: 15e9,
  });
}

const roundTrip = (p: Profile) => {
  const decoded = decodePprof(gzipSync(p.encode())).profile;
  const s = decoded.stringTable.strings;
  return {
    types: decoded.sampleType.map((t) => `${s[Number(t.type)]}:${s[Number(t.unit)]}`),
    period: `${s[Number(decoded.periodType!.type)]}:${s[Number(decoded.periodType!.unit)]}`,
    samples: readSamples(decoded).map(({ files: _files, ...sample }) => sample),
  };
};

describe('pprof shaping for Pyroscope', () => {
  const span = { span_id: '00f067aa0ba902b7', span_name: 'GET /checkout' };

  it('makes a CPU profile Pyroscope files as process_cpu:cpu:nanoseconds:cpu:nanoseconds, and a wall profile', () => {
    const { cpu, wall } = shapeTimeProfile(timeProfile([{ stack: ['hot', 'main'], cpu: 9_000_000, labels: span }]));
    assert.equal(cpu.length, 1);
    const c = roundTrip(cpu[0]!);
    assert.deepEqual(c.types, ['cpu:nanoseconds']);
    assert.equal(c.period, 'cpu:nanoseconds');
    assert.deepEqual(c.samples, [{ stack: ['hot', 'main'], values: [9_000_000], labels: span }]);
    const w = roundTrip(wall[0]!);
    assert.deepEqual(w.types, ['samples:count', 'wall:nanoseconds']);
    assert.equal(w.period, 'wall:nanoseconds');
  });

  it('merges identical (stack, labels) samples and keeps different labels apart', () => {
    const other = { span_id: '1111111111111111', span_name: 'GET /checkout' };
    const { cpu, wall } = shapeTimeProfile(
      timeProfile([
        { stack: ['hot', 'main'], cpu: 1, labels: span },
        { stack: ['hot', 'main'], cpu: 2, labels: span },
        { stack: ['hot', 'main'], cpu: 4, labels: other },
        { stack: ['cold', 'main'], cpu: 8, labels: span },
      ]),
    );
    const samples = roundTrip(cpu[0]!).samples.map((s) => `${s.stack[0]} ${s.labels['span_id']} ${s.values[0]}`).sort();
    assert.deepEqual(samples, ['cold 00f067aa0ba902b7 8', 'hot 00f067aa0ba902b7 3', 'hot 1111111111111111 4']);
    assert.deepEqual(roundTrip(wall[0]!).samples.find((s) => s.stack[0] === 'hot' && s.labels['span_id'] === span.span_id)!.values, [2, 20_000_000]);
  });

  it('drops samples with no CPU time from the CPU profile only', () => {
    const { cpu, wall } = shapeTimeProfile(timeProfile([{ stack: ['(idle)'], cpu: 0 }, { stack: ['hot'], cpu: 5 }]));
    assert.deepEqual(roundTrip(cpu[0]!).samples.map((s) => s.stack[0]), ['hot']);
    assert.equal(roundTrip(wall[0]!).samples.length, 2);
  });

  it('drops labels Pyroscope rejects (a space in the name) or ignores (numeric values)', () => {
    const { cpu } = shapeTimeProfile(timeProfile([{ stack: ['hot'], cpu: 5, labels: { ...span, 'thread id': '7', tid: 7 } }]));
    assert.deepEqual(roundTrip(cpu[0]!).samples[0]!.labels, span);
  });

  it('splits a profile over the sample limit into parts under it, losing nothing', () => {
    const input = Array.from({ length: 25 }, (_, i) => ({ stack: [`f${i}`], cpu: i + 1 }));
    const { cpu } = shapeTimeProfile(timeProfile(input), { limits: { maxSamples: 10, maxBytes: 4 << 20 } });
    assert.deepEqual(cpu.map((p) => p.sample.length), [10, 10, 5]);
    const all = cpu.flatMap((p) => roundTrip(p).samples);
    assert.equal(all.reduce((n, s) => n + s.values[0]!, 0), (25 * 26) / 2);
    assert.deepEqual(all.map((s) => s.stack[0]).sort(), input.map((s) => s.stack[0]).sort());
  });

  it('splits a profile over the byte limit, each part under it and carrying only the functions it uses', () => {
    const input = Array.from({ length: 64 }, (_, i) => ({ stack: [`function_with_a_long_name_${i}_${'x'.repeat(100)}`], cpu: 1 }));
    const whole = shapeTimeProfile(timeProfile(input)).cpu[0]!;
    const limit = Math.ceil(whole.length / 3);
    const parts = shapeTimeProfile(timeProfile(input), { limits: { maxSamples: 16_000, maxBytes: limit } }).cpu;
    assert.ok(parts.length >= 3);
    for (const p of parts) {
      assert.ok(p.length <= limit, `${p.length} <= ${limit}`);
      assert.equal(p.function.length, p.sample.length);
    }
    assert.equal(parts.reduce((n, p) => n + p.sample.length, 0), 64);
  });

  it('returns no profile when nothing was sampled', () => {
    assert.deepEqual(shapeTimeProfile(timeProfile([])), { cpu: [], wall: [] });
  });
});

describe("the agent's frames in flame graphs", () => {
  const AGENT_DIR = '/agent/dist/';
  const ownCode = (file: string): boolean => file.startsWith(AGENT_DIR);
  // Leaf first, as in pprof. What an injected HTTP server's request looks like in cped mode.
  const files: Record<string, string> = {
    parserOnIncoming: 'node:_http_server',
    emit: 'node:events',
    httpWrapper: `${AGENT_DIR}agent.js`,
    followedWith: `${AGENT_DIR}agent.js`,
    managerWith: `${AGENT_DIR}agent.js`,
    run: 'node:internal/async_local_storage/async_context_frame',
    runWithContext: `${AGENT_DIR}pprof/out/src/time-profiler.js`,
    handler: '/app/server.js',
    hot: '/app/server.js',
    export: `${AGENT_DIR}agent.js`,
    encode: `${AGENT_DIR}agent.js`,
    listOnTimeout: 'node:internal/timers',
    appWith: '/app/node_modules/@opentelemetry/context-async-hooks/build/src/AsyncLocalStorageContextManager.js',
    appRun: 'node:async_hooks',
  };
  const folded = (stack: string[]): string[] => roundTrip(shapeTimeProfile(timeProfile([{ stack, cpu: 5 }], files), { ownCode }).cpu[0]!).samples[0]!.stack;

  it('takes the pass-through frames out from between the app’s frames', () => {
    const request = ['hot', 'handler', 'run', 'runWithContext', 'run', 'managerWith', 'followedWith', 'httpWrapper', 'emit', 'parserOnIncoming'];
    assert.deepEqual(folded(request), ['hot', 'handler', 'emit', 'parserOnIncoming']);
  });

  it("keeps the agent's own work, under one frame that names it", () => {
    assert.deepEqual(folded(['encode', 'export', 'run', 'managerWith', 'listOnTimeout']), ['encode', 'export', 'run', 'managerWith', AGENT_FRAME, 'listOnTimeout']);
    // A sample taken inside a wrapper is the wrapper's cost: it shows as the agent's.
    assert.deepEqual(folded(['followedWith', 'httpWrapper', 'emit', 'parserOnIncoming']), ['followedWith', 'httpWrapper', AGENT_FRAME, 'emit', 'parserOnIncoming']);
  });

  it("leaves the app's own context frames, and stacks without the agent, as they are", () => {
    assert.deepEqual(folded(['hot', 'handler', 'appRun', 'appWith', 'emit']), ['hot', 'handler', 'appRun', 'appWith', 'emit']);
    assert.deepEqual(folded(['hot', 'run', 'handler']), ['hot', 'run', 'handler']);
  });

  it('merges the samples that become the same stack, and keeps their labels', () => {
    const span = { span_id: '00f067aa0ba902b7' };
    const { cpu } = shapeTimeProfile(
      timeProfile(
        [
          { stack: ['hot', 'handler', 'followedWith', 'emit'], cpu: 3, labels: span },
          { stack: ['hot', 'handler', 'managerWith', 'followedWith', 'emit'], cpu: 4, labels: span },
          { stack: ['hot', 'handler', 'emit'], cpu: 5, labels: span },
        ],
        files,
      ),
      { ownCode },
    );
    assert.deepEqual(roundTrip(cpu[0]!).samples, [{ stack: ['hot', 'handler', 'emit'], values: [12], labels: span }]);
  });
});

describe('pprof size bound', () => {
  it('never lets a profile over the byte limit through unsplit', () => {
    // Profiles just under and over the limit, by their real encoded length.
    for (const n of [10, 50, 200]) {
      const input = Array.from({ length: n }, (_, i) => ({ stack: [`fn_${i}_${'y'.repeat(200)}`, 'main'], cpu: 1, labels: { span_id: `${i}`.padStart(16, '0') } }));
      const whole = shapeTimeProfile(timeProfile(input)).cpu[0]!;
      for (const limit of [whole.length - 1, whole.length, whole.length + 1]) {
        const parts = shapeTimeProfile(timeProfile(input), { limits: { maxSamples: 16_000, maxBytes: limit } }).cpu;
        for (const p of parts) assert.ok(p.length <= limit || p.sample.length === 1, `${p.length} <= ${limit}`);
        assert.equal(parts.reduce((k, p) => k + p.sample.length, 0), n);
      }
    }
  });
});

describe("merging worker threads' profiles into the process's", () => {
  const span = { span_id: '00f067aa0ba902b7', span_name: 'GET /report' };
  it('adds every sample with its thread label, sharing the functions and locations both have', () => {
    const main = timeProfile([{ stack: ['handler', 'main'], cpu: 5_000_000, labels: span }]);
    const worker = () => timeProfile([{ stack: ['hot', 'task', 'main'], cpu: 7_000_000, labels: span }, { stack: ['main'], cpu: 1_000_000 }]);
    mergeTimeProfile(main, worker(), { thread_name: 'worker' });
    mergeTimeProfile(main, worker(), { thread_name: 'worker' });
    // `main` is known to both; `hot` and `task` come once, however many threads ran them.
    assert.deepEqual(main.function.map((f) => main.stringTable.strings[Number(f.name)]).sort(), ['handler', 'hot', 'main', 'task']);
    assert.equal(main.location.length, 4);
    const samples = roundTrip(shapeTimeProfile(main).cpu[0]!).samples;
    assert.deepEqual(samples, [
      { stack: ['handler', 'main'], values: [5_000_000], labels: span },
      { stack: ['hot', 'task', 'main'], values: [14_000_000], labels: { ...span, thread_name: 'worker' } },
      { stack: ['main'], values: [2_000_000], labels: { thread_name: 'worker' } },
    ]);
  });

  it('starts from an empty profile of the same types when only workers were sampled', () => {
    const worker = timeProfile([{ stack: ['hot'], cpu: 3_000_000 }]);
    const base = emptyTimeProfile(worker);
    mergeTimeProfile(base, worker, { thread_name: 'pool' });
    assert.deepEqual(roundTrip(shapeTimeProfile(base).cpu[0]!).samples, [{ stack: ['hot'], values: [3_000_000], labels: { thread_name: 'pool' } }]);
  });
});
