// One association: the SCU's socket, the upstream socket, and a link each way. The session runs the
// association state machine (PS3.8 9.2, seen from the middle; association-state.ts), rewrites the Maximum
// Length in the A-ASSOCIATE-RQ/AC (negotiation.ts), configures each link's re-fragmenter with its
// receiver's real limit, and tears everything down exactly once (teardown.ts).

import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { AssociatePdu } from '../pdu/associate.js';
import { callingAe } from '../pdu/associate.js';
import { AbortReason, AbortSource, PduType, pduTypeName } from '../pdu/constants.js';
import { decodeAbort, decodeReject, describeAbort, encodeAbort, encodeUpstreamUnavailableReject } from '../pdu/control.js';
import type { ProtocolError } from '../pdu/errors.js';
import { MessageTracker } from '../dimse/tracker.js';
import type { AbortCause, Leg, PduRecord, Recorder } from '../events/events.js';
import type { Admission, Decision, Refusal } from './admission.js';
import type { Arm } from '../experiment/arms.js';
import type { GuardResult } from '../experiment/outcome.js';
import { AssociationArm } from './association-arm.js';
import type { InFlight, LinkOwner } from './link.js';
import { Link } from './link.js';
import { SessionRecorders } from './session-recorders.js';
import { dialUpstream } from './upstream.js';
import type { ProxyOptions } from '../config/options.js';
import { shapingFor } from '../config/options.js';
import type { Wires } from './output.js';
import { describeTlsError } from './tls.js';
import { AssociationStatus, State, controlPduInTurn, dataAllowed, isOver } from './association-state.js';
import { Negotiator, describeReject, refusalLogFields } from './negotiation.js';
import type { Teardown } from './teardown.js';
import { abortLeg, closeLostLeg, internalErrorTeardown, lostLegTeardown, protocolErrorTeardown, proxyAbortTeardown, stalledTeardown } from './teardown.js';
import { logClosed } from './summary.js';
import { SessionTimers } from './session-timers.js';

export type { Wires } from './output.js';

export class Session implements LinkOwner {
  readonly id: number;
  private readonly options: ProxyOptions;
  private readonly log: Logger;
  private readonly recorders: SessionRecorders;
  private readonly tracker: MessageTracker;
  private readonly negotiator: Negotiator;
  private readonly onDone: (session: Session) => void;
  private readonly t0 = performance.now();
  private readonly scu: Socket;
  private scp: Socket | undefined;
  private readonly toScp: Link;
  private readonly toScu: Link;
  private readonly status = new AssociationStatus();
  private readonly timers: SessionTimers;
  private readonly admission: Admission;
  /** Admitted by the server (counted against --max-associations until the session finishes). */
  admitted = false;
  private scuClosed = false;
  private scpClosed = true;
  /** The upstream TCP connection is established (an A-ABORT can be sent to the SCP). */
  private upstreamConnected = false;
  private finished = false;
  /** Its arm in a --max-pdu experiment and the tags every record carries, set when it is admitted. */
  private readonly experiment = new AssociationArm();

