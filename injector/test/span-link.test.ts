/**
 * The labels span linking gives samples (src/profiling/span-link.ts), in process: what
 * they name while the span runs and after it ended, and that they let go of
 * the span when it ends.
 */
import { strict as assert } from 'node:assert';
import { ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { SpanProfileLinker } from '../src/profiling/span-link';

function linked(rootSpanOnly = true) {
  const linker = new SpanProfileLinker({ rootSpanOnly, addSpanName: true, addTraceId: false });
  const tracer = new BasicTracerProvider({ spanProcessors: [linker] }).getTracer('test');
  return { linker, tracer };
}

describe('span labels', () => {
  it('name the span as it is named while it runs, keep the name it ended with, and let go of it when it ends', () => {
    const { linker, tracer } = linked();
    const root = tracer.startSpan('GET');
    const labels = linker.labelsFor(trace.setSpan(ROOT_CONTEXT, root))!;
    assert.equal(labels.spanName, 'GET');
    root.updateName('GET /orders/:id');
    assert.equal(labels.spanName, 'GET /orders/:id');
    assert.ok(labels.owns(root));
    root.end();
    assert.ok(!labels.owns(root), 'the labels still hold the span that ended');
    assert.equal(labels.spanName, 'GET /orders/:id');
    assert.deepEqual(linker.toPprofLabels(labels), { span_id: root.spanContext().spanId, span_name: 'GET /orders/:id' });
  });

  it("give a child started after its root ended the root's labels", () => {
    const { linker, tracer } = linked();
    const root = tracer.startSpan('GET /orders/:id');
    const rootLabels = linker.labelsFor(trace.setSpan(ROOT_CONTEXT, root))!;
    root.end();
    const child = tracer.startSpan('write audit log', {}, trace.setSpan(ROOT_CONTEXT, root));
    assert.equal(linker.labelsFor(trace.setSpan(ROOT_CONTEXT, child)), rootLabels);
    child.end();
    assert.equal(rootLabels.spanName, 'GET /orders/:id');
  });

  it("take a route a framework's own server span reports after the request's span ended (Next.js)", () => {
    const { linker, tracer } = linked();
    const root = tracer.startSpan('GET', { kind: SpanKind.SERVER });
    const labels = linker.labelsFor(trace.setSpan(ROOT_CONTEXT, root))!;
    const framework = tracer.startSpan('GET /api/report/[kind]', { kind: SpanKind.SERVER }, trace.setSpan(ROOT_CONTEXT, root));
    root.end();
    assert.equal(labels.spanName, 'GET');
    framework.setAttribute('http.route', '/api/report/[kind]');
    framework.end();
    assert.equal(labels.spanName, 'GET /api/report/[kind]');
  });

  it('end with a child span only its own labels (every span labelled)', () => {
    const { linker, tracer } = linked(false);
    const root = tracer.startSpan('GET');
    const child = tracer.startSpan('db', {}, trace.setSpan(ROOT_CONTEXT, root));
    const rootLabels = linker.labelsFor(trace.setSpan(ROOT_CONTEXT, root))!;
    const childLabels = linker.labelsFor(trace.setSpan(ROOT_CONTEXT, child))!;
    child.end();
    assert.ok(!childLabels.owns(child));
    assert.ok(rootLabels.owns(root));
    root.updateName('GET /late');
    assert.equal(rootLabels.spanName, 'GET /late');
    root.end();
  });
});
