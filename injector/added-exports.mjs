// Functions the agent's bundles add to third-party modules, beside the module's own exports and
// with nothing of theirs changed. Each addition names what the module must still have, and the build
// stops there if it does not.
import { readFile } from 'node:fs/promises';

/** An addition: `withAddition(source, path)` gives the module's source with it, `plugin` is the esbuild plugin that bundles it so. */
function addition(name, file, expected, tail) {
  const withAddition = (source, path) => {
    if (!expected.test(source)) throw new Error(`${path}: the module changed, ${expected} not found; see ${name} in injector/added-exports.mjs`);
    return `${source}\n${tail}`;
  };
  const plugin = {
    name,
    setup(b) {
      b.onLoad({ filter: file }, async (args) => ({ contents: withAddition(await readFile(args.path, 'utf8'), args.path), loader: 'js' }));
    },
  };
  return { withAddition, plugin };
}

// OpenTelemetry's protobuf trace serializer exports its one-span writer beside the request
// serializer. The agent encodes each span as it ends (src/export/encoded-batches.ts), and a span
// whose resource and instrumentation scope it has encoded before needs only the span's own record.
// Through the request serializer alone, every span also wrote its resource twice (the size
// estimate, then the bytes) and was then parsed back out: about 8 kB of garbage for each request a
// service serves.
export const serializeSpanExport = addition(
  'serialize-span-export',
  /[\\/]@opentelemetry[\\/]otlp-transformer[\\/]build[\\/]src[\\/]trace[\\/]protobuf[\\/]trace-serializer\.js$/,
  /^function serializeSpan\(writer, span\) \{$/m,
  'exports.serializeSpan = serializeSpan;\n',
);

// @datadog/pprof's time profiler gains a way to run a function in a frame that carries no sample
// context (src/profiling/profiler.ts): its runWithContext makes a native holder per call, an object
// with two V8 global handles, and the agent ran one for every "no span" frame, a second per request.
// With the profiler's AsyncLocalStorage holding undefined, samples read no context, as with an
// empty holder, and nothing native is made.
export const runWithoutContextExport = addition(
  'run-without-context-export',
  /[\\/]@datadog[\\/]pprof[\\/]out[\\/]src[\\/]time-profiler\.js$/,
  /return gStore\.run\(gProfiler\.createContextHolder\(context\), f, \.\.\.args\);/,
  `function runWithoutContext(f, ...args) {
    if (!gProfiler) {
        throw new Error('Wall profiler is not started');
    }
    else if (!gStore) {
        throw new Error('Can only use runWithoutContext with AsyncContextFrame');
    }
    return gStore.run(undefined, f, ...args);
}
exports.runWithoutContext = runWithoutContext;
`,
);
