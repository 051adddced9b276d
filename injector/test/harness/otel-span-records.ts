/**
 * OpenTelemetry's span writer as the agent's bundle has it: its trace serializer's module with
 * serializeSpan exported (serializeSpanExport in injector/added-exports.mjs, as the build adds it), and its
 * ProtobufWriter; for tests and benchmarks of src/export/encoded-batches.ts outside the bundle.
 */
import { readFileSync } from 'node:fs';
import Module from 'node:module';
import * as path from 'node:path';
import { spanRecordWriter, type SpanRecordWriter } from '../../src/export/encoded-batches';
import { REPO_ROOT } from './app-process';

type SerializeSpan = Parameters<typeof spanRecordWriter>[0];
type Writer = Parameters<typeof spanRecordWriter>[1];

export async function otelSpanRecords(): Promise<SpanRecordWriter> {
  const { serializeSpanExport } = (await import(path.join(REPO_ROOT, 'injector/added-exports.mjs'))) as { serializeSpanExport: { withAddition(source: string, file: string): string } };
  const file = require.resolve('@opentelemetry/otlp-transformer/build/src/trace/protobuf/trace-serializer');
  const loaded = new Module(file, module) as Module & { _compile(source: string, file: string): void; paths: string[] };
  loaded.filename = file;
  loaded.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(path.dirname(file));
  loaded._compile(serializeSpanExport.withAddition(readFileSync(file, 'utf8'), file), file);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { ProtobufWriter } = require('@opentelemetry/otlp-transformer/build/src/common/protobuf/protobuf-writer') as { ProtobufWriter: Writer };
  return spanRecordWriter((loaded.exports as { serializeSpan: SerializeSpan }).serializeSpan, ProtobufWriter);
}
