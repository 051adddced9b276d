// The demo shop as an app that runs OpenTelemetry itself: NodeSDK started in
// code, before the server, exporting where OTEL_EXPORTER_OTLP_* point. The
// operator injects the agent as into the other shops; the agent joins this
// SDK (its spans get pyroscope.profile.id, its CPU samples the span ids)
// instead of tracing on its own. The image carries it bundled (build.mjs).
'use strict';
const { NodeSDK } = require('@opentelemetry/sdk-node');
const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const sdk = new NodeSDK({
  serviceName: 'shop-sdk',
  resource: resourceFromAttributes({ 'service.namespace': 'shops' }),
  traceExporter: new OTLPTraceExporter(),
  instrumentations: [new HttpInstrumentation()],
});
sdk.start();
process.once('SIGTERM', () => sdk.shutdown().finally(() => process.exit(0)));

require('./server.js');
