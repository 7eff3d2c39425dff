// The metrics endpoint of the control plane (--metrics): GET /metrics, with /healthz and /readyz beside it.
// One process serves its recorder's registry; with --workers the primary serves the sum of its workers'
// (record/metrics.ts's WorkerMetricsSum), asking each worker for a snapshot over node:cluster's IPC channel.
// A scrape asks the workers that are up, waits at most WORKER_ANSWER_MS, and sums the newest snapshot of
// each (a worker that did not answer in time is served from its last one; a worker still starting, which
// has not said hello, is not waited for). Messages are tagged dpp-metrics:*, apart from the control plane's
// dpp:* (ipc.ts) and prom-client's own. Loaded only when --metrics is set: record/metrics.ts loads prom-client.

import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { EXPOSITION_CONTENT_TYPE, WorkerMetricsSum } from '../record/metrics.js';
import type { ControlMetrics, MetricJson, MetricsRecorder } from '../record/metrics.js';
import type { Endpoint } from '../values/endpoint.js';
import { answerHealth, serveHttp } from './health.js';
import type { HealthState, HttpEndpoint } from './health.js';

const HELLO = 'dpp-metrics:hello';
const REQUEST = 'dpp-metrics:request';
const SNAPSHOT = 'dpp-metrics:snapshot';

/** How long a scrape waits for a worker's snapshot before it serves that worker's previous one. */
export const WORKER_ANSWER_MS = 1000;

type ToMetricsWorker = { type: typeof REQUEST; id: number };
type FromMetricsWorker = { type: typeof HELLO } | { type: typeof SNAPSHOT; id: number; metrics: MetricJson[] };

function isTagged<T extends { type: string }>(message: unknown, ...types: Array<T['type']>): message is T {
  return typeof message === 'object' && message !== null && (types as unknown[]).includes((message as { type?: unknown }).type);
}

export type MetricsServer = HttpEndpoint;

/**
 * Serve GET /metrics on `endpoint`, and GET /healthz and /readyz when `health` is given (anything else: 404);
 * rejects when it cannot listen.
 */
export function serveMetrics(endpoint: Endpoint, recorder: MetricsRecorder, health?: HealthState): Promise<MetricsServer> {
  return serveExposition(endpoint, () => recorder.metrics(), recorder.registry.contentType, health);
}

/**
 * --workers, in a worker: answer the primary's requests with a snapshot of this recorder's registry; say
 * hello first, so that the primary waits for this worker from now on (never before: a worker still starting
 * does not hold a scrape up).
 */
export function answerClusterMetrics(recorder: MetricsRecorder): void {
  const send = (message: FromMetricsWorker): void => {
    if (process.connected) process.send!(message, undefined, {}, () => undefined);
  };
  process.on('message', (message: unknown) => {
    if (!isTagged<ToMetricsWorker>(message, REQUEST)) return;
    void recorder.registry.getMetricsAsJSON().then((metrics) => send({ type: SNAPSHOT, id: message.id, metrics }));
  });
  send({ type: HELLO });
}

/**
 * --workers, in the primary: serve the metrics of every worker, summed under the same names (counters and
 * histograms add up; gauges such as associations_open too), with the counters of workers that have died
 * kept in the sum (WorkerMetricsSum), and the primary's `own` (ControlMetrics: what the control plane counts).
 * Listens to node:cluster's own events: a worker's messages and its exit.
 */
export async function serveClusterMetrics(endpoint: Endpoint, health?: HealthState, own?: ControlMetrics['registry']): Promise<MetricsServer> {
  const sum = new WorkerMetricsSum();
  const onMessage = (worker: Worker, message: unknown): void => {
    if (!isTagged<FromMetricsWorker>(message, HELLO, SNAPSHOT)) return;
    if (message.type === HELLO) sum.hello(worker.id);
    else sum.answer(worker.id, message.id, message.metrics);
  };
  const onExit = (worker: Worker): void => sum.exited(worker.id);
  cluster.on('message', onMessage);
  cluster.on('exit', onExit);
  const unlisten = (): void => {
    cluster.off('message', onMessage);
    cluster.off('exit', onExit);
  };
  // Workers forked before these listeners were there are asked too.
  for (const worker of Object.values(cluster.workers ?? {})) if (worker?.isConnected()) sum.hello(worker.id);
  const send = (id: number, request: number): boolean => {
    const worker = cluster.workers?.[id];
    if (!worker?.isConnected()) return false;
    // A worker that is going away fails the send: its exit settles the wait (the callback keeps it from an 'error' event).
    worker.send({ type: REQUEST, id: request } satisfies ToMetricsWorker, undefined, {}, () => undefined);
    return true;
  };
  try {
    const server = await serveExposition(endpoint, () => sum.collect(send, WORKER_ANSWER_MS, own), EXPOSITION_CONTENT_TYPE, health);
    return { address: server.address, close: () => (unlisten(), server.close()) };
  } catch (err) {
    unlisten();
    throw err;
  }
}

function serveExposition(endpoint: Endpoint, text: () => Promise<string>, contentType: string, health?: HealthState): Promise<MetricsServer> {
  return serveHttp(endpoint, (req, res) => {
    if (health && answerHealth(req, res, health)) return;
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found: GET /metrics${health ? ', /healthz or /readyz' : ''}\n`);
      return;
    }
    text().then(
      (body) => res.writeHead(200, { 'content-type': contentType }).end(body),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`${err.message}\n`),
    );
  });
}
