// One association: the SCU's socket, the upstream socket, and a link each way. The session runs the
// association state machine (PS3.8 9.2, seen from the middle), rewrites the Maximum Length in the
// A-ASSOCIATE-RQ/AC, configures each link's re-fragmenter with its receiver's real limit, and tears
// everything down exactly once.

import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { AssociatePdu } from '../pdu/associate.js';
import {
  calledAe,
  callingAe,
  decodeAssociate,
  implementationClassUid,
  implementationVersionName,
  maxLength,
  presentationContextsAc,
  presentationContextsRq,
  rewriteMaxLength,
} from '../pdu/associate.js';
import { ABORT_REASON_NAMES, AbortReason, AbortSource, PduType, pduTypeName } from '../pdu/constants.js';
import { decodeAbort, decodeReject, describeAbort, encodeAbort, encodeUpstreamUnavailableReject } from '../pdu/control.js';
import { ProtocolError } from '../pdu/errors.js';
import { MIN_USABLE_MAX_LENGTH } from '../pdu/pdata.js';
import { MessageTracker } from '../dimse/tracker.js';
import { FIRST_GENERATION } from '../events/events.js';
import type { AbortCause, AssociationEvent, AssociationTags, AssociationOutcome, Direction, MessageRecord, PduRecord, Recorder, TlsFailureReason } from '../events/events.js';
import { formatEndpoint } from '../values/endpoint.js';
import type { Admission, Decision, Refusal } from './admission.js';
import { asDecision } from './admission.js';
import type { Arm } from '../experiment/arms.js';
import { armCsvLabel } from '../experiment/arms.js';
import { guardResult, isFailureStatus } from '../experiment/outcome.js';
import type { GuardResult } from '../experiment/outcome.js';
import { messageLogFields, timeSplitSummary } from '../record/messages-csv.js';
import type { InFlight, LinkOwner } from './link.js';
import { Link } from './link.js';
import { captureRecorder, tapSocket } from './capture-tap.js';
import type { ProxyOptions } from '../config/options.js';
import { shapingFor } from '../config/options.js';
import type { Wire } from '../transform/shaper.js';
import { connectUpstream, describeTlsError, resetOrDestroy, tlsFields } from './tls.js';

/** The emulated link of a proxy, one wire per direction, shared by all its associations (--bandwidth). */
export interface Wires {
  toScp: Wire;
  toScu: Wire;
}

/** The states of an association seen from the middle; each value is the name logs and messages use. */
const State = {
  /** TCP accepted; waiting for the SCU's A-ASSOCIATE-RQ. */
  AwaitRq: 'await-rq',
  /** RQ received; connecting to the upstream. */
  Connecting: 'connecting',
  /** RQ forwarded; waiting for the SCP's AC, RJ or ABORT. */
  AwaitAc: 'await-ac',
  Established: 'established',
  /** A-RELEASE-RQ seen; P-DATA may still flow until the RP. */
  Releasing: 'releasing',
  /** The association ended normally (RP forwarded) or was refused (RJ): closes propagate as they come. */
  Ended: 'ended',
  /** Aborted by a peer, by the proxy, or by a lost connection. */
  Aborted: 'aborted',
} as const;
type State = (typeof State)[keyof typeof State];

type Leg = 'scu' | 'scp';

/** How the proxy ends an association it aborts: one path for protocol errors, internal errors, lost connections, stalled peers, idle and shutdown. */
interface Teardown {
  cause: AbortCause;
  /** The summary's reason. */
  reason: string;
  /** The A-ABORT reason sent to the peers still there. */
  abortReason: AbortReason;
  /** The leg that was lost: closed, not sent an A-ABORT. */
  lost?: Leg;
  /** Close the lost leg with a reset (it stalled: it would take neither an A-ABORT nor the rest of its data). */
  resetLost?: boolean;
  /** The log line (warn unless said): its fields and message. */
  logLevel?: 'warn' | 'error';
  logFields: Record<string, unknown>;
  logMessage: string;
}

export interface SessionSummary {
  assoc: number;
  durationMs: number;
  outcome: AssociationOutcome;
  reason: string | undefined;
}

