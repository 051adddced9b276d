// Preload for the @pyroscope/nodejs peer: what a Node.js user of Pyroscope does today.
// OpenTelemetry tracing (upstream register script), Pyroscope's wall profiler with CPU
// time, and every request handler wrapped in wrapWithLabels({ span_id }) of the
// active server span. wrapWithLabels sets labels synchronously, so they do not
// survive an await: that is the behaviour being measured.
'use strict';
require('@opentelemetry/auto-instrumentations-node/register');
const Pyroscope = require('@pyroscope/nodejs');
const { trace } = require('@opentelemetry/api');
const http = require('node:http');

Pyroscope.init({
  serverAddress: process.env.PYROSCOPE_SERVER_ADDRESS,
  appName: process.env.OTEL_SERVICE_NAME || 'bench',
  flushIntervalMs: Number(process.env.PEER_FLUSH_MS || 5000),
  wall: { samplingIntervalMicros: 10000, collectCpuTime: true },
});
Pyroscope.start();

const createServer = http.createServer;
http.createServer = function (...args) {
  const i = args.findIndex((a) => typeof a === 'function');
  if (i >= 0) {
    const listener = args[i];
    args[i] = function (req, res) {
      const span = trace.getActiveSpan();
      if (span === undefined) return listener.call(this, req, res);
      Pyroscope.wrapWithLabels({ span_id: span.spanContext().spanId }, () => listener.call(this, req, res));
    };
  }
  return createServer.apply(this, args);
};
