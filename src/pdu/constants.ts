// PS3.8 upper-layer constants. Offsets are from the first byte of the PDU; all integers are big-endian.

/** PDU types, PS3.8 9.3.1. */
export const enum PduType {
  AssociateRq = 0x01,
  AssociateAc = 0x02,
  AssociateRj = 0x03,
  PDataTf = 0x04,
  ReleaseRq = 0x05,
  ReleaseRp = 0x06,
  Abort = 0x07,
}

export const PDU_TYPE_NAMES: Readonly<Record<number, string>> = {
  0x01: 'A-ASSOCIATE-RQ',
  0x02: 'A-ASSOCIATE-AC',
  0x03: 'A-ASSOCIATE-RJ',
  0x04: 'P-DATA-TF',
  0x05: 'A-RELEASE-RQ',
  0x06: 'A-RELEASE-RP',
  0x07: 'A-ABORT',
};

/** The same names indexed by type (an array: one lookup per PDU on the hot path, kept monomorphic). */
const PDU_TYPE_NAME_LIST: readonly string[] = Array.from({ length: 8 }, (_, type) => PDU_TYPE_NAMES[type] ?? '');

export function pduTypeName(type: number): string {
  const name = type < PDU_TYPE_NAME_LIST.length ? PDU_TYPE_NAME_LIST[type]! : '';
  return name !== '' ? name : `0x${type.toString(16).padStart(2, '0')}`;
}

/** PDU header: type (1), reserved (1), UInt32 length of what follows (PS3.8 9.3.1). */
export const PDU_TYPE_LENGTH = 1;
export const PDU_RESERVED_LENGTH = 1;
export const PDU_LENGTH_LENGTH = 4;
export const PDU_HEADER_LENGTH = PDU_TYPE_LENGTH + PDU_RESERVED_LENGTH + PDU_LENGTH_LENGTH; // 6

/** A-ASSOCIATE-RJ, A-RELEASE-RQ/RP and A-ABORT have a 4-byte variable part (PS3.8 9.3.4, 9.3.6-9.3.8). */
export const FIXED_PDU_BODY_LENGTH = 4;
export const FIXED_PDU_LENGTH = PDU_HEADER_LENGTH + FIXED_PDU_BODY_LENGTH; // 10

/** A-ASSOCIATE-RQ/AC fixed fields (PS3.8 9.3.2, 9.3.3). */
export const ASSOC_PROTOCOL_VERSION_OFFSET = 6;
export const ASSOC_CALLED_AE_OFFSET = 10;
export const ASSOC_CALLING_AE_OFFSET = 26;
export const AE_TITLE_LENGTH = 16;
export const ASSOC_ITEMS_OFFSET = 74;
/** Shortest legal A-ASSOCIATE-RQ/AC PDU-length field: the fixed part with no items. */
export const ASSOC_MIN_BODY_LENGTH = ASSOC_ITEMS_OFFSET - PDU_HEADER_LENGTH; // 68

/** Item and sub-item header: type (1), reserved (1), UInt16 length (PS3.8 9.3.2.1). */
export const ITEM_HEADER_LENGTH = 4;

/** Item types (PS3.8 9.3.2.x, Annex D.3.3.x). */
export const enum ItemType {
  ApplicationContext = 0x10,
  PresentationContextRq = 0x20,
  PresentationContextAc = 0x21,
  AbstractSyntax = 0x30,
  TransferSyntax = 0x40,
  UserInformation = 0x50,
  MaximumLength = 0x51,
  ImplementationClassUid = 0x52,
  AsynchronousOperations = 0x53,
  RoleSelection = 0x54,
  ImplementationVersionName = 0x55,
  SopClassExtendedNegotiation = 0x56,
  SopClassCommonExtendedNegotiation = 0x57,
  UserIdentityRq = 0x58,
  UserIdentityAc = 0x59,
}

/** Maximum Length sub-item (PS3.8 D.1.1): after its header (4), a UInt32 value. */
export const MAX_LENGTH_VALUE_LENGTH = 4;

/** PDV item (PS3.8 9.3.5.1): UInt32 item length, presentation context id (1), message control header (1). */
export const PDV_LENGTH_LENGTH = 4;
export const PDV_HEADER_LENGTH = PDV_LENGTH_LENGTH + 2; // 6
/** The PDV item length counts the context id and the message control header (PS3.8 9.3.5.1). */
export const PDV_MIN_ITEM_LENGTH = 2;
/** Message control header bits (PS3.8 Annex E.2). */
export const MCH_COMMAND = 0x01;
export const MCH_LAST = 0x02;

/** Largest value a UInt32 length or Maximum Length can carry. */
export const UINT32_MAX = 0xffffffff;

/**
 * Association PDUs are decoded whole, so the framer buffers them; this caps that buffer. A C-GET RQ with
 * every storage SOP class is 7-17 KB; 1 MiB leaves a wide margin without trusting the length field.
 */
export const MAX_ASSOCIATION_PDU_LENGTH = 1024 * 1024;

/** A-ASSOCIATE-RJ fields (PS3.8 9.3.4). */
export const enum RejectResult {
  Permanent = 1,
  Transient = 2,
}
export const enum RejectSource {
  ServiceUser = 1,
  ServiceProviderAcse = 2,
  ServiceProviderPresentation = 3,
}
/** Reasons for source 3, service-provider (presentation). */
export const enum RejectReasonPresentation {
  TemporaryCongestion = 1,
  LocalLimitExceeded = 2,
}
/** Reasons for source 1, service-user. */
export const enum RejectReasonUser {
  NoReasonGiven = 1,
  ApplicationContextNotSupported = 2,
  CallingAeNotRecognized = 3,
  CalledAeNotRecognized = 7,
}

/** A-ABORT fields (PS3.8 9.3.8). */
export const enum AbortSource {
  ServiceUser = 0,
  ServiceProvider = 2,
}
export const enum AbortReason {
  NotSpecified = 0,
  UnrecognizedPdu = 1,
  UnexpectedPdu = 2,
  UnrecognizedPduParameter = 4,
  UnexpectedPduParameter = 5,
  InvalidPduParameterValue = 6,
}

export const ABORT_REASON_NAMES: Readonly<Record<number, string>> = {
  0: 'reason-not-specified',
  1: 'unrecognized-PDU',
  2: 'unexpected-PDU',
  4: 'unrecognized-PDU-parameter',
  5: 'unexpected-PDU-parameter',
  6: 'invalid-PDU-parameter-value',
};
