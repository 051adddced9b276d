/**
 * Turns what the native profiler produced into the profiles Pyroscope wants.
 *
 * - A CPU profile whose only sample type and period type are `cpu`/`nanoseconds`:
 *   Pyroscope files it as `process_cpu:cpu:nanoseconds:cpu:nanoseconds`, the
 *   type Grafana's traces-to-profiles asks for.
 * - A wall profile (`samples`/`count`, `wall`/`nanoseconds`).
 * - Identical (stack, labels) samples merged: the profiler writes one sample
 *   per labelled hit.
 * - Labels Pyroscope would reject or turn into noise dropped (names outside
 *   the Prometheus rule, numeric labels).
 * - Split so that every upload stays under Pyroscope's limits
 *   (16,000 samples, 4 MiB uncompressed).
 * - The agent's pass-through frames (context managers, instrumentation
 *   wrappers, the profiler's own context frames) taken out from between the
 *   app's frames; where the agent's code is the leaf end of a stack (its own
 *   work: exporting, collecting, its wrappers' cost), that part stays, under
 *   one frame named `span-profiling agent`.
 */
import * as path from 'node:path';
import { Function as PprofFunction, Label, Line, Location, Mapping, Profile, Sample, StringTable, ValueType } from 'pprof-format';
import { encodedProfileSize } from './pprof-encode';

export const MAX_SAMPLES_PER_PROFILE = 16_000;
export const MAX_PROFILE_BYTES = 4 * 1024 * 1024;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export interface ShapedProfiles {
  cpu: Profile[];
  wall: Profile[];
}

export interface ShapeLimits {
  maxSamples: number;
  maxBytes: number;
}

const DEFAULT_LIMITS: ShapeLimits = { maxSamples: MAX_SAMPLES_PER_PROFILE, maxBytes: MAX_PROFILE_BYTES };

const OWN_DIR = path.dirname(__filename) + path.sep;
const PPROF_DIR = `${path.sep}@datadog${path.sep}pprof${path.sep}out${path.sep}`;

/**
 * Whether a file is the agent's code: this bundle's directory (the agent's dist/, or the npm
 * package's), or the native profiler's JavaScript wherever it is installed.
 */
export function isAgentCode(file: string): boolean {
  return file.startsWith(OWN_DIR) || file.includes(PPROF_DIR);
}

/** The frame the agent's own work is shown under. */
export const AGENT_FRAME = 'span-profiling agent';

export interface ShapeOptions {
  limits?: ShapeLimits;
  /** Whether a function's file is the agent's own code (its frames are folded, see foldAgentFrames). */
  ownCode?: (filename: string) => boolean;
  /** Labels added to every sample (a worker thread's name). */
  labels?: Record<string, string>;
}

/** Splits a time profile (sample, wall[, cpu]) into a CPU and a wall profile ready for upload. */
export function shapeTimeProfile(profile: Profile, options: ShapeOptions = {}): ShapedProfiles {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const source = options.ownCode === undefined ? profile : foldAgentFrames(profile, options.ownCode);
  const strings = source.stringTable;
  const countIndex = findSampleType(source, 'sample', 'count') ?? findSampleType(source, 'samples', 'count');
  const wallIndex = findSampleType(source, 'wall', 'nanoseconds');
  const cpuIndex = findSampleType(source, 'cpu', 'nanoseconds');
  const allowedKeys = allowedLabelKeys(source);
  const intervalNanos = Number(source.period);
  const extra = Object.entries(options.labels ?? {}).map(([key, value]) => new Label({ key: strings.dedup(key), str: strings.dedup(value) }));

  const cpu =
    cpuIndex === undefined
      ? []
      : split(
          derive(source, {
            sampleType: [valueType(strings, 'cpu', 'nanoseconds')],
            periodType: valueType(strings, 'cpu', 'nanoseconds'),
            period: intervalNanos,
            values: (v) => (Number(v[cpuIndex]) > 0 ? [v[cpuIndex]!] : undefined),
            allowedKeys,
            extra,
          }),
          limits,
        );

  const wall =
    wallIndex === undefined
      ? []
      : split(
          derive(source, {
            sampleType: [valueType(strings, 'samples', 'count'), valueType(strings, 'wall', 'nanoseconds')],
            periodType: valueType(strings, 'wall', 'nanoseconds'),
            period: intervalNanos,
            values: (v) => [countIndex === undefined ? 1 : v[countIndex]!, v[wallIndex]!],
            allowedKeys,
            extra,
          }),
          limits,
        );
  return { cpu, wall };
}