  constructor(id: number, scu: Socket, options: ProxyOptions, log: Logger, recorders: readonly Recorder[], onDone: (s: Session) => void, admission: Admission, wires?: Wires) {
    this.id = id;
    this.admission = admission;
    this.scu = scu;
    this.options = options;
    this.log = log;
    this.recorders = new SessionRecorders(recorders, log);
    this.timers = new SessionTimers(options);
    this.onDone = onDone;
    const clock = (): number => (performance.now() - this.t0) * 1000;
    // Sender idle time counts only while the event loop waits with nothing to do (libuv's idle time).
    const loopIdle = (): number => performance.eventLoopUtilization().idle * 1000;
    this.toScp = new Link('to_scp', id, this, clock, loopIdle);
    this.toScu = new Link('to_scu', id, this, clock, loopIdle);
    // --latency / --bandwidth: each link delays what it sends toward its receiver (nothing when unset).
    // With a bandwidth, the associations of one proxy share one wire per direction (wires from the server).
    this.toScp.shape(shapingFor(options, 'to_scp'), wires?.toScp);
    this.toScu.shape(shapingFor(options, 'to_scu'), wires?.toScu);
    // Message tracking feeds the messages CSV, the debug line per message and the summary's time split.
    this.tracker = new MessageTracker(id, { to_scp: this.toScp.times, to_scu: this.toScu.times }, performance.timeOrigin + this.t0, {
      message: (m) => {
        this.experiment.completed(m);
        this.recorders.message(m);
      },
      // Warned once per association (a peer could send many); the rest at debug, all counted in the summary.
      undecodable: (direction, why) => this.recorders.undecodable(direction, why, this.tracker.undecodable),
    });
    this.negotiator = new Negotiator(options, log, { toScp: this.toScp, toScu: this.toScu }, this.tracker, (message, code, reason) => this.fail(message, code, reason));
    for (const link of [this.toScp, this.toScu]) {
      link.stallTimeoutMs = options.stallTimeoutMs;
      link.observer = this.tracker;
      // Reads into the link's own reused buffers (the capture, if any, copies what it keeps as the link reads).
      link.reuseReadBuffers = true;
    }
    scu.setNoDelay(true);
    this.recorders.tap('scu', scu, this.toScp, this.toScu);
    this.toScp.attachSource(scu);
    this.toScu.attachDest(scu);
    scu.on('end', () => this.onLegEnd('scu'));
    scu.on('error', (err) => this.onLegError('scu', err));
    scu.on('close', () => this.onLegClose('scu'));
    // PS3.8 9.1.4: ARTIM runs from the accept until the A-ASSOCIATE-RQ; a fixed deadline, so dribbling
    // bytes does not extend it.
    this.timers.startArtim(() => this.onArtimExpired());
  }

  // ---- LinkOwner -------------------------------------------------------------------------------

  dataAllowed(): boolean {
    return dataAllowed(this.status.state);
  }

  onRecord(record: PduRecord): void {
    this.experiment.tag(record);
    this.recorders.pdu(record);
    this.tracker.forwarded(record);
  }

  onProtocolError(link: Link, err: ProtocolError): void {
    this.fail(`${link.direction === 'to_scp' ? 'SCU' : 'SCP'} sent ${err.message}`, err.code, err.reason);
  }

  /** A bug, not the peers' fault: abort (reason 0, not specified), one error line with the stack, counted apart. */
  onInternalError(link: Link, err: Error): void {
    if (this.status.state === State.Aborted || this.finished) {
      this.log.error({ err, direction: link.direction }, 'internal error after the association was aborted');
      return;
    }
    this.tearDown(internalErrorTeardown(err, link.direction, this.status.state));
  }

  /**
   * The link's receiver took no bytes for --stall-timeout while the proxy had bytes for it (a TCP window kept
   * at zero, a host that stopped answering): A-ABORT to the other peer; the stalled connection cannot take
   * an A-ABORT, so it is reset.
   */
  onStalled(link: Link): void {
    const leg = link === this.toScp ? 'scp' : 'scu';
    if (isOver(this.status.state) || this.status.state === State.AwaitRq) {
      this.log.debug({ leg }, 'peer stalled after the association ended: connection reset');
      link.resetOutput();
      return;
    }
    this.tearDown(stalledTeardown(leg, this.options.stallTimeoutMs));
  }

