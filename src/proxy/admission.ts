// Which A-ASSOCIATE-RQs the proxy lets through, and what it answers the others (PS3.8 9.3.4). Decided
// when the RQ arrives, so every refusal is an A-ASSOCIATE-RJ replying to an RQ; the upstream is never
// contacted for a refused association.
//
//   peer address not in --allow-peer     -> RJ permanent (1), service-user (1), calling AE not recognized (3)
//   calling AE not in --allow-calling-aet -> RJ permanent (1), service-user (1), calling AE not recognized (3)
//   the proxy is draining (SIGTERM)       -> RJ transient (2), provider presentation (3), temporary congestion (1)
//   --max-associations reached            -> RJ transient (2), provider presentation (3), local limit exceeded (2)

import type { PeerRule } from '../config/access.js';
import { aeAllowed, peerMatcher } from '../config/access.js';
import { RejectReasonPresentation, RejectReasonUser, RejectResult, RejectSource } from '../pdu/constants.js';
import { encodeReject } from '../pdu/control.js';
import type { Arm } from '../experiment/arms.js';
import type { GuardResult } from '../experiment/outcome.js';

export interface AdmissionRequest {
  /** The SCU's address as the socket reports it (undefined if the socket is already gone). */
  peerAddress: string | undefined;
  callingAe: string;
}

export type RefusalCode = 'peer-not-allowed' | 'calling-ae-not-allowed' | 'shutting-down' | 'max-associations';

export interface Refusal {
  code: RefusalCode;
  /** For the log line. */
  reason: string;
  /** The A-ASSOCIATE-RJ to send the SCU. */
  reject: Buffer;
}

/**
 * The decision on one A-ASSOCIATE-RQ (CONTRACTS.md): a refusal, or admitted with its arm (undefined without
 * --max-pdu) and the generation of the settings it runs under. Neither changes for the association after.
 */
export type Decision = { refusal: Refusal } | { refusal?: undefined; arm: Arm | undefined; generation: number };

/** How an association on an arm ended, as a relay reports it to the control plane (for the guard). */
export interface OutcomeWire {
  /** The arm's index in the route's --max-pdu list. */
  arm: number;
  result: GuardResult;
}

/** The session's view of the control plane: asked once per RQ; an admitted association is counted until it closes. */
export interface Admission {
  /** The decision (a promise: the control plane may be in another process, --workers). */
  admit(request: AdmissionRequest): Promise<Decision>;
}

export interface AdmissionPolicy {
  allowCallingAet?: readonly string[] | undefined;
  allowPeer?: readonly PeerRule[] | undefined;
  maxAssociations: number;
}

const notRecognized = (): Buffer => encodeReject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReasonUser.CallingAeNotRecognized);

/** Pure decision: no counting here (the server counts), so it is easy to test. */
export class AdmissionRules {
  private readonly peerAllowed: ((address: string | undefined) => boolean) | undefined;
  private readonly aets: readonly string[] | undefined;
  private readonly max: number;

  constructor(policy: AdmissionPolicy) {
    this.peerAllowed = policy.allowPeer ? peerMatcher(policy.allowPeer) : undefined;
    this.aets = policy.allowCallingAet;
    this.max = policy.maxAssociations;
  }

  decide(request: AdmissionRequest, state: { draining: boolean; associations: number }): Refusal | undefined {
    if (this.peerAllowed && !this.peerAllowed(request.peerAddress)) {
      return { code: 'peer-not-allowed', reason: 'peer address not in --allow-peer', reject: notRecognized() };
    }
    if (this.aets && !aeAllowed(this.aets, request.callingAe)) {
      return { code: 'calling-ae-not-allowed', reason: 'calling AE title not in --allow-calling-aet', reject: notRecognized() };
    }
    if (state.draining) {
      return {
        code: 'shutting-down',
        reason: 'the proxy is shutting down',
        reject: encodeReject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, RejectReasonPresentation.TemporaryCongestion),
      };
    }
    if (this.max > 0 && state.associations >= this.max) {
      return {
        code: 'max-associations',
        reason: `${state.associations} associations in flight (--max-associations ${this.max})`,
        reject: encodeReject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, RejectReasonPresentation.LocalLimitExceeded),
      };
    }
    return undefined;
  }
}