/** Heap profiles need only label sanitising, merging and the size limits. */
export function shapeHeapProfile(profile: Profile, options: ShapeOptions = {}): Profile[] {
  const limits = options.limits ?? DEFAULT_LIMITS;
  const source = options.ownCode === undefined ? profile : foldAgentFrames(profile, options.ownCode);
  return split(
    derive(source, {
      sampleType: source.sampleType,
      periodType: source.periodType,
      period: Number(source.period),
      values: (v) => v,
      allowedKeys: allowedLabelKeys(source),
    }),
    limits,
  );
}

type Numeric = number | bigint;

const OTHER = 0;
const AGENT = 1;
/** Node's AsyncLocalStorage frames: plumbing when the agent's code sits next to them, the app's otherwise. */
const ASYNC_STORAGE = 2;
const ASYNC_STORAGE_FILE = /^node:(async_hooks$|internal\/async_local_storage\/)/;

/**
 * Takes the agent's pass-through frames out of every stack. A run of the
 * agent's frames (with the AsyncLocalStorage frames among them) that has the
 * app's frames on both sides is removed: a user reading the flame graph sees
 * their handler called by the framework, as without the agent. A run at the
 * leaf end is the agent's own work, and stays under one `span-profiling agent`
 * frame. Stacks are arrays shared by the samples of one profile node, so each
 * is folded once.
 */
export function foldAgentFrames(source: Profile, ownCode: (filename: string) => boolean): Profile {
  const strings = source.stringTable.strings;
  const kindOfFunction = new Map<Numeric, number>();
  for (const f of source.function) {
    const file = strings[Number(f.filename)] ?? '';
    kindOfFunction.set(f.id, file === '' ? OTHER : ownCode(file) ? AGENT : ASYNC_STORAGE_FILE.test(file) ? ASYNC_STORAGE : OTHER);
  }
  const kind = new Map<Numeric, number>();
  let agentSeen = false;
  let maxLocation = 0;
  let maxFunction = 0;
  for (const f of source.function) maxFunction = Math.max(maxFunction, Number(f.id));
  for (const l of source.location) {
    maxLocation = Math.max(maxLocation, Number(l.id));
    // Inlined frames share a location: it is the agent's only when each of them is.
    const kinds = l.line.map((line) => kindOfFunction.get(line.functionId) ?? OTHER);
    const k = kinds.length === 0 || kinds.includes(OTHER) ? OTHER : kinds.includes(AGENT) ? AGENT : ASYNC_STORAGE;
    if (k === AGENT) agentSeen = true;
    if (k !== OTHER) kind.set(l.id, k);
  }
  if (!agentSeen) return source;

  const agentFunction = new PprofFunction({ id: maxFunction + 1, name: source.stringTable.dedup(AGENT_FRAME) });
  const agentLocation = new Location({ id: maxLocation + 1, line: [new Line({ functionId: agentFunction.id })] });
  let agentFrameUsed = false;
  const folded = new Map<Numeric[], Numeric[]>();
  const fold = (stack: Numeric[]): Numeric[] => {
    // Leaf first, as pprof orders them; walked from the root.
    const out: Numeric[] = [];
    let i = stack.length - 1;
    while (i >= 0) {
      if (!kind.has(stack[i]!)) {
        out.push(stack[i--]!);
        continue;
      }
      let j = i;
      let agent = false;
      for (; j >= 0 && kind.has(stack[j]!); j--) if (kind.get(stack[j]!) === AGENT) agent = true;
      if (!agent || j < 0) {
        if (agent) {
          out.push(agentLocation.id);
          agentFrameUsed = true;
        }
        for (let k = i; k > j; k--) out.push(stack[k]!);
      }
      i = j;
    }
    return out.length === stack.length ? stack : out.reverse();
  };
  const samples = source.sample.map((sample) => {
    let stack = folded.get(sample.locationId);
    if (stack === undefined) folded.set(sample.locationId, (stack = fold(sample.locationId)));
    return stack === sample.locationId ? sample : new Sample({ locationId: stack, value: sample.value, label: sample.label });
  });
  return new Profile({
    ...source,
    sample: samples,
    location: agentFrameUsed ? [...source.location, agentLocation] : source.location,
    function: agentFrameUsed ? [...source.function, agentFunction] : source.function,
  });
}

