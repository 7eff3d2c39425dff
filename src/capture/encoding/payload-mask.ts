// `--pcap-payload headers`: what of a DICOM upper-layer byte stream a shareable capture keeps. Every PDU
// header, every PDU other than P-DATA-TF, every PDV item header and every command fragment are copied;
// data-set fragment bytes become zeros of the same length, so lengths and sequence numbers stay right and
// Wireshark still frames every PDU (PS3.8 9.3.1, 9.3.5: PDU header 6 bytes, PDV item header 4 + 2 bytes).
//
// A streaming state machine over one direction of one connection: bytes may arrive in any chunking. Fails
// closed: a stream that does not parse as PDUs (a peer sending garbage, which the proxy aborts anyway) is
// zeroed from that point on, since nothing says which of its bytes are safe to keep.
// Pure: copies from a source buffer into a destination buffer, no I/O.

import { MCH_COMMAND, PDU_HEADER_LENGTH, PduType } from '../../pdu/constants.js';

/** PDV item header: item length (4), presentation context id (1), message control header (1). */
const PDV_HEADER_LENGTH = 6;
const PDV_ITEM_LENGTH_LENGTH = 4;
/** PDU types that exist (PS3.8 9.3.1); anything else ends the parse. */
const FIRST_PDU_TYPE = PduType.AssociateRq;
const LAST_PDU_TYPE = PduType.Abort;

const enum State {
  /** Collecting a PDU header (6 bytes). */
  PduHeader,
  /** Copying the body of a non-data PDU. */
  Keep,
  /** Collecting a PDV item header inside a P-DATA-TF. */
  PdvHeader,
  /** Copying a command fragment. */
  KeepFragment,
  /** Zeroing a data-set fragment. */
  ZeroFragment,
  /** The stream stopped parsing: zero the rest. */
  ZeroAll,
}

export class PayloadMask {
  private state = State.PduHeader;
  /** Header bytes collected so far (PDU or PDV header). */
  private readonly header = Buffer.alloc(PDV_HEADER_LENGTH);
  private headerUsed = 0;
  /** Bytes left in the current PDU body (for P-DATA-TF: after the PDV being read). */
  private pduLeft = 0;
  /** Bytes left in the current non-data PDU body or fragment. */
  private runLeft = 0;

  /** Copy src [start, end) to dst at `at`, data-set fragment bytes as zeros. */
  copy(src: Buffer, start: number, end: number, dst: Buffer, at: number): void {
    let i = start;
    let o = at;
    while (i < end) {
      switch (this.state) {
        case State.PduHeader:
        case State.PdvHeader: {
          const b = src[i++]!;
          dst[o++] = b;
          this.header[this.headerUsed++] = b;
          if (this.state === State.PduHeader && this.headerUsed === PDU_HEADER_LENGTH) this.onPduHeader();
          else if (this.state === State.PdvHeader && this.headerUsed === PDV_HEADER_LENGTH) this.onPdvHeader();
          break;
        }
        case State.Keep:
        case State.KeepFragment: {
          const n = Math.min(end - i, this.runLeft);
          src.copy(dst, o, i, i + n);
          i += n;
          o += n;
          this.runLeft -= n;
          if (this.runLeft === 0) this.endRun();
          break;
        }
        case State.ZeroFragment: {
          const n = Math.min(end - i, this.runLeft);
          dst.fill(0, o, o + n);
          i += n;
          o += n;
          this.runLeft -= n;
          if (this.runLeft === 0) this.endRun();
          break;
        }
        case State.ZeroAll:
          dst.fill(0, o, o + (end - i));
          return;
      }
    }
  }

  private onPduHeader(): void {
    this.headerUsed = 0;
    const type = this.header[0]!;
    const length = this.header.readUInt32BE(2);
    if (type < FIRST_PDU_TYPE || type > LAST_PDU_TYPE) {
      this.state = State.ZeroAll;
    } else if (type === PduType.PDataTf) {
      this.pduLeft = length;
      this.state = length === 0 ? State.PduHeader : State.PdvHeader;
    } else {
      this.runLeft = length;
      this.state = length === 0 ? State.PduHeader : State.Keep;
    }
  }

  private onPdvHeader(): void {
    this.headerUsed = 0;
    const itemLength = this.header.readUInt32BE(0);
    const fragment = itemLength - (PDV_HEADER_LENGTH - PDV_ITEM_LENGTH_LENGTH);
    if (this.pduLeft < PDV_HEADER_LENGTH || fragment < 0 || fragment > this.pduLeft - PDV_HEADER_LENGTH) {
      this.state = State.ZeroAll;
      return;
    }
    this.pduLeft -= PDV_HEADER_LENGTH + fragment;
    this.runLeft = fragment;
    if (fragment === 0) this.endRun();
    else this.state = this.header[5]! & MCH_COMMAND ? State.KeepFragment : State.ZeroFragment;
  }

  /** A non-data PDU body or a fragment is done: next PDV of the same PDU, or the next PDU. */
  private endRun(): void {
    if (this.state === State.Keep) this.state = State.PduHeader;
    else this.state = this.pduLeft > 0 ? State.PdvHeader : State.PduHeader;
  }
}
