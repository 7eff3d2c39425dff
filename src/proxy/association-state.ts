// The states of an association seen from the middle (PS3.8 9.2), which control PDU each state lets
// through from which peer, and the association's status (state, outcome, reason). Pure: the session
// (session.ts) acts on it.

import { PduType } from '../pdu/constants.js';
import type { AbortCause, AssociationEvent, AssociationOutcome, RejectionSource } from '../events/events.js';

/** The states of an association seen from the middle; each value is the name logs and messages use. */
export const State = {
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
export type State = (typeof State)[keyof typeof State];

/**
 * Whether a control PDU of `type` from the SCU (`fromScu`) or the SCP is in turn in `state`. An A-ABORT is
 * in turn in every state; P-DATA-TF is the link's (dataAllowed), not a control PDU.
 */
export function controlPduInTurn(state: State, type: number, fromScu: boolean): boolean {
  switch (type) {
    case PduType.AssociateRq:
      return fromScu && state === State.AwaitRq;
    case PduType.AssociateAc:
    case PduType.AssociateRj:
      return !fromScu && state === State.AwaitAc;
    case PduType.ReleaseRq:
      return state === State.Established || state === State.Releasing;
    case PduType.ReleaseRp:
      return state === State.Releasing;
    case PduType.Abort:
      return true;
    default:
      return false;
  }
}

/** P-DATA-TF may flow. */
export function dataAllowed(state: State): boolean {
  return state === State.Established || state === State.Releasing;
}

/** The association is over (ended or aborted): what is left is closing the connections. */
export function isOver(state: State): boolean {
  return state === State.Ended || state === State.Aborted;
}

/**
 * Where one association stands and how it turned out so far: its state, the outcome and reason the summary
 * line and the 'ended' event report, and the release handshake in progress. No sockets: the session
 * drives it.
 */
export class AssociationStatus {
  state: State = State.AwaitRq;
  outcome: AssociationOutcome = 'closed';
  /** The summary's reason. */
  reason: string | undefined;
  /** Why it was aborted, in the metrics' fixed vocabulary (set with outcome 'aborted'). */
  abortCause: AbortCause | undefined;
  /** Who rejected it (set with outcome 'rejected'). */
  private rejectedBy: RejectionSource | undefined;
  /** A well-formed A-ASSOCIATE-RQ arrived (admitted or not) ... */
  private requested = false;
  /** ... and was not refused by the proxy's own rules. */
  private accepted = false;
  /** A-RELEASE-RQs forwarded and not yet answered (2 during a release collision). */
  private releaseRpsAwaited = 0;

  /** The association ended without an abort: refused, released, or the connection closed before it began. */
  end(outcome: AssociationOutcome, reason: string | undefined = this.reason): void {
    this.state = State.Ended;
    this.outcome = outcome;
    this.reason = reason;
  }

  /** Rejected: by the SCP (its A-ASSOCIATE-RJ), the proxy's admission rules, or the proxy for an unreachable SCP. */
  reject(by: RejectionSource, reason: string): void {
    this.end('rejected', reason);
    this.rejectedBy = by;
  }

  /** Aborted (by a peer, or by the proxy: then once only, see Session.tearDown). */
  abort(cause: AbortCause, reason: string): void {
    this.state = State.Aborted;
    this.outcome = 'aborted';
    this.abortCause = cause;
    this.reason = reason;
  }

  /** An A-RELEASE-RQ was forwarded (both peers may request release at once: each RQ gets its RP, PS3.8 9.2.2). */
  releaseRequested(): void {
    this.releaseRpsAwaited++;
    this.state = State.Releasing;
  }

  /** An A-RELEASE-RP was forwarded; true when it was the last one awaited (the association is released). */
  releaseAnswered(): boolean {
    if (--this.releaseRpsAwaited > 0) return false;
    this.end('released');
    return true;
  }

  /** The A-ASSOCIATE-RQ was decided on: accepted, or refused by the proxy's own rules. */
  requestedEvent(assoc: number, accepted: boolean): AssociationEvent {
    this.requested = true;
    this.accepted = accepted;
    return { phase: 'requested', assoc, admitted: accepted };
  }

  endedEvent(assoc: number): AssociationEvent {
    return {
      phase: 'ended',
      assoc,
      requested: this.requested,
      admitted: this.accepted,
      outcome: this.outcome,
      abort: this.outcome === 'aborted' ? (this.abortCause ?? 'connection_lost') : undefined,
      rejectedBy: this.outcome === 'rejected' ? this.rejectedBy : undefined,
    };
  }
}
