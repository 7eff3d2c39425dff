// Synthesized IPv4 / IPv6 and TCP headers (RFC 791, RFC 8200, RFC 9293) with their checksums (RFC 1071),
// for packets the proxy writes into its own capture. Pure: writers over Buffer, no I/O.

import net from 'node:net';

export const IPV4_HEADER_LENGTH = 20;
export const IPV6_HEADER_LENGTH = 40;
export const TCP_HEADER_LENGTH = 20;
/** MSS (kind 2, length 4) + NOP + window scale (kind 3, length 3): the options of SYN and SYN-ACK. */
export const TCP_SYN_OPTIONS_LENGTH = 8;
const IPPROTO_TCP = 6;
const DEFAULT_TTL = 64;
/** IPv4 flags: don't fragment. */
const IPV4_DF = 0x4000;

/** TCP flags (RFC 9293 3.1). */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

/**
 * The largest TCP payload per segment: an IPv4 datagram's total length (header included) fits 16 bits.
 * IPv6 could carry 20 bytes more; one value for both keeps the segmenting the same.
 */
export const MAX_SEGMENT_PAYLOAD = 65535 - IPV4_HEADER_LENGTH - TCP_HEADER_LENGTH; // 65495
/** Window field value and scale shift announced in the SYNs: 65535 << 8 (16 MiB) is never filled. */
export const TCP_WINDOW = 65535;
export const TCP_WINDOW_SCALE = 8;

/** An address as the capture writes it: 4 bytes (IPv4) or 16 (IPv6). */
export type IpAddress = Buffer;

/**
 * The bytes of a textual address as node reports it. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a
 * dual-stack listener sees for IPv4 peers) becomes the IPv4 address; a zone (%eth0) is dropped.
 * Undefined when it is not an address.
 */
export function parseIpAddress(text: string): IpAddress | undefined {
  const bare = text.split('%')[0]!;
  if (net.isIPv4(bare)) return Buffer.from(bare.split('.').map(Number));
  if (!net.isIPv6(bare)) return undefined;
  const out = Buffer.alloc(16);
  let head = bare;
  let tailV4: Buffer | undefined;
  const lastColon = bare.lastIndexOf(':');
  if (bare.includes('.', lastColon)) {
    tailV4 = Buffer.from(
      bare
        .slice(lastColon + 1)
        .split('.')
        .map(Number),
    );
    head = `${bare.slice(0, lastColon + 1)}0:0`;
  }
  const [left, right] = head.includes('::') ? head.split('::') : [head, undefined];
  const words = (s: string | undefined): number[] =>
    s
      ? s
          .split(':')
          .filter((w) => w !== '')
          .map((w) => parseInt(w, 16))
      : [];
  const l = words(left);
  const r = words(right);
  l.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  r.forEach((w, i) => out.writeUInt16BE(w, 16 - (r.length - i) * 2));
  if (tailV4) tailV4.copy(out, 12);
  const mapped = out.subarray(0, 10).every((b) => b === 0) && out[10] === 0xff && out[11] === 0xff;
  return mapped ? Buffer.from(out.subarray(12)) : out;
}

export function ipHeaderLength(address: IpAddress): number {
  return address.length === 4 ? IPV4_HEADER_LENGTH : IPV6_HEADER_LENGTH;
}

/**
 * The 16-bit one's complement sum (RFC 1071) of bytes [start, end), read as little-endian words and
 * returned unfolded (a plain number; fold with finishChecksum). Byte order does not change a one's
 * complement sum except by swapping its two bytes, so callers sum everything little-endian and swap once.
 * `start` must be even relative to the start of the checksummed data; word reads are used when
 * `buf.byteOffset + start` is a multiple of 4.
 */
export function onesSumLE(buf: Buffer, start: number, end: number): number {
  let sum = 0;
  let i = start;
  if (((buf.byteOffset + i) & 3) === 0 && end - i >= 4) {
    const words = (end - i) >>> 2;
    const u32 = new Uint32Array(buf.buffer, buf.byteOffset + i, words);
    // 2^53 / 2^32: a double adds up to 2^21 32-bit words exactly, far more than one segment holds. Four
    // running sums let the loads overlap (about 1.5x the speed of one in a micro-benchmark).
    let a = 0;
    let b = 0;
    let c = 0;
    let d = 0;
    let w = 0;
    for (; w + 3 < words; w += 4) {
      a += u32[w]!;
      b += u32[w + 1]!;
      c += u32[w + 2]!;
      d += u32[w + 3]!;
    }
    for (; w < words; w++) a += u32[w]!;
    sum = a + b + c + d;
    i += words * 4;
  }
  for (; i + 1 < end; i += 2) sum += buf[i]! | (buf[i + 1]! << 8);
  if (i < end) sum += buf[i]!;
  return sum;
}

