/** What the agent tests share: the env that points the agent at test receivers, and span helpers. */
import type { AppProcess } from './app-process';
import { OtlpReceiver, type ReceivedSpan } from './otlp-receiver';
import { PyroscopeReceiver, type ReceivedProfile, type ReceivedSample } from './pyroscope-receiver';

const SPAN_KIND_SERVER = 2;

export function agentEnv(pyroscope: PyroscopeReceiver, otlp: OtlpReceiver, extra: Record<string, string> = {}): Record<string, string> {
  return {
    OTEL_SERVICE_NAME: 'agent-test',
    PYROSCOPE_SERVER_ADDRESS: pyroscope.url,
    PYROSCOPE_UPLOAD_INTERVAL: '1s',
    PYROSCOPE_LOG_LEVEL: 'info',
    OTEL_EXPORTER_OTLP_ENDPOINT: otlp.httpUrl,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '200',
    ...extra,
  };
}

export function serverSpans(spans: ReceivedSpan[]): ReceivedSpan[] {
  return spans.filter((s) => s.kind === SPAN_KIND_SERVER);
}

/** The query string of a server span's request, from whichever semantic convention the instrumentation used. */
export function requestQuery(span: ReceivedSpan): URLSearchParams {
  const target = (span.attributes['url.query'] as string | undefined) ?? (span.attributes['http.target'] as string | undefined) ?? (span.attributes['url.full'] as string | undefined) ?? '';
  const q = target.includes('?') ? target.slice(target.indexOf('?') + 1) : target;
  return new URLSearchParams(q);
}

export function allSamples(profiles: ReceivedProfile[]): ReceivedSample[] {
  return profiles.flatMap((p) => p.samples);
}

export interface TestBed {
  pyroscope: PyroscopeReceiver;
  otlp: OtlpReceiver;
  /** The app under test; killed after each test. */
  app: AppProcess | undefined;
}

/** Fresh receivers for every test of the calling describe block, and the app killed after each. */
export function receiversPerTest(): TestBed {
  const bed = { app: undefined } as TestBed;
  beforeEach(async () => {
    bed.pyroscope = await new PyroscopeReceiver().start();
    bed.otlp = await new OtlpReceiver().start();
  });
  afterEach(async () => {
    await bed.app?.stop('SIGKILL');
    bed.app = undefined;
    await bed.pyroscope.close();
    await bed.otlp.close();
  });
  return bed;
}