interface Derivation {
  sampleType: ValueType[];
  periodType: ValueType | undefined;
  period: number;
  /** The new values of a sample, or undefined to drop it. */
  values: (values: Numeric[]) => Numeric[] | undefined;
  allowedKeys: ReadonlySet<Numeric>;
  /** Added to every sample's labels. */
  extra?: Label[];
}

function derive(source: Profile, d: Derivation): Profile {
  const merged = new Map<string, Sample>();
  for (const sample of source.sample) {
    const values = d.values(sample.value);
    if (values === undefined) continue;
    const labels = sample.label.filter((l) => d.allowedKeys.has(l.key) && Number(l.str) !== 0);
    const key = `${sample.locationId.join(',')}|${labels.map((l) => `${l.key}=${l.str}`).sort().join(',')}`;
    const existing = merged.get(key);
    if (existing === undefined) {
      merged.set(key, new Sample({ locationId: sample.locationId, value: values.map(Number), label: d.extra === undefined || d.extra.length === 0 ? labels : [...labels, ...d.extra] }));
    } else {
      existing.value = existing.value.map((v, i) => Number(v) + Number(values[i] ?? 0));
    }
  }
  return new Profile({
    sampleType: d.sampleType,
    sample: [...merged.values()],
    mapping: source.mapping,
    location: source.location,
    function: source.function,
    stringTable: source.stringTable,
    timeNanos: source.timeNanos,
    durationNanos: source.durationNanos,
    ...(d.periodType === undefined ? {} : { periodType: d.periodType }),
    period: d.period,
  });
}

/** Splits by sample count, then halves any part whose encoding is still too large. */
function split(profile: Profile, limits: ShapeLimits): Profile[] {
  if (profile.sample.length === 0) return [];
  // The common case, decided without encoding anything: few samples and small tables fit as they are.
  if (profile.sample.length <= limits.maxSamples && upperBoundBytes(profile) <= limits.maxBytes) return [profile];
  const parts: Profile[] = [];
  for (let i = 0; i < profile.sample.length; i += limits.maxSamples) {
    parts.push(...bySize(withSamples(profile, profile.sample.slice(i, i + limits.maxSamples)), limits));
  }
  return parts;
}

/**
 * A generous bound on the encoded size: every string, location, function and
 * sample at a pessimistic size. Cheaper than encoding to measure.
 */
function upperBoundBytes(profile: Profile): number {
  let strings = 0;
  for (const str of profile.stringTable.strings) strings += 3 * str.length + 8;
  let samples = 0;
  for (const sample of profile.sample) samples += 16 + 11 * (sample.locationId.length + sample.value.length) + 36 * sample.label.length;
  let locations = 0;
  for (const location of profile.location) locations += 48 + 24 * location.line.length;
  return strings + samples + locations + 64 * profile.function.length + 128 * profile.mapping.length + 1024;
}

function bySize(profile: Profile, limits: ShapeLimits): Profile[] {
  if (encodedProfileSize(profile) <= limits.maxBytes || profile.sample.length <= 1) return [profile];
  const half = Math.ceil(profile.sample.length / 2);
  return [
    ...bySize(withSamples(profile, profile.sample.slice(0, half)), limits),
    ...bySize(withSamples(profile, profile.sample.slice(half)), limits),
  ];
}

