/**
 * A receiver that speaks Pyroscope's ingest protocol (`POST /ingest`, pprof
 * body, raw or in a multipart `profile` field) and decodes every upload.
 */
import type * as http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { Profile } from 'pprof-format';
import { serveBodies, type LoopbackServer } from './loopback-server';

export interface ReceivedSample {
  /** Function names, leaf first. */
  stack: string[];
  /** The file of each frame in `stack` ('' when the profile names none). */
  files: string[];
  values: number[];
  labels: Record<string, string>;
}

export interface ReceivedProfile {
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  /** Pyroscope's profile-type id without the name: sampleType:unit:periodType:unit (first sample type). */
  types: string[];
  periodType: string;
  sampleCount: number;
  uncompressedBytes: number;
  samples: ReceivedSample[];
}

export interface ReceiverBehaviour {
  /** HTTP status to answer (default 200). */
  status?: number;
  /** Delay before answering. */
  delayMs?: number;
}

export function decodePprof(body: Buffer): { profile: Profile; bytes: number } {
  const raw = body[0] === 0x1f && body[1] === 0x8b ? gunzipSync(body) : body;
  return { profile: Profile.decode(raw), bytes: raw.length };
}

export function readSamples(profile: Profile): ReceivedSample[] {
  const s = profile.stringTable.strings;
  const functions = new Map(profile.function.map((f) => [Number(f.id), { name: s[Number(f.name)] ?? '', file: s[Number(f.filename)] ?? '' }]));
  const locations = new Map(profile.location.map((l) => [Number(l.id), l.line.map((line) => functions.get(Number(line.functionId)) ?? { name: '', file: '' })]));
  return profile.sample.map((sample) => ({
    stack: sample.locationId.flatMap((id) => (locations.get(Number(id)) ?? []).map((f) => f.name)),
    files: sample.locationId.flatMap((id) => (locations.get(Number(id)) ?? []).map((f) => f.file)),
    values: sample.value.map(Number),
    labels: Object.fromEntries(sample.label.map((l) => [s[Number(l.key)] ?? '', Number(l.str) !== 0 ? (s[Number(l.str)] ?? '') : String(l.num)])),
  }));
}

export class PyroscopeReceiver {
  readonly profiles: ReceivedProfile[] = [];
  readonly requests: { status: number; at: number }[] = [];
  behaviour: ReceiverBehaviour = {};
  url = '';
  private server: LoopbackServer | undefined;

  async start(): Promise<this> {
    this.server = await serveBodies((req, body, res) => {
      const answer = (status: number, text = ''): void => {
        this.requests.push({ status, at: Date.now() });
        const send = (): void => {
          res.statusCode = status;
          res.end(text);
        };
        if (this.behaviour.delayMs) setTimeout(send, this.behaviour.delayMs);
        else send();
      };
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (req.method !== 'POST' || url.pathname !== '/ingest') return answer(404);
      if (this.behaviour.status !== undefined && this.behaviour.status !== 200) return answer(this.behaviour.status, 'configured failure');
      try {
        const { profile, bytes } = decodePprof(body);
        const s = profile.stringTable.strings;
        const vt = (t: { type: unknown; unit: unknown } | undefined): string => (t ? `${s[Number(t.type)]}:${s[Number(t.unit)]}` : '');
        this.profiles.push({
          query: url.searchParams,
          headers: req.headers,
          types: profile.sampleType.map(vt),
          periodType: vt(profile.periodType),
          sampleCount: profile.sample.length,
          uncompressedBytes: bytes,
          samples: readSamples(profile),
        });
        answer(200);
      } catch (err) {
        answer(400, `cannot decode pprof: ${String(err)}`);
      }
    });
    this.url = this.server.url;
    return this;
  }

  /** Profiles Pyroscope would file as process_cpu:cpu:nanoseconds:cpu:nanoseconds. */
  cpuProfiles(): ReceivedProfile[] {
    return this.profiles.filter((p) => p.types.length === 1 && p.types[0] === 'cpu:nanoseconds' && p.periodType === 'cpu:nanoseconds');
  }

  async close(): Promise<void> {
    await this.server?.close();
  }
}
