// The listening side: accepts SCU connections and gives each its own Session. Sessions are independent:
// one association's failure never touches another's.

import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Recorder } from '../events/events.js';
import type { AdmissionRequest, Refusal } from './admission.js';
import { AdmissionRules } from './admission.js';
import type { ProxyOptions } from '../config/options.js';
import { shapingFor } from '../config/options.js';
import { formatLatency, formatRate } from '../values/shaping.js';
import { Session } from './session.js';
import type { Wires } from './session.js';
import { Wire } from '../transform/shaper.js';
import { checkClient, describeTlsError, listenerTlsOptions } from './tls.js';
import type { TlsFailureReason } from '../events/events.js';

export interface ServerOptions {
  /** The route's id (logs, CSV rows, metrics); undefined = the bound port, known once listening. */
  route?: string | undefined;
  /** Association ids, shared by every route of the process so that ids never collide in the CSV files. */
  nextAssoc?: () => number;
}

export class ProxyServer {
  private readonly options: ProxyOptions;
  private readonly parentLog: Logger;
  private log: Logger;
  private readonly sharedRecorders: readonly Recorder[];
  /** The recorders as this route's views (forRoute), set once the route id is known. */
  private recorders: readonly Recorder[];
  private routeId: string | undefined;
  private readonly nextAssoc: () => number;
  private readonly server: Server;
  private readonly sessions = new Set<Session>();
  private readonly rules: AdmissionRules;
  /** --bandwidth is the capacity of one link that all associations share: one wire per direction. */
  private readonly wires: Wires = { toScp: new Wire(), toScu: new Wire() };
  /** Admitted associations not finished yet (what --max-associations counts). */
  private associations = 0;
  private draining = false;
  private idleWaiters: Array<() => void> = [];

