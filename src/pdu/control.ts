// The fixed-size PDUs: A-ASSOCIATE-RJ (PS3.8 9.3.4), A-RELEASE-RQ/RP (9.3.6, 9.3.7), A-ABORT (9.3.8).
// Each is 10 bytes: header with PDU-length 4, then reserved, and three one-byte fields (or reserved).

import type { AbortReason } from './constants.js';
import { ABORT_REASON_NAMES, AbortSource, FIXED_PDU_BODY_LENGTH, FIXED_PDU_LENGTH, PduType, RejectReasonPresentation, RejectResult, RejectSource } from './constants.js';

/** Byte offsets inside a 10-byte fixed PDU. */
const RESULT_OFFSET = 7; // A-ASSOCIATE-RJ result
const SOURCE_OFFSET_RJ = 8;
const REASON_OFFSET_RJ = 9;
const SOURCE_OFFSET_ABORT = 8;
const REASON_OFFSET_ABORT = 9;

function fixedPdu(type: PduType): Buffer {
  const pdu = Buffer.alloc(FIXED_PDU_LENGTH);
  pdu[0] = type;
  pdu.writeUInt32BE(FIXED_PDU_BODY_LENGTH, 2);
  return pdu;
}

export function encodeAbort(source: AbortSource, reason: AbortReason): Buffer {
  const pdu = fixedPdu(PduType.Abort);
  pdu[SOURCE_OFFSET_ABORT] = source;
  pdu[REASON_OFFSET_ABORT] = reason;
  return pdu;
}

export function encodeReject(result: RejectResult, source: RejectSource, reason: number): Buffer {
  const pdu = fixedPdu(PduType.AssociateRj);
  pdu[RESULT_OFFSET] = result;
  pdu[SOURCE_OFFSET_RJ] = source;
  pdu[REASON_OFFSET_RJ] = reason;
  return pdu;
}

/** What the proxy sends an SCU when the upstream cannot be reached: transient, provider (presentation), congestion. */
export function encodeUpstreamUnavailableReject(): Buffer {
  return encodeReject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, RejectReasonPresentation.TemporaryCongestion);
}

export function encodeReleaseRq(): Buffer {
  return fixedPdu(PduType.ReleaseRq);
}

export function encodeReleaseRp(): Buffer {
  return fixedPdu(PduType.ReleaseRp);
}

export interface AbortFields {
  source: number;
  reason: number;
}

export function decodeAbort(pdu: Buffer): AbortFields {
  return { source: pdu[SOURCE_OFFSET_ABORT] ?? 0, reason: pdu[REASON_OFFSET_ABORT] ?? 0 };
}

export interface RejectFields {
  result: number;
  source: number;
  reason: number;
}

export function decodeReject(pdu: Buffer): RejectFields {
  return { result: pdu[RESULT_OFFSET] ?? 0, source: pdu[SOURCE_OFFSET_RJ] ?? 0, reason: pdu[REASON_OFFSET_RJ] ?? 0 };
}

/** A readable label for logs, e.g. "service-provider: unexpected-PDU". */
export function describeAbort(fields: AbortFields): string {
  const source = fields.source === AbortSource.ServiceUser ? 'service-user' : fields.source === AbortSource.ServiceProvider ? 'service-provider' : `source-${fields.source}`;
  const reason = fields.source === AbortSource.ServiceProvider ? (ABORT_REASON_NAMES[fields.reason] ?? `reason-${fields.reason}`) : `reason-${fields.reason}`;
  return `${source}: ${reason}`;
}
