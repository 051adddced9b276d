/**
 * /healthz, /readyz and /metrics, answered the same way on the probe port and
 * on the webhook's HTTPS port.
 */
import type * as http from 'node:http';

/** `true` when ready, else why not. */
export type Readiness = () => true | string;

/** The /metrics page: rendered here, or asked of the thread that keeps the metrics (the webhook's thread asks the main thread). */
export type MetricsText = () => string | Promise<string>;

/** Answers a probe path; false when the path is not a probe. */
export function answerProbe(req: http.IncomingMessage, res: http.ServerResponse, ready: Readiness, metrics: MetricsText): boolean {
  if (req.method !== 'GET') return false;
  const path = (req.url ?? '/').split('?')[0];
  const send = (status: number, body: string, type = 'text/plain'): true => {
    res.writeHead(status, { 'content-type': type });
    res.end(body);
    return true;
  };
  if (path === '/healthz') return send(200, 'ok');
  if (path === '/readyz') {
    const state = ready();
    return state === true ? send(200, 'ready') : send(503, state);
  }
  if (path === '/metrics') {
    void Promise.resolve()
      .then(metrics)
      .then(
        (text) => send(200, text, 'text/plain; version=0.0.4'),
        () => send(503, 'metrics unavailable'),
      );
    return true;
  }
  return false;
}
