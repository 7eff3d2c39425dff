// Re-fragmentation of P-DATA-TF toward one receiver (PS3.8 Annex E; the rules are explained in docs/HOW-IT-WORKS.md).
//
// Pure and streaming: it consumes the framer's P-DATA events and writes output bytes to a sink. It never
// holds a whole input PDU. What it may hold is, in repack/SIZE mode only, the fragment bytes of one stream
// that are waiting to be merged into the next output PDU: always fewer than one output fragment, and never
// more than MAX_MERGED_FRAGMENT. They are copied into one buffer of their own (grown as they come, up to a
// fragment), never kept as views: a view pins its whole socket chunk, and a peer sending one data byte per
// read would pin a chunk per byte.
//
// Output rules, whatever the input:
// - one PDV per output PDU, PDU-length = 6 + fragment <= the receiver's real maximum;
// - fragments are cut at even lengths (the largest even fragment that fits), so only a sender's own odd
//   total can end in an odd final fragment;
// - the context id and the command bit of the input are kept, and the last bit is set only on the piece
//   that carries the stream's final byte;
// - bytes of different streams (context id, command/dataset) are never merged.

import { MCH_COMMAND, MCH_LAST } from '../pdu/constants.js';
import { fragmentSizeFor, singlePdvHeader, singlePdvPduLength } from '../pdu/pdata.js';

/** How P-DATA-TF is re-fragmented toward a receiver (--fragment fit|repack|SIZE). */
export type FragmentPolicy = { mode: 'fit' } | { mode: 'repack' } | { mode: 'size'; size: number };

/**
 * repack and SIZE merge into fragments of at most this many bytes, whatever the receiver announced: the
 * bytes of a fragment being merged are held until it is full, and a receiver announcing ~4 GiB would
 * otherwise have the proxy hold a whole message per association and direction. (Real limits: DCMTK and
 * Orthanc at most 128 KiB, dcmjs-dimse 4 MiB.)
 */
export const MAX_MERGED_FRAGMENT = 4 * 1024 * 1024;
/**
 * First allocation for bytes waiting to be merged: the whole fragment (one buffer, one copy per byte) up to
 * this size; larger fragments start here and double as bytes arrive.
 */
const INITIAL_MERGE_BYTES = 1024 * 1024;

export interface PDataSink {
  /** An outgoing P-DATA-TF starts with the next write. */
  pduStart(): void;
  /** Append bytes to the outgoing stream. The sink may keep them but must not write into them. */
  write(bytes: Buffer): void;
  /** An outgoing P-DATA-TF has been written completely; `length` is its PDU-length field. */
  pduEnd(length: number): void;
}

export class Refragmenter {
  private readonly sink: PDataSink;
  /** The receiver's real Maximum Length (0 = none). */
  private maxLength = 0;
  /** Target fragment size for split/merge output, Infinity when output is never cut. */
  private fragmentSize = Infinity;
  private merge = false;

  /** The current input PDU is forwarded as it came. */
  private passthrough = false;
  private inputLength = 0;

  // Current input PDV.
  private inContextId = 0;
  private inMch = 0;
  private inRemaining = 0;

  // Output PDU being written (not passthrough).
  private outRemaining = 0;
  private outLength = 0;

  // Merge mode: fragment bytes waiting for more of the same stream, copied into `pending` (its own buffer).
  private pending: Buffer | undefined;
  private pendingLength = 0;
  private pendingContextId = 0;
  private pendingCommand = 0;

  /** Fragment bytes written to the sink so far (for attributing output to input PDUs). */
  emittedPayload = 0;

  constructor(sink: PDataSink) {
    this.sink = sink;
  }

  /**
   * Set the receiver's real Maximum Length and the policy; call once the association is negotiated.
   * fit: PDUs within the limit pass unchanged, larger ones are split. repack: regroup to the limit.
   * size: as repack with the target min(size, limit). 0 means no maximum on either side.
   */
  configure(receiverMaxLength: number, policy: FragmentPolicy): void {
    this.maxLength = receiverMaxLength;
    let target = receiverMaxLength;
    if (policy.mode === 'size') {
      target = receiverMaxLength === 0 ? policy.size : policy.size === 0 ? receiverMaxLength : Math.min(policy.size, receiverMaxLength);
    }
    this.fragmentSize = fragmentSizeFor(target);
    this.merge = policy.mode !== 'fit' && this.fragmentSize !== Infinity;
    if (this.merge) this.fragmentSize = Math.min(this.fragmentSize, MAX_MERGED_FRAGMENT);
  }

  /** Fragment bytes held back waiting to be merged (0 unless merging). */
  get pendingBytes(): number {
    return this.pendingLength;
  }

  /** Bytes allocated for them (at most one output fragment). */
  get heldBytes(): number {
    return this.pending?.length ?? 0;
  }

  /** An output PDU has been started and not finished: nothing else may be written to the receiver now. */
  get midPdu(): boolean {
    return this.passthrough || this.outRemaining > 0;
  }

