// What the guard counts: each association on an arm ends ok or failed, or is left out when its end says
// nothing about the arm. Failed: a peer aborted it (A-ABORT), broke it (a protocol error, a connection lost
// or a peer stalled mid-association), the SCP rejected it (A-ASSOCIATE-RJ), or a request got a final status
// that is neither success nor warning. Left out: ends the proxy caused (shutdown, --idle-timeout, an
// internal error) or that came before the arm mattered (the upstream unreachable, the proxy's own refusal,
// a connection closed before its A-ASSOCIATE-RQ).

import type { AbortCause, AssociationOutcome, RejectionSource } from '../events/events.js';

export type GuardResult = 'ok' | 'failed';

/** DIMSE Status values (PS3.7 C): success, and warning (0001, Bxxx). Every other final status is a failure. */
const STATUS_SUCCESS = 0x0000;
const STATUS_WARNING = 0x0001;
const WARNING_CLASS_MASK = 0xf000;
const WARNING_CLASS = 0xb000;

/** A final response's Status that is neither success (0000) nor warning (0001, Bxxx). */
export function isFailureStatus(status: number): boolean {
  return status !== STATUS_SUCCESS && status !== STATUS_WARNING && (status & WARNING_CLASS_MASK) !== WARNING_CLASS;
}

/** How an association on an arm ended, as the session saw it. */
export interface AssociationEnd {
  outcome: AssociationOutcome;
  /** Why it was aborted (outcome 'aborted'). */
  abort: AbortCause | undefined;
  /** Who refused it (outcome 'rejected'): the SCP's A-ASSOCIATE-RJ, the proxy's rules, or no upstream. */
  rejectedBy?: RejectionSource | undefined;
  /** Requests whose final status was a failure (isFailureStatus). */
  failedStatuses: number;
}

/** Aborts a peer caused; the others (shutdown, idle_timeout, internal_error) are the proxy's doing. */
const PEER_ABORTS: ReadonlySet<AbortCause> = new Set<AbortCause>(['scu_abort', 'scp_abort', 'protocol_error', 'connection_lost', 'peer_stalled']);

/** ok, failed, or undefined when this end says nothing about the arm. */
export function guardResult(end: AssociationEnd): GuardResult | undefined {
  switch (end.outcome) {
    case 'aborted':
      if (end.abort !== undefined && PEER_ABORTS.has(end.abort)) return 'failed';
      return undefined;
    case 'rejected':
      return end.rejectedBy === 'scp' ? 'failed' : undefined;
    case 'released':
      return end.failedStatuses > 0 ? 'failed' : 'ok';
    case 'closed':
      return undefined;
  }
}
