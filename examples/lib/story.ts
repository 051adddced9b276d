/**
 * The demo's answer: which request to show, and what to say about it.
 *
 * The slowest request by latency is not always the interesting one: a
 * request that waits (for I/O, or for the event loop while other requests
 * compute) has a long span and an empty span profile. So the demo takes the
 * slowest requests, asks Pyroscope for each one's own span profile, and shows
 * the one that spent the most CPU of its own, provided that CPU explains a
 * good part of its time (a fifth or more: on a busy machine a computing
 * request also waits for a core); of a slower one that was waiting it says
 * so in one line.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { jaegerTrace, tagOf, type JaegerSpan } from '../../e2e/harness/jaeger';
import { selectMergeSpanProfile, selfTimes, type Flamegraph } from '../../e2e/harness/pyroscope';
import { routeOf } from '../../e2e/harness/stack';
import { appFunctions, appTime, flameLines, flameTree, type FlameNode } from './flame';
import { flamegraphHtml } from './flamegraph-html';

/** A request "explains itself" when its own CPU is at least this share of its wall time. */
export const EXPLAINED = 0.2;
/** How many of the slowest requests are looked at. */
export const CANDIDATES = 10;

export interface Backends {
  /** Jaeger's query API and Pyroscope's, as base URLs. */
  jaeger: string;
  pyroscope: string;
  service: string;
  sinceMs: number;
}

export interface Candidate {
  span: JaegerSpan;
  profile: Flamegraph;
  /** Nanoseconds of CPU sampled under the span. */
  cpu: number;
}

const wallNs = (span: JaegerSpan): number => span.duration * 1000;
const ms = (ns: number): string => `${(ns / 1e6).toFixed(1)} ms`;

/** `GET /checkout`: the method and the route, whatever the span is named. */
export function requestName(span: JaegerSpan): string {
  const method = tagOf(span, 'http.request.method') ?? tagOf(span, 'http.method') ?? span.operationName.split(' ')[0];
  return `${String(method)} ${routeOf(span)}`;
}

/** `GET /checkout?items=250` */
export function requestTarget(span: JaegerSpan): string {
  const query = tagOf(span, 'url.query');
  return `${requestName(span)}${query === undefined || query === '' ? '' : `?${String(query)}`}`;
}

/** The slowest spans, each with its own span profile. */
export async function slowestWithProfiles(b: Backends, spans: JaegerSpan[], n = CANDIDATES): Promise<Candidate[]> {
  const slowest = [...spans].sort((x, y) => y.duration - x.duration).slice(0, n);
  return Promise.all(
    slowest.map(async (span) => {
      const profile = await selectMergeSpanProfile(b.pyroscope, b.service, [span.spanID], b.sinceMs);
      return { span, profile, cpu: Number(profile.flamegraph?.total ?? 0) };
    }),
  );
}

export interface Choice {
  /** Of the requests whose own CPU explains their time, the one with the most CPU, if any. */
  chosen: Candidate | undefined;
  /** Slower requests than the chosen one (or all, when none is chosen): they spent less CPU of their own. */
  waiting: Candidate[];
}

/** Candidates are slowest first. */
export function choose(candidates: Candidate[]): Choice {
  let best = -1;
  candidates.forEach((c, i) => {
    if (c.cpu >= EXPLAINED * wallNs(c.span) && (best === -1 || c.cpu > candidates[best]!.cpu)) best = i;
  });
  return best === -1 ? { chosen: undefined, waiting: candidates } : { chosen: candidates[best], waiting: candidates.slice(0, best) };
}

/** One line on a request that was waiting, not computing. */
export function waitingLine(c: Candidate): string {
  return `${requestTarget(c.span)} took longer (${ms(wallNs(c.span))}) but spent ${ms(c.cpu)} on its own CPU: it was waiting (I/O, or the event loop busy with other requests), not computing.`;
}

export interface Story {
  lines: string[];
  chosen: Candidate | undefined;
  tree: FlameNode | undefined;
  /** Share of the chosen span's CPU in the app's functions and what they called. */
  appShare: number;
  /** The flame graph page, when a request was chosen. */
  htmlFile: string | undefined;
}

