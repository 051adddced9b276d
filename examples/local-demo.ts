/**
 * `npm run demo:local`: runs the shop service with the agent preloaded,
 * against in-process receivers that speak Pyroscope's ingest protocol and
 * OTLP, sends it traffic, and prints the slowest request's trace, its span,
 * and the top functions of that span's CPU profile.
 */
import * as path from 'node:path';
import { AppProcess, REPO_ROOT, load } from '../injector/test/harness/app-process';
import { OtlpReceiver, type ReceivedSpan } from '../injector/test/harness/otlp-receiver';
import { PyroscopeReceiver, type ReceivedSample } from '../injector/test/harness/pyroscope-receiver';

const SHOP = path.join(REPO_ROOT, 'examples/shop/server.js');

async function main(): Promise<void> {
  const pyroscope = await new PyroscopeReceiver().start();
  const otlp = await new OtlpReceiver().start();
  const app = await AppProcess.start({
    script: SHOP,
    env: {
      PORT: '0',
      HOST: '127.0.0.1',
      OTEL_SERVICE_NAME: 'shop',
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.httpUrl,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      PYROSCOPE_SERVER_ADDRESS: pyroscope.url,
      PYROSCOPE_UPLOAD_INTERVAL: '2s',
      PYROSCOPE_LOG_LEVEL: 'info',
    },
  });
  console.log(`shop is listening on 127.0.0.1:${app.port} with the agent; sending traffic for a few seconds...`);
  const paths: string[] = [];
  for (let i = 0; i < 120; i++) paths.push(i % 3 === 0 ? `/checkout?items=${5 + (i % 7) * 5}` : '/catalog');
  await load(app.port, paths, 6);
  await app.stop('SIGTERM');
  await pyroscope.close();
  await otlp.close();

  const servers = otlp.spans.filter((s) => s.kind === 2 && s.attributes['pyroscope.profile.id'] !== undefined);
  if (servers.length === 0) throw new Error(`no server spans with pyroscope.profile.id arrived; agent log:\n${app.stderr}`);
  const cpuSamples = pyroscope.cpuProfiles().flatMap((p) => p.samples);
  const samplesOf = (span: ReceivedSpan): ReceivedSample[] => cpuSamples.filter((s) => s.labels['span_id'] === span.spanId);
  console.log(`\nreceived ${otlp.spans.length} spans and ${pyroscope.profiles.length} profiles (${pyroscope.cpuProfiles().length} of type process_cpu:cpu:nanoseconds:cpu:nanoseconds)`);

  const slowest = servers.reduce((a, b) => (duration(b) > duration(a) ? b : a));
  printSpanProfile('slowest request', slowest, samplesOf(slowest));
  if (total(samplesOf(slowest)) < duration(slowest) * 0.2) {
    console.log('  It spent most of its time waiting (for timers, I/O, or other requests hogging the event loop).');
    const heaviest = servers.reduce((a, b) => (total(samplesOf(b)) > total(samplesOf(a)) ? b : a));
    printSpanProfile('request that burned the most CPU', heaviest, samplesOf(heaviest));
  }
  console.log('\nWith a real Pyroscope, Grafana asks for the same thing with SelectMergeSpanProfile(spanSelector=[span id]).');
}

function printSpanProfile(title: string, span: ReceivedSpan, samples: ReceivedSample[]): void {
  const route = span.attributes['http.route'] ?? span.attributes['url.path'] ?? span.attributes['http.target'] ?? '';
  console.log(`\n${title}: ${span.name} ${String(route)}  ${(duration(span) / 1e6).toFixed(1)} ms`);
  console.log(`  trace   ${span.traceId}`);
  console.log(`  span    ${span.spanId}  (pyroscope.profile.id = ${String(span.attributes['pyroscope.profile.id'])})`);
  console.log(`  CPU profile of this span: ${samples.length} samples, ${(total(samples) / 1e6).toFixed(1)} ms on CPU`);
  for (const [fn, ns] of topFunctions(samples, 8)) {
    console.log(`  ${((ns / total(samples)) * 100).toFixed(1).padStart(5)}%  ${(ns / 1e6).toFixed(1).padStart(7)} ms  ${fn}`);
  }
}

function duration(span: ReceivedSpan): number {
  return Number(span.endNanos - span.startNanos);
}

function total(samples: ReceivedSample[]): number {
  return samples.reduce((n, s) => n + (s.values[0] ?? 0), 0);
}

/** CPU time by function, counting a function once per sample it appears in (inclusive time). */
function topFunctions(samples: ReceivedSample[], n: number): [string, number][] {
  const byFunction = new Map<string, number>();
  for (const s of samples) {
    for (const fn of new Set(s.stack)) {
      if (fn === '' || fn.startsWith('(')) continue;
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + (s.values[0] ?? 0));
    }
  }
  return [...byFunction.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
