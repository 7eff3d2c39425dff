// Streaming PDU framer (PS3.8 9.3). Pure and synchronous: push socket chunks in, get PDU events out.
//
// - Association and control PDUs (everything but P-DATA-TF) are delivered whole, because the proxy
//   decodes them. When a PDU lies inside one chunk it is handed out as a view of that chunk (no copy);
//   otherwise its pieces are copied into a buffer that grows as they arrive (doubling, up to exactly its
//   length), so what is allocated follows the bytes received, never the length a peer claims. Their length
//   is capped (MAX_ASSOCIATION_PDU_LENGTH) before anything is buffered.
// - P-DATA-TF is never buffered: the framer reports the PDU header, each PDV header, and the fragment
//   bytes as views of the socket chunks as they arrive. Memory is the 6-byte header scratch, whatever
//   the claimed length.
// - Views are read-only by contract: nobody writes into a buffer the framer handed out.

import {
  ASSOC_MIN_BODY_LENGTH,
  FIXED_PDU_BODY_LENGTH,
  MAX_ASSOCIATION_PDU_LENGTH,
  PDU_HEADER_LENGTH,
  PDV_HEADER_LENGTH,
  PDV_LENGTH_LENGTH,
  PDV_MIN_ITEM_LENGTH,
  PduType,
  pduTypeName,
} from './constants.js';
import { ProtocolError } from './errors.js';

export interface FrameHandler {
  /**
   * A whole PDU other than P-DATA-TF, header included. `pdu` is a view of a socket chunk or a private
   * copy; either way the handler may keep it but must not write into it. `firstByteTime` is the time
   * passed with the chunk that held the PDU's first byte.
   */
  onPdu(type: number, pdu: Buffer, firstByteTime: number): void;
  /** A P-DATA-TF header (`header` is its 6 bytes); `length` is its PDU-length field. */
  onDataStart(length: number, header: Buffer, firstByteTime: number): void;
  /** A PDV header (`header` is its 6 bytes); the fragment is itemLength - 2 bytes. */
  onPdvStart(itemLength: number, contextId: number, mch: number, header: Buffer): void;
  /** Fragment bytes of the current PDV, in order; a view of a socket chunk. Never empty. */
  onPdvData(bytes: Buffer): void;
  onPdvEnd(): void;
  onDataEnd(): void;
}

/** First allocation for a non-P-DATA PDU split across chunks (or its length, if smaller): A-ASSOCIATE-RQs fit. */
export const INITIAL_BODY_BYTES = 4096;

const enum State {
  PduHeader,
  Body,
  PdvHeader,
  PdvData,
  Failed,
}

export class PduFramer {
  private state = State.PduHeader;
  /** Scratch for a 6-byte PDU or PDV header split across chunks (a fresh buffer each time: it is handed on). */
  private partial: Buffer | undefined;
  private partialFill = 0;
  /** Non-P-DATA PDU being assembled across chunks: `bodyFill` of `bodyTotal` bytes, in a buffer grown on demand. */
  private body: Buffer | undefined;
  private bodyFill = 0;
  private bodyTotal = 0;
  private bodyType = 0;
  /** P-DATA-TF bytes still expected after what has been read. */
  private pduRemaining = 0;
  private pdvRemaining = 0;
  private firstByteTime = 0;
  private stopped = false;

  /** True between PDUs: nothing of an unfinished PDU has been read. */
  get atBoundary(): boolean {
    return this.state === State.PduHeader && this.partialFill === 0;
  }

  /** Bytes held by the framer itself (an association PDU being assembled, a split header). */
  get bufferedBytes(): number {
    return this.bodyFill + this.partialFill;
  }

  /** Bytes the framer has allocated for them (at most twice what it holds, or INITIAL_BODY_BYTES). */
  get allocatedBytes(): number {
    return (this.body?.length ?? 0) + (this.partial?.length ?? 0);
  }