/** A copy holding only these samples and the locations, functions, mappings and strings they use. */
function withSamples(profile: Profile, samples: Sample[]): Profile {
  const locationIds = new Set<Numeric>();
  for (const sample of samples) for (const id of sample.locationId) locationIds.add(id);
  const locations = profile.location.filter((l: Location) => locationIds.has(l.id));
  const functionIds = new Set<Numeric>();
  const mappingIds = new Set<Numeric>();
  for (const l of locations) {
    mappingIds.add(l.mappingId);
    for (const line of l.line) functionIds.add(line.functionId);
  }

  const from = profile.stringTable.strings;
  const strings = new StringTable();
  const str = (id: Numeric): number => strings.dedup(from[Number(id)] ?? '');
  const vt = (t: ValueType): ValueType => new ValueType({ type: str(t.type), unit: str(t.unit) });

  return new Profile({
    sampleType: profile.sampleType.map(vt),
    sample: samples.map(
      (s) =>
        new Sample({
          locationId: s.locationId,
          value: s.value,
          label: s.label.map((l) => new Label({ key: str(l.key), str: Number(l.str) === 0 ? 0 : str(l.str), num: l.num, numUnit: Number(l.numUnit) === 0 ? 0 : str(l.numUnit) })),
        }),
    ),
    mapping: profile.mapping
      .filter((m) => mappingIds.has(m.id))
      .map((m) => new Mapping({ ...m, filename: str(m.filename), buildId: str(m.buildId) })),
    location: locations,
    function: profile.function
      .filter((f: PprofFunction) => functionIds.has(f.id))
      .map((f) => new PprofFunction({ id: f.id, name: str(f.name), systemName: str(f.systemName), filename: str(f.filename), startLine: f.startLine })),
    stringTable: strings,
    timeNanos: profile.timeNanos,
    durationNanos: profile.durationNanos,
    ...(profile.periodType === undefined ? {} : { periodType: vt(profile.periodType) }),
    period: profile.period,
  });
}

/** The index of a sample type (by name and unit), or undefined. */
export function findSampleType(profile: Profile, type: string, unit: string): number | undefined {
  const s = profile.stringTable.strings;
  const index = profile.sampleType.findIndex((t) => s[Number(t.type)] === type && s[Number(t.unit)] === unit);
  return index < 0 ? undefined : index;
}

function valueType(strings: Profile['stringTable'], type: string, unit: string): ValueType {
  return new ValueType({ type: strings.dedup(type), unit: strings.dedup(unit) });
}

/** String ids of label names Pyroscope accepts. */
function allowedLabelKeys(profile: Profile): Set<Numeric> {
  const allowed = new Set<Numeric>();
  for (const sample of profile.sample) {
    for (const label of sample.label as Label[]) {
      if (!allowed.has(label.key) && LABEL_NAME.test(profile.stringTable.strings[Number(label.key)] ?? '')) allowed.add(label.key);
    }
  }
  return allowed;
}

/** The frame @datadog/pprof adds for the CPU of every thread but the main JavaScript thread. */
export const NON_JS_THREADS_FRAME = 'Non JS threads activity';

/**
 * Takes CPU that worker threads reported in their own profiles out of the
 * main thread's "Non JS threads activity" (process CPU minus the main
 * thread's), so that no CPU is counted twice. Returns what could not be taken
 * out yet (the windows of the threads do not line up exactly).
 */
export function creditNonJsThreads(profile: Profile, nanos: number): number {
  if (nanos <= 0) return 0;
  const cpuIndex = findSampleType(profile, 'cpu', 'nanoseconds');
  if (cpuIndex === undefined) return nanos;
  const strings = profile.stringTable.strings;
  const functions = new Set<Numeric>(profile.function.filter((f) => strings[Number(f.name)] === NON_JS_THREADS_FRAME).map((f) => f.id));
  if (functions.size === 0) return nanos;
  const locations = new Set<Numeric>(profile.location.filter((l) => l.line.some((line) => functions.has(line.functionId))).map((l) => l.id));
  let left = nanos;
  for (const sample of profile.sample) {
    if (left <= 0) break;
    if (!locations.has(sample.locationId[0]!)) continue;
    const value = Number(sample.value[cpuIndex] ?? 0);
    const taken = Math.min(value, left);
    sample.value[cpuIndex] = value - taken;
    left -= taken;
  }
  return left;
}

/**
 * Adds the samples of `other` (a worker thread's time profile) to `into` (the
 * process's), with `labels` on each of them: one profile per upload interval
 * for the whole process, however many threads came and went. Sample types are
 * matched by name and unit (a type `other` lacks counts zero); functions,
 * locations, mappings and strings are renumbered into `into`'s tables.
 * Identical samples are merged later, by shaping.
 */
