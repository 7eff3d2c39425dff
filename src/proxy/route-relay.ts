// One route's associations in this process: the control plane (src/control) accepts each connection and
// hands it here with its association id; this runs the TLS handshake (when the route has one) and gives the
// connection its own Session. Sessions are independent: one association's failure never touches another's.

import tls from 'node:tls';
import type { Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Recorder } from '../events/events.js';
import type { AdmissionRequest, Decision, OutcomeWire } from './admission.js';
import type { ProxyOptions } from '../config/options.js';
import { shapingFor } from '../config/options.js';
import { formatLatency, formatRate } from '../values/shaping.js';
import { Session } from './session.js';
import type { Wires } from './session.js';
import { Wire } from '../transform/shaper.js';
import { checkClient, configuredCertificates, describeTlsError, listenerTlsOptions } from './tls.js';
import type { TlsFailureReason } from '../events/events.js';

export interface RouteRelayOptions {
  /** The route's id (logs, CSV rows, metrics). */
  route: string;
  /** The settings generation this relay runs (1 at start, +1 per reload): on every log line of the route. */
  generation: number;
  /** Asked once per A-ASSOCIATE-RQ: the control plane admits (and counts) or refuses it. */
  admission: (request: AdmissionRequest, assoc: number) => Promise<Decision>;
  /**
   * Called once per connection given to adopt(), when it is gone (its association over, or its TLS handshake
   * failed); with how its association ended on its arm, when it had one (the guard's input).
   */
  connectionDone: (assoc: number, outcome?: OutcomeWire) => void;
}

export class RouteRelay {
  private readonly options: ProxyOptions;
  private readonly log: Logger;
  private readonly recorders: readonly Recorder[];
  private readonly relay: RouteRelayOptions;
  /** The TLS handshakes run on a server that never listens: connections are given to it (adopt). */
  private readonly tlsServer: Server | undefined;
  private readonly sessions = new Set<Session>();
  /** --bandwidth is the capacity of one link that all associations share: one wire per direction. */
  private readonly wires: Wires = { toScp: new Wire(), toScu: new Wire() };
  private idleWaiters: Array<() => void> = [];
  /** TLS: the association id of each raw connection until its handshake is over. */
  private readonly handshakes = new Map<Socket, number>();