  /** Stop delivering events: the rest of the current chunk and every later chunk are ignored. */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Feed one chunk received at `time`. Events are delivered synchronously, in stream order. Throws
   * ProtocolError on the first violation; the framer is then failed and ignores further input.
   */
  push(chunk: Buffer, time: number, handler: FrameHandler): void {
    if (this.state === State.Failed || this.stopped) return;
    try {
      this.run(chunk, time, handler);
    } catch (err) {
      this.state = State.Failed;
      this.body = undefined;
      throw err;
    }
  }

  private run(chunk: Buffer, time: number, h: FrameHandler): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end && !this.stopped) {
      switch (this.state) {
        case State.PduHeader: {
          let header: Buffer;
          let headerInChunk = false;
          if (this.partialFill === 0 && end - pos >= PDU_HEADER_LENGTH) {
            header = chunk.subarray(pos, pos + PDU_HEADER_LENGTH);
            headerInChunk = true;
            this.firstByteTime = time;
          } else {
            if (this.partialFill === 0) this.firstByteTime = time;
            const filled = this.fillHeader(chunk, pos, PDU_HEADER_LENGTH);
            pos += filled.consumed;
            if (!filled.header) return;
            header = filled.header;
            pos -= PDU_HEADER_LENGTH; // normalise: `pos + 6` below is where the body starts
          }
          pos += PDU_HEADER_LENGTH;
          const type = header[0]!;
          const length = header.readUInt32BE(2);
          checkHeader(type, length);
          if (type === PduType.PDataTf) {
            this.pduRemaining = length;
            h.onDataStart(length, header, this.firstByteTime);
            this.state = State.PdvHeader;
            this.checkPdvHeaderFits();
          } else if (headerInChunk && end - pos >= length) {
            // Fast path: the whole PDU is inside this chunk.
            const start = pos - PDU_HEADER_LENGTH;
            pos += length;
            h.onPdu(type, chunk.subarray(start, pos), this.firstByteTime);
          } else {
            this.bodyTotal = PDU_HEADER_LENGTH + length;
            this.body = Buffer.allocUnsafe(Math.min(this.bodyTotal, Math.max(INITIAL_BODY_BYTES, PDU_HEADER_LENGTH + end - pos)));
            header.copy(this.body, 0);
            this.bodyFill = PDU_HEADER_LENGTH;
            this.bodyType = type;
            this.state = State.Body;
          }
          break;
        }
        case State.Body: {
          const n = Math.min(this.bodyTotal - this.bodyFill, end - pos);
          const body = this.bodyRoom(this.bodyFill + n);
          chunk.copy(body, this.bodyFill, pos, pos + n);
          this.bodyFill += n;
          pos += n;
          if (this.bodyFill === this.bodyTotal) {
            this.body = undefined;
            this.bodyFill = 0;
            this.state = State.PduHeader;
            h.onPdu(this.bodyType, body, this.firstByteTime);
          }
          break;
        }
        case State.PdvHeader: {
          let header: Buffer;
          if (this.partialFill === 0 && end - pos >= PDV_HEADER_LENGTH) {
            header = chunk.subarray(pos, pos + PDV_HEADER_LENGTH);
            pos += PDV_HEADER_LENGTH;
          } else {
            const filled = this.fillHeader(chunk, pos, PDV_HEADER_LENGTH);
            pos += filled.consumed;
            if (!filled.header) return;
            header = filled.header;
          }
          const itemLength = header.readUInt32BE(0);
          if (itemLength < PDV_MIN_ITEM_LENGTH) {
            throw new ProtocolError('pdv-too-short', `PDV item length ${itemLength} is below ${PDV_MIN_ITEM_LENGTH}`);
          }
          const room = this.pduRemaining - PDV_LENGTH_LENGTH;
          if (itemLength > room) {
            throw new ProtocolError('pdv-overrun', `PDV item length ${itemLength} overruns its P-DATA-TF (${room} bytes left)`);
          }
          this.pduRemaining -= PDV_LENGTH_LENGTH + itemLength;
          this.pdvRemaining = itemLength - PDV_MIN_ITEM_LENGTH;
          h.onPdvStart(itemLength, header[4]!, header[5]!, header);
          if (this.pdvRemaining > 0) {
            this.state = State.PdvData;
          } else {
            this.endPdv(h);
          }
          break;
        }
        case State.PdvData: {
          const n = Math.min(this.pdvRemaining, end - pos);
          const bytes = pos === 0 && n === end ? chunk : chunk.subarray(pos, pos + n);
          pos += n;
          this.pdvRemaining -= n;
          h.onPdvData(bytes);
          if (this.pdvRemaining === 0) this.endPdv(h);
          break;
        }
        case State.Failed:
          return;
      }
    }
  }

  /** The body buffer, grown (doubling, capped at the PDU's length) to hold at least `needed` bytes. */
  private bodyRoom(needed: number): Buffer {
    const body = this.body!;
    if (needed <= body.length) return body;
    const grown = Buffer.allocUnsafe(Math.min(this.bodyTotal, Math.max(needed, body.length * 2)));
    body.copy(grown, 0, 0, this.bodyFill);
    this.body = grown;
    return grown;
  }

  private endPdv(h: FrameHandler): void {
    h.onPdvEnd();
    if (this.pduRemaining === 0) {
      this.state = State.PduHeader;
      h.onDataEnd();
    } else {
      this.state = State.PdvHeader;
      this.checkPdvHeaderFits();
    }
  }

  /** Fewer bytes left in the P-DATA-TF than a PDV header: the PDU is inconsistent, say so at once. */
  private checkPdvHeaderFits(): void {
    if (this.pduRemaining < PDV_HEADER_LENGTH) {
      throw new ProtocolError('pdv-header-truncated', `${this.pduRemaining} byte(s) left in P-DATA-TF, too few for a PDV header (${PDV_HEADER_LENGTH})`);
    }
  }

  /** Accumulate a header of `size` bytes that straddles chunks. */
  private fillHeader(chunk: Buffer, pos: number, size: number): { consumed: number; header?: Buffer } {
    if (this.partialFill === 0) this.partial = Buffer.allocUnsafe(size);
    const partial = this.partial!;
    const n = Math.min(size - this.partialFill, chunk.length - pos);
    chunk.copy(partial, this.partialFill, pos, pos + n);
    this.partialFill += n;
    if (this.partialFill < size) return { consumed: n };
    this.partial = undefined;
    this.partialFill = 0;
    return { consumed: n, header: partial };
  }
}