export class Session implements LinkOwner {
  readonly id: number;
  private readonly options: ProxyOptions;
  private readonly log: Logger;
  private readonly pduRecorders: readonly Recorder[];
  private readonly messageRecorders: readonly Recorder[];
  private readonly associationRecorders: readonly Recorder[];
  /** --pcap: taps both sockets (src/proxy/capture-tap.ts); undefined = no capture. */
  private readonly capture: Recorder | undefined;
  private readonly tlsRecorders: readonly Recorder[];
  private readonly tracker: MessageTracker;
  private readonly onDone: (session: Session) => void;
  private readonly t0 = performance.now();
  private readonly scu: Socket;
  private scp: Socket | undefined;
  private readonly toScp: Link;
  private readonly toScu: Link;
  private state: State = State.AwaitRq;
  private outcome: SessionSummary['outcome'] = 'closed';
  private reason: string | undefined;
  /** Why it was aborted, in the metrics' fixed vocabulary (set with outcome 'aborted'). */
  private abortCause: AbortCause | undefined;
  /** A well-formed A-ASSOCIATE-RQ arrived (admitted or not). */
  private requested = false;
  /** ... and was not refused by the proxy's own rules. */
  private accepted = false;
  private closeTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private artimTimer: NodeJS.Timeout | undefined;
  private readonly admission: Admission | undefined;
  /** Admitted by the server (counted against --max-associations until the session finishes). */
  admitted = false;
  private scuClosed = false;
  private scpClosed = true;
  /** The upstream TCP connection is established (an A-ABORT can be sent to the SCP). */
  private upstreamConnected = false;
  private finished = false;
  /** The real limits: what each peer announced itself (0 = none). */
  private scuMax = 0;
  private scpMax = 0;
  /** A-RELEASE-RQs forwarded and not yet answered (2 during a release collision). */
  private releaseRpsAwaited = 0;
  /** The arm the admission gave it (--max-pdu): the Maximum Length written into the AC; undefined = unchanged. */
  private arm: Arm | undefined;
  private callingAe = '';
  /** What every record of the association carries (arm label, AE titles, generation), set when it is admitted. */
  private tags: AssociationTags = { arm: '', callingAet: '', calledAet: '', generation: FIRST_GENERATION };
  /** Requests whose final status was a failure (neither success nor warning), for the guard. */
  private failedStatuses = 0;
  /** The SCP answered the RQ with A-ASSOCIATE-RJ (not the proxy). */
  private rejectedBySCP = false;

  constructor(id: number, scu: Socket, options: ProxyOptions, log: Logger, recorders: readonly Recorder[], onDone: (s: Session) => void, admission?: Admission, wires?: Wires) {
    this.id = id;
    this.admission = admission;
    this.scu = scu;
    this.options = options;
    this.log = log;
    this.pduRecorders = recorders.filter((r) => r.pdu);
    this.messageRecorders = recorders.filter((r) => r.message);
    this.associationRecorders = recorders.filter((r) => r.association);
    this.capture = captureRecorder(recorders);
    this.tlsRecorders = recorders.filter((r) => r.tlsFailure);
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
    this.tracker = new MessageTracker(id, { to_scp: this.toScp, to_scu: this.toScu }, performance.timeOrigin + this.t0, {
      message: (m) => this.onMessage(m),
      undecodable: (direction, why) => this.onUndecodable(direction, why),
    });
    this.toScp.stallTimeoutMs = options.stallTimeoutMs;
    this.toScu.stallTimeoutMs = options.stallTimeoutMs;
    this.toScp.observer = this.tracker;
    this.toScu.observer = this.tracker;
    // Reads into the links' own reused buffers (the capture, if any, copies what it keeps as the link reads).
    this.toScp.reuseReadBuffers = true;
    this.toScu.reuseReadBuffers = true;
    scu.setNoDelay(true);
    this.toScp.readTap = tapSocket(this.capture, 'scu', scu);
    this.toScp.attachSource(scu);
    this.toScu.attachDest(scu);
    scu.on('end', () => this.onLegEnd('scu'));
    scu.on('error', (err) => this.onLegError('scu', err));
    scu.on('close', () => this.onLegClose('scu'));
    // PS3.8 9.1.4: ARTIM runs from the accept until the A-ASSOCIATE-RQ; a fixed deadline, so dribbling
    // bytes does not extend it.
    this.artimTimer = setTimeout(() => this.onArtimExpired(), options.artimTimeoutMs);
  }

  // ---- LinkOwner -------------------------------------------------------------------------------

  dataAllowed(): boolean {
    return this.state === State.Established || this.state === State.Releasing;
  }

  onRecord(record: PduRecord): void {
    record.arm = this.tags.arm;
    record.generation = this.tags.generation;
    for (const recorder of this.pduRecorders) recorder.pdu!(record);
    this.tracker.forwarded(record);
  }

