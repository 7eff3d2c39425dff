// DIMSE command set decoder (PS3.7 6.3, 9.3, 10.3, E.1). A command set is group 0000 encoded in implicit
// VR little endian, carried in the command PDVs of a message (PS3.8 E.2). Pure: bytes in, fields out.
//
// Only the elements the proxy reports are kept; every other element is skipped by its length. Command
// sets are small (a few hundred bytes); the caller bounds what it accumulates (MAX_COMMAND_SET_LENGTH).

/** Element header in implicit VR LE: group (2), element (2), UInt32 value length (PS3.5 7.1.3). */
const ELEMENT_HEADER_LENGTH = 8;
const COMMAND_GROUP = 0x0000;

/** Larger command sets are not decoded: no real one comes near this (PS3.7 leaves no room for bulk data). */
export const MAX_COMMAND_SET_LENGTH = 64 * 1024;

/** Group 0000 element numbers (PS3.7 E.1). */
export const enum CommandElement {
  AffectedSopClassUid = 0x0002,
  CommandField = 0x0100,
  MessageId = 0x0110,
  MessageIdBeingRespondedTo = 0x0120,
  CommandDataSetType = 0x0800,
  Status = 0x0900,
  AffectedSopInstanceUid = 0x1000,
}

/** CommandDataSetType value meaning "no data set follows" (PS3.7 E.1); any other value means one does. */
export const NO_DATA_SET = 0x0101;

/** Bit set in the CommandField of every response (PS3.7 E.1: 8001 is C-STORE-RSP for 0001 C-STORE-RQ). */
export const RESPONSE_BIT = 0x8000;

/** C-CANCEL-RQ: a request with no MessageID and no response of its own (PS3.7 9.3.2.3). */
export const C_CANCEL_RQ = 0x0fff;

/** Pending statuses (PS3.7 C.4.1.1.4, C.4.2.1.5, C.4.3.1.5): more responses follow. */
export const STATUS_PENDING = 0xff00;
export const STATUS_PENDING_WARNING = 0xff01;

export function isPending(status: number): boolean {
  return status === STATUS_PENDING || status === STATUS_PENDING_WARNING;
}

const COMMAND_NAMES: Readonly<Record<number, string>> = {
  0x0001: 'C-STORE-RQ',
  0x8001: 'C-STORE-RSP',
  0x0010: 'C-GET-RQ',
  0x8010: 'C-GET-RSP',
  0x0020: 'C-FIND-RQ',
  0x8020: 'C-FIND-RSP',
  0x0021: 'C-MOVE-RQ',
  0x8021: 'C-MOVE-RSP',
  0x0030: 'C-ECHO-RQ',
  0x8030: 'C-ECHO-RSP',
  0x0100: 'N-EVENT-REPORT-RQ',
  0x8100: 'N-EVENT-REPORT-RSP',
  0x0110: 'N-GET-RQ',
  0x8110: 'N-GET-RSP',
  0x0120: 'N-SET-RQ',
  0x8120: 'N-SET-RSP',
  0x0130: 'N-ACTION-RQ',
  0x8130: 'N-ACTION-RSP',
  0x0140: 'N-CREATE-RQ',
  0x8140: 'N-CREATE-RSP',
  0x0150: 'N-DELETE-RQ',
  0x8150: 'N-DELETE-RSP',
  0x0fff: 'C-CANCEL-RQ',
};

/** `C-STORE-RQ`, ..., or `0xHHHH` for a CommandField PS3.7 does not define. */
export function commandName(field: number): string {
  return COMMAND_NAMES[field] ?? `0x${field.toString(16).padStart(4, '0')}`;
}

/** What the proxy reads from a command set. Absent elements are undefined. */
export interface CommandSet {
  commandField: number | undefined;
  messageId: number | undefined;
  messageIdBeingRespondedTo: number | undefined;
  /** CommandDataSetType; NO_DATA_SET (0x0101) means no data set follows. */
  dataSetType: number | undefined;
  status: number | undefined;
  affectedSopClassUid: string | undefined;
  affectedSopInstanceUid: string | undefined;
}

/** Why a command set could not be decoded. */
export class CommandSetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandSetError';
  }
}

/** A UI value without its padding (a trailing NUL, PS3.5 9.1; blanks from lax senders). */
function uidValue(bytes: Buffer, start: number, end: number): string {
  let e = end;
  while (e > start && (bytes[e - 1] === 0 || bytes[e - 1] === 0x20)) e--;
  return bytes.toString('latin1', start, e);
}

/** A US value: 2 bytes little endian. Any other length is malformed. */
function usValue(bytes: Buffer, at: number, length: number, name: string): number {
  if (length !== 2) throw new CommandSetError(`${name} has value length ${length}, expected 2 (US)`);
  return bytes.readUInt16LE(at);
}

/**
 * Decode a whole command set (the concatenated fragments of a message's command PDVs). Throws
 * CommandSetError when an element leaves group 0000, a length overruns the bytes, or a US is not 2 bytes.
 */