  constructor(options: ProxyOptions, log: Logger, recorders: readonly Recorder[], server: ServerOptions = {}) {
    this.options = options;
    this.parentLog = log;
    this.log = log;
    this.sharedRecorders = recorders;
    this.recorders = recorders;
    this.routeId = server.route;
    let nextId = 1;
    this.nextAssoc = server.nextAssoc ?? (() => nextId++);
    this.rules = new AdmissionRules(options);
    if (options.tls) {
      // --tls-cert: the handshake runs first (at most --artim-timeout); the session starts on a secure socket.
      const listener = options.tls;
      this.server = tls.createServer(listenerTlsOptions(listener, options.artimTimeoutMs), (socket) => {
        const refused = checkClient(socket, listener);
        if (refused) {
          this.tlsFailed(socket, refused);
          socket.destroy();
          return;
        }
        this.accept(socket);
      });
      this.server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => this.tlsFailed(socket, describeTlsError(err)));
    } else {
      this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => this.accept(socket));
    }
    this.server.on('error', (err) => this.log.error({ err: err.message }, 'listener error'));
  }

  /** Start listening; resolves with the bound address (port 0 picks a free port). */
  listen(): Promise<AddressInfo> {
    const { host, port } = this.options.listen;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        const address = this.server.address() as AddressInfo;
        this.routeId ??= String(address.port);
        this.log = this.parentLog.child({ route: this.routeId });
        const route = this.routeId;
        this.recorders = this.sharedRecorders.map((r) => r.forRoute?.(route) ?? r);
        this.log.info(
          {
            listen: `${address.address}:${address.port}`,
            upstream: `${this.options.upstream.host}:${this.options.upstream.port}`,
            maxPdu: this.options.maxPdu ?? 'unchanged',
            maxPduRq: this.options.maxPduRq ?? 'unchanged',
            fragment: this.options.fragment.mode === 'size' ? this.options.fragment.size : this.options.fragment.mode,
            ...shapingLogFields(this.options),
            ...tlsLogFields(this.options),
          },
          'listening',
        );
        if (this.options.upstreamTls?.insecure) {
          this.log.warn(
            { upstream: `${this.options.upstream.host}:${this.options.upstream.port}` },
            'upstream TLS certificate is NOT verified (--upstream-tls-insecure): anyone on the path can pose as the SCP',
          );
        }
        resolve(address);
      });
    });
  }

  /** One warn line and a metric per failed handshake on the listener; the listener carries on. */
  private tlsFailed(socket: Socket, failure: { reason: TlsFailureReason; detail: string }): void {
    this.log.warn({ leg: 'scu', peer: `${socket.remoteAddress}:${socket.remotePort}`, reason: failure.reason, detail: failure.detail }, 'TLS handshake failed: connection closed');
    for (const r of this.recorders) r.tlsFailure?.({ leg: 'scu', reason: failure.reason });
  }

  private accept(socket: Socket): void {
    const id = this.nextAssoc();
    const log = this.log.child({ assoc: id });
    log.debug({ peer: `${socket.remoteAddress}:${socket.remotePort}` }, 'connection accepted');
    this.boundPending();
    const session = new Session(id, socket, this.options, log, this.recorders, (s) => this.sessionDone(s), { admit: (request) => this.admit(request) }, this.wires);
    this.sessions.add(session);
  }

  /** Make room for one more connection without an RQ: close the oldest such one when at the bound. */
  private boundPending(): void {
    let pending = 0;
    let oldest: Session | undefined;
    for (const s of this.sessions) {
      if (!s.awaitingRq) continue;
      pending++;
      oldest ??= s; // a Set iterates in insertion order: the first is the oldest
    }
    // --max-pending: a real SCU sends its RQ within milliseconds of connecting; connections that do not only
    // hold file descriptors until ARTIM closes them, so a flood of them must not exhaust the process.
    if (pending >= this.options.maxPendingConnections && oldest) {
      oldest.closeBeforeRq(`${pending} connections without an A-ASSOCIATE-RQ: the oldest is closed to make room`);
    }
  }

  private admit(request: AdmissionRequest): Refusal | undefined {
    const refusal = this.rules.decide(request, { draining: this.draining, associations: this.associations });
    if (!refusal) this.associations++;
    return refusal;
  }

  get admittedAssociations(): number {
    return this.associations;
  }

  private sessionDone(session: Session): void {
    this.sessions.delete(session);
    if (session.admitted) this.associations--;
    if (this.sessions.size === 0) {
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  /** Stop accepting new connections. */
  stopListening(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
  }

  /**
   * Begin a graceful stop: RQs from now on get A-ASSOCIATE-RJ (transient), connections that have sent
   * nothing yet are closed, associations in flight carry on. Stop listening separately.
   */
  drain(): void {
    this.draining = true;
    for (const session of this.sessions) {
      if (session.awaitingRq && session.bytesFromScu === 0) session.closeBeforeRq('the proxy is shutting down');
    }
  }

  /**
   * Abort every association in flight (A-ABORT to both peers), close every other connection, and wait
   * until all are closed; peers that have not closed after `graceMs` are disconnected. Resolves with the
   * number of live associations that were cut short.
   */
  async abortAll(why: string, graceMs = this.options.closeTimeoutMs): Promise<number> {
    let aborted = 0;
    const idle = this.whenIdle();
    for (const session of this.sessions) if (session.abort(why, 'shutdown')) aborted++;
    const timer = setTimeout(() => {
      for (const session of this.sessions) session.destroy();
    }, graceMs);
    await idle;
    clearTimeout(timer);
    return aborted;
  }

  whenIdle(): Promise<void> {
    if (this.sessions.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/** `shaping: { toScp: { latencyMs, jitterMs, bandwidth }, toScu: … }` when --latency/--bandwidth are set; nothing otherwise. */
function shapingLogFields(options: ProxyOptions): { shaping?: Record<string, unknown> } {
  const describe = (direction: 'to_scp' | 'to_scu'): Record<string, unknown> | string => {
    const s = shapingFor(options, direction);
    if (!s) return 'none';
    return { latency: s.latency ? `${formatLatency(s.latency)} ms` : 'none', bandwidth: s.bytesPerSecond ? formatRate(s.bytesPerSecond) : 'not limited' };
  };
  const toScp = describe('to_scp');
  const toScu = describe('to_scu');
  return toScp === 'none' && toScu === 'none' ? {} : { shaping: { toScp, toScu } };
}

/** `tls: { listener: { clientAuth }, upstream: { verify, servername } }` for the legs that use TLS; nothing otherwise. */
function tlsLogFields(options: ProxyOptions): { tls?: Record<string, unknown> } {
  const out: Record<string, unknown> = {};
  if (options.tls) out.listener = { clientAuth: options.tls.clientAuth, clientCa: options.tls.ca ? 'file' : 'none' };
  if (options.upstreamTls) {
    out.upstream = {
      verify: !options.upstreamTls.insecure,
      ca: options.upstreamTls.ca ? 'file' : 'system',
      clientCertificate: options.upstreamTls.cert !== undefined,
      servername: options.upstreamTls.servername,
    };
  }
  return Object.keys(out).length > 0 ? { tls: out } : {};
}
