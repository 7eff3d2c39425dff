// Synthetic P-DATA-TF input for the socket-less benchmarks (bench:codec, bench:messages), and the framer
// handler that feeds it to a re-fragmenter.

import { MCH_LAST, PDU_HEADER_LENGTH, PDV_HEADER_LENGTH } from '../src/pdu/constants.js';
import type { FrameHandler } from '../src/pdu/framer.js';
import type { Refragmenter } from '../src/transform/refragment.js';

/**
 * `count` single-PDV dataset P-DATA-TF PDUs on context 1, each with a `fragment`-byte fragment (bytes 0x11),
 * the last one carrying the last-fragment bit: one buffer, built in place.
 */
export function datasetPdus(count: number, fragment: number): Buffer {
  const pduBytes = PDU_HEADER_LENGTH + PDV_HEADER_LENGTH + fragment;
  const all = Buffer.alloc(count * pduBytes, 0x11);
  for (let i = 0; i < count; i++) {
    const at = i * pduBytes;
    all[at] = 0x04;
    all[at + 1] = 0;
    all.writeUInt32BE(PDV_HEADER_LENGTH + fragment, at + 2);
    all.writeUInt32BE(fragment + 2, at + 6);
    all[at + 10] = 1;
    all[at + 11] = i === count - 1 ? MCH_LAST : 0;
  }
  return all;
}

/** Cut a stream into `chunk`-byte views, as a socket delivers it. */
export function chunked(all: Buffer, chunk: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < all.length; at += chunk) chunks.push(all.subarray(at, Math.min(all.length, at + chunk)));
  return chunks;
}

/** Framer events straight into a re-fragmenter (what a link does, without records or tracking). */
export function refragmentingHandler(refragmenter: Refragmenter): FrameHandler {
  return {
    onPdu() {},
    onDataStart: (length, header) => refragmenter.dataStart(length, header),
    onPdvStart: (itemLength, ctx, mch, header) => refragmenter.pdvStart(itemLength, ctx, mch, header),
    onPdvData: (bytes) => refragmenter.pdvData(bytes),
    onPdvEnd() {},
    onDataEnd: () => refragmenter.dataEnd(),
  };
}
