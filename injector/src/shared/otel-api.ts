/**
 * The OpenTelemetry API's process-wide registry, as every copy of
 * `@opentelemetry/api` 1.x shares it: one object at
 * `globalThis[Symbol.for('opentelemetry.js.api.1')]` holding `version` and the
 * registered `trace` (a ProxyTracerProvider), `context` (the context manager),
 * `propagation`, `diag` and `metrics`.
 */
export const API_KEY = Symbol.for('opentelemetry.js.api.1');
export type ApiType = 'trace' | 'context' | 'propagation' | 'diag' | 'metrics';
export const TYPES: readonly ApiType[] = ['trace', 'context', 'propagation', 'diag', 'metrics'];

export type ApiRegistry = { version?: string } & Partial<Record<ApiType, unknown>>;

/** The registry as it is now (undefined before anything registered). */
export function apiRegistry(): ApiRegistry | undefined {
  return (globalThis as Record<symbol, ApiRegistry | undefined>)[API_KEY];
}
