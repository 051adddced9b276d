// Preloaded by stalls.bench.ts into every configuration alike: a 1 ms timer that records how late
// each tick of the event loop came, and V8's garbage collections as perf_hooks reports them (kind,
// pause, the heap in use right after, and the young generation's size). SIGUSR2 writes both, with the RSS, to $STALL_REPORT,
// and then (with --expose-gc) the heap still in use after a full collection: what the process keeps, garbage aside.
'use strict';
const fs = require('node:fs');
const v8 = require('node:v8');
const { performance, PerformanceObserver, constants } = require('node:perf_hooks');

const SIZE = 1 << 17;
const gaps = new Float64Array(SIZE);
const at = new Float64Array(SIZE);
let n = 0;
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  gaps[n & (SIZE - 1)] = now - last;
  at[n & (SIZE - 1)] = performance.timeOrigin + now;
  n++;
  last = now;
}, 1).unref();

// [wall time ms, 1 for a scavenge (minor) else 0, pause ms, heap used after (bytes), young generation size (bytes)]
const F = 5;
const gcs = new Float64Array(SIZE * F);
let g = 0;
new PerformanceObserver((list) => {
  const heap = v8.getHeapStatistics().used_heap_size;
  const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
  for (const e of list.getEntries()) {
    const i = (g & (SIZE - 1)) * F;
    gcs[i] = performance.timeOrigin + e.startTime;
    gcs[i + 1] = (e.detail?.kind ?? e.kind) === constants.NODE_PERFORMANCE_GC_MINOR ? 1 : 0;
    gcs[i + 2] = e.duration;
    gcs[i + 3] = heap;
    gcs[i + 4] = young;
    g++;
  }
}).observe({ entryTypes: ['gc'] });

process.on('SIGUSR2', () => {
  const ticks = [];
  for (let i = Math.max(0, n - SIZE); i < n; i++) ticks.push([at[i & (SIZE - 1)], gaps[i & (SIZE - 1)]]);
  const collections = [];
  for (let i = Math.max(0, g - SIZE); i < g; i++) {
    const k = (i & (SIZE - 1)) * F;
    collections.push([gcs[k], gcs[k + 1], gcs[k + 2], gcs[k + 3], gcs[k + 4]]);
  }
  const rss = process.memoryUsage.rss();
  let live = null;
  if (typeof globalThis.gc === 'function') {
    globalThis.gc();
    live = v8.getHeapStatistics().used_heap_size;
  }
  fs.writeFileSync(process.env.STALL_REPORT, JSON.stringify({ ticks, gcs: collections, rss, live }));
});
