// Health endpoints for orchestrators (Docker HEALTHCHECK, compose, Kubernetes probes): GET /healthz answers
// 200 while the process runs; GET /readyz answers 200 once every route listens and 503 from the moment a
// shutdown starts draining. Served on the --metrics port, or on --health [HOST:]PORT when metrics are off.

import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Endpoint } from '../values/endpoint.js';

export type Readiness = 'starting' | 'ready' | 'draining';

/** What /readyz reports; the supervisor moves it from starting to ready to draining. */
export class HealthState {
  state: Readiness = 'starting';
}

/**
 * Answer GET /healthz or /readyz; false for any other request (the caller answers it). Bodies are one word
 * and a new line, plain text, never cached.
 */
export function answerHealth(req: IncomingMessage, res: ServerResponse, health: HealthState): boolean {
  const path = (req.url ?? '').split('?')[0];
  if (path !== '/healthz' && path !== '/readyz') return false;
  const headers = { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { ...headers, allow: 'GET, HEAD' }).end('method not allowed\n');
    return true;
  }
  if (path === '/healthz') {
    res.writeHead(200, headers).end('ok\n');
    return true;
  }
  const ready = health.state === 'ready';
  res.writeHead(ready ? 200 : 503, headers).end(`${health.state}\n`);
  return true;
}

export interface HttpEndpoint {
  address: AddressInfo;
  close(): Promise<void>;
}

/** Listen on `endpoint` with `handler`; rejects when it cannot listen. */
export function serveHttp(endpoint: Endpoint, handler: http.RequestListener): Promise<HttpEndpoint> {
  const server = http.createServer(handler);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: endpoint.host, port: endpoint.port }, () => {
      server.off('error', reject);
      resolve({
        address: server.address() as AddressInfo,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/** --health without --metrics: only the two health paths (anything else: 404). */
export function serveHealth(endpoint: Endpoint, health: HealthState): Promise<HttpEndpoint> {
  return serveHttp(endpoint, (req, res) => {
    if (answerHealth(req, res, health)) return;
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: GET /healthz or /readyz\n');
  });
}