  private onMessage(message: MessageRecord): void {
    if (message.status !== undefined && isFailureStatus(message.status)) this.failedStatuses++;
    if (this.log.isLevelEnabled('debug')) this.log.debug(messageLogFields(message), 'message completed');
    for (const recorder of this.messageRecorders) recorder.message!(message);
  }

  /** Warned once per association (a peer could send many); the rest at debug, all counted in the summary. */
  private onUndecodable(direction: Direction, why: string): void {
    const fields = { from: direction === 'to_scp' ? 'SCU' : 'SCP', reason: why };
    if (this.tracker.undecodable === 1) this.log.warn(fields, 'DIMSE command set not decodable: message not tracked');
    else this.log.debug(fields, 'DIMSE command set not decodable: message not tracked');
  }

  onProtocolError(link: Link, err: ProtocolError): void {
    this.fail(`${link.direction === 'to_scp' ? 'SCU' : 'SCP'} sent ${err.message}`, err.code, err.reason);
  }

  /** A bug, not the peers' fault: abort (reason 0, not specified), one error line with the stack, counted apart. */
  onInternalError(link: Link, err: Error): void {
    if (this.state === State.Aborted) {
      this.log.error({ err, direction: link.direction }, 'internal error after the association was aborted');
      return;
    }
    this.tearDown({
      cause: 'internal_error',
      reason: `internal error: ${err.message}`,
      abortReason: AbortReason.NotSpecified,
      logLevel: 'error',
      logFields: { err, direction: link.direction, state: this.state },
      logMessage: 'internal error: association aborted',
    });
  }

  /**
   * The link's receiver took no bytes for --stall-timeout while the proxy had bytes for it (a TCP window kept
   * at zero, a host that stopped answering): A-ABORT to the other peer; the stalled connection cannot take
   * an A-ABORT, so it is reset.
   */
  onStalled(link: Link): void {
    const leg = link === this.toScp ? 'scp' : 'scu';
    if (this.state === State.Ended || this.state === State.Aborted || this.state === State.AwaitRq) {
      this.log.debug({ leg }, 'peer stalled after the association ended: connection reset');
      const stalled = leg === 'scp' ? this.scp : this.scu;
      if (stalled) resetOrDestroy(stalled);
      return;
    }
    const reason = `${leg.toUpperCase()} took no bytes for ${this.options.stallTimeoutMs} ms (--stall-timeout)`;
    this.tearDown({
      cause: 'peer_stalled',
      reason,
      abortReason: AbortReason.NotSpecified,
      lost: leg,
      resetLost: true,
      logFields: { leg, reason },
      logMessage: 'peer stalled: association aborted',
    });
  }

  onControlPdu(link: Link, type: number, pdu: Buffer, record: InFlight): void {
    const fromScu = link === this.toScp;
    const sender = fromScu ? 'SCU' : 'SCP';
    switch (type) {
      case PduType.AssociateRq:
        if (!fromScu || this.state !== State.AwaitRq) return this.unexpected(link, type, record, sender);
        return this.onAssociateRq(pdu, record);
      case PduType.AssociateAc:
        if (fromScu || this.state !== State.AwaitAc) return this.unexpected(link, type, record, sender);
        return this.onAssociateAc(pdu, record);
      case PduType.AssociateRj:
        if (fromScu || this.state !== State.AwaitAc) return this.unexpected(link, type, record, sender);
        this.state = State.Ended;
        this.outcome = 'rejected';
        this.rejectedBySCP = true;
        this.reason = describeReject(pdu);
        this.log.info({ result: decodeReject(pdu) }, 'association rejected by the SCP');
        link.forward(pdu, record);
        this.startCloseTimer();
        return;
      case PduType.ReleaseRq:
        if (this.state !== State.Established && this.state !== State.Releasing) return this.unexpected(link, type, record, sender);
        // Both peers may request release at once (release collision, PS3.8 9.2.2): each RQ gets its RP.
        this.releaseRpsAwaited++;
        this.state = State.Releasing;
        link.forward(pdu, record);
        return;
      case PduType.ReleaseRp:
        if (this.state !== State.Releasing) return this.unexpected(link, type, record, sender);
        link.forward(pdu, record);
        if (--this.releaseRpsAwaited > 0) return;
        this.state = State.Ended;
        this.outcome = 'released';
        this.startCloseTimer();
        return;
      case PduType.Abort: {
        const fields = decodeAbort(pdu);
        this.outcome = 'aborted';
        this.abortCause = fromScu ? 'scu_abort' : 'scp_abort';
        this.reason = `${sender} sent A-ABORT (${describeAbort(fields)})`;
        this.log.info({ from: sender, abort: describeAbort(fields) }, 'association aborted by a peer');
        if (this.state === State.AwaitRq || this.state === State.Connecting) {
          // Nothing upstream to tell yet.
          link.drop(record);
          this.state = State.Aborted;
          this.closeBoth();
          return;
        }
        this.state = State.Aborted;
        link.forward(pdu, record);
        this.startCloseTimer();
        return;
      }
      default:
        // The framer only delivers known types here; P-DATA goes through the link.
        return this.unexpected(link, type, record, sender);
    }
  }

