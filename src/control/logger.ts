// The process's logger (pino, JSON lines on stdout).

import pino from 'pino';
import type { Logger } from 'pino';

/**
 * `bindings`: fields on every line (--workers: which process wrote it). With bindings, every line is written
 * at once with its own write(), so that lines of several processes on one stdout never mix (a pipe keeps
 * writes up to PIPE_BUF whole; the default asynchronous stream may join lines into longer writes).
 */
export function createLogger(level: string, bindings?: Record<string, unknown>): Logger {
  const options = { level, base: { name: 'dicom-pdu-proxy', ...bindings } };
  return bindings ? pino(options, pino.destination({ fd: 1, sync: true })) : pino(options);
}
