/**
 * Attribution accuracy: of the CPU time spent in a route's hot function, the
 * share labelled with the span of a request that ran that route.
 */
import type { ReceivedSample } from './pyroscope-receiver';

export interface Attribution {
  /** CPU samples (by count) in a hot function. */
  hotSamples: number;
  /** Hot CPU time labelled with a span of the right route, over all labelled hot CPU time. */
  accuracy: number;
  /** Hot CPU time carrying any span label, over all hot CPU time. */
  coverage: number;
  correct: number;
  unlabelled: number;
}

/** `hotAlpha` -> `alpha`: which route a stack belongs to, or undefined. */
export function hotRoute(stack: string[]): string | undefined {
  for (const frame of stack) {
    const m = /^hot([A-Z][a-z]+)$/.exec(frame);
    if (m) return m[1]!.toLowerCase();
  }
  return undefined;
}

export function attribution(
  samples: ReceivedSample[],
  routeBySpan: ReadonlyMap<string, string>,
  includeSpan: (spanId: string) => boolean = () => true,
): Attribution {
  let hotSamples = 0;
  let labelledCpu = 0;
  let correctCpu = 0;
  let allHotCpu = 0;
  let unlabelledCpu = 0;
  let correct = 0;
  let unlabelled = 0;
  for (const sample of samples) {
    const route = hotRoute(sample.stack);
    if (route === undefined) continue;
    const cpu = sample.values[0] ?? 0;
    const spanId = sample.labels['span_id'];
    if (spanId === undefined) {
      unlabelled++;
      unlabelledCpu += cpu;
      allHotCpu += cpu;
      continue;
    }
    if (!includeSpan(spanId)) continue;
    hotSamples++;
    allHotCpu += cpu;
    labelledCpu += cpu;
    if (routeBySpan.get(spanId) === route) {
      correct++;
      correctCpu += cpu;
    }
  }
  return {
    hotSamples,
    accuracy: labelledCpu === 0 ? 0 : correctCpu / labelledCpu,
    coverage: allHotCpu === 0 ? 0 : (allHotCpu - unlabelledCpu) / allHotCpu,
    correct,
    unlabelled,
  };
}

/**
 * The share of `samples`' time (their first value) that `onSpan` accepts, and a line naming the rest
 * for an assertion message. Weighed by time, not by sample count: a stray one-tick entry without a
 * label counts as the tick it is, not as much as a whole request's stack.
 */
export function timeShare(samples: ReceivedSample[], onSpan: (sample: ReceivedSample) => boolean): { share: number; rest: string } {
  let all = 0;
  let on = 0;
  const rest: string[] = [];
  for (const sample of samples) {
    const time = sample.values[0] ?? 0;
    all += time;
    if (onSpan(sample)) on += time;
    else rest.push(`${JSON.stringify(sample.labels)} ${time}`);
  }
  const share = all === 0 ? 0 : on / all;
  return { share, rest: `${(share * 100).toFixed(1)}% of ${samples.length} samples' time; the rest: ${rest.join(', ') || 'none'}` };
}
