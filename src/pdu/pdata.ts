// P-DATA-TF building blocks (PS3.8 9.3.5, Annex E).

import { MCH_COMMAND, MCH_LAST, PDU_HEADER_LENGTH, PDV_HEADER_LENGTH, PDV_LENGTH_LENGTH, PduType, UINT32_MAX } from './constants.js';

/** Bytes before the fragment of a P-DATA-TF that carries one PDV: PDU header (6) + PDV header (6). */
export const SINGLE_PDV_OVERHEAD = PDU_HEADER_LENGTH + PDV_HEADER_LENGTH; // 12

/** The PDU-length field of a P-DATA-TF carrying one PDV with a fragment of `fragmentLength` bytes. */
export function singlePdvPduLength(fragmentLength: number): number {
  return PDV_LENGTH_LENGTH + 2 + fragmentLength;
}

/**
 * The smallest Maximum Length that lets a P-DATA-TF carry data: one PDV header (6) and an even fragment of
 * 2 bytes. PS3.8 sets no minimum, but under 8 only empty (or odd 1-byte) fragments fit, and no DIMSE
 * message can be sent: the proxy aborts an association announcing 1..7 (A-ABORT reason 6).
 */
export const MIN_USABLE_MAX_LENGTH = PDV_HEADER_LENGTH + 2; // 8

/**
 * The largest even fragment that fits one PDV in a PDU within `maxLength` (0 = no maximum → Infinity):
 * floor((L - 6) / 2) * 2. A limit of 1..7 has no room for one: RangeError.
 */
export function fragmentSizeFor(maxLength: number): number {
  if (maxLength === 0) return Infinity;
  if (maxLength < MIN_USABLE_MAX_LENGTH) throw new RangeError(`Maximum Length ${maxLength} cannot carry a fragment (${MIN_USABLE_MAX_LENGTH} at least)`);
  return Math.floor((maxLength - PDV_HEADER_LENGTH) / 2) * 2;
}

/** A fresh 12-byte header: P-DATA-TF header plus one PDV header for a fragment of `fragmentLength` bytes. */
export function singlePdvHeader(fragmentLength: number, contextId: number, mch: number): Buffer {
  const header = Buffer.allocUnsafe(SINGLE_PDV_OVERHEAD);
  header[0] = PduType.PDataTf;
  header[1] = 0;
  header.writeUInt32BE(singlePdvPduLength(fragmentLength), 2);
  header.writeUInt32BE(fragmentLength + 2, PDU_HEADER_LENGTH);
  header[PDU_HEADER_LENGTH + 4] = contextId;
  header[PDU_HEADER_LENGTH + 5] = mch;
  return header;
}

/** Encode a whole P-DATA-TF from PDVs (tests and the raw sender use this; the proxy streams instead). */
export function encodePData(pdvs: ReadonlyArray<{ contextId: number; command: boolean; last: boolean; fragment: Buffer }>): Buffer {
  let length = 0;
  for (const p of pdvs) length += PDV_HEADER_LENGTH + p.fragment.length;
  const out = Buffer.allocUnsafe(PDU_HEADER_LENGTH + length);
  out[0] = PduType.PDataTf;
  out[1] = 0;
  out.writeUInt32BE(length, 2);
  let pos = PDU_HEADER_LENGTH;
  for (const p of pdvs) {
    out.writeUInt32BE(p.fragment.length + 2, pos);
    out[pos + 4] = p.contextId;
    out[pos + 5] = (p.command ? MCH_COMMAND : 0) | (p.last ? MCH_LAST : 0);
    pos += PDV_HEADER_LENGTH;
    pos += p.fragment.copy(out, pos);
  }
  return out;
}

/** One fragment of a message stream: `length` bytes at `offset`; `last` on the one that ends the stream. */
export interface PlannedFragment {
  offset: number;
  length: number;
  last: boolean;
}

/**
 * The largest even fragment whose single-PDV P-DATA-TF still has a PDU-length that a UInt32 can carry:
 * the limit "no maximum" (0) leaves (PS3.8 9.3.5: the PDU-length field is 4 bytes).
 */
export const MAX_FRAGMENT_UINT32 = Math.floor((UINT32_MAX - PDV_HEADER_LENGTH) / 2) * 2;

/**
 * How a sender cuts a stream of `total` bytes (a command set or a data set) for a receiver whose Maximum
 * Length is `maxLength` (0 = no maximum): one PDV per P-DATA-TF, every fragment but the last of
 * fragmentSizeFor(maxLength) bytes, so each of those PDUs has a PDU-length of exactly `maxLength` when it
 * is even; with 0, one fragment (the whole stream) unless it is over 4 GiB. An empty stream is one empty
 * fragment (it still needs its last-fragment bit).
 */
export function fragmentPlan(total: number, maxLength: number): PlannedFragment[] {
  const size = Math.min(fragmentSizeFor(maxLength), MAX_FRAGMENT_UINT32);
  if (total === 0) return [{ offset: 0, length: 0, last: true }];
  const plan: PlannedFragment[] = [];
  for (let offset = 0; offset < total; offset += size) {
    const length = Math.min(size, total - offset);
    plan.push({ offset, length, last: offset + length === total });
  }
  return plan;
}

/**
 * Every 12-byte header (P-DATA-TF + PDV) of a plan, in one buffer: header i is bytes [12 i, 12 i + 12). A
 * sender writes header views and fragment views of its data in turn, without copying either.
 */
export function planHeaders(plan: readonly PlannedFragment[], contextId: number, command: boolean): Buffer {
  const out = Buffer.allocUnsafe(plan.length * SINGLE_PDV_OVERHEAD);
  for (const [i, f] of plan.entries()) {
    const at = i * SINGLE_PDV_OVERHEAD;
    out[at] = PduType.PDataTf;
    out[at + 1] = 0;
    out.writeUInt32BE(singlePdvPduLength(f.length), at + 2);
    out.writeUInt32BE(f.length + 2, at + PDU_HEADER_LENGTH);
    out[at + PDU_HEADER_LENGTH + 4] = contextId;
    out[at + PDU_HEADER_LENGTH + 5] = (command ? MCH_COMMAND : 0) | (f.last ? MCH_LAST : 0);
  }
  return out;
}
