// Runs the proxy as a process: logger, recorders, listener, and signal handling.

import path from 'node:path';
import pino from 'pino';
import type { Logger } from 'pino';
import { PcapRecorder } from '../capture/recorder.js';
import type { Recorder } from '../events/events.js';
import { formatEndpoint } from '../values/endpoint.js';
import type { Endpoint } from '../values/endpoint.js';
import type { RouteConfig } from '../config/options.js';
import { raiseMallocThresholds } from './malloc-threshold.js';
import { installMemoryProbe } from './memory-probe.js';
import { RowFileError, openRowRecorders } from './row-recorders.js';
import type { RowRecorders } from './row-recorders.js';
import { ProxyServer } from './server.js';
import { HealthState, serveHealth } from '../record/health.js';
import { catchShutdownSignals } from './signals.js';

export interface RunOptions {
  logLevel: string;
  /** --metrics: serve Prometheus metrics there; undefined = off. */
  metrics?: Endpoint | undefined;
  /** --health: serve /healthz and /readyz there (they are on the metrics port too); undefined = off. */
  health?: Endpoint | undefined;
  /** --workers: relay processes; more than 1 runs runCluster (cluster.ts) instead of runProxy. */
  workers?: number;
}

/**
 * `bindings`: fields on every line (--workers: which process wrote it). With bindings, every line is written
 * at once with its own write(), so that lines of several processes on one stdout never mix (a pipe keeps
 * writes up to PIPE_BUF whole; the default asynchronous stream may join lines into longer writes).
 */
export function createLogger(level: string, bindings?: Record<string, unknown>): Logger {
  const options = { level, base: { name: 'dicom-pdu-proxy', ...bindings } };
  return bindings ? pino(options, pino.destination({ fd: 1, sync: true })) : pino(options);
}

/** After a second signal (or the drain timeout), how long aborted peers get to close before they are cut off. */
const ABORT_GRACE_MS = 2000;

/** How a route's listen failure is named on stderr: the flag or route it came from, and the address. */
function listenLabel(route: RouteConfig): string {
  const where = formatEndpoint(route.options.listen);
  return route.label === '--listen' ? `--listen ${where}` : `${route.label} (listen ${where})`;
}

/**
 * Start the proxy and run until SIGINT/SIGTERM: one listener per route, sharing the CSV recorders, the
 * metrics and the association ids. On a signal: stop listening, let associations in flight finish on every
 * route (at most --drain-timeout), flush the CSV files, and resolve with exit status 0. A second signal, or
 * the drain timeout, aborts what is left (A-ABORT to both peers); the exit status is then 1 if a live
 * association was cut short. A route that cannot listen stops the whole process (exit status 1).
 */
