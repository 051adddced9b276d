/** The agent's environment for an app that sends to the real Jaeger and Pyroscope of a test. */
import type { Jaeger } from './jaeger';
import type { Pyroscope } from './pyroscope';

/** Traces by OTLP/HTTP protobuf to Jaeger (exported every 200 ms), profiles to Pyroscope every 2 s. */
export function agentEnv(service: string, jaeger: Jaeger, pyroscope: Pyroscope): Record<string, string> {
  return {
    OTEL_SERVICE_NAME: service,
    OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpHttpUrl,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_BSP_SCHEDULE_DELAY: '200',
    PYROSCOPE_SERVER_ADDRESS: pyroscope.url,
    PYROSCOPE_UPLOAD_INTERVAL: '2s',
    PYROSCOPE_LOG_LEVEL: 'info',
  };
}