  constructor(options: ProxyOptions, log: Logger, recorders: readonly Recorder[], relay: RouteRelayOptions) {
    this.options = options;
    this.relay = relay;
    this.log = log.child({ route: relay.route, generation: relay.generation });
    this.recorders = recorders.map((r) => r.forRoute?.(relay.route) ?? r);
    for (const certificate of configuredCertificates(options)) for (const r of this.recorders) r.certificate?.(certificate);
    if (!options.tls) return;
    const listener = options.tls;
    // --tls-cert: the handshake runs first (at most --artim-timeout); the session starts on a secure socket.
    this.tlsServer = tls.createServer(listenerTlsOptions(listener, options.artimTimeoutMs), (socket) => {
      const raw = rawOf(socket);
      const assoc = raw && this.handshakes.get(raw);
      if (raw) this.handshakes.delete(raw);
      if (assoc === undefined) {
        // Not a connection of ours (cannot happen: only adopt() feeds this server).
        socket.destroy();
        return;
      }
      // Half-open from here on: a peer's FIN after the handshake is passed on, not answered by closing
      // (before it, a FIN ends the connection: see listenerTlsOptions).
      socket.allowHalfOpen = true;
      const refused = checkClient(socket, listener);
      if (refused) {
        this.tlsFailed(socket, refused);
        socket.destroy();
        this.relay.connectionDone(assoc);
        return;
      }
      this.accept(socket, assoc);
    });
    // A handshake that fails, times out (--artim-timeout) or meets the peer's FIN: Node reports it and leaves
    // the socket open; it is closed here (a TCP probe on a TLS port must not hold a descriptor).
    this.tlsServer.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      this.tlsFailed(socket, describeTlsError(err));
      socket.destroy();
    });
  }

  /** Take a connection the control plane accepted, with the association id it gave it. */
  adopt(socket: Socket, assoc: number): void {
    if (!this.tlsServer) {
      // A socket handed over from another process is created without allowHalfOpen: the proxy needs it
      // (a peer's FIN is passed on, not answered by closing). With TLS, half-open starts after the handshake.
      socket.allowHalfOpen = true;
      this.accept(socket, assoc);
      return;
    }
    // Not half-open while the handshake runs (the TLS socket takes this from the connection it wraps): see
    // listenerTlsOptions.
    socket.allowHalfOpen = false;
    this.handshakes.set(socket, assoc);
    socket.once('close', () => {
      // Still here: the handshake never gave a session (failed, or the peer left): the connection is gone.
      if (this.handshakes.delete(socket)) this.connectionGone(assoc);
    });
    this.tlsServer.emit('connection', socket);
  }

  /** The control plane's --max-pending bound chose this connection (the oldest without an RQ) to be closed. */
  closePending(assoc: number, why: string): void {
    for (const [raw, id] of this.handshakes) {
      if (id !== assoc) continue;
      this.log.debug({ assoc, peer: `${raw.remoteAddress}:${raw.remotePort}`, reason: why }, 'connection closed before its TLS handshake ended');
      raw.destroy();
      return;
    }
    for (const s of this.sessions) if (s.id === assoc && s.awaitingRq) s.closeBeforeRq(why);
  }

  /** One warn line and a metric per failed handshake on the listener; the listener carries on. */
  private tlsFailed(socket: Socket, failure: { reason: TlsFailureReason; detail: string }): void {
    this.log.warn({ leg: 'scu', peer: `${socket.remoteAddress}:${socket.remotePort}`, reason: failure.reason, detail: failure.detail }, 'TLS handshake failed: connection closed');
    for (const r of this.recorders) r.tlsFailure?.({ leg: 'scu', reason: failure.reason });
  }

  private accept(socket: Socket, id: number): void {
    const log = this.log.child({ assoc: id });
    log.debug({ peer: `${socket.remoteAddress}:${socket.remotePort}` }, 'connection accepted');
    const admission = { admit: (request: AdmissionRequest) => this.relay.admission(request, id) };
    const session = new Session(id, socket, this.options, log, this.recorders, (s) => this.sessionDone(s), admission, this.wires);
    this.sessions.add(session);
  }

  private sessionDone(session: Session): void {
    this.sessions.delete(session);
    // How its association ended on its arm: the guard's input, in the control plane.
    const ended = session.experimentOutcome;
    this.connectionGone(session.id, ended && { arm: ended.arm.index, result: ended.result });
  }

  private connectionGone(assoc: number, outcome?: OutcomeWire): void {
    this.relay.connectionDone(assoc, outcome);
    if (this.sessions.size === 0 && this.handshakes.size === 0) {
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  /**
   * Begin a graceful stop: connections that have sent nothing yet are closed (TLS handshakes in progress
   * too), associations in flight carry on. (RQs from now on are refused by the control plane.)
   */
  drain(): void {
    for (const raw of this.handshakes.keys()) raw.destroy();
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
    for (const raw of this.handshakes.keys()) raw.destroy();
    for (const session of this.sessions) if (session.abort(why, 'shutdown')) aborted++;
    const timer = setTimeout(() => {
      for (const session of this.sessions) session.destroy();
    }, graceMs);
    await idle;
    clearTimeout(timer);
    return aborted;
  }

  /** Resolves when no connection of this route is left (sessions and handshakes). */
  whenIdle(): Promise<void> {
    if (this.sessions.size === 0 && this.handshakes.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/** The raw connection under a server-side TLS socket: node's TLS socket keeps it as its handle's _parentWrap. */
function rawOf(socket: Socket): Socket | undefined {
  return (socket as unknown as { _handle?: { _parentWrap?: Socket } })._handle?._parentWrap;
}

/** What a route's 'listening' line says of it besides where it listens. */
export function describeRoute(options: ProxyOptions): Record<string, unknown> {
  return {
    upstream: `${options.upstream.host}:${options.upstream.port}`,
    // Several --max-pdu sizes: the experiment's arms, as written; one: its value.
    maxPdu: options.arms.length > 1 ? options.arms.map((a) => a.label) : (options.maxPdu ?? 'unchanged'),
    maxPduRq: options.maxPduRq ?? 'unchanged',
    fragment: options.fragment.mode === 'size' ? options.fragment.size : options.fragment.mode,
    ...shapingLogFields(options),
    ...tlsLogFields(options),
  };
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
