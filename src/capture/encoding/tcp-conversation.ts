// One TCP connection as a capture shows it, rebuilt from what a socket owner sees: the connection opened,
// bytes each way, a FIN or a reset from either end. It numbers the bytes (sequence and acknowledgement
// numbers, RFC 9293 3.4) and yields the segments a capture of it holds: the three-way handshake, data cut
// to MAX_SEGMENT_PAYLOAD, an ACK from the receiver once two full segments are unacknowledged (as a delayed
// ACK would: data the other way carries the acknowledgement too), the FINs and their ACKs.
// Every ACK acknowledges only bytes already shown, sequence numbers never go back, and no segment repeats
// one before it, so Wireshark's TCP analysis finds nothing to flag and reassembles the stream.
// Pure: no clock, no I/O (the caller stamps the segments).

import { MAX_SEGMENT_PAYLOAD, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from './tcp-ip.js';

/** A receiver acknowledges once this many bytes are unacknowledged (RFC 9293 3.8.6.3: every second full segment). */
export const ACK_EVERY = 2 * MAX_SEGMENT_PAYLOAD;

/**
 * Bytes one end sent: one buffer, or the buffers of one batch of writes (which went out together),
 * read as one run of bytes.
 */
export type SegmentBytes = Buffer | readonly Buffer[];

/** One segment: which end sent it, its flags and numbers, and its payload as bytes [start, end) of `data`. */
export interface Segment {
  fromClient: boolean;
  flags: number;
  seq: number;
  ack: number;
  /** The handshake's SYN and SYN-ACK carry options (MSS, window scale). */
  synOptions: boolean;
  data: SegmentBytes | undefined;
  start: number;
  end: number;
}

export type SegmentSink = (segment: Segment) => void;

/** One end: the next sequence number it will use, and what it last acknowledged. */
interface End {
  next: number;
  acked: number;
  finSent: boolean;
}

export class TcpConversation {
  private readonly client: End;
  private readonly server: End;
  private reset = false;

  /** `clientIsn`, `serverIsn`: the initial sequence numbers (any 32-bit values). */
  constructor(clientIsn: number, serverIsn: number) {
    this.client = { next: clientIsn >>> 0, acked: 0, finSent: false };
    this.server = { next: serverIsn >>> 0, acked: 0, finSent: false };
  }

  /** After a reset nothing more belongs to this connection. */
  get closed(): boolean {
    return this.reset || (this.client.finSent && this.server.finSent);
  }

  /** SYN, SYN-ACK, ACK. */
  open(sink: SegmentSink): void {
    const c = this.client;
    const s = this.server;
    this.emit(sink, true, TCP_SYN, 0, true);
    c.next = (c.next + 1) >>> 0;
    this.emit(sink, false, TCP_SYN | TCP_ACK, c.next, true);
    s.next = (s.next + 1) >>> 0;
    s.acked = c.next;
    this.emit(sink, true, TCP_ACK, s.next, false);
    c.acked = s.next;
  }

  /** `data` [start, end) sent by one end: segments of at most MAX_SEGMENT_PAYLOAD, then the other end's ACK if due. */
  data(fromClient: boolean, data: SegmentBytes, start: number, end: number, sink: SegmentSink): void {
    if (this.reset || end <= start) return;
    const from = fromClient ? this.client : this.server;
    const to = fromClient ? this.server : this.client;
    if (from.finSent) return;
    for (let p = start; p < end; p += MAX_SEGMENT_PAYLOAD) {
      const q = Math.min(end, p + MAX_SEGMENT_PAYLOAD);
      sink({ fromClient, flags: TCP_PSH | TCP_ACK, seq: from.next, ack: to.next, synOptions: false, data, start: p, end: q });
      from.acked = to.next;
      from.next = (from.next + (q - p)) >>> 0;
    }
    if ((from.next - to.acked) >>> 0 >= ACK_EVERY) this.ackFrom(!fromClient, sink);
  }

  /**
   * `length` bytes sent by one end that the capture does not hold (dropped under load): the sequence
   * numbers move on, so what follows is numbered right and Wireshark marks the hole as not captured.
   */
  skip(fromClient: boolean, length: number): void {
    if (this.reset) return;
    const from = fromClient ? this.client : this.server;
    if (!from.finSent) from.next = (from.next + length) >>> 0;
  }

  /** A FIN from one end, and the other end's ACK of it. */
  fin(fromClient: boolean, sink: SegmentSink): void {
    if (this.reset) return;
    const from = fromClient ? this.client : this.server;
    const to = fromClient ? this.server : this.client;
    if (from.finSent) return;
    this.emit(sink, fromClient, TCP_FIN | TCP_ACK, to.next, false);
    from.acked = to.next;
    from.next = (from.next + 1) >>> 0;
    from.finSent = true;
    this.ackFrom(!fromClient, sink);
  }

  /** A reset (RST-ACK) from one end; the connection is over. */
  rst(fromClient: boolean, sink: SegmentSink): void {
    if (this.reset) return;
    const to = fromClient ? this.server : this.client;
    this.emit(sink, fromClient, TCP_RST | TCP_ACK, to.next, false);
    this.reset = true;
  }

  /** A pure ACK from `fromClient`'s end when it has something new to acknowledge (never a duplicate). */
  private ackFrom(fromClient: boolean, sink: SegmentSink): void {
    const from = fromClient ? this.client : this.server;
    const to = fromClient ? this.server : this.client;
    if (from.acked === to.next) return;
    this.emit(sink, fromClient, TCP_ACK, to.next, false);
    from.acked = to.next;
  }

  private emit(sink: SegmentSink, fromClient: boolean, flags: number, ack: number, synOptions: boolean): void {
    const from = fromClient ? this.client : this.server;
    sink({ fromClient, flags, seq: from.next, ack: flags & TCP_ACK ? ack : 0, synOptions, data: undefined, start: 0, end: 0 });
  }
}
