// A-ASSOCIATE-RQ / A-ASSOCIATE-AC codec (PS3.8 9.3.2, 9.3.3, Annex D.1).
//
// Decoding builds a generic item tree that keeps every item, known or not, with its reserved byte and
// value bytes, so encode(decode(pdu)) reproduces the PDU byte for byte. Lengths are derived on encode,
// never copied from what was decoded. The proxy itself does not re-encode: it rewrites the Maximum Length
// value in place (rewriteMaxLength) and forwards everything else as received.

import {
  AE_TITLE_LENGTH,
  ASSOC_CALLED_AE_OFFSET,
  ASSOC_CALLING_AE_OFFSET,
  ASSOC_ITEMS_OFFSET,
  ASSOC_MIN_BODY_LENGTH,
  ASSOC_PROTOCOL_VERSION_OFFSET,
  ITEM_HEADER_LENGTH,
  ItemType,
  MAX_LENGTH_VALUE_LENGTH,
  PDU_HEADER_LENGTH,
  PduType,
  UINT32_MAX,
} from './constants.js';
import { ProtocolError } from './errors.js';

/** Item lengths are UInt16 (PS3.8 9.3.2.1). */
const MAX_ITEM_LENGTH = 0xffff;

/** Presentation context items carry 4 bytes of fixed fields before their sub-items (PS3.8 9.3.2.2, 9.3.3.2). */
const PRESENTATION_CONTEXT_HEAD_LENGTH = 4;

/** One item or sub-item. Container items (0x20, 0x21, 0x50) have children; all others are leaves. */
export interface Item {
  type: number;
  /** The reserved byte after the type: sent as 0, never tested, kept as received. */
  reserved: number;
  /**
   * Leaves: the whole value. Containers: the fixed fields before the sub-items (presentation context:
   * id, reserved, result/reason, reserved; user information: empty).
   */
  head: Buffer;
  children?: Item[];
  /** Offset of this item's header in the PDU it was decoded from; absent on items built in code. */
  offset?: number;
}

export interface AssociatePdu {
  type: PduType.AssociateRq | PduType.AssociateAc;
  /** The reserved byte of the PDU header. */
  reserved: number;
  /** Bytes 6..73: protocol version, reserved, called AE, calling AE, 32 reserved bytes. */
  fixed: Buffer;
  items: Item[];
}

export interface PresentationContextRq {
  id: number;
  abstractSyntax: string | undefined;
  transferSyntaxes: string[];
}

export interface PresentationContextAc {
  id: number;
  /** 0 acceptance, 1 user-rejection, 2 no-reason, 3 abstract syntax not supported, 4 transfer syntaxes not supported. */
  result: number;
  /** Only meaningful when result is 0 (PS3.8 9.3.3.2: not to be tested otherwise). */
  transferSyntax: string | undefined;
}

const CONTAINER_HEAD_LENGTH: Readonly<Record<number, number>> = {
  [ItemType.PresentationContextRq]: PRESENTATION_CONTEXT_HEAD_LENGTH,
  [ItemType.PresentationContextAc]: PRESENTATION_CONTEXT_HEAD_LENGTH,
  [ItemType.UserInformation]: 0,
};

function decodeItems(pdu: Buffer, start: number, end: number, where: string): Item[] {
  const items: Item[] = [];
  let pos = start;
  while (pos < end) {
    if (end - pos < ITEM_HEADER_LENGTH) {
      throw new ProtocolError('item-too-short', `${end - pos} stray byte(s) at offset ${pos} in ${where}`);
    }
    const type = pdu[pos]!;
    const reserved = pdu[pos + 1]!;
    const length = pdu.readUInt16BE(pos + 2);
    const valueStart = pos + ITEM_HEADER_LENGTH;
    const valueEnd = valueStart + length;
    if (valueEnd > end) {
      throw new ProtocolError('item-overrun', `item 0x${hex(type)} at offset ${pos} claims ${length} bytes but ${where} has ${end - valueStart} left`);
    }
    const headLength = CONTAINER_HEAD_LENGTH[type];
    if (headLength === undefined) {
      items.push({ type, reserved, head: pdu.subarray(valueStart, valueEnd), offset: pos });
    } else {
      if (length < headLength) {
        throw new ProtocolError('item-too-short', `item 0x${hex(type)} at offset ${pos} is ${length} bytes, needs ${headLength}`);
      }
      const children = decodeItems(pdu, valueStart + headLength, valueEnd, `item 0x${hex(type)} at offset ${pos}`);
      items.push({ type, reserved, head: pdu.subarray(valueStart, valueStart + headLength), children, offset: pos });
    }
    pos = valueEnd;
  }
  return items;
}

/**
 * Decode a whole A-ASSOCIATE-RQ or -AC PDU (header included). The result holds views into `pdu`.
 * Throws ProtocolError when a length is inconsistent or an item overruns its container.
 */
