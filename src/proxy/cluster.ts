// --workers N: the relay in N processes (node:cluster), one proxy to its users.
//
// The primary owns what must be one: the listening sockets, the association ids, the admission counts
// (--max-associations, the drain) and the --max-pending bound, the metrics and health endpoints, the
// signals. It accepts each connection paused (nothing read), gives it an id and hands the socket to a
// worker; a route with a --bandwidth always goes to the same worker (its one wire per direction lives
// there). A worker runs the sessions as a single-process proxy does and asks the primary once per
// A-ASSOCIATE-RQ whether to admit it (one IPC round trip per association, none per PDU).
//
// The CSV files stay one file each: the primary creates them (the chunk CSV truncated, its header written;
// the messages CSV checked or given its header), then every worker appends whole batches of lines with
// O_APPEND, one write() per batch, so lines of different workers never mix. A crashed worker is logged
// and replaced; its connections are lost, the others' are not touched.

import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { serveHealth } from '../record/health.js';
import type { HealthState, Readiness } from '../record/health.js';
import type { Recorder } from '../events/events.js';
import { formatEndpoint } from '../values/endpoint.js';
import type { Endpoint } from '../values/endpoint.js';
import type { RouteConfig } from '../config/options.js';
import { shapingFor } from '../config/options.js';
import { AdmissionRules } from './admission.js';
import type { AdmissionRequest, Refusal, RefusalCode } from './admission.js';
import { raiseMallocThresholds } from './malloc-threshold.js';
import { ProxyServer } from './server.js';
import { RowFileError, openRowRecorders } from './row-recorders.js';
import { createLogger } from './run.js';
import type { RunOptions } from './run.js';
import { catchShutdownSignals } from './signals.js';

/** After a second signal (or the drain timeout), how long aborted peers get to close before they are cut off. */
const ABORT_GRACE_MS = 2000;
/** A worker that dies sooner than this after its start is replaced only after this long (no crash loop). */
const RESTART_DELAY_MS = 1000;

// ---- Messages between the primary and its workers (IPC; `type` starts with dpp: to stay apart from prom-client's) ----

type ToWorker =
  | { type: 'dpp:start'; index: number; ports: string[] }
  | { type: 'dpp:conn'; route: number; assoc: number }
  | { type: 'dpp:admitted'; assoc: number; refusal?: { code: RefusalCode; reason: string; reject: number[] } }
  | { type: 'dpp:close-pending'; route: number; assoc: number; why: string }
  | { type: 'dpp:drain' }
  | { type: 'dpp:abort'; why: string };

type ToPrimary =
  | { type: 'dpp:hello' }
  | { type: 'dpp:ready' }
  | { type: 'dpp:failed'; message: string }
  | { type: 'dpp:admit'; route: number; assoc: number; request: AdmissionRequest }
  | { type: 'dpp:done'; assoc: number }
  | { type: 'dpp:stopped'; aborted: number };

function isMessage<T extends { type: string }>(message: unknown): message is T {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith('dpp:');
}

export async function runCluster(all: readonly RouteConfig[], run: RunOptions): Promise<number> {
  return cluster.isPrimary ? runPrimary(all, run) : runWorker(all, run);
}

// ---- The primary ----------------------------------------------------------------------------------

interface Connection {
  route: number;
  /** Accepted, no A-ASSOCIATE-RQ yet (what --max-pending bounds). */
  pending: boolean;
  /** Admitted: counted against --max-associations until it is done. */
  admitted: boolean;
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  ready: boolean;
  startedAt: number;
  /** Connections handed to this slot's worker and not done yet, by association id. */
  connections: Map<number, Connection>;
  /** Connections waiting for this slot's worker to be ready (a route pinned to it, or no worker ready at all). */
  waiting: Array<{ socket: Socket; route: number; assoc: number }>;
  stopped: boolean;
  aborted: number;
}

