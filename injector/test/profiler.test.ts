/**
 * The native profiler's driver, against a recording stand-in of
 * @datadog/pprof: which options it starts with, and how it reacts when the
 * profiler reports V8's stuck-thread bug.
 */
import { strict as assert } from 'node:assert';
import { Profile } from 'pprof-format';
import { SpanProfiler, type PprofModule } from '../src/profiling/profiler';

function recordingPprof(stuck: number[]): { pprof: PprofModule; calls: string[]; starts: Record<string, unknown>[] } {
  const calls: string[] = [];
  const starts: Record<string, unknown>[] = [];
  let collections = 0;
  const pprof: PprofModule = {
    time: {
      start: (options) => {
        calls.push('start');
        starts.push(options);
      },
      stop: (restart) => {
        calls.push(`stop(${String(restart)})`);
        return new Profile();
      },
      stopV2: (restart) => {
        calls.push(`stopV2(${String(restart)})`);
        collections++;
        return new Profile();
      },
      v8ProfilerStuckEventLoopDetected: () => stuck[collections - 1] ?? 0,
      setContext: (context) => void calls.push(`setContext(${context === undefined ? 'undefined' : JSON.stringify(context)})`),
      runWithContext: (context, fn) => {
        calls.push(`runWithContext(${JSON.stringify(context)})`);
        return fn();
      },
      runWithoutContext: (fn) => {
        calls.push('runWithoutContext');
        return fn();
      },
      isStarted: () => true,
    },
    heap: { start: () => undefined, stop: () => undefined, profile: () => new Profile() },
  };
  return { pprof, calls, starts };
}

describe('the native profiler driver', () => {
  const options = { samplingIntervalMicros: 10_000, collectCpuTime: true, heapSamplingIntervalBytes: 0, mode: 'hooks' as const, collectEveryMs: 15_000 };

  it("collects without @datadog/pprof's stall-per-collection V8 workaround, with buffers sized from the collection period", () => {
    const { pprof, calls, starts } = recordingPprof([0, 0]);
    const profiler = new SpanProfiler(pprof, options, () => ({}));
    profiler.start();
    profiler.collect();
    profiler.collect();
    assert.deepEqual(calls, ['start', 'stopV2(true)', 'stopV2(true)']);
    assert.equal(starts[0]!['workaroundV8Bug'], false);
    assert.equal(starts[0]!['durationMillis'], 60_000);
    const slow = recordingPprof([]);
    new SpanProfiler(slow.pprof, { ...options, collectEveryMs: 300_000 }, () => ({})).start();
    assert.equal(slow.starts[0]!['durationMillis'], 600_000);
  });

  it('gives the native profiler nothing to hold for "no span": clears its context (hooks), or runs without one (cped)', () => {
    const { pprof, calls } = recordingPprof([]);
    const profiler = new SpanProfiler(pprof, options, () => ({}));
    profiler.start();
    const labels = { spanId: 'a' };
    profiler.setContext(labels);
    profiler.setContext(undefined);
    assert.equal(profiler.runWithContext(labels, () => 1), 1);
    assert.equal(profiler.runWithContext(undefined, () => 2), 2);
    assert.deepEqual(calls.slice(1), ['setContext({"spanId":"a"})', 'setContext(undefined)', 'runWithContext({"spanId":"a"})', 'runWithoutContext']);
    // A @datadog/pprof without it (the library form uses the app's own): an empty context object, as before.
    delete (pprof.time as { runWithoutContext?: unknown }).runWithoutContext;
    assert.equal(profiler.runWithContext(undefined, () => 3), 3);
    assert.deepEqual(calls.at(-1), 'runWithContext({})');
  });

  it('turns the workaround on for good, once, when the profiler reports V8 stuck', () => {
    const { pprof, calls, starts } = recordingPprof([0, 2, 1]);
    let told = 0;
    const profiler = new SpanProfiler(pprof, { ...options, onV8Bug: () => told++ }, () => ({}));
    profiler.start();
    for (let i = 0; i < 3; i++) assert.ok(profiler.collect() instanceof Profile, 'every collection returns its profile');
    assert.deepEqual(calls, ['start', 'stopV2(true)', 'stopV2(true)', 'stop(false)', 'start', 'stopV2(true)']);
    assert.deepEqual(starts.map((s) => s['workaroundV8Bug']), [false, true]);
    assert.equal(told, 1);
    assert.ok(profiler.running);
  });
});
