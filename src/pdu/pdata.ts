// P-DATA-TF building blocks (PS3.8 9.3.5, Annex E).

import { MCH_COMMAND, MCH_LAST, PDU_HEADER_LENGTH, PDV_HEADER_LENGTH, PDV_LENGTH_LENGTH, PduType } from './constants.js';

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