  // ---- Association negotiation ----------------------------------------------------------------

  private onAssociateRq(raw: Buffer, record: InFlight): void {
    clearTimeout(this.artimTimer);
    const rq = this.decode(raw, 'SCU');
    if (!rq) return;
    const peerAddress = this.scu.remoteAddress;
    const decision = this.admission?.admit({ peerAddress, callingAe: callingAe(rq) });
    if (decision instanceof Promise) {
      // Decided elsewhere (--workers: the primary counts for every worker). The RQ waits; anything else
      // the SCU sends before its answer is out of turn (state Connecting: a second RQ or P-DATA is a
      // protocol error, an A-ABORT or a close ends the connection).
      this.state = State.Connecting;
      decision.then(
        (answer) => {
          if (this.finished || this.state !== State.Connecting) return;
          this.state = State.AwaitRq;
          this.associateRq(raw, rq, record, peerAddress, asDecision(answer, this.options.arms));
        },
        (err: Error) => this.onInternalError(this.toScp, err),
      );
      return;
    }
    this.associateRq(raw, rq, record, peerAddress, asDecision(decision, this.options.arms));
  }

  private associateRq(raw: Buffer, rq: AssociatePdu, record: InFlight, peerAddress: string | undefined, decision: Decision): void {
    if (!this.admit(rq, record, peerAddress, decision.refusal) || decision.refusal !== undefined) return;
    // The arm and generation hold for the whole association: every record carries them from here on.
    this.arm = decision.arm;
    this.callingAe = callingAe(rq);
    this.tags = { arm: armCsvLabel(decision.arm), callingAet: this.callingAe, calledAet: calledAe(rq), generation: decision.generation };
    this.tracker.setTags(this.tags);
    this.scuMax = this.maxLengthOf(rq, 'SCU');
    if (!this.usableMax(this.scuMax, 'SCU')) return;
    let out = raw;
    let written = this.scuMax;
    if (this.options.maxPduRq !== undefined) {
      written = this.options.maxPduRq;
      out = rewriteMaxLength(raw, rq, written);
    }
    // What the SCP may send back is bounded by what it was told; the SCU's real limit bounds the proxy.
    this.toScu.announcedMax = written;
    this.log.info(
      {
        peer: `${this.scu.remoteAddress}:${this.scu.remotePort}`,
        callingAe: callingAe(rq),
        calledAe: calledAe(rq),
        maxLength: this.scuMax,
        implementationClassUid: implementationClassUid(rq),
        implementationVersionName: implementationVersionName(rq),
        contexts: presentationContextsRq(rq).map((c) => ({ id: c.id, abstractSyntax: c.abstractSyntax, transferSyntaxes: c.transferSyntaxes })),
        ...legTls(this.scu, undefined),
      },
      'association requested',
    );
    this.toScp.forward(out, record);
    this.state = State.Connecting;
    this.connectUpstream();
  }

