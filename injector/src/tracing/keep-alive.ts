/**
 * An idle keep-alive connection lets go of the last request it served.
 *
 * When a response finishes, Node's HTTP server starts the connection's keep-alive timer
 * (`socket.setTimeout(keepAliveTimeout)`) in the async context the response finished in: the
 * request's. The timer holds that context until the next request on the connection replaces it,
 * or until the timeout, and with it the agent's part of the context: the request's span, its
 * attributes and the profiler's labels. That is about 2 kB for each idle connection, and under
 * load, objects of every request that outlive young-generation collections while their connection
 * waits for the next one.
 *
 * The HTTP instrumentation's request hook takes each server connection once: from then on, the
 * timer the server starts between requests (one argument, no response on the connection) starts
 * in OpenTelemetry's root context. Only OpenTelemetry's context changes for it; the app's own
 * AsyncLocalStorage stores are carried as before. A timeout the app sets, with a callback or while
 * a response is on the connection, is started as it always was.
 */
import { ROOT_CONTEXT, SpanKind, context } from '@opentelemetry/api';

const TAKEN = Symbol('spanprofiling.io/keep-alive-context');

type SetTimeout = (this: ServerSocket, ...args: unknown[]) => unknown;
interface ServerSocket {
  setTimeout?: SetTimeout;
  /** The response the connection serves now; null between requests (Node's http server). */
  _httpMessage?: unknown;
  [TAKEN]?: true;
}

/** The HTTP instrumentation's request hook: takes the connection of a server request (once per connection). */
export function releaseKeepAliveContext(span: unknown, request: unknown): void {
  if ((span as { kind?: unknown } | undefined)?.kind !== SpanKind.SERVER) return;
  const socket = (request as { socket?: ServerSocket | null } | undefined)?.socket;
  if (socket === null || socket === undefined || typeof socket !== 'object' || socket[TAKEN] === true) return;
  const original = socket.setTimeout;
  if (typeof original !== 'function' || !Object.isExtensible(socket)) return;
  const setTimeout: SetTimeout = function (this: ServerSocket, ...args: unknown[]): unknown {
    // The server's own keep-alive timer, between requests: not the finished request's.
    if (args.length === 1 && args[0] !== 0 && this._httpMessage === null) return context.with(ROOT_CONTEXT, original, this, args[0]);
    return Reflect.apply(original, this, args);
  };
  Object.defineProperty(socket, 'setTimeout', { value: setTimeout, writable: true, configurable: true, enumerable: false });
  Object.defineProperty(socket, TAKEN, { value: true });
}
