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
  /**
   * --workers: admission is decided by the primary, which counts for every worker (--max-associations and
   * the drain are global); this replaces the server's own count.
   */
  admission?: (request: AdmissionRequest, assoc: number) => Promise<Refusal | undefined>;
  /** --workers: the primary keeps the --max-pending bound over every worker (closePending); the server's own is off. */
  boundPending?: boolean;
  /** Called once per connection given to adopt(), when it is gone (its association over, or its TLS handshake failed). */
  connectionDone?: (assoc: number) => void;
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
  private readonly server_: ServerOptions;
  /** adopt() with TLS: the association id of each raw connection until its handshake is over. */
  private readonly adopted = new Map<Socket, number>();
  /** TLS: raw connections whose handshake is not over, with their arrival number. */
  private readonly handshakes = new Map<Socket, number>();
  /** Sessions still without an A-ASSOCIATE-RQ are ordered with the handshakes by this arrival number. */
  private readonly arrivalOf = new WeakMap<Session, number>();
  private arrivals = 0;

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
    this.server_ = server;
    if (options.tls) {
      // --tls-cert: the handshake runs first (at most --artim-timeout); the session starts on a secure socket.
      const listener = options.tls;
      this.server = tls.createServer(listenerTlsOptions(listener, options.artimTimeoutMs), (socket) => {
        this.handshakes.delete(rawOf(socket) ?? socket);
        // Half-open from here on: a peer's FIN after the handshake is passed on, not answered by closing
        // (before it, a FIN ends the connection: see listenerTlsOptions).
        socket.allowHalfOpen = true;
        const assoc = this.adoptedId(socket);
        const refused = checkClient(socket, listener);
        if (refused) {
          this.tlsFailed(socket, refused);
          socket.destroy();
          if (assoc !== undefined) this.server_.connectionDone?.(assoc);
          return;
        }
        this.accept(socket, assoc);
      });
      // A handshake that fails, times out (--artim-timeout) or meets the peer's FIN: Node reports it and leaves
      // the socket open; it is closed here (a TCP probe on a TLS port must not hold a descriptor).
      this.server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
        this.tlsFailed(socket, describeTlsError(err));
        socket.destroy();
      });
      // Connections in their handshake: counted by --max-pending, closed by a drain.
      this.server.on('connection', (raw: Socket) => {
        this.handshakes.set(raw, this.arrivals++);
        raw.once('close', () => this.handshakes.delete(raw));
        if (this.server_.boundPending !== false) this.boundPending();
      });
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
        this.activate(String(address.port));
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

  /**
   * --workers: serve connections another process accepted (adopt) instead of listening; `port` names the
   * route when it has no id (the port the primary bound).
   */
  activate(port: string): void {
    this.routeId ??= port;
    this.log = this.parentLog.child({ route: this.routeId });
    const route = this.routeId;
    this.recorders = this.sharedRecorders.map((r) => r.forRoute?.(route) ?? r);
  }

  /**
   * --workers: take a connection the primary accepted, with the association id it gave it. With TLS the
   * handshake runs here, as on a connection of the server's own listener.
   */
  adopt(socket: Socket, assoc: number): void {
    if (!this.options.tls) {
      // A socket handed over from another process is created without allowHalfOpen: the proxy needs it
      // (a peer's FIN is passed on, not answered by closing). With TLS, half-open starts after the handshake.
      socket.allowHalfOpen = true;
      this.accept(socket, assoc);
      return;
    }
    this.adopted.set(socket, assoc);
    socket.once('close', () => {
      // Still here: the handshake never gave a session (failed, or the peer left): the connection is gone.
      if (this.adopted.delete(socket)) this.server_.connectionDone?.(assoc);
    });
    this.server.emit('connection', socket);
  }

  /** The id adopt() gave the raw connection under a TLS socket (undefined for the server's own connections). */
  private adoptedId(socket: Socket): number | undefined {
    if (this.adopted.size === 0) return undefined;
    const raw = rawOf(socket);
    if (raw === undefined) return undefined;
    const assoc = this.adopted.get(raw);
    if (assoc !== undefined) this.adopted.delete(raw);
    return assoc;
  }

  /** --workers: the primary's --max-pending bound chose this connection (the oldest without an RQ) to be closed. */
  closePending(assoc: number, why: string): void {
    for (const s of this.sessions) if (s.id === assoc && s.awaitingRq) s.closeBeforeRq(why);
  }

  /** One warn line and a metric per failed handshake on the listener; the listener carries on. */
  private tlsFailed(socket: Socket, failure: { reason: TlsFailureReason; detail: string }): void {
    this.log.warn({ leg: 'scu', peer: `${socket.remoteAddress}:${socket.remotePort}`, reason: failure.reason, detail: failure.detail }, 'TLS handshake failed: connection closed');
    for (const r of this.recorders) r.tlsFailure?.({ leg: 'scu', reason: failure.reason });
  }

  private accept(socket: Socket, assoc?: number): void {
    const id = assoc ?? this.nextAssoc();
    const log = this.log.child({ assoc: id });
    log.debug({ peer: `${socket.remoteAddress}:${socket.remotePort}` }, 'connection accepted');
    if (this.server_.boundPending !== false) this.boundPending();
    const decide = this.server_.admission;
    const admission = decide ? { admit: (request: AdmissionRequest) => decide(request, id) } : { admit: (request: AdmissionRequest) => this.admit(request) };
    const session = new Session(id, socket, this.options, log, this.recorders, (s) => this.sessionDone(s), admission, this.wires);
    this.sessions.add(session);
    this.arrivalOf.set(session, this.arrivals++);
  }

  /**
   * Make room for one more connection without an RQ: close the oldest such one when at the bound. With TLS,
   * connections still in their handshake count too (the oldest of both kinds is closed).
   */
  private boundPending(): void {
    let pending = this.handshakes.size;
    let oldest: Session | undefined;
    for (const s of this.sessions) {
      if (!s.awaitingRq) continue;
      pending++;
      oldest ??= s; // a Set iterates in insertion order: the first is the oldest
    }
    // --max-pending: a real SCU sends its RQ within milliseconds of connecting; connections that do not only
    // hold file descriptors until ARTIM closes them, so a flood of them must not exhaust the process.
    if (pending < this.options.maxPendingConnections) return;
    const why = `${pending} connections without an A-ASSOCIATE-RQ: the oldest is closed to make room`;
    const [raw, arrival] = this.handshakes.entries().next().value ?? [];
    if (raw && (!oldest || arrival! < this.arrivalOf.get(oldest)!)) {
      this.log.debug({ peer: `${raw.remoteAddress}:${raw.remotePort}`, reason: why }, 'connection closed before its TLS handshake ended');
      this.handshakes.delete(raw);
      raw.destroy();
    } else oldest?.closeBeforeRq(why);
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
    if (session.admitted && !this.server_.admission) this.associations--;
    this.server_.connectionDone?.(session.id);
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
    // A TLS handshake in progress has sent no RQ yet either.
    for (const raw of this.handshakes.keys()) raw.destroy();
    this.handshakes.clear();
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

/** The raw connection under a server-side TLS socket: node's TLS socket keeps it as its handle's _parentWrap. */
function rawOf(socket: Socket): Socket | undefined {
  return (socket as unknown as { _handle?: { _parentWrap?: Socket } })._handle?._parentWrap;
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
