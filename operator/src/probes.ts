/**
 * /healthz, /readyz and /metrics, answered the same way on the probe port and
 * on the webhook's HTTPS port.
 */
import type * as http from 'node:http';
import type { OperatorMetrics } from './metrics';

/** `true` when ready, else why not. */
export type Readiness = () => true | string;

/** Answers a probe path; false when the path is not a probe. */
export function answerProbe(req: http.IncomingMessage, res: http.ServerResponse, ready: Readiness, metrics: OperatorMetrics): boolean {
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
  if (path === '/metrics') return send(200, metrics.registry.render(), 'text/plain; version=0.0.4');
  return false;
}
