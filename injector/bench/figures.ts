/** What the agent benchmarks share: the OpenTelemetry baseline's settings, and how figures are summarised and printed. */

/** Settings for every configuration that traces: no metrics, no logs, local resource detectors only. */
export function tracingEnv(otlpUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    OTEL_SERVICE_NAME: 'bench',
    OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_METRICS_EXPORTER: 'none',
    OTEL_LOGS_EXPORTER: 'none',
    // Local detectors only: the upstream default also queries cloud metadata addresses.
    OTEL_NODE_RESOURCE_DETECTORS: 'env,host,os,process,serviceinstance,container',
    ...extra,
  };
}

/** dd-trace with its wall profiler, CPU time and code hotspots (span ids in samples), sending to a receiver of ours. */
export function ddTraceEnv(agentUrl: string, uploadSeconds: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DD_TRACE_AGENT_URL: agentUrl,
    DD_SERVICE: 'bench',
    DD_PROFILING_ENABLED: 'true',
    DD_PROFILING_CODEHOTSPOTS_ENABLED: 'true',
    DD_PROFILING_CPU_ENABLED: 'true',
    DD_PROFILING_PROFILERS: 'wall',
    DD_PROFILING_UPLOAD_PERIOD: String(uploadSeconds),
    DD_TRACE_STARTUP_LOGS: 'false',
    DD_INSTRUMENTATION_TELEMETRY_ENABLED: 'false',
    DD_REMOTE_CONFIGURATION_ENABLED: 'false',
    ...extra,
  };
}

/** Median of the numbers that are not NaN (NaN when there are none). */
export function median(xs: number[]): number {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

export function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const [i, row] of rows.entries()) {
    console.log(row.map((c, j) => c.padEnd(widths[j]!)).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}