  private onAssociateAc(raw: Buffer, record: InFlight): void {
    const ac = this.decode(raw, 'SCP');
    if (!ac) return;
    this.scpMax = this.maxLengthOf(ac, 'SCP');
    if (!this.usableMax(this.scpMax, 'SCP')) return;
    let out = raw;
    let written = this.scpMax;
    if (this.arm !== undefined) {
      written = this.arm.maxPdu;
      out = rewriteMaxLength(raw, ac, written);
    }
    this.toScp.announcedMax = written;
    this.tracker.setLimits(written, this.scpMax);
    this.tracker.setTransferSyntaxes(acceptedTransferSyntaxes(presentationContextsAc(ac)));
    const accepted = acceptedContextTable(presentationContextsAc(ac));
    this.toScp.acceptedContexts = accepted;
    this.toScu.acceptedContexts = accepted;
    this.toScp.refragmenter.configure(this.scpMax, this.options.fragment);
    this.toScu.refragmenter.configure(this.scuMax, this.options.fragment);
    this.state = State.Established;
    this.log.info(
      {
        arm: this.arm?.label,
        maxPdu: {
          toScp: { scpAnnounced: this.scpMax, writtenToScu: written },
          toScu: { scuAnnounced: this.scuMax, writtenToScp: this.toScu.announcedMax },
        },
        fragment: this.options.fragment.mode === 'size' ? this.options.fragment.size : this.options.fragment.mode,
        implementationClassUid: implementationClassUid(ac),
        implementationVersionName: implementationVersionName(ac),
        contexts: presentationContextsAc(ac).map((c) =>
          c.result === 0 ? { id: c.id, result: 'accepted', transferSyntax: c.transferSyntax } : { id: c.id, result: contextResultName(c.result) },
        ),
        ...legTls(this.scu, this.scp),
      },
      'association negotiated',
    );
    this.toScu.forward(out, record);
  }

  private decode(raw: Buffer, sender: string): AssociatePdu | undefined {
    try {
      return decodeAssociate(raw);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.fail(`${sender} sent ${err.message}`, err.code, err.reason);
      return undefined;
    }
  }

  private maxLengthOf(pdu: AssociatePdu, sender: string): number {
    const value = maxLength(pdu);
    if (value === undefined) {
      this.log.warn({ from: sender }, 'no Maximum Length sub-item: treated as no maximum (0)');
      return 0;
    }
    return value;
  }

  /** A Maximum Length of 1..7 leaves no room for a fragment: a protocol error (A-ABORT, reason 6). */
  private usableMax(value: number, sender: string): boolean {
    if (value === 0 || value >= MIN_USABLE_MAX_LENGTH) return true;
    this.fail(
      `${sender} sent Maximum Length ${value}: no P-DATA-TF can carry data within it (${MIN_USABLE_MAX_LENGTH} at least)`,
      'max-length-too-small',
      AbortReason.InvalidPduParameterValue,
    );
    return false;
  }