async function runPrimary(all: readonly RouteConfig[], run: RunOptions): Promise<number> {
  const options = all[0]!.options;
  const count = run.workers ?? 1;
  const log = createLogger(run.logLevel, { worker: 'primary' });
  const signals = catchShutdownSignals();
  const firstSignal = signals.first;
  const listeners: net.Server[] = [];
  let httpServer: { close(): Promise<void> } | undefined;
  const slots: Slot[] = [];
  let phase: 'starting' | 'running' | 'draining' | 'stopping' = 'starting';
  const health = {
    get state(): Readiness {
      if (phase === 'draining' || phase === 'stopping') return 'draining';
      return phase === 'running' && slots.every((s) => s.ready) ? 'ready' : 'starting';
    },
    set state(_: Readiness) {},
  } satisfies HealthState;
  const closeListeners = (): Promise<unknown> => Promise.all(listeners.map((l) => new Promise<void>((resolve) => (l.listening ? l.close(() => resolve()) : resolve()))));
  const release = async (): Promise<void> => {
    await closeListeners();
    await httpServer?.close();
  };
  try {
    if (all.some((r) => r.options.pcap)) {
      process.stderr.write(`dicom-pdu-proxy: --pcap cannot be used with --workers ${count} (one capture per process is not supported): use --workers 1\n`);
      return 2;
    }
    // The files the workers append to: created (and the header written) here, once.
    try {
      const rows = await openRowRecorders(options, log, 'create');
      await Promise.all(rows.recorders.map((r) => r.close()));
    } catch (err) {
      if (!(err instanceof RowFileError)) throw err;
      process.stderr.write(`dicom-pdu-proxy: ${err.message}\n`);
      return 2;
    }

    // Admission, counted here for every worker.
    const rules = all.map((route) => new AdmissionRules(route.options));
    const admittedPerRoute = all.map(() => 0);
    const pinned = all.map((route, i) => (shapingFor(route.options, 'to_scp')?.bytesPerSecond || shapingFor(route.options, 'to_scu')?.bytesPerSecond ? i % count : undefined));
    let nextAssoc = 1;
    let turn = 0;
    const active = (): number => admittedPerRoute.reduce((a, b) => a + b, 0);
    const forget = (slot: Slot, assoc: number): void => {
      const c = slot.connections.get(assoc);
      if (!c) return;
      slot.connections.delete(assoc);
      if (c.admitted) admittedPerRoute[c.route]!--;
    };

    const hand = (slot: Slot, socket: Socket, route: number, assoc: number): void => {
      const worker = slot.worker!;
      slot.connections.set(assoc, { route, pending: true, admitted: false });
      const message: ToWorker = { type: 'dpp:conn', route, assoc };
      worker.send(message, socket, (err: Error | null) => {
        if (!err) return;
        log.warn({ worker: slot.index, assoc, err: err.message }, 'connection could not be handed to its worker: closed');
        socket.destroy();
        forget(slot, assoc);
      });
    };

    const boundPending = (route: number): void => {
      const max = all[route]!.options.maxPendingConnections;
      let pending = 0;
      let oldest: { slot: Slot; assoc: number } | undefined;
      for (const slot of slots) {
        for (const [assoc, c] of slot.connections) {
          if (c.route !== route || !c.pending) continue;
          pending++;
          if (!oldest || assoc < oldest.assoc) oldest = { slot, assoc };
        }
      }
      if (pending >= max && oldest) {
        const why = `${pending} connections without an A-ASSOCIATE-RQ: the oldest is closed to make room`;
        oldest.slot.connections.get(oldest.assoc)!.pending = false;
        oldest.slot.worker?.send({ type: 'dpp:close-pending', route, assoc: oldest.assoc, why } satisfies ToWorker);
      }
    };

    const dispatch = (socket: Socket, route: number): void => {
      if (phase !== 'running' && phase !== 'starting') {
        socket.destroy();
        return;
      }
      const assoc = nextAssoc++;
      boundPending(route);
      let slot: Slot | undefined;
      const pin = pinned[route];
      if (pin !== undefined) slot = slots[pin]!;
      else {
        // The ready worker with the fewest connections; ties go round.
        for (let k = 0; k < slots.length; k++) {
          const s = slots[(turn + k) % slots.length]!;
          if (s.ready && (!slot || s.connections.size < slot.connections.size)) slot = s;
        }
        turn = (turn + 1) % slots.length;
        slot ??= slots[assoc % slots.length]!;
      }
      log.debug({ assoc, route: all[route]!.id, worker: slot.index, peer: `${socket.remoteAddress}:${socket.remotePort}` }, 'connection accepted');
      if (slot.ready) hand(slot, socket, route, assoc);
      else {
        slot.connections.set(assoc, { route, pending: true, admitted: false });
        slot.waiting.push({ socket, route, assoc });
      }
    };

    const onMessage = (slot: Slot, message: ToPrimary): void => {
      switch (message.type) {
        case 'dpp:hello':
          // The worker listens for messages now (one sent before would be lost): tell it who it is.
          slot.worker?.send({ type: 'dpp:start', index: slot.index, ports } satisfies ToWorker);
          return;
        case 'dpp:ready': {
          slot.ready = true;
          if (phase === 'starting' && slots.every((s) => s.ready)) startFailed?.(undefined);
          for (const w of slot.waiting.splice(0)) {
            slot.connections.delete(w.assoc);
            hand(slot, w.socket, w.route, w.assoc);
          }
          return;
        }
        case 'dpp:admit': {
          const c = slot.connections.get(message.assoc);
          if (c) c.pending = false;
          const refusal = rules[message.route]!.decide(message.request, { draining: phase === 'draining' || phase === 'stopping', associations: admittedPerRoute[message.route]! });
          if (!refusal && c) {
            c.admitted = true;
            admittedPerRoute[message.route]!++;
          }
          const reply: ToWorker = { type: 'dpp:admitted', assoc: message.assoc };
          if (refusal) reply.refusal = { code: refusal.code, reason: refusal.reason, reject: [...refusal.reject] };
          slot.worker?.send(reply);
          return;
        }
        case 'dpp:done':
          forget(slot, message.assoc);
          return;
        case 'dpp:stopped':
          slot.stopped = true;
          slot.aborted = message.aborted;
          return;
        case 'dpp:failed':
          log.error({ worker: slot.index, reason: message.message }, 'worker could not start');
          return;
      }
    };

    const ports: string[] = [];
    let startFailed: ((why: string | undefined) => void) | undefined;
    const fork = (slot: Slot): void => {
      const worker = cluster.fork();
      slot.worker = worker;
      slot.ready = false;
      slot.startedAt = Date.now();
      // A message to a worker that is going away fails: it is gone, its exit handler cleans up (never a crash here).
      worker.on('error', (err: Error) => log.debug({ worker: slot.index, err: err.message }, 'message to a worker failed'));
      worker.on('message', (message: unknown) => {
        if (isMessage<ToPrimary>(message)) onMessage(slot, message);
      });
      worker.once('exit', (code, signal) => {
        if (slot.worker !== worker) return;
        const wasReady = slot.ready;
        slot.worker = undefined;
        slot.ready = false;
        const lost = slot.connections.size - slot.waiting.length;
        for (const [assoc] of [...slot.connections]) if (!slot.waiting.some((w) => w.assoc === assoc)) forget(slot, assoc);
        if (phase === 'draining' || phase === 'stopping') {
          slot.stopped = true;
          return;
        }
        if (!wasReady && phase === 'starting') {
          startFailed?.(`worker ${slot.index} exited before it was ready (${signal ?? `status ${code}`})`);
          return;
        }
        const lived = Date.now() - slot.startedAt;
        log.error({ worker: slot.index, pid: worker.process.pid, code, signal, connectionsLost: lost }, 'worker died: its connections are lost; starting a new one');
        setTimeout(() => fork(slot), lived < RESTART_DELAY_MS ? RESTART_DELAY_MS : 0).unref();
      });
    };

    for (let index = 0; index < count; index++) {
      slots.push({ index, worker: undefined, ready: false, startedAt: 0, connections: new Map(), waiting: [], stopped: false, aborted: 0 });
    }
    // Listen first (a route that cannot listen stops everything, as with one process), then start the workers.
    for (const [i, route] of all.entries()) {
      const listener = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => dispatch(socket, i));
      listener.on('error', (err) => log.error({ route: route.id, err: err.message }, 'listener error'));
      try {
        const address = await new Promise<AddressInfo>((resolve, reject) => {
          listener.once('error', reject);
          listener.listen({ host: route.options.listen.host, port: route.options.listen.port }, () => {
            listener.off('error', reject);
            resolve(listener.address() as AddressInfo);
          });
        });
        listeners.push(listener);
        ports.push(String(address.port));
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        const where = formatEndpoint(route.options.listen);
        process.stderr.write(`dicom-pdu-proxy: ${route.label === '--listen' ? `--listen ${where}` : `${route.label} (listen ${where})`}: ${e.code ?? e.message}\n`);
        await release();
        return 1;
      }
    }
    if (run.metrics || run.health) {
      const endpoint: Endpoint = (run.metrics ?? run.health)!;
      const flag = run.metrics ? '--metrics' : '--health';
      try {
        let served: { address: AddressInfo; close(): Promise<void> };
        if (run.metrics) {
          const { serveClusterMetrics } = await import('../record/metrics.js');
          served = await serveClusterMetrics(endpoint, health);
        } else served = await serveHealth(endpoint, health);
        httpServer = served;
        const base = `http://${formatEndpoint({ host: served.address.address, port: served.address.port })}`;
        if (run.metrics) log.info({ metrics: `${base}/metrics` }, 'metrics listening');
        else log.info({ healthz: `${base}/healthz`, readyz: `${base}/readyz` }, 'health listening');
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        process.stderr.write(`dicom-pdu-proxy: ${flag} ${formatEndpoint(endpoint)}: ${e.code ?? e.message}\n`);
        await release();
        return 1;
      }
      if (run.metrics && run.health) {
        // --health as well as --metrics: the same answers on their own port too.
        try {
          const h = await serveHealth(run.health, health);
          const previous = httpServer;
          httpServer = { close: async () => (await previous.close(), await h.close()) };
          const base = `http://${formatEndpoint({ host: h.address.address, port: h.address.port })}`;
          log.info({ healthz: `${base}/healthz`, readyz: `${base}/readyz` }, 'health listening');
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          process.stderr.write(`dicom-pdu-proxy: --health ${formatEndpoint(run.health)}: ${e.code ?? e.message}\n`);
          await release();
          return 1;
        }
      }
    }

    const started = await new Promise<string | undefined>((resolve) => {
      startFailed = resolve;
      for (const slot of slots) fork(slot);
      void firstSignal.then(() => resolve('signal'));
    });
    startFailed = undefined;
    if (started !== undefined && started !== 'signal') {
      process.stderr.write(`dicom-pdu-proxy: ${started}\n`);
      phase = 'stopping';
      for (const slot of slots) slot.worker?.kill();
      await release();
      return 1;
    }
    phase = 'running';
    for (const [i, route] of all.entries()) {
      const address = listeners[i]!.address() as AddressInfo;
      log.info(
        { route: route.id ?? ports[i], listen: `${address.address}:${address.port}`, upstream: `${route.options.upstream.host}:${route.options.upstream.port}`, workers: count },
        'listening',
      );
    }

    const signal = await firstSignal;
    phase = 'draining';
    const second = signals.second();
    const stopped = closeListeners();
    // Connections still waiting for a worker never reached one: close them.
    for (const slot of slots) {
      for (const w of slot.waiting.splice(0)) {
        w.socket.destroy();
        forget(slot, w.assoc);
      }
    }
    const allExited = Promise.all(
      slots.map((slot) => (slot.worker && !slot.worker.isDead() ? new Promise<void>((resolve) => slot.worker!.once('exit', () => resolve())) : Promise.resolve())),
    );
    for (const slot of slots) slot.worker?.send({ type: 'dpp:drain' } satisfies ToWorker);
    log.info({ signal, active: active(), workers: count, drainTimeoutMs: options.drainTimeoutMs }, 'shutting down: draining associations in flight');
    let drainTimer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      allExited.then(() => 'drained' as const),
      new Promise<'timeout'>((resolve) => (drainTimer = setTimeout(() => resolve('timeout'), options.drainTimeoutMs))),
      second.then(() => 'signal' as const),
    ]);
    clearTimeout(drainTimer);
    phase = 'stopping';
    if (outcome !== 'drained') {
      const why = outcome === 'signal' ? 'second signal during shutdown' : `drain timeout (${options.drainTimeoutMs} ms)`;
      log.warn({ reason: why, active: active() }, 'shutting down: aborting associations still in flight');
      for (const slot of slots) if (slot.worker && !slot.worker.isDead()) slot.worker.send({ type: 'dpp:abort', why: `proxy shutting down: ${why}` } satisfies ToWorker);
      let killTimer: NodeJS.Timeout | undefined;
      await Promise.race([allExited, new Promise<void>((resolve) => (killTimer = setTimeout(resolve, ABORT_GRACE_MS + 3000)))]);
      clearTimeout(killTimer);
      for (const slot of slots) if (slot.worker && !slot.worker.isDead()) slot.worker.kill('SIGKILL');
    }
    await stopped;
    await release();
    const aborted = slots.reduce((n, s) => n + s.aborted, 0);
    log.info({ aborted }, 'stopped');
    return aborted > 0 ? 1 : 0;
  } finally {
    signals.remove();
  }
}