export async function runProxy(all: readonly RouteConfig[], run: RunOptions): Promise<number> {
  // Process-wide settings are the same in every route (they cannot be set per route).
  const options = all[0]!.options;
  const log = createLogger(run.logLevel);
  raiseMallocThresholds();
  installMemoryProbe(log);
  // Handlers first: a signal that arrives while starting up still gets a clean shutdown.
  const signals = catchShutdownSignals();
  const firstSignal = signals.first;
  const recorders: Recorder[] = [];
  /** --pcap files by absolute path: routes naming the same file share it. */
  const captures = new Map<string, PcapRecorder>();
  let metricsServer: { close(): Promise<void> } | undefined;
  let healthServer: { close(): Promise<void> } | undefined;
  const health = new HealthState();
  const release = async (): Promise<void> => {
    await metricsServer?.close();
    await healthServer?.close();
    await Promise.all([...recorders, ...captures.values()].map((r) => r.close()));
  };
  try {
    // A file that stops taking rows (disk full) costs rows, logged and counted, never the relaying.
    let dropCounts: RowRecorders['dropCounts'];
    try {
      const rows = await openRowRecorders(options, log, 'create');
      recorders.push(...rows.recorders);
      dropCounts = rows.dropCounts;
    } catch (err) {
      if (!(err instanceof RowFileError)) throw err;
      process.stderr.write(`dicom-pdu-proxy: ${err.message}\n`);
      await release();
      return 2;
    }
    for (const route of all) {
      const capture = route.options.pcap;
      if (!capture || captures.has(path.resolve(capture.file))) continue;
      try {
        const recorder = await PcapRecorder.open(capture.file, { ...capture, log: log.child({ recorder: '--pcap', file: capture.file }) });
        captures.set(path.resolve(capture.file), recorder);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        process.stderr.write(`dicom-pdu-proxy: --pcap ${capture.file}: ${e.code ? `${e.code} (cannot create the capture file)` : e.message}\n`);
        await release();
        return 2;
      }
    }
    if (run.metrics) {
      // prom-client is loaded only when metrics are asked for: start-up without them stays fast.
      const { MetricsRecorder, serveMetrics } = await import('../record/metrics.js');
      const metrics = new MetricsRecorder();
      for (const [file, count] of dropCounts) metrics.watchDroppedRows(file, count);
      const captureList = [...captures.values()];
      if (captureList.length > 0) metrics.watchCaptureDrops(() => captureList.reduce((n, c) => n + c.dropped, 0));
      recorders.push(metrics);
      try {
        const served = await serveMetrics(run.metrics, metrics, health);
        metricsServer = served;
        log.info({ metrics: `http://${formatEndpoint({ host: served.address.address, port: served.address.port })}/metrics` }, 'metrics listening');
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        process.stderr.write(`dicom-pdu-proxy: --metrics ${formatEndpoint(run.metrics)}: ${e.code ?? e.message}\n`);
        await release();
        return 1;
      }
    }
    if (run.health) {
      try {
        const served = await serveHealth(run.health, health);
        healthServer = served;
        const base = `http://${formatEndpoint({ host: served.address.address, port: served.address.port })}`;
        log.info({ healthz: `${base}/healthz`, readyz: `${base}/readyz` }, 'health listening');
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        process.stderr.write(`dicom-pdu-proxy: --health ${formatEndpoint(run.health)}: ${e.code ?? e.message}\n`);
        await release();
        return 1;
      }
    }
    let nextAssoc = 1;
    const routeRecorders = (route: RouteConfig): Recorder[] => {
      const capture = route.options.pcap;
      return capture ? [...recorders, captures.get(path.resolve(capture.file))!.view(capture.payload)] : recorders;
    };
    const servers = all.map((route) => new ProxyServer(route.options, log, routeRecorders(route), { route: route.id, nextAssoc: () => nextAssoc++ }));
    for (const [i, server] of servers.entries()) {
      try {
        await server.listen();
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        process.stderr.write(`dicom-pdu-proxy: ${listenLabel(all[i]!)}: ${e.code ?? e.message}\n`);
        await Promise.all(servers.slice(0, i).map((s) => s.stopListening()));
        await release();
        return 1;
      }
    }
    health.state = 'ready';
    const signal = await firstSignal;
    health.state = 'draining';
    const second = signals.second();
    const active = (): number => servers.reduce((n, s) => n + s.admittedAssociations, 0);
    // server.close() only completes once every connection is gone: stop accepting first, then wait. The log
    // line comes after, so whoever reads it can rely on every route's listener being closed already.
    const stopped = Promise.all(servers.map((s) => s.stopListening()));
    for (const server of servers) server.drain();
    log.info({ signal, active: active(), drainTimeoutMs: options.drainTimeoutMs }, 'shutting down: draining associations in flight');
    let drainTimer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      Promise.all(servers.map((s) => s.whenIdle())).then(() => 'drained' as const),
      new Promise<'timeout'>((resolve) => (drainTimer = setTimeout(() => resolve('timeout'), options.drainTimeoutMs))),
      second.then(() => 'signal' as const),
    ]);
    clearTimeout(drainTimer);
    let aborted = 0;
    if (outcome !== 'drained') {
      const why = outcome === 'signal' ? 'second signal during shutdown' : `drain timeout (${options.drainTimeoutMs} ms)`;
      log.warn({ reason: why, active: active() }, 'shutting down: aborting associations still in flight');
      const counts = await Promise.all(servers.map((s) => s.abortAll(`proxy shutting down: ${why}`, ABORT_GRACE_MS)));
      aborted = counts.reduce((a, b) => a + b, 0);
    }
    await stopped;
    await release();
    log.info({ aborted }, 'stopped');
    return aborted > 0 ? 1 : 0;
  } finally {
    signals.remove();
  }
}
