/**
 * Joining an app's own OpenTelemetry SDK: its tracer provider, found behind
 * what the API registered, and the span-profiling processor added to it.
 */
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { describeError, type Logger } from '../shared/log';
import { SPAN_PROCESSOR_MARK } from './span-link';

export type JoinResult = 'added' | 'present' | 'unsupported';

interface MultiProcessorLike {
  _spanProcessors?: unknown;
}
interface SdkProviderLike {
  _activeSpanProcessor?: MultiProcessorLike;
  activeSpanProcessor?: MultiProcessorLike;
  addSpanProcessor?: (processor: SpanProcessor) => void;
  getDelegate?: () => unknown;
}

/**
 * The SDK tracer provider behind what the API registered (a ProxyTracerProvider
 * delegates to it), or undefined while the proxy has no delegate yet.
 */
export function sdkProvider(registered: unknown): object | undefined {
  if (registered === null || typeof registered !== 'object') return undefined;
  const proxy = registered as SdkProviderLike & { _delegate?: unknown; setDelegate?: unknown };
  if (typeof proxy.getDelegate !== 'function') return registered;
  // Every @opentelemetry/api 1.x keeps the delegate in `_delegate` (getDelegate() answers its no-op
  // provider without one, under whatever name a bundler gave that class).
  const delegate = typeof proxy.setDelegate === 'function' ? proxy._delegate : proxy.getDelegate();
  return delegate !== null && typeof delegate === 'object' ? delegate : undefined;
}

/**
 * Adds a span processor to an OpenTelemetry SDK tracer provider after it was
 * built: first in the provider's list (SDK 2.x takes processors only in its
 * constructor; every tracer of the provider shares that list), or through
 * `addSpanProcessor` (SDK 1.x). Never adds a second span-profiling processor.
 */
export function addSpanProcessor(provider: object, processor: SpanProcessor, log: Logger): JoinResult {
  try {
    const p = provider as SdkProviderLike;
    const list = p._activeSpanProcessor?._spanProcessors ?? p.activeSpanProcessor?._spanProcessors;
    if (Array.isArray(list)) {
      if (list.some((sp) => (sp as Record<symbol, unknown> | null)?.[SPAN_PROCESSOR_MARK] === true)) return 'present';
      list.unshift(processor);
      return 'added';
    }
    if (typeof p.addSpanProcessor === 'function') {
      p.addSpanProcessor(processor);
      return 'added';
    }
  } catch (err) {
    log.warn(`could not add the span-profiling processor to the app's tracer provider: ${describeError(err)}`);
  }
  return 'unsupported';
}

/** Describes a provider for a log line: its class name. */
export function providerName(provider: object): string {
  return provider.constructor?.name || 'an unnamed tracer provider';
}