  private connectUpstream(): void {
    const { host, port } = this.options.upstream;
    // Plain TCP, or TLS (--upstream-tls): then the connect timeout covers the handshake too.
    const { socket: scp, ready } = connectUpstream(this.options.upstream, this.options.upstreamTls);
    this.scp = scp;
    this.scpClosed = false;
    let tcpConnected = false;
    scp.once('connect', () => (tcpConnected = true));
    this.scu.pause();
    this.connectTimer = setTimeout(() => {
      if (tcpConnected && this.state === State.Connecting) {
        this.upstreamTlsFailed({ reason: 'timeout', detail: `no TLS handshake within ${this.options.connectTimeoutMs} ms (--connect-timeout)` });
      } else {
        this.upstreamUnavailable(`no connection to ${host}:${port} within ${this.options.connectTimeoutMs} ms`);
      }
      scp.destroy();
    }, this.options.connectTimeoutMs);
    scp.once(ready, () => {
      clearTimeout(this.connectTimer);
      if (this.state !== State.Connecting) {
        scp.destroy();
        return;
      }
      this.toScu.readTap = tapSocket(this.capture, 'scp', scp);
      this.state = State.AwaitAc;
      this.upstreamConnected = true;
      this.toScu.attachSource(scp);
      this.toScp.attachDest(scp);
      this.scu.resume();
    });
    scp.on('end', () => this.onLegEnd('scp'));
    scp.on('error', (err) => {
      if (this.state === State.Connecting) {
        clearTimeout(this.connectTimer);
        if (ready === 'secureConnect' && tcpConnected) {
          this.upstreamTlsFailed(describeTlsError(err));
          return;
        }
        this.upstreamUnavailable(`${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
      } else {
        this.onLegError('scp', err);
      }
    });
    scp.on('close', () => this.onLegClose('scp'));
  }

  /** Connected, then the TLS handshake failed: one warn line with the reason, counted; the SCU gets A-ASSOCIATE-RJ. */
  private upstreamTlsFailed(failure: { reason: TlsFailureReason; detail: string }): void {
    const upstream = formatEndpoint(this.options.upstream);
    this.tlsFailed('scp', failure);
    this.upstreamUnavailable(`${upstream}: TLS handshake failed (${failure.reason}: ${failure.detail})`);
  }

  /** One warn line and a metric for a failed TLS handshake on one leg. */
  private tlsFailed(leg: 'scu' | 'scp', failure: { reason: TlsFailureReason; detail: string }): void {
    const where = leg === 'scp' ? { upstream: formatEndpoint(this.options.upstream) } : { peer: `${this.scu.remoteAddress}:${this.scu.remotePort}` };
    this.log.warn({ leg, ...where, reason: failure.reason, detail: failure.detail }, 'TLS handshake failed: connection closed');
    for (const r of this.tlsRecorders) r.tlsFailure!({ leg, reason: failure.reason });
  }

  private upstreamUnavailable(why: string): void {
    if (this.state !== State.Connecting) return;
    this.state = State.Ended;
    this.outcome = 'rejected';
    this.reason = `upstream unavailable: ${why}`;
    this.log.warn({ reason: this.reason }, 'association rejected: upstream unavailable');
    this.toScu.sendGenerated(encodeUpstreamUnavailableReject());
    this.scu.resume();
    this.toScu.closeOutput();
    this.startCloseTimer();
  }

  // ---- Errors and teardown ---------------------------------------------------------------------

  private unexpected(link: Link, type: number, record: InFlight, sender: string): void {
    link.drop(record);
    this.fail(`${sender} sent ${pduTypeName(type)} in state ${this.state}`, 'unexpected-pdu', AbortReason.UnexpectedPdu);
  }

  /** A protocol error: A-ABORT (source 2, `reason`) to both peers, one warn line, both legs closed. */
  private fail(message: string, code: string, reason: AbortReason): void {
    this.tearDown({
      cause: 'protocol_error',
      reason: `protocol error: ${message}`,
      abortReason: reason,
      logFields: { code, abortReason: ABORT_REASON_NAMES[reason], reason: message },
      logMessage: 'protocol error: association aborted',
    });
  }

  /**
   * The proxy aborts the association: it is marked aborted (outcome, cause, reason), one line is logged, both links stop delivering, each peer still there gets an A-ABORT (service provider) and is
   * half-closed, a lost leg or an upstream not connected yet is closed, and the close timer bounds the rest.
   * Once only: false when the association was aborted already.
   */
  private tearDown(t: Teardown): boolean {
    if (this.state === State.Aborted) return false;
    this.state = State.Aborted;
    this.outcome = 'aborted';
    this.abortCause = t.cause;
    this.reason = t.reason;
    this.log[t.logLevel ?? 'warn'](t.logFields, t.logMessage);
    this.toScp.stop();
    this.toScu.stop();
    const abort = encodeAbort(AbortSource.ServiceProvider, t.abortReason);
    if (t.lost) {
      const lost = t.lost === 'scu' ? this.scu : this.scp;
      if (lost && t.resetLost) resetOrDestroy(lost);
      else lost?.destroy();
    }
    if (t.lost !== 'scu') this.abortLeg(this.toScu, this.scu, abort);
    if (t.lost !== 'scp') {
      if (this.scp && this.upstreamConnected) this.abortLeg(this.toScp, this.scp, abort);
      else this.scp?.destroy();
    }
    this.startCloseTimer();
    return true;
  }

  /** Send A-ABORT toward one peer and half-close; if a PDU is half written, the abort cannot be framed: reset (RST). */
  private abortLeg(link: Link, socket: Socket, abort: Buffer): void {
    if (socket.destroyed) return;
    // Half-close once the A-ABORT is written (after what a shaped link still holds).
    if (link.sendGenerated(abort)) link.closeOutput();
    else resetOrDestroy(socket);
  }

  private onLegEnd(leg: Leg): void {
    const other = leg === 'scu' ? this.toScp : this.toScu;
    switch (this.state) {
      case State.AwaitRq:
      case State.Connecting:
        this.outcome = 'closed';
        this.reason ??= `${leg.toUpperCase()} closed before the association was requested`;
        this.closeBoth();
        return;
      case State.AwaitAc:
      case State.Established:
      case State.Releasing:
        this.lostLeg(leg, 'closed the connection');
        return;
      case State.Ended:
      case State.Aborted:
        // Normal end of an association: pass the FIN on (half-close).
        other.endOutput();
        return;
    }
  }

  private onLegError(leg: Leg, err: Error): void {
    const code = (err as NodeJS.ErrnoException).code ?? err.message;
    // TLS 1.3: a server checks the client's certificate after the client has finished its handshake, so a
    // refusal (an alert) arrives as an error on a connection that looked established.
    if (code.startsWith('ERR_SSL_') && this.state === State.AwaitAc) this.tlsFailed(leg, describeTlsError(err));
    if (this.state === State.Ended || this.state === State.Aborted) {
      this.log.debug({ leg, err: code }, 'socket error after the association ended');
      this.closeBoth();
      return;
    }
    this.lostLeg(leg, `failed (${code})`);
  }

  /** One leg went away while the association was live: A-ABORT to the other, then close both. */
  private lostLeg(leg: Leg, what: string): void {
    const reason = `${leg.toUpperCase()} ${what} during the association`;
    this.tearDown({
      cause: 'connection_lost',
      reason,
      abortReason: AbortReason.NotSpecified,
      lost: leg,
      logFields: { leg, reason },
      logMessage: 'connection lost: association aborted',
    });
  }

  private onLegClose(leg: Leg): void {
    if (leg === 'scu') this.scuClosed = true;
    else this.scpClosed = true;
    if (leg === 'scp' && this.state === State.Connecting) return; // upstreamUnavailable handles it
    if (this.scuClosed && this.scpClosed) this.finish();
    else if (this.state !== State.Ended && this.state !== State.Aborted && this.state !== State.AwaitRq) {
      // A full close without a FIN first (reset): same as losing the leg.
      this.lostLeg(leg, 'closed the connection');
    }
  }

  /** Bound how long the proxy waits for the peers to close after the association is over (ARTIM). */
  private startCloseTimer(): void {
    if (this.closeTimer) return;
    this.closeTimer = setTimeout(() => {
      this.log.debug('close timeout: closing both connections');
      this.closeBoth();
    }, this.options.closeTimeoutMs);
    this.closeTimer.unref();
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
    if (this.state === State.Ended || this.state === State.Aborted || this.state === State.AwaitRq) {
      this.closeBoth();
      return false;
    }
    return this.tearDown({
      cause,
      reason: why,
      abortReason: AbortReason.NotSpecified,
      logFields: { reason: why },
      logMessage: 'association aborted by the proxy',
    });
  }

  // ---- Admission, timers, drain ---------------------------------------------------------------------

  /** Ask the server; a refused RQ gets the server's A-ASSOCIATE-RJ and the connection is closed. */
  private admit(rq: AssociatePdu, record: InFlight, peerAddress: string | undefined, refusal: Refusal | undefined): boolean {
    this.requested = true;
    this.accepted = !refusal;
    this.emit({ phase: 'requested', assoc: this.id, admitted: this.accepted });
    if (!refusal) {
      this.admitted = this.admission !== undefined;
      if (this.options.idleTimeoutMs > 0) {
        this.scu.setTimeout(this.options.idleTimeoutMs, () => this.onIdle());
      }
      return true;
    }
    this.toScp.drop(record);
    this.state = State.Ended;
    this.outcome = 'rejected';
    this.reason = `rejected by the proxy: ${refusal.reason}`;
    // Peer strings are values of fields, never part of the message or of a key.
    this.log.warn(
      { code: refusal.code, reason: refusal.reason, peer: peerAddress, callingAe: callingAe(rq), calledAe: calledAe(rq), result: decodeReject(refusal.reject) },
      'association rejected by the proxy',
    );
    this.toScu.sendGenerated(refusal.reject);
    this.toScu.closeOutput();
    this.startCloseTimer();
    return false;
  }

  private onArtimExpired(): void {
    if (this.state !== State.AwaitRq || this.finished) return;
    this.state = State.Ended;
    this.outcome = 'closed';
    this.reason = `no A-ASSOCIATE-RQ within ${this.options.artimTimeoutMs} ms (ARTIM)`;
    this.log.warn({ reason: this.reason, bytesIn: this.toScp.counters.bytesIn }, 'connection closed: no association requested');
    this.closeBoth();
  }

  /** The SCU connection saw no traffic either way for --idle-timeout: abort the association. */
  private onIdle(): void {
    if (this.state !== State.AwaitAc && this.state !== State.Established && this.state !== State.Releasing) return;
    this.abort(`idle: nothing sent or received for ${this.options.idleTimeoutMs} ms (--idle-timeout)`, 'idle_timeout');
  }

  /** True while the connection has not sent an A-ASSOCIATE-RQ yet. */
  get awaitingRq(): boolean {
    return this.state === State.AwaitRq;
  }

  /** Bytes received from the SCU so far. */
  get bytesFromScu(): number {
    return this.toScp.counters.bytesIn;
  }

  /** Close a connection that has not asked for an association (drain, or too many such connections). */
  closeBeforeRq(why: string): void {
    if (this.state !== State.AwaitRq || this.finished) return;
    this.state = State.Ended;
    this.outcome = 'closed';
    this.reason = why;
    this.log.info({ reason: why }, 'connection closed before an association was requested');
    this.closeBoth();
  }

  /** Close both connections now, whatever the state (after a second signal, once the A-ABORTs had their chance). */
  destroy(): void {
    this.closeBoth();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.closeTimer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.artimTimer);
    this.toScp.abandon();
    this.toScu.abandon();
    this.tracker.close();
    this.emit({
      phase: 'ended',
      assoc: this.id,
      requested: this.requested,
      admitted: this.accepted,
      outcome: this.outcome,
      abort: this.outcome === 'aborted' ? (this.abortCause ?? 'connection_lost') : undefined,
    });
    // The server first (--workers: the primary frees the association's slot), then the line that says it is
    // closed: whoever reads the line may count on the slot being free.
    this.onDone(this);
    const up = this.toScp.counters;
    const down = this.toScu.counters;
    this.log.info(
      {
        durationMs: Math.round(performance.now() - this.t0),
        outcome: this.outcome,
        reason: this.reason,
        toScp: { bytesIn: up.bytesIn, pdusIn: up.pdusIn, bytesOut: up.bytesOut, pdusOut: up.pdusOut, violations: up.violations, largestPduIn: this.toScp.largestPduIn },
        toScu: { bytesIn: down.bytesIn, pdusIn: down.pdusIn, bytesOut: down.bytesOut, pdusOut: down.pdusOut, violations: down.violations, largestPduIn: this.toScu.largestPduIn },
        ...timeSplitSummary(this.tracker.totals, this.tracker.undecodable),
      },
      'association closed',
    );
    if (up.violations + down.violations > 0) {
      this.log.warn({ toScp: up.violations, toScu: down.violations }, 'peers sent PDUs over the Maximum Length announced to them; repaired by re-fragmenting');
    }
  }

  /**
   * How the association ended, for the experiment's guard: its arm, calling AE title and result (ok,
   * failed); undefined without an arm or when the end says nothing about the arm (src/experiment/outcome.ts).
   * Read once the session is done.
   */
  get experimentOutcome(): { arm: Arm; callingAe: string; result: GuardResult } | undefined {
    if (this.arm === undefined || !this.finished) return undefined;
    const result = guardResult({
      outcome: this.outcome,
      abort: this.outcome === 'aborted' ? (this.abortCause ?? 'connection_lost') : undefined,
      rejectedBy: this.outcome !== 'rejected' ? undefined : this.rejectedBySCP ? 'scp' : 'proxy',
      failedStatuses: this.failedStatuses,
    });
    return result === undefined ? undefined : { arm: this.arm, callingAe: this.callingAe, result };
  }

  private emit(event: AssociationEvent): void {
    for (const recorder of this.associationRecorders) recorder.association!(event);
  }
}

function describeReject(pdu: Buffer): string {
  const { result, source, reason } = decodeReject(pdu);
  return `A-ASSOCIATE-RJ result ${result} source ${source} reason ${reason}`;
}

/** The transfer syntax of each accepted presentation context, by id. */
function acceptedTransferSyntaxes(contexts: ReadonlyArray<{ id: number; result: number; transferSyntax?: string | undefined }>): Map<number, string> {
  const out = new Map<number, string>();
  for (const c of contexts) if (c.result === 0 && c.transferSyntax !== undefined) out.set(c.id, c.transferSyntax);
  return out;
}

/** Accepted presentation context ids as a 256-entry table (1 = accepted) for the per-PDV check. */
function acceptedContextTable(contexts: ReadonlyArray<{ id: number; result: number }>): Uint8Array {
  const table = new Uint8Array(256);
  for (const c of contexts) if (c.result === 0) table[c.id] = 1;
  return table;
}

function contextResultName(result: number): string {
  return ['accepted', 'user-rejection', 'no-reason', 'abstract-syntax-not-supported', 'transfer-syntaxes-not-supported'][result] ?? `result-${result}`;
}

/** `tls: { scu: {...}, scp: {...} }` for the legs that use TLS: version, cipher suite, peer certificate subject. */
function legTls(scu: Socket, scp: Socket | undefined): { tls?: Record<string, unknown> } {
  const out: Record<string, unknown> = {};
  const a = tlsFields(scu);
  if (a) out.scu = a;
  const b = tlsFields(scp);
  if (b) out.scp = b;
  return Object.keys(out).length > 0 ? { tls: out } : {};
}