// ---- A worker -------------------------------------------------------------------------------------

async function runWorker(all: readonly RouteConfig[], run: RunOptions): Promise<number> {
  const options = all[0]!.options;
  // Signals are the primary's to handle (a Ctrl-C reaches the whole process group): it says when to drain.
  const ignore = (): void => undefined;
  process.on('SIGINT', ignore);
  process.on('SIGTERM', ignore);
  const send = (message: ToPrimary): void => {
    if (process.connected) process.send!(message);
  };
  const start = await new Promise<{ index: number; ports: string[] }>((resolve) => {
    const onStart = (message: unknown): void => {
      if (!isMessage<ToWorker>(message) || message.type !== 'dpp:start') return;
      process.off('message', onStart);
      resolve(message);
    };
    process.on('message', onStart);
    send({ type: 'dpp:hello' });
  });
  const log: Logger = createLogger(run.logLevel, { worker: start.index, pid: process.pid });
  raiseMallocThresholds();
  const recorders: Recorder[] = [];
  try {
    const rows = await openRowRecorders(options, log, 'append');
    recorders.push(...rows.recorders);
    const dropCounts = rows.dropCounts;
    if (run.metrics) {
      const { MetricsRecorder, answerClusterMetrics } = await import('../record/metrics.js');
      const metrics = new MetricsRecorder();
      for (const [file, count] of dropCounts) metrics.watchDroppedRows(file, count);
      answerClusterMetrics(metrics);
      recorders.push(metrics);
    }
  } catch (err) {
    send({ type: 'dpp:failed', message: (err as Error).message });
    await Promise.all(recorders.map((r) => r.close()));
    return 1;
  }

  const decisions = new Map<number, { resolve: (refusal: Refusal | undefined) => void; reject: (err: Error) => void }>();
  const admission = (request: AdmissionRequest, assoc: number, route: number): Promise<Refusal | undefined> =>
    new Promise((resolve, reject) => {
      if (!process.connected) return reject(new Error('the primary process is gone'));
      decisions.set(assoc, { resolve, reject });
      send({ type: 'dpp:admit', route, assoc, request: { peerAddress: request.peerAddress, callingAe: request.callingAe } });
    });
  const servers = all.map(
    (route, i) =>
      new ProxyServer(route.options, log, recorders, {
        route: route.id,
        admission: (request, assoc) => admission(request, assoc, i),
        boundPending: false,
        connectionDone: (assoc) => {
          decisions.delete(assoc);
          send({ type: 'dpp:done', assoc });
        },
      }),
  );
  for (const [i, server] of servers.entries()) server.activate(start.ports[i]!);

  let stopping: Promise<void> | undefined;
  let aborted = 0;
  let finished!: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const stop = (abortWhy?: string): Promise<void> => {
    if (abortWhy !== undefined) {
      void Promise.all(servers.map((s) => s.abortAll(abortWhy, ABORT_GRACE_MS))).then((counts) => (aborted = counts.reduce((a, b) => a + b, 0)));
    }
    if (stopping) return stopping;
    for (const server of servers) server.drain();
    stopping = Promise.all(servers.map((s) => s.whenIdle())).then(async () => {
      // abortAll's count is ready once every session is gone (its whenIdle resolved first).
      await new Promise((resolve) => setImmediate(resolve));
      await Promise.all(recorders.map((r) => r.close()));
      log.info({ aborted }, 'worker stopped');
      if (process.connected) process.send!({ type: 'dpp:stopped', aborted } satisfies ToPrimary, undefined, {}, () => finished());
      else finished();
    });
    return stopping;
  };

  process.on('message', (message: unknown, handle: unknown) => {
    if (!isMessage<ToWorker>(message)) return;
    switch (message.type) {
      case 'dpp:conn': {
        const socket = handle as Socket | undefined;
        if (!socket) return send({ type: 'dpp:done', assoc: message.assoc });
        if (stopping) {
          socket.destroy();
          return send({ type: 'dpp:done', assoc: message.assoc });
        }
        servers[message.route]!.adopt(socket, message.assoc);
        return;
      }
      case 'dpp:admitted': {
        const decision = decisions.get(message.assoc);
        decisions.delete(message.assoc);
        const r = message.refusal;
        decision?.resolve(r ? { code: r.code, reason: r.reason, reject: Buffer.from(r.reject) } : undefined);
        return;
      }
      case 'dpp:close-pending':
        servers[message.route]!.closePending(message.assoc, message.why);
        return;
      case 'dpp:drain':
        void stop();
        return;
      case 'dpp:abort':
        void stop(message.why);
        return;
    }
  });
  // The primary is gone (killed): finish what is in flight, as on a SIGTERM, bounded by --drain-timeout.
  process.once('disconnect', () => {
    for (const decision of decisions.values()) decision.reject(new Error('the primary process is gone before it answered an A-ASSOCIATE-RQ'));
    decisions.clear();
    void stop();
    setTimeout(() => void stop('the primary process is gone'), options.drainTimeoutMs).unref();
  });
  send({ type: 'dpp:ready' });
  log.info('worker ready');
  await done;
  process.off('SIGINT', ignore);
  process.off('SIGTERM', ignore);
  // The IPC channel would keep the process alive: let go of it once the primary has the last message.
  if (process.connected) process.disconnect();
  return 0;
}
