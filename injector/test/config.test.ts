import { strict as assert } from 'node:assert';
import { readConfig } from '../src/shared/config';

describe('agent configuration from env', () => {
  it('has working defaults with only a server address', () => {
    const { config, warnings } = readConfig({ PYROSCOPE_SERVER_ADDRESS: 'http://pyroscope:4040/', OTEL_SERVICE_NAME: 'shop' });
    assert.deepEqual(warnings, []);
    assert.equal(config.profiling.enabled, true);
    assert.equal(config.profiling.serverAddress, 'http://pyroscope:4040');
    assert.equal(config.profiling.applicationName, 'shop');
    assert.equal(config.profiling.uploadIntervalMs, 15_000);
    assert.equal(config.profiling.samplingIntervalMicros, 10_000);
    assert.equal(config.profiling.collectCpuTime, true);
    assert.deepEqual(config.spanLink, { rootSpanOnly: true, addSpanName: true, addTraceId: false });
  });

  it('profiles nothing without a server address, and says so by turning profiling off', () => {
    const { config, warnings } = readConfig({});
    assert.equal(config.profiling.enabled, false);
    assert.deepEqual(warnings, []);
    assert.equal(config.profiling.applicationName, 'unknown_service:node');
  });

  it('takes the application name from OTEL_RESOURCE_ATTRIBUTES service.name when nothing else names it', () => {
    const { config } = readConfig({ OTEL_RESOURCE_ATTRIBUTES: 'k8s.pod.name=x,service.name=cart' });
    assert.equal(config.profiling.applicationName, 'cart');
  });

  it('warns when the Pyroscope and OpenTelemetry service names disagree', () => {
    const { warnings } = readConfig({ OTEL_SERVICE_NAME: 'shop', PYROSCOPE_APPLICATION_NAME: 'shop-profiles' });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /service_name/);
  });

  it('reads every option', () => {
    const { config, warnings } = readConfig({
      PYROSCOPE_SERVER_ADDRESS: 'https://p.example:4040',
      PYROSCOPE_APPLICATION_NAME: 'shop',
      PYROSCOPE_AUTH_TOKEN: 't',
      PYROSCOPE_TENANT_ID: 'team-a',
      PYROSCOPE_LABELS: 'region=eu, zone=a',
      PYROSCOPE_HTTP_HEADERS: '{"X-Team":"shop"}',
      PYROSCOPE_UPLOAD_INTERVAL: '10s',
      PYROSCOPE_WALL_SAMPLING_INTERVAL_MICROS: '5000',
      PYROSCOPE_WALL_COLLECT_CPU_TIME: 'false',
      PYROSCOPE_HEAP_SAMPLING_INTERVAL_BYTES: '524288',
      PYROSCOPE_LOG_LEVEL: 'debug',
      OTEL_PYROSCOPE_ROOT_SPAN_ONLY: 'false',
      OTEL_PYROSCOPE_ADD_SPAN_NAME: 'false',
      OTEL_PYROSCOPE_ADD_TRACE_ID: 'true',
    });
    assert.deepEqual(warnings, []);
    assert.equal(config.profiling.authToken, 't');
    assert.equal(config.profiling.tenantId, 'team-a');
    assert.deepEqual(config.profiling.labels, { region: 'eu', zone: 'a' });
    assert.deepEqual(config.profiling.headers, { 'X-Team': 'shop' });
    assert.equal(config.profiling.uploadIntervalMs, 10_000);
    assert.equal(config.profiling.samplingIntervalMicros, 5000);
    assert.equal(config.profiling.collectCpuTime, false);
    assert.equal(config.profiling.heapSamplingIntervalBytes, 524288);
    assert.equal(config.logLevel, 'debug');
    assert.deepEqual(config.spanLink, { rootSpanOnly: false, addSpanName: false, addTraceId: true });
  });

  it('accepts PYROSCOPE_FLUSH_INTERVAL_MS as milliseconds', () => {
    assert.equal(readConfig({ PYROSCOPE_FLUSH_INTERVAL_MS: '5000' }).config.profiling.uploadIntervalMs, 5000);
  });

  const malformed: [string, Record<string, string>, RegExp][] = [
    ['a boolean', { OTEL_PYROSCOPE_ROOT_SPAN_ONLY: 'maybe' }, /OTEL_PYROSCOPE_ROOT_SPAN_ONLY="maybe" is not a boolean/],
    ['an interval', { PYROSCOPE_UPLOAD_INTERVAL: 'soon' }, /PYROSCOPE_UPLOAD_INTERVAL="soon" is not a duration/],
    ['a too short interval', { PYROSCOPE_UPLOAD_INTERVAL: '10ms' }, /between 1000ms/],
    ['a sampling interval', { PYROSCOPE_WALL_SAMPLING_INTERVAL_MICROS: '-1' }, /not an integer between 1000 and 1000000/],
    ['headers', { PYROSCOPE_HTTP_HEADERS: 'X-Team: shop' }, /PYROSCOPE_HTTP_HEADERS is not a JSON object/],
    ['a label name', { PYROSCOPE_LABELS: 'Bad Name=x,ok=y' }, /ignoring "Bad Name=x"/],
    ['a log level', { PYROSCOPE_LOG_LEVEL: 'loud' }, /not one of debug/],
    ['a server address', { PYROSCOPE_SERVER_ADDRESS: 'pyroscope:4040' }, /is not an http\(s\) URL/],
    ['a tracing mode', { SPANPROFILING_TRACING: 'both' }, /SPANPROFILING_TRACING="both" is not one of auto, agent, app/],
  ];
  for (const [what, env, message] of malformed) {
    it(`gives one clear warning and the default for ${what}`, () => {
      const { config, warnings } = readConfig(env);
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0]!, message);
      const defaults = readConfig({}).config;
      if (env['PYROSCOPE_UPLOAD_INTERVAL']) assert.equal(config.profiling.uploadIntervalMs, defaults.profiling.uploadIntervalMs);
      if (env['OTEL_PYROSCOPE_ROOT_SPAN_ONLY']) assert.equal(config.spanLink.rootSpanOnly, true);
      if (env['PYROSCOPE_LABELS']) assert.deepEqual(config.profiling.labels, { ok: 'y' });
      if (env['PYROSCOPE_SERVER_ADDRESS']) assert.equal(config.profiling.enabled, false);
      if (env['SPANPROFILING_TRACING']) assert.equal(config.tracing.mode, 'auto');
    });
  }

  it('reads who owns tracing from SPANPROFILING_TRACING (default auto)', () => {
    assert.equal(readConfig({}).config.tracing.mode, 'auto');
    assert.equal(readConfig({ SPANPROFILING_TRACING: 'App' }).config.tracing.mode, 'app');
    assert.equal(readConfig({ SPANPROFILING_TRACING: 'agent' }).config.tracing.mode, 'agent');
  });

  it('labels series with the pod and the cluster worker, so processes can be told apart; PYROSCOPE_LABELS wins', () => {
    const labels = (env: Record<string, string>) => readConfig(env).config.profiling.labels;
    assert.deepEqual(labels({ OTEL_RESOURCE_ATTRIBUTES: 'k8s.namespace.name=shop,k8s.pod.name=shop-7d9f-abcde' }), { pod: 'shop-7d9f-abcde' });
    assert.deepEqual(labels({ NODE_UNIQUE_ID: '3' }), { worker: '3' });
    assert.deepEqual(labels({ NODE_APP_INSTANCE: '0', PYROSCOPE_LABELS: 'team=a' }), { worker: '0', team: 'a' });
    assert.deepEqual(labels({ OTEL_RESOURCE_ATTRIBUTES: 'k8s.pod.name=$(POD)', PYROSCOPE_LABELS: 'pod=mine' }), { pod: 'mine' });
    assert.deepEqual(labels({}), {});
  });

  it('has a kill switch', () => {
    assert.equal(readConfig({ SPANPROFILING_DISABLED: 'true' }).config.disabled, true);
    assert.equal(readConfig({}).config.disabled, false);
  });
});
