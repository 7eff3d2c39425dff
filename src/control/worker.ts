// A --workers worker process: a relay host driven by the primary over IPC (ipc.ts). It runs the
// associations of the connections the primary hands it, asks the primary once per A-ASSOCIATE-RQ, and drains
// or aborts when told. Signals are the primary's to handle (a Ctrl-C reaches the whole process group).

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Decision } from '../proxy/admission.js';
import { raiseMallocThresholds } from '../proxy/malloc-threshold.js';
import { decisionFromWire, isToWorker, reviveBuffers } from './ipc.js';
import type { ToPrimary, ToWorker } from './ipc.js';
import { createLogger } from './logger.js';
import { RelayHost } from './relay-host.js';
import { ABORT_GRACE_MS } from './relays.js';

export async function runWorker(logLevel: string, metrics: boolean): Promise<number> {
  const ignore = (): void => undefined;
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, ignore);
  const send = (message: ToPrimary): void => {
    if (process.connected) process.send!(message);
  };
  const start = await new Promise<Extract<ToWorker, { type: 'dpp:start' }> | undefined>((resolve) => {
    const onStart = (message: unknown): void => {
      if (!isToWorker(message) || message.type !== 'dpp:start') return;
      process.off('message', onStart);
      resolve(message);
    };
    process.on('message', onStart);
    process.once('disconnect', () => resolve(undefined));
    send({ type: 'dpp:hello' });
  });
  if (!start) return 1;
  const log: Logger = createLogger(logLevel, { worker: start.index, pid: process.pid });
  raiseMallocThresholds();

  const decisions = new Map<number, { resolve: (decision: Decision) => void; reject: (err: Error) => void }>();
  let host: RelayHost;
  try {
    host = await RelayHost.open(
      reviveBuffers(start.settings),
      start.ids,
      { log, metrics, capture: false },
      {
        admit: (assoc, request) =>
          new Promise((resolve, reject) => {
            if (!process.connected) return reject(new Error('the primary process is gone'));
            decisions.set(assoc, { resolve, reject });
            send({ type: 'dpp:admit', assoc, request: { peerAddress: request.peerAddress, callingAe: request.callingAe } });
          }),
        done: (assoc, outcome) => {
          decisions.delete(assoc);
          send({ type: 'dpp:done', assoc, ...(outcome ? { outcome } : {}) });
        },
      },
    );
    if (metrics && host.metrics) {
      const { answerClusterMetrics } = await import('./metrics-endpoint.js');
      answerClusterMetrics(host.metrics);
    }
  } catch (err) {
    send({ type: 'dpp:failed', message: (err as Error).message });
    return 1;
  }

  let aborted = 0;
  let stopping: Promise<void> | undefined;
  let finished!: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const stop = (): Promise<void> => {
    if (stopping) return stopping;
    host.drain();
    stopping = host.whenIdle().then(async () => {
      // abortAll's count is ready once every session is gone (its whenIdle resolved first).
      await new Promise((resolve) => setImmediate(resolve));
      await host.close();
      log.info({ aborted }, 'worker stopped');
      if (process.connected) process.send!({ type: 'dpp:stopped', aborted } satisfies ToPrimary, undefined, {}, () => finished());
      else finished();
    });
    return stopping;
  };
  const abort = (why: string): void => {
    void stop();
    void host.abortAll(why, ABORT_GRACE_MS).then((n) => (aborted += n));
  };

  process.on('message', (message: unknown, handle: unknown) => {
    if (!isToWorker(message)) return;
    switch (message.type) {
      case 'dpp:conn': {
        const socket = handle as Socket | undefined;
        if (!socket) return send({ type: 'dpp:done', assoc: message.assoc });
        host.adopt(socket, message.generation, message.route, message.assoc);
        return;
      }
      case 'dpp:settings':
        host.settings(reviveBuffers(message.settings), message.ids);
        return;
      case 'dpp:admitted': {
        const decision = decisions.get(message.assoc);
        decisions.delete(message.assoc);
        decision?.resolve(decisionFromWire(message.decision));
        return;
      }
      case 'dpp:close-pending':
        host.closePending(message.assoc, message.why);
        return;
      case 'dpp:drain':
        void stop();
        return;
      case 'dpp:abort':
        abort(message.why);
        return;
      case 'dpp:config-state':
        host.metrics?.configState(message.generation, message.reloadFailures);
        return;
      case 'dpp:start':
        return;
    }
  });
  // The primary is gone (killed): its listeners and its admission are gone with it, and the next run will
  // truncate the chunk CSV. Stop writing rows at once (the recorders are closed first), abort what is in
  // flight and exit: a worker never outlives its primary by more than the abort grace.
  process.once('disconnect', () => {
    for (const decision of decisions.values()) decision.reject(new Error('the primary process is gone before it answered an A-ASSOCIATE-RQ'));
    decisions.clear();
    log.error('the primary process is gone: aborting every association and stopping');
    void host.close().then(() => abort('the primary process is gone'));
  });
  send({ type: 'dpp:ready' });
  log.info('worker ready');
  await done;
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, ignore);
  // The IPC channel would keep the process alive: let go of it once the primary has the last message.
  if (process.connected) process.disconnect();
  return 0;
}
