// Preloaded by stalls.bench.ts into every configuration alike: a 1 ms timer that records how late
// each tick of the event loop came. SIGUSR2 writes the gaps (ms) to $STALL_REPORT.
'use strict';
const fs = require('node:fs');
const { performance } = require('node:perf_hooks');

const gaps = new Float64Array(1 << 17);
const at = new Float64Array(1 << 17);
let n = 0;
let last = performance.now();
setInterval(() => {
  const now = performance.now();
  gaps[n & (gaps.length - 1)] = now - last;
  at[n & (gaps.length - 1)] = performance.timeOrigin + now;
  n++;
  last = now;
}, 1).unref();
process.on('SIGUSR2', () => {
  const count = Math.min(n, gaps.length);
  const out = [];
  for (let i = n - count; i < n; i++) out.push([at[i & (gaps.length - 1)], gaps[i & (gaps.length - 1)]]);
  fs.writeFileSync(process.env.STALL_REPORT, JSON.stringify(out));
});
