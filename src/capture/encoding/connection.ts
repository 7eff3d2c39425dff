// One captured TCP connection: its two ends (address, port), the pcapng interface it belongs to, its
// sequence numbering (TcpConversation) and, for `--pcap-payload headers`, one PayloadMask per direction.
// writeBlock() turns a segment into an Enhanced Packet Block. Pure: no clock, no I/O.

import { EPB_HEADER_LENGTH, enhancedPacketBlockLength, writeEnhancedPacketBlock } from './pcapng.js';
import { PayloadMask } from './payload-mask.js';
import type { Segment } from './tcp-conversation.js';
import { TcpConversation } from './tcp-conversation.js';
import type { IpAddress } from './tcp-ip.js';
import { headersLength, writeTcpPacket } from './tcp-ip.js';

/** What a capture keeps of the payload: everything, or the DICOM headers with data-set bytes zeroed. */
export type CapturePayload = 'full' | 'headers';
export const CAPTURE_PAYLOADS: readonly CapturePayload[] = ['full', 'headers'];

export interface ConnectionEnd {
  address: IpAddress;
  port: number;
}

/** src [start, end) to out at `at`, through the mask when there is one. */
function copyPayload(mask: PayloadMask | undefined, src: Buffer, start: number, end: number, out: Buffer, at: number): void {
  if (mask) mask.copy(src, start, end, out, at);
  else src.copy(out, at, start, end);
}

export class CapturedConnection {
  readonly conversation: TcpConversation;
  private readonly interfaceId: number;
  private readonly client: ConnectionEnd;
  private readonly server: ConnectionEnd;
  private readonly clientMask: PayloadMask | undefined;
  private readonly serverMask: PayloadMask | undefined;
  private clientIpId = 0;
  private serverIpId = 0;

  /** `id` seeds the initial sequence numbers (any number; distinct per connection reads better). */
  constructor(interfaceId: number, client: ConnectionEnd, server: ConnectionEnd, payload: CapturePayload, id: number) {
    this.interfaceId = interfaceId;
    this.client = client;
    this.server = server;
    this.conversation = new TcpConversation(Math.imul(id, 0x9e3779b1), Math.imul(id ^ 0x5bd1e995, 0x85ebca6b));
    if (payload === 'headers') {
      this.clientMask = new PayloadMask();
      this.serverMask = new PayloadMask();
    }
  }

  /** Bytes the block for `segment` takes. */
  blockLength(segment: Segment): number {
    return enhancedPacketBlockLength(headersLength({ src: this.client.address, synOptions: segment.synOptions }) + (segment.end - segment.start));
  }

  /** Write `segment` as an Enhanced Packet Block at `offset` (4-aligned); returns the offset after it. */
  writeBlock(out: Buffer, offset: number, segment: Segment, timestampUs: number): number {
    const from = segment.fromClient ? this.client : this.server;
    const to = segment.fromClient ? this.server : this.client;
    const packet = offset + EPB_HEADER_LENGTH;
    const payloadAt = packet + headersLength({ src: from.address, synOptions: segment.synOptions });
    const length = segment.end - segment.start;
    if (segment.data && length > 0) {
      const mask = segment.fromClient ? this.clientMask : this.serverMask;
      if (Buffer.isBuffer(segment.data)) copyPayload(mask, segment.data, segment.start, segment.end, out, payloadAt);
      else {
        // A batch: the pieces of each buffer that fall within [start, end), in order.
        let at = 0;
        let o = payloadAt;
        for (const piece of segment.data) {
          const from = Math.max(segment.start - at, 0);
          const to = Math.min(segment.end - at, piece.length);
          if (to > from) {
            copyPayload(mask, piece, from, to, out, o);
            o += to - from;
          }
          at += piece.length;
          if (at >= segment.end) break;
        }
      }
    }
    const ipId = segment.fromClient ? this.clientIpId++ : this.serverIpId++;
    const packetLength = writeTcpPacket(
      out,
      packet,
      // TCP checksum 0: see writeTcpPacket (the IPv4 header checksum is computed: 20 bytes).
      {
        src: from.address,
        dst: to.address,
        srcPort: from.port,
        dstPort: to.port,
        seq: segment.seq,
        ack: segment.ack,
        flags: segment.flags,
        ipId,
        synOptions: segment.synOptions,
        noTcpChecksum: true,
      },
      length,
    );
    return writeEnhancedPacketBlock(out, offset, this.interfaceId, timestampUs, packetLength);
  }
}