/**
 * Picks the request, fetches its trace, and tells it: lines to print, and
 * its flame graph as an HTML file in `outDir`. `app` names the app's own
 * functions (coloured in the page, counted in the share).
 */
export async function tellStory(b: Backends, spans: JaegerSpan[], app: readonly string[], outDir: string): Promise<Story> {
  const candidates = await slowestWithProfiles(b, spans);
  const { chosen, waiting } = choose(candidates);
  const lines: string[] = [];
  if (chosen === undefined) {
    lines.push(`None of the ${candidates.length} slowest requests spent a fifth of its time on its own CPU; the slowest:`);
    for (const c of waiting.slice(0, 3)) lines.push(`  ${waitingLine(c)}`);
    return { lines, chosen, tree: undefined, appShare: 0, htmlFile: undefined };
  }
  const { span, cpu } = chosen;
  lines.push(`The request whose own CPU explains it: ${requestTarget(span)}, ${ms(wallNs(span))}, ${ms(cpu)} of it on its own CPU.`);
  const first = waiting[0];
  if (first !== undefined) lines.push(`(${waiting.length === 1 ? '' : `${waiting.length} slower requests, e.g. `}${waitingLine(first)})`);

  const trace = await jaegerTrace(b.jaeger, span.traceID);
  lines.push('', `Its trace ${trace.traceID} (${trace.spans.length} span${trace.spans.length === 1 ? '' : 's'}):`);
  const children = new Map<string, JaegerSpan[]>();
  const ids = new Set(trace.spans.map((s) => s.spanID));
  const roots: JaegerSpan[] = [];
  for (const s of [...trace.spans].sort((x, y) => x.startTime - y.startTime)) {
    const parent = s.references?.find((r) => r.refType === 'CHILD_OF' && ids.has(r.spanID))?.spanID;
    if (parent === undefined) roots.push(s);
    else children.set(parent, [...(children.get(parent) ?? []), s]);
  }
  const printSpan = (s: JaegerSpan, depth: number): void => {
    const mark = s.spanID === span.spanID ? `  <- span ${s.spanID}, pyroscope.profile.id=${String(tagOf(s, 'pyroscope.profile.id'))}` : '';
    lines.push(`  ${'  '.repeat(depth)}${trace.services[s.processID ?? ''] ?? '?'}  ${requestName(s)} (span name "${s.operationName}")  ${ms(wallNs(s))}${mark}`);
    for (const c of children.get(s.spanID) ?? []) printSpan(c, depth + 1);
  };
  roots.forEach((r) => printSpan(r, 0));

  const tree = flameTree(chosen.profile);
  const appSet = new Set(app);
  const appShare = tree === undefined ? 0 : appTime(tree, appSet) / tree.total;
  const inApp = tree === undefined ? [] : appFunctions(tree, appSet);
  lines.push('', `Its span profile: ${ms(cpu)} of CPU, ${(appShare * 100).toFixed(0)}% of it in the app's own functions (${inApp.join(', ')}) and what they called.`);
  lines.push('Top functions (self time):');
  const top = [...selfTimes(chosen.profile).entries()].filter(([name]) => name !== 'total').sort((x, y) => y[1] - x[1]).slice(0, 6);
  for (const [name, self] of top) lines.push(`  ${((self / cpu) * 100).toFixed(0).padStart(3)}%  ${ms(self).padStart(9)}  ${name}`);
  lines.push('Its flame graph (frames with 5% or more):');
  if (tree !== undefined) lines.push(...flameLines(tree).map((l) => `  ${l}`));

  let htmlFile: string | undefined;
  if (tree !== undefined) {
    mkdirSync(outDir, { recursive: true });
    htmlFile = path.join(outDir, `span-${span.spanID}.html`);
    const facts = [`span ${span.spanID}`, `trace ${span.traceID}`, `service ${b.service}`, `${ms(wallNs(span))} wall`, `${ms(cpu)} CPU`, `${(appShare * 100).toFixed(0)}% in the app's functions`];
    writeFileSync(htmlFile, flamegraphHtml(tree, { title: `${requestTarget(span)}: its span profile`, facts, app }));
  }
  return { lines, chosen, tree, appShare, htmlFile };
}
