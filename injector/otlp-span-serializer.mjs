// OpenTelemetry's protobuf trace serializer, with its one-span writer exported beside the request
// serializer (same module, same functions, nothing of theirs changed): the agent encodes each span as
// it ends (src/export/encoded-batches.ts), and a span whose resource and instrumentation scope it has
// encoded before needs only the span's own record. Through the exported request serializer alone,
// every span also wrote its resource twice (the size estimate, then the bytes) and was then parsed
// back out: about 8 kB of garbage for each request a service serves.
// The build stops here if the serializer no longer has the function.

/** The module the export is added to. */
export const SPAN_SERIALIZER_FILE = /[\\/]@opentelemetry[\\/]otlp-transformer[\\/]build[\\/]src[\\/]trace[\\/]protobuf[\\/]trace-serializer\.js$/;

/** The module's source with `serializeSpan(writer, span)` exported. */
export function withSerializeSpan(source, file) {
  if (!/^function serializeSpan\(writer, span\) \{$/m.test(source)) {
    throw new Error(`${file}: no serializeSpan(writer, span) to export; see injector/otlp-span-serializer.mjs`);
  }
  return `${source}\nexports.serializeSpan = serializeSpan;\n`;
}

/** The esbuild plugin that makes the bundled serializer export it. */
export const exportSerializeSpan = {
  name: 'export-serialize-span',
  setup(b) {
    b.onLoad({ filter: SPAN_SERIALIZER_FILE }, async (args) => {
      const { readFile } = await import('node:fs/promises');
      return { contents: withSerializeSpan(await readFile(args.path, 'utf8'), args.path), loader: 'js' };
    });
  },
};
