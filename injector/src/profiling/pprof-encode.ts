/**
 * Encodes a pprof-format Profile without allocating per field.
 *
 * pprof-format's own encoder measures every number through a two-element
 * array and every repeated field through an iterator, and measures nested
 * messages again at each level: a 15 s profile of a busy app allocated about
 * 10 MB to encode its CPU and wall parts. Allocated in one burst at each
 * collection, that filled the young generation twice in the same task, so the
 * profile being built survived two scavenges and was promoted to the old
 * generation (400-600 kB at each collection), which is what made V8 grow the
 * young generation over minutes. This encoder measures and writes with
 * arithmetic only: two passes over the profile (sizes, then bytes) and one
 * output buffer, off the JS heap.
 *
 * The bytes are the ones pprof-format writes (tested byte for byte), except
 * where pprof-format's measure and its writer disagree: an empty nested
 * message (a Label or ValueType whose fields are all zero) is measured as
 * nothing but written as a tag and a zero length, past the end of its buffer.
 * Here it is measured as written.
 */
import type { Function as PprofFunction, Label, Line, Location, Mapping, Profile, Sample, ValueType } from 'pprof-format';

type Numeric = number | bigint;

const TWO_64 = 1n << 64n;

/** Bytes of a varint; 0 for zero, as pprof-format omits zero scalars. */
function varintSize(value: Numeric): number {
  if (typeof value === 'bigint') return bigVarintSize(value);
  if (value === 0) return 0;
  if (value < 0) return 10;
  let n = Math.trunc(value);
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function bigVarintSize(value: bigint): number {
  if (value === 0n) return 0;
  let n = value < 0n ? (value + TWO_64) & (TWO_64 - 1n) : value & (TWO_64 - 1n);
  let size = 1;
  while (n >= 128n) {
    n >>= 7n;
    size++;
  }
  return size;
}

/** An element of a packed array: zero still takes a byte. */
function elementSize(value: Numeric): number {
  return varintSize(value) || 1;
}

/** A scalar field: tag and value, or nothing when the value is zero. */
function scalarFieldSize(value: Numeric): number {
  const size = varintSize(value);
  return size === 0 ? 0 : 1 + size;
}

function packedSize(values: readonly Numeric[]): number {
  let size = 0;
  for (let i = 0; i < values.length; i++) size += elementSize(values[i]!);
  return size;
}

/** A packed field: tag, length and elements, or nothing when empty. */
function packedFieldSize(values: readonly Numeric[]): number {
  const size = packedSize(values);
  return size === 0 ? 0 : 1 + lengthPrefixSize(size) + size;
}

/** A nested message of `size` bytes: tag, length, body. */
function messageFieldSize(size: number): number {
  return 1 + lengthPrefixSize(size) + size;
}

function lengthPrefixSize(size: number): number {
  return varintSize(size) || 1;
}

function valueTypeSize(v: ValueType): number {
  return scalarFieldSize(v.type) + scalarFieldSize(v.unit);
}

function labelSize(l: Label): number {
  return scalarFieldSize(l.key) + scalarFieldSize(l.str) + scalarFieldSize(l.num) + scalarFieldSize(l.numUnit);
}

function sampleSize(s: Sample): number {
  let size = packedFieldSize(s.locationId) + packedFieldSize(s.value);
  for (let i = 0; i < s.label.length; i++) size += messageFieldSize(labelSize(s.label[i]!));
  return size;
}

function mappingSize(m: Mapping): number {
  return (
    scalarFieldSize(m.id) +
    scalarFieldSize(m.memoryStart) +
    scalarFieldSize(m.memoryLimit) +
    scalarFieldSize(m.fileOffset) +
    scalarFieldSize(m.filename) +
    scalarFieldSize(m.buildId) +
    (m.hasFunctions ? 2 : 0) +
    (m.hasFilenames ? 2 : 0) +
    (m.hasLineNumbers ? 2 : 0) +
    (m.hasInlineFrames ? 2 : 0)
  );
}

function lineSize(l: Line): number {
  return scalarFieldSize(l.functionId) + scalarFieldSize(l.line) + scalarFieldSize(l.column);
}

function locationSize(l: Location): number {
  let size = scalarFieldSize(l.id) + scalarFieldSize(l.mappingId) + scalarFieldSize(l.address) + (l.isFolded ? 2 : 0);
  for (let i = 0; i < l.line.length; i++) size += messageFieldSize(lineSize(l.line[i]!));
  return size;
}

function functionSize(f: PprofFunction): number {
  return scalarFieldSize(f.id) + scalarFieldSize(f.name) + scalarFieldSize(f.systemName) + scalarFieldSize(f.filename) + scalarFieldSize(f.startLine);
}

function stringSize(s: string): number {
  const bytes = Buffer.byteLength(s, 'utf8');
  return messageFieldSize(bytes);
}

/** The encoded size of `profile`, in bytes. */
export function encodedProfileSize(profile: Profile): number {
  let size = 0;
  for (let i = 0; i < profile.sampleType.length; i++) size += messageFieldSize(valueTypeSize(profile.sampleType[i]!));
  for (let i = 0; i < profile.sample.length; i++) size += messageFieldSize(sampleSize(profile.sample[i]!));
  for (let i = 0; i < profile.mapping.length; i++) size += messageFieldSize(mappingSize(profile.mapping[i]!));
  for (let i = 0; i < profile.location.length; i++) size += messageFieldSize(locationSize(profile.location[i]!));
  for (let i = 0; i < profile.function.length; i++) size += messageFieldSize(functionSize(profile.function[i]!));
  const strings = profile.stringTable.strings;
  for (let i = 0; i < strings.length; i++) size += stringSize(strings[i]!);
  size += scalarFieldSize(profile.dropFrames) + scalarFieldSize(profile.keepFrames) + scalarFieldSize(profile.timeNanos) + scalarFieldSize(profile.durationNanos);
  if (profile.periodType !== undefined) size += messageFieldSize(valueTypeSize(profile.periodType));
  size += scalarFieldSize(profile.period) + packedFieldSize(profile.comment) + scalarFieldSize(profile.defaultSampleType) + scalarFieldSize(profile.docUrl);
  return size;
}

/** Writes into one buffer, front to back. */
class Writer {
  offset = 0;
  constructor(readonly buffer: Buffer) {}

  varint(value: Numeric): void {
    if (typeof value === 'bigint' || value < 0) {
      this.bigVarint(BigInt(typeof value === 'bigint' ? value : Math.trunc(value)));
      return;
    }
    const buffer = this.buffer;
    let n = Math.trunc(value);
    while (n >= 128) {
      buffer[this.offset++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    buffer[this.offset++] = n;
  }

  private bigVarint(value: bigint): void {
    let n = value < 0n ? (value + TWO_64) & (TWO_64 - 1n) : value & (TWO_64 - 1n);
    while (n >= 128n) {
      this.buffer[this.offset++] = Number(n & 127n) | 128;
      n >>= 7n;
    }
    this.buffer[this.offset++] = Number(n);
  }

  /** A scalar field, left out when zero. */
  scalar(tag: number, value: Numeric): void {
    if (value === 0 || value === 0n) return;
    this.buffer[this.offset++] = tag;
    this.varint(value);
  }

  flag(tag: number, on: boolean): void {
    if (!on) return;
    this.buffer[this.offset++] = tag;
    this.buffer[this.offset++] = 1;
  }

  packed(tag: number, values: readonly Numeric[]): void {
    const size = packedSize(values);
    if (size === 0) return;
    this.buffer[this.offset++] = tag;
    this.varint(size);
    for (let i = 0; i < values.length; i++) this.varint(values[i]!);
  }

  /** A nested message's tag and length; its fields follow. */
  message(tag: number, size: number): void {
    this.buffer[this.offset++] = tag;
    this.varint(size);
  }

  string(s: string): void {
    this.buffer[this.offset++] = 50; // field 6 (string_table), length-delimited
    this.varint(Buffer.byteLength(s, 'utf8'));
    this.offset += this.buffer.write(s, this.offset, 'utf8');
  }
}

function writeValueType(w: Writer, tag: number, v: ValueType): void {
  w.message(tag, valueTypeSize(v));
  w.scalar(8, v.type);
  w.scalar(16, v.unit);
}

function writeSample(w: Writer, s: Sample): void {
  w.message(18, sampleSize(s));
  w.packed(10, s.locationId);
  w.packed(18, s.value);
  for (let i = 0; i < s.label.length; i++) {
    const l = s.label[i]!;
    w.message(26, labelSize(l));
    w.scalar(8, l.key);
    w.scalar(16, l.str);
    w.scalar(24, l.num);
    w.scalar(32, l.numUnit);
  }
}

function writeMapping(w: Writer, m: Mapping): void {
  w.message(26, mappingSize(m));
  w.scalar(8, m.id);
  w.scalar(16, m.memoryStart);
  w.scalar(24, m.memoryLimit);
  w.scalar(32, m.fileOffset);
  w.scalar(40, m.filename);
  w.scalar(48, m.buildId);
  w.flag(56, m.hasFunctions);
  w.flag(64, m.hasFilenames);
  w.flag(72, m.hasLineNumbers);
  w.flag(80, m.hasInlineFrames);
}

function writeLocation(w: Writer, l: Location): void {
  w.message(34, locationSize(l));
  w.scalar(8, l.id);
  w.scalar(16, l.mappingId);
  w.scalar(24, l.address);
  for (let i = 0; i < l.line.length; i++) {
    const line = l.line[i]!;
    w.message(34, lineSize(line));
    w.scalar(8, line.functionId);
    w.scalar(16, line.line);
    w.scalar(24, line.column);
  }
  w.flag(40, l.isFolded);
}

function writeFunction(w: Writer, f: PprofFunction): void {
  w.message(42, functionSize(f));
  w.scalar(8, f.id);
  w.scalar(16, f.name);
  w.scalar(24, f.systemName);
  w.scalar(32, f.filename);
  w.scalar(40, f.startLine);
}

/** `profile` as pprof protobuf bytes, in fields' order as pprof-format writes them. */
export function encodeProfile(profile: Profile): Buffer {
  const size = encodedProfileSize(profile);
  const w = new Writer(Buffer.allocUnsafeSlow(size));
  for (let i = 0; i < profile.sampleType.length; i++) writeValueType(w, 10, profile.sampleType[i]!);
  for (let i = 0; i < profile.sample.length; i++) writeSample(w, profile.sample[i]!);
  for (let i = 0; i < profile.mapping.length; i++) writeMapping(w, profile.mapping[i]!);
  for (let i = 0; i < profile.location.length; i++) writeLocation(w, profile.location[i]!);
  for (let i = 0; i < profile.function.length; i++) writeFunction(w, profile.function[i]!);
  const strings = profile.stringTable.strings;
  for (let i = 0; i < strings.length; i++) w.string(strings[i]!);
  w.scalar(56, profile.dropFrames);
  w.scalar(64, profile.keepFrames);
  w.scalar(72, profile.timeNanos);
  w.scalar(80, profile.durationNanos);
  if (profile.periodType !== undefined) writeValueType(w, 90, profile.periodType);
  w.scalar(96, profile.period);
  w.packed(106, profile.comment);
  w.scalar(112, profile.defaultSampleType);
  w.scalar(120, profile.docUrl);
  if (w.offset !== size) throw new Error(`pprof encoding wrote ${w.offset} bytes, measured ${size}`);
  return w.buffer;
}