/** Validate a PDU header before anything of its body is read or buffered. */
function checkHeader(type: number, length: number): void {
  switch (type) {
    case PduType.AssociateRq:
    case PduType.AssociateAc:
      if (length < ASSOC_MIN_BODY_LENGTH) {
        throw new ProtocolError('association-pdu-too-short', `${pduTypeName(type)} PDU-length ${length} is below ${ASSOC_MIN_BODY_LENGTH}`);
      }
      if (length > MAX_ASSOCIATION_PDU_LENGTH) {
        throw new ProtocolError('association-pdu-too-long', `${pduTypeName(type)} PDU-length ${length} is over the ${MAX_ASSOCIATION_PDU_LENGTH}-byte limit for association PDUs`);
      }
      return;
    case PduType.AssociateRj:
    case PduType.ReleaseRq:
    case PduType.ReleaseRp:
    case PduType.Abort:
      if (length !== FIXED_PDU_BODY_LENGTH) {
        throw new ProtocolError('fixed-pdu-length', `${pduTypeName(type)} PDU-length ${length}, must be ${FIXED_PDU_BODY_LENGTH}`);
      }
      return;
    case PduType.PDataTf:
      if (length < PDV_HEADER_LENGTH) {
        throw new ProtocolError('pdata-too-short', `P-DATA-TF PDU-length ${length} cannot hold a PDV (${PDV_HEADER_LENGTH} bytes at least)`);
      }
      return;
    default:
      throw new ProtocolError('unknown-pdu-type', `unknown PDU type 0x${type.toString(16).padStart(2, '0')}`);
  }
}
