/**
 * The OTLP/gRPC exporter's transport, as upstream makes it, inside the bounded
 * retrying transport of bounded-retry.ts (build.mjs resolves the gRPC export
 * delegate's ./grpc-exporter-transport here): upstream does not retry gRPC
 * exports, and neither does this (its sends never answer "retryable"), but the
 * agent can now cut a call still waiting on a backend that never answers when
 * the shutdown bound is reached, by closing the client.
 */
import * as upstream from '@opentelemetry/otlp-grpc-exporter-base/build/src/grpc-exporter-transport';
import { createRetryingTransport } from './bounded-retry';

export const { GrpcExporterTransport, createEmptyMetadata, createInsecureCredentials, createSslCredentials } = upstream;

export function createOtlpGrpcExporterTransport(options: Parameters<typeof upstream.createOtlpGrpcExporterTransport>[0]): ReturnType<typeof upstream.createOtlpGrpcExporterTransport> {
  return createRetryingTransport({ transport: upstream.createOtlpGrpcExporterTransport(options) }) as unknown as ReturnType<typeof upstream.createOtlpGrpcExporterTransport>;
}
