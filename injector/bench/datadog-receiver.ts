/**
 * A receiver that speaks the parts of the Datadog agent API dd-trace uses:
 * traces (`/v0.4/traces`, msgpack) and profiles (`/profiling/v1/input`,
 * multipart with pprof files), decoded into the same shapes the other
 * receivers give, with Datadog's decimal span ids turned into 16-hex ids.
 */
import { decode } from '@msgpack/msgpack';
import { decodePprof, readSamples, type ReceivedSample } from '../test/harness/pyroscope-receiver';
import { serveBodies, type LoopbackServer } from '../test/harness/loopback-server';

export interface DatadogSpan {
  spanId: string;
  parentId: string;
  name: string;
  resource: string;
  meta: Record<string, string>;
}

const hex = (id: unknown): string => BigInt(id as bigint | number).toString(16).padStart(16, '0');

/** The named parts of a multipart/form-data body. */
function multipart(body: Buffer, contentType: string): Map<string, Buffer> {
  const boundary = /boundary=(?:"([^"]+)"|([^;]+))/.exec(contentType);
  const parts = new Map<string, Buffer>();
  if (!boundary) return parts;
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]}`);
  let start = body.indexOf(delimiter);
  while (start >= 0) {
    const next = body.indexOf(delimiter, start + delimiter.length);
    if (next < 0) break;
    const part = body.subarray(start + delimiter.length + 2, next - 2);
    const headerEnd = part.indexOf('\r\n\r\n');
    const headers = part.subarray(0, headerEnd).toString();
    const name = /name="([^"]+)"/.exec(headers)?.[1];
    if (name !== undefined) parts.set(name, part.subarray(headerEnd + 4));
    start = next;
  }
  return parts;
}

export class DatadogReceiver {
  readonly spans: DatadogSpan[] = [];
  /** CPU samples of the wall profiles, labelled span_id = the local root span id (hex). */
  readonly samples: ReceivedSample[] = [];
  url = '';
  private server: LoopbackServer | undefined;

  async start(): Promise<this> {
    this.server = await serveBodies((req, body, res): void => {
      const path = (req.url ?? '').split('?')[0];
      try {
        if (path === '/v0.4/traces') {
          const traces = decode(body, { useBigInt64: true }) as Record<string, unknown>[][];
          for (const trace of traces) {
            for (const s of trace) {
              this.spans.push({ spanId: hex(s['span_id']), parentId: hex(s['parent_id'] ?? 0), name: String(s['name']), resource: String(s['resource']), meta: (s['meta'] ?? {}) as Record<string, string> });
            }
          }
          res.setHeader('content-type', 'application/json');
          res.end('{"rate_by_service":{}}');
          return;
        }
        if (path === '/profiling/v1/input') {
          for (const [name, part] of multipart(body, req.headers['content-type'] ?? '')) {
            if (!name.endsWith('.pprof') || !name.startsWith('wall')) continue;
            const { profile } = decodePprof(part);
            const s = profile.stringTable.strings;
            const cpuIndex = profile.sampleType.findIndex((t) => s[Number(t.type)] === 'cpu');
            for (const sample of readSamples(profile)) {
              const root = sample.labels['local root span id'];
              const cpu = cpuIndex >= 0 ? (sample.values[cpuIndex] ?? 0) : 0;
              if (cpu <= 0) continue;
              this.samples.push({ stack: sample.stack, files: sample.files, values: [cpu], labels: root !== undefined && root !== '0' ? { span_id: hex(BigInt(root)) } : {} });
            }
          }
          res.end('{}');
          return;
        }
        if (path === '/info') {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ endpoints: ['/v0.4/traces', '/profiling/v1/input'] }));
          return;
        }
        res.statusCode = 404;
        res.end();
      } catch (err) {
        res.statusCode = 400;
        res.end(String(err));
      }
    });
    this.url = this.server.url;
    return this;
  }

  async close(): Promise<void> {
    await this.server?.close();
  }
}