  onControlPdu(link: Link, type: number, pdu: Buffer, record: InFlight): void {
    const fromScu = link === this.toScp;
    const sender = fromScu ? 'SCU' : 'SCP';
    // The framer only delivers known types here; P-DATA goes through the link.
    if (!controlPduInTurn(this.status.state, type, fromScu)) return this.unexpected(link, type, record, sender);
    switch (type) {
      case PduType.AssociateRq:
        return this.onAssociateRq(pdu, record);
      case PduType.AssociateAc:
        return this.onAssociateAc(pdu, record);
      case PduType.AssociateRj:
        this.status.reject('scp', describeReject(pdu));
        this.log.info({ result: decodeReject(pdu) }, 'association rejected by the SCP');
        link.forward(pdu, record);
        this.startCloseTimer();
        return;
      case PduType.ReleaseRq:
        // Both peers may request release at once (release collision, PS3.8 9.2.2): each RQ gets its RP.
        this.status.releaseRequested();
        link.forward(pdu, record);
        return;
      case PduType.ReleaseRp:
        link.forward(pdu, record);
        if (this.status.releaseAnswered()) this.startCloseTimer();
        return;
      case PduType.Abort: {
        const fields = decodeAbort(pdu);
        const beforeUpstream = this.status.state === State.AwaitRq || this.status.state === State.Connecting;
        this.status.abort(fromScu ? 'scu_abort' : 'scp_abort', `${sender} sent A-ABORT (${describeAbort(fields)})`);
        this.log.info({ from: sender, abort: describeAbort(fields) }, 'association aborted by a peer');
        if (beforeUpstream) {
          // Nothing upstream to tell yet.
          link.drop(record);
          this.closeBoth();
          return;
        }
        link.forward(pdu, record);
        this.startCloseTimer();
        return;
      }
    }
  }

  // ---- Association negotiation ----------------------------------------------------------------

  private onAssociateRq(raw: Buffer, record: InFlight): void {
    this.timers.stopArtim();
    const rq = this.negotiator.decode(raw, 'SCU');
    if (!rq) return;
    const peerAddress = this.scu.remoteAddress;
    // Decided by the control plane (in this process, or in the primary with --workers: it counts for every
    // relay). The RQ waits; anything else the SCU sends before its answer is out of turn (state Connecting:
    // a second RQ or P-DATA is a protocol error, an A-ABORT or a close ends the connection).
    this.status.state = State.Connecting;
    this.admission.admit({ peerAddress, callingAe: callingAe(rq) }).then(
      (decision) => {
        if (this.finished || this.status.state !== State.Connecting) return;
        this.status.state = State.AwaitRq;
        this.associateRq(raw, rq, record, peerAddress, decision);
      },
      (err: Error) => this.onInternalError(this.toScp, err),
    );
  }

  private associateRq(raw: Buffer, rq: AssociatePdu, record: InFlight, peerAddress: string | undefined, decision: Decision): void {
    if (!this.admit(rq, record, peerAddress, decision.refusal) || decision.refusal !== undefined) return;
    // The arm and generation hold for the whole association: every record carries them from here on.
    this.negotiator.arm = decision.arm;
    this.tracker.setTags(this.experiment.assign(rq, decision.arm, decision.generation));
    if (!this.negotiator.request(raw, rq, record, this.scu)) return;
    this.status.state = State.Connecting;
    this.connectUpstream();
  }

  private onAssociateAc(raw: Buffer, record: InFlight): void {
    if (this.negotiator.accept(raw, record, this.scu, this.scp)) this.status.state = State.Established;
  }

  private connectUpstream(): void {
    const { socket, cancelTimeout } = dialUpstream(this.options, {
      waiting: () => this.status.state === State.Connecting,
      ready: (scp) => {
        this.recorders.tap('scp', scp, this.toScu, this.toScp);
        this.status.state = State.AwaitAc;
        this.upstreamConnected = true;
        this.recorders.upstreamCertificate(scp);
        this.toScu.attachSource(scp);
        this.toScp.attachDest(scp);
        this.scu.resume();
      },
      failed: (why, tls) => {
        // Connected, then the TLS handshake failed: one warn line with the reason, counted.
        if (tls) this.recorders.tlsFailure('scp', tls, this.scu, this.options.upstream);
        this.upstreamUnavailable(why);
      },
      error: (err) => this.onLegError('scp', err),
      end: () => this.onLegEnd('scp'),
      close: () => this.onLegClose('scp'),
    });
    this.scp = socket;
    this.timers.connecting(cancelTimeout);
    this.scpClosed = false;
    this.scu.pause();
  }

  private upstreamUnavailable(why: string): void {
    if (this.status.state !== State.Connecting) return;
    this.status.reject('upstream_unavailable', `upstream unavailable: ${why}`);
    this.log.warn({ reason: this.status.reason }, 'association rejected: upstream unavailable');
    this.toScu.sendGenerated(encodeUpstreamUnavailableReject());
    this.scu.resume();
    this.toScu.closeOutput();
    this.startCloseTimer();
  }