export function decodeAssociate(pdu: Buffer): AssociatePdu {
  const type = pdu[0];
  if (type !== PduType.AssociateRq && type !== PduType.AssociateAc) {
    throw new ProtocolError('unexpected-pdu', `not an A-ASSOCIATE-RQ/AC: type 0x${hex(type ?? 0)}`);
  }
  if (pdu.length < PDU_HEADER_LENGTH) {
    throw new ProtocolError('association-pdu-too-short', `${pdu.length} bytes is shorter than a PDU header`);
  }
  const length = pdu.readUInt32BE(2);
  if (length < ASSOC_MIN_BODY_LENGTH) {
    throw new ProtocolError('association-pdu-too-short', `PDU-length ${length} is below the fixed part (${ASSOC_MIN_BODY_LENGTH})`);
  }
  if (pdu.length !== PDU_HEADER_LENGTH + length) {
    throw new ProtocolError('item-overrun', `PDU-length ${length} does not match the ${pdu.length - PDU_HEADER_LENGTH} bytes given`);
  }
  return {
    type,
    reserved: pdu[1]!,
    fixed: pdu.subarray(PDU_HEADER_LENGTH, ASSOC_ITEMS_OFFSET),
    items: decodeItems(pdu, ASSOC_ITEMS_OFFSET, pdu.length, 'the PDU'),
  };
}

function itemLength(item: Item): number {
  let n = item.head.length;
  for (const child of item.children ?? []) n += ITEM_HEADER_LENGTH + itemLength(child);
  return n;
}

function encodeItemsInto(items: readonly Item[], out: Buffer, pos: number): number {
  for (const item of items) {
    const length = itemLength(item);
    if (length > MAX_ITEM_LENGTH) throw new RangeError(`item 0x${hex(item.type)} is ${length} bytes, over the UInt16 item length`);
    out[pos] = item.type;
    out[pos + 1] = item.reserved;
    out.writeUInt16BE(length, pos + 2);
    pos += ITEM_HEADER_LENGTH;
    pos += item.head.copy(out, pos);
    if (item.children) pos = encodeItemsInto(item.children, out, pos);
  }
  return pos;
}

/** Encode an A-ASSOCIATE-RQ/AC; every length is derived from the content. */
export function encodeAssociate(pdu: AssociatePdu): Buffer {
  if (pdu.fixed.length !== ASSOC_ITEMS_OFFSET - PDU_HEADER_LENGTH) {
    throw new RangeError(`fixed part must be ${ASSOC_ITEMS_OFFSET - PDU_HEADER_LENGTH} bytes, got ${pdu.fixed.length}`);
  }
  let body = pdu.fixed.length;
  for (const item of pdu.items) body += ITEM_HEADER_LENGTH + itemLength(item);
  const out = Buffer.alloc(PDU_HEADER_LENGTH + body);
  out[0] = pdu.type;
  out[1] = pdu.reserved;
  out.writeUInt32BE(body, 2);
  pdu.fixed.copy(out, PDU_HEADER_LENGTH);
  encodeItemsInto(pdu.items, out, ASSOC_ITEMS_OFFSET);
  return out;
}

/** Build the 68-byte fixed part (protocol version 1, AE titles space-padded, reserved bytes zero). */
export function buildFixedPart(calledAe: string, callingAe: string, protocolVersion = 1): Buffer {
  const fixed = Buffer.alloc(ASSOC_ITEMS_OFFSET - PDU_HEADER_LENGTH);
  fixed.writeUInt16BE(protocolVersion, ASSOC_PROTOCOL_VERSION_OFFSET - PDU_HEADER_LENGTH);
  fixed.write(padAe(calledAe), ASSOC_CALLED_AE_OFFSET - PDU_HEADER_LENGTH, AE_TITLE_LENGTH, 'latin1');
  fixed.write(padAe(callingAe), ASSOC_CALLING_AE_OFFSET - PDU_HEADER_LENGTH, AE_TITLE_LENGTH, 'latin1');
  return fixed;
}

function padAe(ae: string): string {
  return ae.slice(0, AE_TITLE_LENGTH).padEnd(AE_TITLE_LENGTH, ' ');
}

// ---- Field accessors -------------------------------------------------------------------------------

export function protocolVersion(pdu: AssociatePdu): number {
  return pdu.fixed.readUInt16BE(ASSOC_PROTOCOL_VERSION_OFFSET - PDU_HEADER_LENGTH);
}

/** AE titles are peer-supplied strings: callers log them as values, never interpret them. */
export function calledAe(pdu: AssociatePdu): string {
  return aeAt(pdu.fixed, ASSOC_CALLED_AE_OFFSET - PDU_HEADER_LENGTH);
}

export function callingAe(pdu: AssociatePdu): string {
  return aeAt(pdu.fixed, ASSOC_CALLING_AE_OFFSET - PDU_HEADER_LENGTH);
}

function aeAt(fixed: Buffer, at: number): string {
  return fixed.toString('latin1', at, at + AE_TITLE_LENGTH).trim();
}

/** A UID value: ASCII, possibly padded with a trailing NUL (PS3.5 9.1) or, from sloppy peers, spaces. */
export function uidString(value: Buffer): string {
  return value.toString('latin1').replace(/[\0 ]+$/, '');
}

