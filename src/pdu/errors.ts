import { AbortReason } from './constants.js';

/** Every way a peer's bytes can break the protocol, each with exactly one outcome: an A-ABORT with `reason`. */
export type ProtocolErrorCode =
  | 'unknown-pdu-type'
  | 'fixed-pdu-length'
  | 'association-pdu-too-short'
  | 'association-pdu-too-long'
  | 'item-overrun'
  | 'item-too-short'
  | 'pdata-too-short'
  | 'pdv-too-short'
  | 'pdv-overrun'
  | 'pdv-header-truncated'
  | 'unknown-context-id'
  | 'max-length-too-small'
  | 'pdu-over-maximum'
  | 'invalid-command-set'
  | 'unexpected-pdu';

const REASON_BY_CODE: Record<ProtocolErrorCode, AbortReason> = {
  'unknown-pdu-type': AbortReason.UnrecognizedPdu,
  'fixed-pdu-length': AbortReason.InvalidPduParameterValue,
  'association-pdu-too-short': AbortReason.InvalidPduParameterValue,
  'association-pdu-too-long': AbortReason.InvalidPduParameterValue,
  'item-overrun': AbortReason.InvalidPduParameterValue,
  'item-too-short': AbortReason.InvalidPduParameterValue,
  'pdata-too-short': AbortReason.InvalidPduParameterValue,
  'pdv-too-short': AbortReason.InvalidPduParameterValue,
  'pdv-overrun': AbortReason.InvalidPduParameterValue,
  'pdv-header-truncated': AbortReason.InvalidPduParameterValue,
  'unknown-context-id': AbortReason.InvalidPduParameterValue,
  'max-length-too-small': AbortReason.InvalidPduParameterValue,
  'pdu-over-maximum': AbortReason.InvalidPduParameterValue,
  'invalid-command-set': AbortReason.InvalidPduParameterValue,
  'unexpected-pdu': AbortReason.UnexpectedPdu,
};

/** A peer broke PS3.8. The session answers with A-ABORT (source 2, `reason`) to both peers and closes. */
export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  readonly reason: AbortReason;

  constructor(code: ProtocolErrorCode, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
    this.reason = REASON_BY_CODE[code];
  }
}
