// pcapng blocks (the IETF draft "PCAP Now Generic", draft-ietf-opsawg-pcapng): a Section Header Block,
// one Interface Description Block per interface, then Enhanced Packet Blocks. Written little-endian (the
// byte-order magic tells readers); every block is padded to 32 bits and ends with its own total length.
// Pure: encoders over Buffer, no I/O.

/** Block types (draft section 4). */
export const SHB_TYPE = 0x0a0d0d0a;
export const IDB_TYPE = 0x00000001;
export const EPB_TYPE = 0x00000006;
export const BYTE_ORDER_MAGIC = 0x1a2b3c4d;

/** LINKTYPE_RAW: each packet starts with an IPv4 or IPv6 header (the version nibble says which). */
export const LINKTYPE_RAW = 101;

/** Option codes: common (opt_*), SHB (shb_*), IDB (if_*). */
export const SHB_USERAPPL = 4;
export const IF_NAME = 2;
export const IF_TSRESOL = 9;

/** if_tsresol 6: timestamps count microseconds (the default, written out anyway for readers that ask). */
export const TSRESOL_MICROSECONDS = 6;

/** Block type (4) + block total length (4). */
const BLOCK_HEADER_LENGTH = 8;
/** The trailing copy of the block total length. */
const BLOCK_TRAILER_LENGTH = 4;
/** EPB fixed part: interface id (4), timestamp high (4), low (4), captured length (4), original length (4). */
export const EPB_HEADER_LENGTH = BLOCK_HEADER_LENGTH + 20; // 28
/** Snap length written in the IDB: 0 = no limit. */
const SNAPLEN_UNLIMITED = 0;

export function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** One option: code (2), length (2), value padded to 32 bits. */
function option(code: number, value: Buffer): Buffer {
  const out = Buffer.alloc(4 + pad4(value.length));
  out.writeUInt16LE(code, 0);
  out.writeUInt16LE(value.length, 2);
  value.copy(out, 4);
  return out;
}

function block(type: number, body: Buffer): Buffer {
  const total = BLOCK_HEADER_LENGTH + body.length + BLOCK_TRAILER_LENGTH;
  const out = Buffer.alloc(total);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(total, 4);
  body.copy(out, BLOCK_HEADER_LENGTH);
  out.writeUInt32LE(total, total - BLOCK_TRAILER_LENGTH);
  return out;
}

const END_OF_OPTIONS = Buffer.alloc(4); // opt_endofopt: code 0, length 0

/** Section Header Block: version 1.0, section length unknown (-1), shb_userappl = `application`. */
export function sectionHeaderBlock(application: string): Buffer {
  const fixed = Buffer.alloc(16);
  fixed.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
  fixed.writeUInt16LE(1, 4); // major version
  fixed.writeUInt16LE(0, 6); // minor version
  fixed.writeBigInt64LE(-1n, 8); // section length: not given
  return block(SHB_TYPE, Buffer.concat([fixed, option(SHB_USERAPPL, Buffer.from(application, 'utf8')), END_OF_OPTIONS]));
}

/** Interface Description Block: link type, no snap length, if_name, if_tsresol (microseconds). */
export function interfaceDescriptionBlock(name: string, linkType = LINKTYPE_RAW): Buffer {
  const fixed = Buffer.alloc(8);
  fixed.writeUInt16LE(linkType, 0);
  fixed.writeUInt16LE(0, 2); // reserved
  fixed.writeUInt32LE(SNAPLEN_UNLIMITED, 4);
  return block(IDB_TYPE, Buffer.concat([fixed, option(IF_NAME, Buffer.from(name, 'utf8')), option(IF_TSRESOL, Buffer.from([TSRESOL_MICROSECONDS])), END_OF_OPTIONS]));
}

/** Bytes an Enhanced Packet Block without options takes for a packet of `packetLength` bytes. */
export function enhancedPacketBlockLength(packetLength: number): number {
  return EPB_HEADER_LENGTH + pad4(packetLength) + BLOCK_TRAILER_LENGTH;
}

/**
 * Write an Enhanced Packet Block around a packet of `packetLength` bytes that the caller writes (or has
 * written) at offset + EPB_HEADER_LENGTH. `timestampUs` is microseconds since 1970 (a whole number).
 * Returns the offset after the block. The padding bytes are zeroed.
 */
export function writeEnhancedPacketBlock(out: Buffer, offset: number, interfaceId: number, timestampUs: number, packetLength: number): number {
  const total = enhancedPacketBlockLength(packetLength);
  out.writeUInt32LE(EPB_TYPE, offset);
  out.writeUInt32LE(total, offset + 4);
  out.writeUInt32LE(interfaceId, offset + 8);
  out.writeUInt32LE(Math.floor(timestampUs / 2 ** 32), offset + 12);
  out.writeUInt32LE(timestampUs % 2 ** 32, offset + 16);
  out.writeUInt32LE(packetLength, offset + 20);
  out.writeUInt32LE(packetLength, offset + 24);
  const end = offset + EPB_HEADER_LENGTH + packetLength;
  out.fill(0, end, offset + total - BLOCK_TRAILER_LENGTH);
  out.writeUInt32LE(total, offset + total - BLOCK_TRAILER_LENGTH);
  return offset + total;
}