  // ---- Errors and teardown ---------------------------------------------------------------------

  private unexpected(link: Link, type: number, record: InFlight, sender: string): void {
    link.drop(record);
    this.fail(`${sender} sent ${pduTypeName(type)} in state ${this.status.state}`, 'unexpected-pdu', AbortReason.UnexpectedPdu);
  }

  /** A protocol error: A-ABORT (source 2, `reason`) to both peers, one warn line, both legs closed. */
  private fail(message: string, code: string, reason: AbortReason): void {
    this.tearDown(protocolErrorTeardown(message, code, reason));
  }

  /**
   * The proxy aborts the association: it is marked aborted (outcome, cause, reason), one line is logged, both links stop delivering, each peer still there gets an A-ABORT (service provider) and is
   * half-closed, a lost leg or an upstream not connected yet is closed, and the close timer bounds the rest.
   * Once only: false when the association was aborted already.
   */
  private tearDown(t: Teardown): boolean {
    if (this.status.state === State.Aborted) return false;
    this.status.abort(t.cause, t.reason);
    this.log[t.logLevel ?? 'warn'](t.logFields, t.logMessage);
    this.toScp.discardInput();
    this.toScu.discardInput();
    const abort = encodeAbort(AbortSource.ServiceProvider, t.abortReason);
    if (t.lost === 'scu') closeLostLeg(this.toScu, this.scu, t.resetLost);
    else if (t.lost === 'scp') closeLostLeg(this.toScp, this.scp, t.resetLost);
    if (t.lost !== 'scu') abortLeg(this.toScu, this.scu, abort);
    if (t.lost !== 'scp') {
      if (this.scp && this.upstreamConnected) abortLeg(this.toScp, this.scp, abort);
      else this.scp?.destroy();
    }
    this.startCloseTimer();
    return true;
  }

  private onLegEnd(leg: Leg): void {
    if (isOver(this.status.state)) {
      // Normal end of an association: pass the FIN on (half-close).
      (leg === 'scu' ? this.toScp : this.toScu).endOutput();
    } else if (this.status.state === State.AwaitRq || this.status.state === State.Connecting) {
      this.status.outcome = 'closed';
      this.status.reason ??= `${leg.toUpperCase()} closed before the association was requested`;
      this.closeBoth();
    } else {
      this.tearDown(lostLegTeardown(leg, 'closed the connection'));
    }
  }

  private onLegError(leg: Leg, err: Error): void {
    const code = (err as NodeJS.ErrnoException).code ?? err.message;
    // TLS 1.3: a server checks the client's certificate after the client has finished its handshake, so a
    // refusal (an alert) arrives as an error on a connection that looked established.
    if (code.startsWith('ERR_SSL_') && this.status.state === State.AwaitAc) this.recorders.tlsFailure(leg, describeTlsError(err), this.scu, this.options.upstream);
    if (isOver(this.status.state)) {
      this.log.debug({ leg, err: code }, 'socket error after the association ended');
      this.closeBoth();
      return;
    }
    this.tearDown(lostLegTeardown(leg, `failed (${code})`));
  }

  private onLegClose(leg: Leg): void {
    if (leg === 'scu') this.scuClosed = true;
    else this.scpClosed = true;
    if (leg === 'scp' && this.status.state === State.Connecting) return; // upstreamUnavailable handles it
    if (this.scuClosed && this.scpClosed) this.finish();
    else if (!isOver(this.status.state) && this.status.state !== State.AwaitRq) {
      // A full close without a FIN first (reset): same as losing the leg.
      this.tearDown(lostLegTeardown(leg, 'closed the connection'));
    }
  }

  /** Bound how long the proxy waits for the peers to close after the association is over (ARTIM). */
  private startCloseTimer(): void {
    this.timers.startClose(() => {
      this.log.debug('close timeout: closing both connections');
      this.closeBoth();
    });
  }