export function mergeTimeProfile(into: Profile, other: Profile, labels: Record<string, string> = {}): void {
  const table = into.stringTable;
  const from = other.stringTable.strings;
  const str = (id: Numeric): number => (Number(id) === 0 ? 0 : table.dedup(from[Number(id)] ?? ''));
  const intoTypes = into.sampleType.map((t) => `${table.strings[Number(t.type)]}/${table.strings[Number(t.unit)]}`);
  const otherTypes = other.sampleType.map((t) => `${from[Number(t.type)]}/${from[Number(t.unit)]}`);
  const valueIndex = intoTypes.map((key) => otherTypes.indexOf(key));
  // Threads run the same code: functions and locations already in `into` are reused, not copied.
  const known = tablesOf(into);

  const mappingIds = new Map<number, number>();
  for (const m of other.mapping) {
    const id = known.nextMapping++;
    mappingIds.set(Number(m.id), id);
    into.mapping.push(new Mapping({ ...m, id, filename: str(m.filename), buildId: str(m.buildId) }));
  }
  const functionIds = new Map<number, number>();
  for (const f of other.function) {
    const fields = { name: str(f.name), systemName: str(f.systemName), filename: str(f.filename), startLine: f.startLine };
    const key = `${fields.name}/${fields.systemName}/${fields.filename}/${fields.startLine}`;
    let id = known.functions.get(key);
    if (id === undefined) {
      id = known.nextFunction++;
      known.functions.set(key, id);
      into.function.push(new PprofFunction({ id, ...fields }));
    }
    functionIds.set(Number(f.id), id);
  }
  const locationIds = new Map<number, number>();
  for (const l of other.location) {
    const mappingId = Number(l.mappingId) === 0 ? 0 : (mappingIds.get(Number(l.mappingId)) ?? 0);
    const lines = l.line.map((line) => ({ functionId: functionIds.get(Number(line.functionId)) ?? 0, line: line.line }));
    const key = `${mappingId}/${String(l.address)}/${lines.map((line) => `${line.functionId}:${String(line.line)}`).join(',')}`;
    let id = known.locations.get(key);
    if (id === undefined) {
      id = known.nextLocation++;
      known.locations.set(key, id);
      into.location.push(new Location({ id, mappingId, address: l.address, line: lines.map((line) => new Line(line)) }));
    }
    locationIds.set(Number(l.id), id);
  }
  const extra = Object.entries(labels).map(([key, value]) => new Label({ key: table.dedup(key), str: table.dedup(value) }));
  for (const s of other.sample) {
    into.sample.push(
      new Sample({
        locationId: s.locationId.map((id) => locationIds.get(Number(id)) ?? 0),
        value: valueIndex.map((i) => (i < 0 ? 0 : s.value[i]!)),
        label: [
          ...(s.label as Label[]).map((l) => new Label({ key: str(l.key), str: str(l.str), num: l.num, numUnit: str(l.numUnit) })),
          ...extra,
        ],
      }),
    );
  }
}

interface MergeTables {
  functions: Map<string, number>;
  locations: Map<string, number>;
  nextFunction: number;
  nextLocation: number;
  nextMapping: number;
}
const mergeTables = new WeakMap<Profile, MergeTables>();

/** The functions and locations of a profile that others are merged into, by content (built once per profile). */
function tablesOf(into: Profile): MergeTables {
  let known = mergeTables.get(into);
  if (known === undefined) {
    const nextId = (items: { id: Numeric }[]): number => items.reduce((max, item) => Math.max(max, Number(item.id)), 0) + 1;
    known = { functions: new Map(), locations: new Map(), nextFunction: nextId(into.function), nextLocation: nextId(into.location), nextMapping: nextId(into.mapping) };
    for (const f of into.function) known.functions.set(`${Number(f.name)}/${Number(f.systemName)}/${Number(f.filename)}/${f.startLine}`, Number(f.id));
    for (const l of into.location) known.locations.set(`${Number(l.mappingId)}/${String(l.address)}/${l.line.map((line) => `${Number(line.functionId)}:${String(line.line)}`).join(',')}`, Number(l.id));
    mergeTables.set(into, known);
  }
  return known;
}

/** A time profile with no samples, of the same types as `like`: the base when only worker threads were sampled. */
export function emptyTimeProfile(like: Profile): Profile {
  const strings = new StringTable();
  const from = like.stringTable.strings;
  const vt = (t: ValueType): ValueType => new ValueType({ type: strings.dedup(from[Number(t.type)] ?? ''), unit: strings.dedup(from[Number(t.unit)] ?? '') });
  return new Profile({
    sampleType: like.sampleType.map(vt),
    stringTable: strings,
    timeNanos: like.timeNanos,
    durationNanos: like.durationNanos,
    ...(like.periodType === undefined ? {} : { periodType: vt(like.periodType) }),
    period: like.period,
  });
}
