// Runs the proxy as a process: logger, recorders, listener, and signal handling.

import pino from 'pino';
import type { Logger } from 'pino';
import { ChunkCsvRecorder } from '../record/chunk-csv.js';
import { MessagesCsvRecorder } from '../record/messages-csv.js';
import type { Recorder } from '../record/events.js';
import type { ProxyOptions } from './options.js';
import { ProxyServer } from './server.js';

export interface RunOptions {
  logLevel: string;
}

export function createLogger(level: string): Logger {
  return pino({ level, base: { name: 'dicom-pdu-proxy' } });
}

/**
 * Start the proxy and run until SIGINT/SIGTERM. On a signal: stop listening, abort associations still in
 * flight (A-ABORT to both peers), flush the CSV files, and resolve with exit status 0.
 */
export async function runProxy(options: ProxyOptions, run: RunOptions): Promise<number> {
  const log = createLogger(run.logLevel);
  // Handlers first: a signal that arrives while starting up still gets a clean shutdown.
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
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
  const signal = await signalled;
  log.info({ signal, active: server.activeAssociations }, 'shutting down');
  // server.close() only completes once every connection is gone: stop accepting, abort, then wait.
  const stopped = server.stopListening();
  await server.abortAll(`proxy shutting down (${signal})`);
  await stopped;
  await Promise.all(recorders.map((r) => r.close()));
  log.info('stopped');
  return 0;
}