export function decodeCommandSet(bytes: Buffer): CommandSet {
  const out: CommandSet = {
    commandField: undefined,
    messageId: undefined,
    messageIdBeingRespondedTo: undefined,
    dataSetType: undefined,
    status: undefined,
    affectedSopClassUid: undefined,
    affectedSopInstanceUid: undefined,
  };
  let pos = 0;
  while (pos < bytes.length) {
    if (bytes.length - pos < ELEMENT_HEADER_LENGTH) {
      throw new CommandSetError(`${bytes.length - pos} byte(s) at offset ${pos}: too few for an element header`);
    }
    const group = bytes.readUInt16LE(pos);
    const element = bytes.readUInt16LE(pos + 2);
    const length = bytes.readUInt32LE(pos + 4);
    const value = pos + ELEMENT_HEADER_LENGTH;
    if (group !== COMMAND_GROUP) {
      throw new CommandSetError(`element (${hex4(group)},${hex4(element)}) at offset ${pos} is outside group 0000`);
    }
    if (length > bytes.length - value) {
      throw new CommandSetError(`element (0000,${hex4(element)}) value length ${length} overruns the command set (${bytes.length - value} left)`);
    }
    switch (element) {
      case CommandElement.CommandField:
        out.commandField = usValue(bytes, value, length, 'CommandField');
        break;
      case CommandElement.MessageId:
        out.messageId = usValue(bytes, value, length, 'MessageID');
        break;
      case CommandElement.MessageIdBeingRespondedTo:
        out.messageIdBeingRespondedTo = usValue(bytes, value, length, 'MessageIDBeingRespondedTo');
        break;
      case CommandElement.CommandDataSetType:
        out.dataSetType = usValue(bytes, value, length, 'CommandDataSetType');
        break;
      case CommandElement.Status:
        out.status = usValue(bytes, value, length, 'Status');
        break;
      case CommandElement.AffectedSopClassUid:
        out.affectedSopClassUid = uidValue(bytes, value, value + length);
        break;
      case CommandElement.AffectedSopInstanceUid:
        out.affectedSopInstanceUid = uidValue(bytes, value, value + length);
        break;
      default:
        break; // CommandGroupLength, Priority, MoveDestination, sub-operation counts, ...: skipped
    }
    pos = value + length;
  }
  return out;
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

/** Status as the CSV writes it: 4 lower-case hex digits. */
export function statusHex(status: number): string {
  return hex4(status);
}

// ---- Encoding (the built-in peers' requests and responses) -------------------------------------------

/** DIMSE command fields the built-in peers send or answer (PS3.7 E.1). */
export const C_STORE_RQ = 0x0001;
export const C_STORE_RSP = 0x8001;
export const C_ECHO_RQ = 0x0030;
export const C_ECHO_RSP = 0x8030;
/** CommandDataSetType for "a data set follows" as DCMTK sends it (any value but 0x0101 means that). */
export const DATA_SET_PRESENT = 0x0002;
/** Priority MEDIUM (PS3.7 9.1.1.1.4 / E.1: 0000H). */
export const PRIORITY_MEDIUM = 0x0000;
/** Success (PS3.7 C.4.2.1.4, Annex C.1). */
export const STATUS_SUCCESS = 0x0000;
/** Refused: out of resources (PS3.7 C.4.2.1.4). */
export const STATUS_OUT_OF_RESOURCES = 0xa700;
/** Processing failure (PS3.7 C.1.4). */
export const STATUS_PROCESSING_FAILURE = 0x0110;

/** The fields a command set is built from; absent ones are left out. */
export interface CommandFields {
  commandField: number;
  affectedSopClassUid?: string;
  messageId?: number;
  messageIdBeingRespondedTo?: number;
  priority?: number;
  dataSetType: number;
  status?: number;
  affectedSopInstanceUid?: string;
}

/** Group 0000 element numbers not decoded above but written: CommandGroupLength and Priority (PS3.7 E.1). */
const COMMAND_GROUP_LENGTH = 0x0000;
const PRIORITY = 0x0700;

/**
 * Encode a command set in implicit VR little endian (PS3.7 6.3.1): elements in ascending order, preceded by
 * CommandGroupLength (0000,0000) UL, the byte count of the elements after it. UIDs are padded to an even
 * length with one NUL (PS3.5 9.1).
 */
export function encodeCommandSet(f: CommandFields): Buffer {
  const elements: Array<[number, Buffer]> = [];
  const us = (element: number, value: number | undefined): void => {
    if (value === undefined) return;
    const b = Buffer.alloc(2);
    b.writeUInt16LE(value, 0);
    elements.push([element, b]);
  };
  const ui = (element: number, value: string | undefined): void => {
    if (value === undefined) return;
    const b = Buffer.alloc(value.length + (value.length % 2));
    b.write(value, 0, 'latin1');
    elements.push([element, b]);
  };
  ui(CommandElement.AffectedSopClassUid, f.affectedSopClassUid);
  us(CommandElement.CommandField, f.commandField);
  us(CommandElement.MessageId, f.messageId);
  us(CommandElement.MessageIdBeingRespondedTo, f.messageIdBeingRespondedTo);
  us(PRIORITY, f.priority);
  us(CommandElement.CommandDataSetType, f.dataSetType);
  us(CommandElement.Status, f.status);
  ui(CommandElement.AffectedSopInstanceUid, f.affectedSopInstanceUid);
  const bodyLength = elements.reduce((n, [, v]) => n + ELEMENT_HEADER_LENGTH + v.length, 0);
  const out = Buffer.alloc(ELEMENT_HEADER_LENGTH + 4 + bodyLength);
  let pos = 0;
  const put = (element: number, value: Buffer): void => {
    out.writeUInt16LE(COMMAND_GROUP, pos);
    out.writeUInt16LE(element, pos + 2);
    out.writeUInt32LE(value.length, pos + 4);
    pos += ELEMENT_HEADER_LENGTH;
    pos += value.copy(out, pos);
  };
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(bodyLength, 0);
  put(COMMAND_GROUP_LENGTH, groupLength);
  for (const [element, value] of elements) put(element, value);
  return out;
}