  dataStart(length: number, header: Buffer): void {
    this.inputLength = length;
    this.passthrough = !this.merge && (this.maxLength === 0 || length <= this.maxLength);
    if (this.passthrough) {
      this.sink.pduStart();
      this.sink.write(header);
    }
  }

  pdvStart(itemLength: number, contextId: number, mch: number, header: Buffer): void {
    if (this.passthrough) {
      this.sink.write(header);
      return;
    }
    const command = mch & MCH_COMMAND;
    if (this.pendingLength > 0 && (contextId !== this.pendingContextId || command !== this.pendingCommand)) {
      this.flush();
    }
    this.inContextId = contextId;
    this.inMch = mch;
    this.inRemaining = itemLength - 2;
    if (this.inRemaining > 0) {
      this.plan();
    } else if (mch & MCH_LAST) {
      // An empty final fragment: it still carries the last bit (with whatever is pending).
      this.open(this.pendingLength, true);
    } else if (!this.merge) {
      this.open(0, false);
    }
    // An empty non-final fragment while merging carries nothing and is dropped.
  }

  pdvData(bytes: Buffer): void {
    if (this.passthrough) {
      this.sink.write(bytes);
      this.emittedPayload += bytes.length;
      return;
    }
    let pos = 0;
    const end = bytes.length;
    while (pos < end) {
      if (this.outRemaining > 0) {
        const n = Math.min(this.outRemaining, end - pos);
        this.sink.write(pos === 0 && n === end ? bytes : bytes.subarray(pos, pos + n));
        this.emittedPayload += n;
        this.outRemaining -= n;
        this.inRemaining -= n;
        pos += n;
        if (this.outRemaining === 0) {
          this.sink.pduEnd(this.outLength);
          if (this.inRemaining > 0) this.plan();
        }
      } else {
        // Merging: the rest of this PDV waits for more of its stream (plan() checked it fits).
        const n = end - pos;
        bytes.copy(this.pendingRoom(this.pendingLength + n), this.pendingLength, pos, end);
        this.pendingLength += n;
        this.pendingContextId = this.inContextId;
        this.pendingCommand = this.inMch & MCH_COMMAND;
        this.inRemaining -= n;
        pos = end;
      }
    }
  }

  /** Forget the output PDU in progress (its unwritten bytes were discarded by the sink). */
  abandonOutput(): void {
    this.passthrough = false;
    this.outRemaining = 0;
    this.pending = undefined;
    this.pendingLength = 0;
  }

  /** The pending buffer, grown (doubling, capped at one fragment) to hold at least `needed` bytes. */
  private pendingRoom(needed: number): Buffer {
    const held = this.pending;
    if (held !== undefined && needed <= held.length) return held;
    const size = Math.min(this.fragmentSize, Math.max(needed, held === undefined ? INITIAL_MERGE_BYTES : held.length * 2));
    const grown = Buffer.allocUnsafe(size);
    if (held !== undefined) held.copy(grown, 0, 0, this.pendingLength);
    this.pending = grown;
    return grown;
  }

  dataEnd(): void {
    if (this.passthrough) {
      this.passthrough = false;
      this.sink.pduEnd(this.inputLength);
    }
  }

  /** Write out pending bytes as a non-final fragment (before another PDU type, or another stream). */
  flush(): void {
    if (this.pendingLength === 0) return;
    const saveContext = this.inContextId;
    const saveMch = this.inMch;
    this.inContextId = this.pendingContextId;
    this.inMch = this.pendingCommand;
    this.open(this.pendingLength, false);
    this.inContextId = saveContext;
    this.inMch = saveMch;
  }

  /** Decide the next output PDU for the current input PDV (nothing open, inRemaining > 0). */
  private plan(): void {
    const available = this.pendingLength + this.inRemaining;
    const last = (this.inMch & MCH_LAST) !== 0;
    if (available >= this.fragmentSize) {
      this.open(this.fragmentSize, last && available === this.fragmentSize);
    } else if (last || !this.merge) {
      this.open(available, last);
    }
    // else: merging and the stream goes on: the PDV's bytes become pending (pdvData).
  }

  /** Start an output PDU of `fragmentLength` bytes; pending bytes go first. */
  private open(fragmentLength: number, last: boolean): void {
    const mch = (this.inMch & MCH_COMMAND) | (last ? MCH_LAST : 0);
    this.sink.pduStart();
    this.sink.write(singlePdvHeader(fragmentLength, this.inContextId, mch));
    this.outLength = singlePdvPduLength(fragmentLength);
    let remaining = fragmentLength;
    if (this.pendingLength > 0) {
      // Handed to the sink, which may keep it: a new buffer for the next merge.
      this.sink.write(this.pending!.subarray(0, this.pendingLength));
      this.emittedPayload += this.pendingLength;
      remaining -= this.pendingLength;
      this.pending = undefined;
      this.pendingLength = 0;
    }
    this.outRemaining = remaining;
    if (remaining === 0) this.sink.pduEnd(this.outLength);
  }
}