export function applicationContext(pdu: AssociatePdu): string | undefined {
  const item = pdu.items.find((i) => i.type === ItemType.ApplicationContext);
  return item ? uidString(item.head) : undefined;
}

export function userInformation(pdu: AssociatePdu): Item | undefined {
  return pdu.items.find((i) => i.type === ItemType.UserInformation);
}

function userSubItem(pdu: AssociatePdu, type: number): Item | undefined {
  return userInformation(pdu)?.children?.find((i) => i.type === type);
}

/**
 * The Maximum Length sub-item (PS3.8 D.1.1) value, or undefined when the PDU carries none.
 * Throws when the sub-item is present but not 4 bytes long.
 */
export function maxLength(pdu: AssociatePdu): number | undefined {
  const item = userSubItem(pdu, ItemType.MaximumLength);
  if (!item) return undefined;
  if (item.head.length !== MAX_LENGTH_VALUE_LENGTH) {
    throw new ProtocolError('item-too-short', `Maximum Length sub-item is ${item.head.length} bytes, must be 4`);
  }
  return item.head.readUInt32BE(0);
}

export function implementationClassUid(pdu: AssociatePdu): string | undefined {
  const item = userSubItem(pdu, ItemType.ImplementationClassUid);
  return item ? uidString(item.head) : undefined;
}

export function implementationVersionName(pdu: AssociatePdu): string | undefined {
  const item = userSubItem(pdu, ItemType.ImplementationVersionName);
  return item ? item.head.toString('latin1').trim() : undefined;
}

export function presentationContextsRq(pdu: AssociatePdu): PresentationContextRq[] {
  return pdu.items
    .filter((i) => i.type === ItemType.PresentationContextRq)
    .map((i) => {
      const children = i.children ?? [];
      const abstract = children.find((c) => c.type === ItemType.AbstractSyntax);
      return {
        id: i.head[0]!,
        abstractSyntax: abstract ? uidString(abstract.head) : undefined,
        transferSyntaxes: children.filter((c) => c.type === ItemType.TransferSyntax).map((c) => uidString(c.head)),
      };
    });
}

export function presentationContextsAc(pdu: AssociatePdu): PresentationContextAc[] {
  return pdu.items
    .filter((i) => i.type === ItemType.PresentationContextAc)
    .map((i) => {
      const ts = (i.children ?? []).find((c) => c.type === ItemType.TransferSyntax);
      return { id: i.head[0]!, result: i.head[2]!, transferSyntax: ts ? uidString(ts.head) : undefined };
    });
}

// ---- Rewriting --------------------------------------------------------------------------------------

/**
 * Return a copy of `raw` (a whole A-ASSOCIATE-RQ/AC) whose Maximum Length is `value`. When the PDU has a
 * Maximum Length sub-item its 4 value bytes are replaced in place and nothing else changes (no length
 * moves). When it has none, one is inserted first in the user information item (created at the end when
 * absent) and the PDU is re-encoded; every other item keeps its bytes. `raw` itself is never written.
 * Throws ProtocolError (item-overrun) when the user information item has no room left for the sub-item.
 */
export function rewriteMaxLength(raw: Buffer, decoded: AssociatePdu, value: number): Buffer {
  if (!Number.isInteger(value) || value < 0 || value > UINT32_MAX) throw new RangeError(`Maximum Length ${value} is not a UInt32`);
  const existing = userSubItem(decoded, ItemType.MaximumLength);
  if (existing && existing.offset !== undefined && existing.head.length === MAX_LENGTH_VALUE_LENGTH) {
    const copy = Buffer.from(raw);
    copy.writeUInt32BE(value, existing.offset + ITEM_HEADER_LENGTH);
    return copy;
  }
  const valueBytes = Buffer.alloc(MAX_LENGTH_VALUE_LENGTH);
  valueBytes.writeUInt32BE(value, 0);
  const maxItem: Item = { type: ItemType.MaximumLength, reserved: 0, head: valueBytes };
  const info = userInformation(decoded);
  if (info) {
    const kept = (info.children ?? []).filter((c) => c.type !== ItemType.MaximumLength);
    const length = itemLength({ ...info, children: [maxItem, ...kept] });
    if (length > MAX_ITEM_LENGTH) {
      // A conformant RQ/AC carries a Maximum Length sub-item; this one has none and no room left for one.
      throw new ProtocolError('item-overrun', `no room for a Maximum Length sub-item: the user information item would be ${length} bytes, over ${MAX_ITEM_LENGTH}`);
    }
  }
  const items = info
    ? decoded.items.map((i) => (i === info ? { ...i, children: [maxItem, ...(i.children ?? []).filter((c) => c.type !== ItemType.MaximumLength)] } : i))
    : [...decoded.items, { type: ItemType.UserInformation, reserved: 0, head: Buffer.alloc(0), children: [maxItem] }];
  return encodeAssociate({ ...decoded, items });
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}
