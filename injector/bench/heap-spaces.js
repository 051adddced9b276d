// Preload (`node --require injector/bench/heap-spaces.js app.js`): how fast each of V8's old spaces
// grows between two young-generation collections with no full collection between them, that is,
// what is promoted plus what is allocated there directly. HEAP_SPACES_SKIP (seconds, default 0)
// leaves the start-up out; SIGUSR2 prints the rates so far on stderr.
'use strict';
const v8 = require('node:v8');
const { PerformanceObserver, constants } = require('node:perf_hooks');
const { writeSync } = require('node:fs');

const used = () => Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.space_used_size]));
const from = Date.now() + Number(process.env.HEAP_SPACES_SKIP ?? 0) * 1000;
const grown = {};
let seconds = 0;
let last = used();
let lastAt = Date.now();
let afterFull = false;

new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const minor = entry.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR;
    const now = used();
    const at = Date.now();
    if (minor && !afterFull && at >= from) {
      for (const space of Object.keys(now)) grown[space] = (grown[space] ?? 0) + (now[space] - (last[space] ?? 0));
      seconds += (at - lastAt) / 1000;
    }
    afterFull = !minor;
    last = now;
    lastAt = at;
  }
}).observe({ entryTypes: ['gc'] });

process.on('SIGUSR2', () => {
  const rates = Object.entries(grown)
    .filter(([space]) => /old|large|code/.test(space))
    .map(([space, bytes]) => `${space} ${(bytes / seconds / 1024).toFixed(1)} kB/s`);
  writeSync(2, `heap spaces over ${seconds.toFixed(0)} s between scavenges: ${rates.join(', ')}\n`);
});
