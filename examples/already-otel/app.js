// A shop that already runs OpenTelemetry in code, with span profiles added by
// two lines: a SpanProfilingProcessor in its provider and startProfiling().
//
// TRACER_PROVIDER picks how the app sets up tracing: node-sdk (default),
// node-tracer-provider or basic-tracer-provider. Traces go where the standard
// OTEL_EXPORTER_OTLP_* variables say, profiles to PYROSCOPE_SERVER_ADDRESS.
'use strict';
const api = require('@opentelemetry/api');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { SpanProfilingProcessor, startProfiling } = require('@span-profiling/node');

const resource = resourceFromAttributes({ 'service.name': 'shop', 'service.namespace': 'examples' });
const spanProcessors = [new SpanProfilingProcessor(), new BatchSpanProcessor(new OTLPTraceExporter())];

function startTracing(kind) {
  if (kind === 'node-tracer-provider') {
    const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
    const { registerInstrumentations } = require('@opentelemetry/instrumentation');
    const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
    const provider = new NodeTracerProvider({ resource, spanProcessors });
    provider.register();
    registerInstrumentations({ instrumentations: [new HttpInstrumentation()] });
    return () => provider.shutdown();
  }
  if (kind === 'basic-tracer-provider') {
    const { BasicTracerProvider } = require('@opentelemetry/sdk-trace-base');
    const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks');
    const { registerInstrumentations } = require('@opentelemetry/instrumentation');
    const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
    const provider = new BasicTracerProvider({ resource, spanProcessors });
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    api.trace.setGlobalTracerProvider(provider);
    registerInstrumentations({ instrumentations: [new HttpInstrumentation()] });
    return () => provider.shutdown();
  }
  const { NodeSDK } = require('@opentelemetry/sdk-node');
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http');
  const sdk = new NodeSDK({ resource, spanProcessors, instrumentations: [new HttpInstrumentation()] });
  sdk.start();
  return () => sdk.shutdown();
}

const stopTracing = startTracing(process.env.TRACER_PROVIDER ?? 'node-sdk');
const profiling = startProfiling();

const http = require('node:http');
const crypto = require('node:crypto');

/** The shop's CPU-heavy step: pricing a basket (hashing stands in for real work). */
function priceBasket(items) {
  let digest = '';
  for (let i = 0; i < items * 400; i++) digest = crypto.createHash('sha256').update(digest + i).digest('hex');
  return digest;
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname !== '/checkout') {
    res.statusCode = 404;
    return res.end();
  }
  await new Promise((resolve) => setTimeout(resolve, 2)); // the basket, from a database
  res.end(priceBasket(Number(url.searchParams.get('items') ?? '10')));
});
server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1', () => console.log(`listening ${server.address().port}`));

// Stop cleanly: the last profile and the last spans are sent before the process ends.
process.once('SIGTERM', async () => {
  server.close();
  await profiling.stop();
  await stopTracing();
  process.exit(0);
});
