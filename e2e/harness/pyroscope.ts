/**
 * A real Grafana Pyroscope (single binary, every component in one process,
 * filesystem storage) on loopback ports, for tests.
 */
import * as path from 'node:path';
import { freePort, httpOk, ManagedProcess, removeDir, tempDir } from './processes';
import { tool } from './toolchain';

export interface Pyroscope {
  url: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

export async function startPyroscope(logDir = tempDir('pyroscope')): Promise<Pyroscope> {
  const [http, grpc, memberlist] = [await freePort(), await freePort(), await freePort()];
  const data = tempDir('pyroscope-data');
  const args = [
    `-server.http-listen-address=127.0.0.1`,
    `-server.http-listen-port=${http}`,
    `-server.grpc-listen-address=127.0.0.1`,
    `-server.grpc-listen-port=${grpc}`,
    // Every component announces a loopback address in its ring: nothing dials the host's other interfaces.
    `-memberlist.bind-addr=127.0.0.1`,
    `-memberlist.bind-port=${memberlist}`,
    `-memberlist.advertise-addr=127.0.0.1`,
    `-memberlist.advertise-port=${memberlist}`,
    '-ingester.lifecycler.addr=127.0.0.1',
    '-compactor.ring.instance-addr=127.0.0.1',
    '-distributor.ring.instance-addr=127.0.0.1',
    '-overrides-exporter.ring.instance-addr=127.0.0.1',
    '-query-frontend.instance-addr=127.0.0.1',
    '-query-scheduler.ring.instance-addr=127.0.0.1',
    '-store-gateway.sharding-ring.instance-addr=127.0.0.1',
    ...pyroscopeStorageArgs(data),
  ];
  const process = new ManagedProcess('pyroscope', tool('pyroscope'), args, { logDir, cwd: data });
  const url = `http://127.0.0.1:${http}`;
  await process.waitUntil('/ready answers 200', () => httpOk(`${url}/ready`), 90_000);
  return {
    url,
    process,
    stop: async () => {
      await process.stop();
      removeDir(data);
    },
  };
}

/** Single-binary Pyroscope on local disk under `data`: the flags shared by the test process and the in-cluster Deployment. */
export function pyroscopeStorageArgs(data: string): string[] {
  return [
    `-pyroscopedb.data-path=${path.join(data, 'db')}`,
    '-storage.backend=filesystem',
    `-storage.filesystem.dir=${path.join(data, 'blocks')}`,
    '-self-profiling.disable-push=true',
    '-usage-stats.enabled=false',
    // Single process: no rollout to slow down.
    '-ingester.min-ready-duration=0s',
  ];
}

/** Connect-protocol JSON call, as Grafana makes them. */
export async function pyroscopeCall<T>(url: string, method: string, body: unknown): Promise<T> {
  const res = await fetch(`${url}/${method}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(20_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method}: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

/** The CPU profile type Grafana asks for span profiles. */
export const CPU_PROFILE_TYPE = 'process_cpu:cpu:nanoseconds:cpu:nanoseconds';

/**
 * What Grafana asks Pyroscope for when a span's "profiles" link is opened: the
 * CPU profile of these spans, for the span's service.name (and its
 * service.namespace when the span has one).
 */
export async function selectMergeSpanProfile(url: string, service: string, spanIds: string[], sinceMs: number, serviceNamespace?: string): Promise<Flamegraph> {
  return pyroscopeCall<Flamegraph>(url, 'querier.v1.QuerierService/SelectMergeSpanProfile', {
    profileTypeID: CPU_PROFILE_TYPE,
    labelSelector: serviceNamespace === undefined ? `{service_name="${service}"}` : `{service_name="${service}",service_namespace="${serviceNamespace}"}`,
    spanSelector: spanIds,
    start: sinceMs,
    end: Date.now() + 60_000,
    maxNodes: 1024,
  });
}

export interface Flamegraph {
  flamegraph?: { names: string[]; levels: { values: string[] }[]; total: string };
}

/** Sums one column of Pyroscope's flame graph nodes (4-tuples: offset, total, self, name index) by function name. */
function sumByName(fg: Flamegraph, column: 1 | 2): Map<string, number> {
  const names = fg.flamegraph?.names ?? [];
  const sums = new Map<string, number>();
  for (const level of fg.flamegraph?.levels ?? []) {
    const v = level.values.map(Number);
    for (let i = 0; i + 3 < v.length; i += 4) sums.set(names[v[i + 3]!]!, (sums.get(names[v[i + 3]!]!) ?? 0) + v[i + column]!);
  }
  return sums;
}

/** Total (inclusive) CPU time of each function in a flame graph. */
export const hotNames = (fg: Flamegraph): Map<string, number> => sumByName(fg, 1);

/** Self (exclusive) CPU time of each function: what a "top functions" table shows. */
export const selfTimes = (fg: Flamegraph): Map<string, number> => sumByName(fg, 2);