  private closeBoth(): void {
    this.scu.destroy();
    this.scp?.destroy();
  }

  /**
   * Abort the association from the proxy's side (shutdown, idle): A-ABORT to both, then close. Returns
   * whether a live association was cut short (false when there was none: it just closes the connections).
   */
  abort(why: string, cause: AbortCause = 'shutdown'): boolean {
    if (this.finished) return false;
    if (isOver(this.status.state) || this.status.state === State.AwaitRq) {
      this.closeBoth();
      return false;
    }
    return this.tearDown(proxyAbortTeardown(why, cause));
  }

  // ---- Admission, timers, drain ---------------------------------------------------------------------

  /** Ask the server; a refused RQ gets the server's A-ASSOCIATE-RJ and the connection is closed. */
  private admit(rq: AssociatePdu, record: InFlight, peerAddress: string | undefined, refusal: Refusal | undefined): boolean {
    this.recorders.association(this.status.requestedEvent(this.id, !refusal));
    if (!refusal) {
      this.admitted = true;
      this.timers.watchIdle(this.scu, () => this.onIdle());
      return true;
    }
    this.toScp.drop(record);
    this.status.reject('proxy', `rejected by the proxy: ${refusal.reason}`);
    this.log.warn(refusalLogFields(refusal, peerAddress, rq), 'association rejected by the proxy');
    this.toScu.sendGenerated(refusal.reject);
    this.toScu.closeOutput();
    this.startCloseTimer();
    return false;
  }

  private onArtimExpired(): void {
    if (this.status.state !== State.AwaitRq || this.finished) return;
    this.status.end('closed', `no A-ASSOCIATE-RQ within ${this.options.artimTimeoutMs} ms (ARTIM)`);
    this.log.warn({ reason: this.status.reason, bytesIn: this.toScp.counters.bytesIn }, 'connection closed: no association requested');
    this.closeBoth();
  }

  /** The SCU connection saw no traffic either way for --idle-timeout: abort the association. */
  private onIdle(): void {
    if (this.status.state !== State.AwaitAc && this.status.state !== State.Established && this.status.state !== State.Releasing) return;
    this.abort(`idle: nothing sent or received for ${this.options.idleTimeoutMs} ms (--idle-timeout)`, 'idle_timeout');
  }

  /** True while the connection has not sent an A-ASSOCIATE-RQ yet. */
  get awaitingRq(): boolean {
    return this.status.state === State.AwaitRq;
  }

  /** Bytes received from the SCU so far. */
  get bytesFromScu(): number {
    return this.toScp.counters.bytesIn;
  }

  /** Close a connection that has not asked for an association (drain, or too many such connections). */
  closeBeforeRq(why: string): void {
    if (this.status.state !== State.AwaitRq || this.finished) return;
    this.status.end('closed', why);
    this.log.info({ reason: why }, 'connection closed before an association was requested');
    this.closeBoth();
  }

  /** Close both connections now, whatever the state (after a second signal, once the A-ABORTs had their chance). */
  destroy(): void {
    this.closeBoth();
  }

  /**
   * How the association ended, for the experiment's guard: its arm, calling AE title and result (ok,
   * failed); undefined without an arm, before it is done, or when the end says nothing about the arm
   * (src/experiment/outcome.ts).
   */
  get experimentOutcome(): { arm: Arm; callingAe: string; result: GuardResult } | undefined {
    return this.finished ? this.experiment.outcome(this.status.endedEvent(this.id)) : undefined;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.timers.clearAll();
    this.toScp.abandon();
    this.toScu.abandon();
    try {
      // Messages cut short and the last association event go to the recorders from a socket's 'close':
      // a bug there must neither end the process nor keep the association's slot.
      this.tracker.close();
      this.recorders.association(this.status.endedEvent(this.id));
    } catch (err) {
      this.log.error({ err }, 'internal error as the association ended');
    }
    // The relay first (it frees the association's slot), then the line saying it is closed: its reader may count on that.
    this.onDone(this);
    logClosed(this.log, performance.now() - this.t0, this.status.outcome, this.status.reason, this.toScp, this.toScu, this.tracker);
  }
}