/** Fold a little-endian one's complement sum and complement it: the checksum to store with writeUInt16LE. */
export function finishChecksum(sumLE: number): number {
  // 2^16 ≡ 1 (mod 2^16 - 1): folding carries is the same as reducing modulo 65535.
  let folded = sumLE % 0xffff;
  if (folded === 0 && sumLE !== 0) folded = 0xffff;
  return ~folded & 0xffff;
}

/** A 16-bit big-endian value as it adds into a little-endian sum. */
function swap16(v: number): number {
  return ((v & 0xff) << 8) | (v >>> 8);
}

export interface TcpSegment {
  src: IpAddress;
  dst: IpAddress;
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  /** IPv4 identification (ignored for IPv6). */
  ipId: number;
  /** Add the SYN options (MSS, window scale). */
  synOptions: boolean;
  /** Leave the TCP checksum 0 rather than sum the payload (see writeTcpPacket). */
  noTcpChecksum?: boolean | undefined;
}

/** Bytes of IP + TCP headers for a segment (its payload follows them). */
export function headersLength(segment: Pick<TcpSegment, 'src' | 'synOptions'>): number {
  return ipHeaderLength(segment.src) + TCP_HEADER_LENGTH + (segment.synOptions ? TCP_SYN_OPTIONS_LENGTH : 0);
}

/**
 * Write the IP and TCP headers of `segment` at `offset`, for a payload of `payloadLength` bytes that
 * already lies right after them in `out`, and compute both checksums (the TCP one over the pseudo-header,
 * the header and the payload). Returns the packet's total length. With `noTcpChecksum` the TCP checksum is
 * left 0: summing the payload reads every captured byte once more (a quarter of the proxy's CPU time with
 * --pcap on), and Wireshark does not check TCP checksums unless asked (captures of NICs that compute them
 * in hardware show such values too).
 */
export function writeTcpPacket(out: Buffer, offset: number, segment: TcpSegment, payloadLength: number): number {
  const v4 = segment.src.length === 4;
  const ipLength = v4 ? IPV4_HEADER_LENGTH : IPV6_HEADER_LENGTH;
  const tcpLength = TCP_HEADER_LENGTH + (segment.synOptions ? TCP_SYN_OPTIONS_LENGTH : 0);
  const total = ipLength + tcpLength + payloadLength;
  let pseudo: number;
  if (v4) {
    out[offset] = 0x45; // version 4, IHL 5 words
    out[offset + 1] = 0; // DSCP / ECN
    out.writeUInt16BE(total, offset + 2);
    out.writeUInt16BE(segment.ipId & 0xffff, offset + 4);
    out.writeUInt16BE(IPV4_DF, offset + 6);
    out[offset + 8] = DEFAULT_TTL;
    out[offset + 9] = IPPROTO_TCP;
    out.writeUInt16BE(0, offset + 10);
    segment.src.copy(out, offset + 12);
    segment.dst.copy(out, offset + 16);
    out.writeUInt16LE(finishChecksum(onesSumLE(out, offset, offset + IPV4_HEADER_LENGTH)), offset + 10);
    pseudo = onesSumLE(out, offset + 12, offset + 20);
  } else {
    out.writeUInt32BE(0x60000000, offset); // version 6, traffic class 0, flow label 0
    out.writeUInt16BE(tcpLength + payloadLength, offset + 4);
    out[offset + 6] = IPPROTO_TCP; // next header
    out[offset + 7] = DEFAULT_TTL; // hop limit
    segment.src.copy(out, offset + 8);
    segment.dst.copy(out, offset + 24);
    pseudo = onesSumLE(out, offset + 8, offset + 40);
  }
  // Pseudo-header (RFC 9293 3.1, RFC 8200 8.1): addresses, protocol, TCP length. A length over 65535 never
  // occurs here (MAX_SEGMENT_PAYLOAD), so one 16-bit word holds it for IPv6 as well.
  pseudo += swap16(IPPROTO_TCP) + swap16(tcpLength + payloadLength);
  const t = offset + ipLength;
  out.writeUInt16BE(segment.srcPort, t);
  out.writeUInt16BE(segment.dstPort, t + 2);
  out.writeUInt32BE(segment.seq >>> 0, t + 4);
  out.writeUInt32BE(segment.ack >>> 0, t + 8);
  out[t + 12] = (tcpLength / 4) << 4; // data offset in 32-bit words
  out[t + 13] = segment.flags;
  out.writeUInt16BE(TCP_WINDOW, t + 14);
  out.writeUInt16BE(0, t + 16); // checksum, below
  out.writeUInt16BE(0, t + 18); // urgent pointer
  if (segment.synOptions) {
    out[t + 20] = 2; // MSS
    out[t + 21] = 4;
    out.writeUInt16BE(MAX_SEGMENT_PAYLOAD, t + 22);
    out[t + 24] = 1; // NOP
    out[t + 25] = 3; // window scale
    out[t + 26] = 3;
    out[t + 27] = TCP_WINDOW_SCALE;
  }
  if (!segment.noTcpChecksum) out.writeUInt16LE(finishChecksum(pseudo + onesSumLE(out, t, t + tcpLength + payloadLength)), t + 16);
  return total;
}
