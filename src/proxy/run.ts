// Runs the proxy as a process: logger, recorders, listener, and signal handling.

import pino from 'pino';
import type { Logger } from 'pino';
import { ChunkCsvRecorder } from '../record/chunk-csv.js';
import { MessagesCsvRecorder } from '../record/messages-csv.js';
import type { Recorder } from '../record/events.js';
import type { ProxyOptions } from './options.js';
import { raiseMallocThresholds } from './malloc-threshold.js';
import { ProxyServer } from './server.js';

export interface RunOptions {
  logLevel: string;
}

export function createLogger(level: string): Logger {
  return pino({ level, base: { name: 'dicom-pdu-proxy' } });
}

/** After a second signal (or the drain timeout), how long aborted peers get to close before they are cut off. */
const ABORT_GRACE_MS = 2000;

/**
 * Start the proxy and run until SIGINT/SIGTERM. On a signal: stop listening, let associations in flight
 * finish (at most --drain-timeout), flush the CSV files, and resolve with exit status 0. A second signal, or
 * the drain timeout, aborts what is left (A-ABORT to both peers); the exit status is then 1 if a live
 * association was cut short.
 */
export async function runProxy(options: ProxyOptions, run: RunOptions): Promise<number> {
  const log = createLogger(run.logLevel);
  raiseMallocThresholds();
  // Handlers first: a signal that arrives while starting up still gets a clean shutdown. They stay
  // installed, so a second signal is ours to handle too (node's default would exit without the CSV flush).
  const signals: NodeJS.Signals[] = [];
  let onSignal: ((signal: NodeJS.Signals) => void) | undefined;
  const handler = (signal: NodeJS.Signals): void => {
    signals.push(signal);
    onSignal?.(signal);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  const nextSignal = (): Promise<NodeJS.Signals> =>
    new Promise((resolve) => {
      onSignal = (signal) => {
        onSignal = undefined;
        resolve(signal);
      };
    });
  const firstSignal = signals.length > 0 ? Promise.resolve(signals[0]!) : nextSignal();
  try {
    const recorders: Recorder[] = [];
    if (options.csv) recorders.push(await ChunkCsvRecorder.open(options.csv));
    if (options.messagesCsv) {
      try {
        recorders.push(await MessagesCsvRecorder.open(options.messagesCsv));
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        process.stderr.write(`dicom-pdu-proxy: --messages-csv ${e.code ? `${options.messagesCsv}: ${e.code}` : e.message}\n`);
        await Promise.all(recorders.map((r) => r.close()));
        return 2;
      }
    }
    const server = new ProxyServer(options, log, recorders);
    try {
      await server.listen();
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      process.stderr.write(`dicom-pdu-proxy: --listen ${options.listen.host}:${options.listen.port}: ${e.code ?? e.message}\n`);
      await Promise.all(recorders.map((r) => r.close()));
      return 1;
    }
    const signal = await firstSignal;
    const second = signals.length > 1 ? Promise.resolve(signals[1]!) : nextSignal();
    // server.close() only completes once every connection is gone: stop accepting first, then wait. The log
    // line comes after, so whoever reads it can rely on the listener being closed already.
    const stopped = server.stopListening();
    server.drain();
    log.info({ signal, active: server.admittedAssociations, drainTimeoutMs: options.drainTimeoutMs }, 'shutting down: draining associations in flight');
    let drainTimer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      server.whenIdle().then(() => 'drained' as const),
      new Promise<'timeout'>((resolve) => (drainTimer = setTimeout(() => resolve('timeout'), options.drainTimeoutMs))),
      second.then(() => 'signal' as const),
    ]);
    clearTimeout(drainTimer);
    let aborted = 0;
    if (outcome !== 'drained') {
      const why = outcome === 'signal' ? 'second signal during shutdown' : `drain timeout (${options.drainTimeoutMs} ms)`;
      log.warn({ reason: why, active: server.admittedAssociations }, 'shutting down: aborting associations still in flight');
      aborted = await server.abortAll(`proxy shutting down: ${why}`, ABORT_GRACE_MS);
    }
    await stopped;
    await Promise.all(recorders.map((r) => r.close()));
    log.info({ aborted }, 'stopped');
    return aborted > 0 ? 1 : 0;
  } finally {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  }
}
