// The capture's pure encoders against annotated bytes: pcapng blocks, IPv4/IPv6 + TCP headers and their
// checksums, the TCP numbering of a connection, and the headers-only payload mask.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { enhancedPacketBlockLength, interfaceDescriptionBlock, sectionHeaderBlock, writeEnhancedPacketBlock } from '../../src/capture/encoding/pcapng.js';
import { MAX_SEGMENT_PAYLOAD, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, finishChecksum, onesSumLE, parseIpAddress, writeTcpPacket } from '../../src/capture/encoding/tcp-ip.js';
import type { Segment } from '../../src/capture/encoding/tcp-conversation.js';
import { TcpConversation } from '../../src/capture/encoding/tcp-conversation.js';
import { PayloadMask } from '../../src/capture/encoding/payload-mask.js';
import { CapturedConnection } from '../../src/capture/encoding/connection.js';

/** Hex with spaces and comments for readability: `# ...` to the end of a line is dropped. */
function h(text: string): Buffer {
  return Buffer.from(text.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');
}

/** RFC 1071 the slow way: big-endian 16-bit words, end-around carry after every addition. */
function referenceChecksum(bytes: Buffer): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    sum += (bytes[i]! << 8) | (i + 1 < bytes.length ? bytes[i + 1]! : 0);
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  return ~sum & 0xffff;
}

describe('pcapng blocks', () => {
  test('Section Header Block: magic, version 1.0, unknown section length, shb_userappl', () => {
    assert.deepEqual(
      sectionHeaderBlock('dpp'),
      h(`
        0a0d0d0a  28000000          # block type SHB, total length 40
        4d3c2b1a                    # byte-order magic, little-endian
        0100 0000                   # version 1.0
        ffffffffffffffff            # section length -1: not given
        0400 0300 64707000          # shb_userappl (4), length 3, "dpp" + 1 byte padding
        0000 0000                   # opt_endofopt
        28000000                    # total length again
      `),
    );
  });

  test('Interface Description Block: LINKTYPE_RAW, no snap length, if_name, if_tsresol 6', () => {
    assert.deepEqual(
      interfaceDescriptionBlock('scu'),
      h(`
        01000000  28000000          # block type IDB, total length 40
        6500 0000                   # link type 101 (raw IP), reserved
        00000000                    # snap length 0: none
        0200 0300 73637500          # if_name (2), length 3, "scu" + padding
        0900 0100 06000000          # if_tsresol (9), length 1, 10^-6 + padding
        0000 0000                   # opt_endofopt
        28000000
      `),
    );
  });

  test('Enhanced Packet Block: interface, 64-bit microsecond timestamp, lengths, padding', () => {
    const out = Buffer.alloc(enhancedPacketBlockLength(5), 0xee);
    h('0102030405').copy(out, 28);
    const end = writeEnhancedPacketBlock(out, 0, 1, 0x0005_1234_5678_9abc, 5);
    assert.equal(end, out.length);
    assert.deepEqual(
      out,
      h(`
        06000000  28000000          # block type EPB, total length 40
        01000000                    # interface 1
        34120500 bc9a7856           # timestamp high 0x00051234, low 0x56789abc
        05000000 05000000           # captured and original length 5
        0102030405 000000           # packet, padded to 32 bits with zeros
        28000000
      `),
    );
  });
});

describe('IP and TCP headers', () => {
  test('the IPv4 header checksum of the classic example (RFC 1071 style, 0xb861)', () => {
    const header = h('4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7');
    const stored = Buffer.alloc(2);
    stored.writeUInt16LE(finishChecksum(onesSumLE(header, 0, header.length)));
    assert.equal(stored.toString('hex'), 'b861');
  });

  test('word-wise and byte-wise sums agree at every alignment and length', () => {
    const backing = Buffer.alloc(200);
    for (let i = 0; i < backing.length; i++) backing[i] = (i * 151 + 7) & 0xff;
    for (let offset = 0; offset < 8; offset += 2) {
      for (let length = 0; length < 60; length++) {
        const view = backing.subarray(offset, offset + length);
        const stored = Buffer.alloc(2);
        stored.writeUInt16LE(finishChecksum(onesSumLE(view, 0, length)));
        assert.equal(stored.readUInt16BE(0), referenceChecksum(view), `offset ${offset} length ${length}`);
      }
    }
  });

  test('an IPv4 SYN with MSS and window scale, byte for byte', () => {
    const out = Buffer.alloc(48);
    const length = writeTcpPacket(
      out,
      0,
      { src: h('7f000001'), dst: h('7f000002'), srcPort: 40000, dstPort: 11112, seq: 0x01020304, ack: 0, flags: TCP_SYN, ipId: 7, synOptions: true },
      0,
    );
    assert.equal(length, 48);
    const expected = h(`
      45 00 0030 0007 4000 40 06 0000   # IPv4, total 48, id 7, DF, TTL 64, TCP, checksum below
      7f000001 7f000002                 # 127.0.0.1 -> 127.0.0.2
      9c40 2b68                         # ports 40000 -> 11112
      01020304 00000000                 # seq, ack
      70 02 ffff 0000 0000              # data offset 7 words, SYN, window 65535, checksum below, urgent
      02 04 ffd7                        # MSS 65495
      01                                # NOP
      03 03 08                          # window scale 8
    `);
    expected.writeUInt16BE(referenceChecksum(expected.subarray(0, 20)), 10);
    const pseudo = Buffer.concat([expected.subarray(12, 20), h('0006 001c'), expected.subarray(20)]);
    expected.writeUInt16BE(referenceChecksum(pseudo), 36);
    assert.deepEqual(out, expected);
  });

  test('an IPv6 data segment: payload length, next header, pseudo-header checksum over an odd payload', () => {
    const payload = h('0102030405');
    const out = Buffer.alloc(40 + 20 + payload.length);
    payload.copy(out, 60);
    const src = parseIpAddress('::1')!;
    const dst = parseIpAddress('fe80::2%lo')!;
    writeTcpPacket(out, 0, { src, dst, srcPort: 104, dstPort: 5000, seq: 10, ack: 20, flags: TCP_PSH | TCP_ACK, ipId: 0, synOptions: false }, payload.length);
    assert.deepEqual(out.subarray(0, 8), h('60000000 0019 06 40')); // version 6, payload 25, TCP, hop limit 64
    assert.deepEqual(out.subarray(8, 24), h('00000000000000000000000000000001'));
    assert.deepEqual(out.subarray(24, 40), h('fe800000000000000000000000000002'));
    const pseudo = Buffer.concat([out.subarray(8, 40), h('00000019 00000006'), out.subarray(40)]);
    assert.equal(referenceChecksum(pseudo), 0, 'the checksum field makes the whole sum 0xffff');
    assert.deepEqual(out.subarray(60), payload);
  });

  test('addresses: IPv4, IPv6 forms, IPv4-mapped IPv6 becomes IPv4, garbage is undefined', () => {
    assert.deepEqual(parseIpAddress('192.168.1.20'), h('c0a80114'));
    assert.deepEqual(parseIpAddress('::ffff:127.0.0.1'), h('7f000001'));
    assert.deepEqual(parseIpAddress('2001:db8::8:800:200c:417a'), h('20010db8000000000008 0800200c417a'));
    assert.deepEqual(parseIpAddress('::'), Buffer.alloc(16));
    assert.deepEqual(parseIpAddress('64:ff9b::192.0.2.33'), h('0064ff9b0000000000000000c0000221'));
    assert.equal(parseIpAddress('pacs.example'), undefined);
  });
});

describe('TCP numbering of a connection', () => {
  function run(steps: (tcp: TcpConversation, sink: (s: Segment) => void) => void): Array<[string, string, number, number, number]> {
    const tcp = new TcpConversation(1000, 5000);
    const out: Array<[string, string, number, number, number]> = [];
    const names: Array<[number, string]> = [
      [TCP_SYN, 'S'],
      [TCP_FIN, 'F'],
      [TCP_RST, 'R'],
      [TCP_PSH, 'P'],
      [TCP_ACK, 'A'],
    ];
    steps(tcp, (s) =>
      out.push([
        s.fromClient ? 'c' : 's',
        names
          .filter(([f]) => s.flags & f)
          .map(([, n]) => n)
          .join(''),
        s.seq,
        s.ack,
        s.end - s.start,
      ]),
    );
    return out;
  }

  test('handshake, data both ways (cut at MAX_SEGMENT_PAYLOAD), an ACK per two full segments, FINs acknowledged', () => {
    const big = Buffer.alloc(2 * MAX_SEGMENT_PAYLOAD + 10);
    const segments = run((tcp, sink) => {
      tcp.open(sink);
      tcp.data(true, big, 0, big.length, sink);
      tcp.data(false, Buffer.alloc(10), 0, 10, sink);
      tcp.fin(true, sink);
      tcp.fin(false, sink);
    });
    const m = MAX_SEGMENT_PAYLOAD;
    assert.deepEqual(segments, [
      ['c', 'S', 1000, 0, 0],
      ['s', 'SA', 5000, 1001, 0],
      ['c', 'A', 1001, 5001, 0],
      ['c', 'PA', 1001, 5001, m],
      ['c', 'PA', 1001 + m, 5001, m],
      ['c', 'PA', 1001 + 2 * m, 5001, 10],
      ['s', 'A', 5001, 1001 + big.length, 0],
      ['s', 'PA', 5001, 1001 + big.length, 10], // 10 bytes: not worth an ACK of their own
      ['c', 'FA', 1001 + big.length, 5011, 0], // the FIN acknowledges them

      ['s', 'A', 5011, 1002 + big.length, 0],
      ['s', 'FA', 5011, 1002 + big.length, 0],
      ['c', 'A', 1002 + big.length, 5012, 0],
    ]);
  });

  test('small writes are acknowledged together once two full segments are outstanding', () => {
    const segments = run((tcp, sink) => {
      tcp.open(sink);
      for (let i = 0; i < 8; i++) tcp.data(true, Buffer.alloc(30000), 0, 30000, sink);
    });
    assert.deepEqual(
      segments.filter(([from]) => from === 's').map(([, flags, , ack]) => [flags, ack]),
      [
        ['SA', 1001],
        ['A', 1001 + 5 * 30000], // 150,000 >= 2 x 65,495
      ],
    );
  });

  test('skipped bytes advance the sequence; nothing after a reset; numbers wrap at 2^32', () => {
    const tcp = new TcpConversation(0xffff_fff0, 0);
    const out: Segment[] = [];
    tcp.open((s) => out.push(s));
    tcp.skip(true, 100);
    tcp.data(true, Buffer.alloc(4), 0, 4, (s) => out.push(s));
    tcp.rst(false, (s) => out.push(s));
    tcp.data(true, Buffer.alloc(4), 0, 4, (s) => out.push(s));
    tcp.fin(true, (s) => out.push(s));
    assert.equal(out[3]!.seq, (0xffff_fff1 + 100) % 2 ** 32);
    assert.equal(out[4]!.flags, TCP_RST | TCP_ACK);
    assert.equal(out[4]!.ack, (0xffff_fff1 + 104) % 2 ** 32);
    assert.equal(out.length, 5);
    assert.ok(tcp.closed);
  });
});

describe('--pcap-payload headers: the mask', () => {
  const stream = h(`
    01 00 00000004 aabbccdd                   # a (short, made-up) A-ASSOCIATE-RQ: kept whole
    04 00 00000018                            # P-DATA-TF, length 24
      00000006 01 03 c0c1c2c3                 #   PDV: length 6, context 1, command + last: kept
      0000000a 03 00 d0d1d2d3d4d5d6d7         #   PDV: length 10, context 3, data set: zeroed
    04 00 00000008                            # P-DATA-TF, length 8
      00000004 03 02 e0e1                     #   PDV: data set, last: zeroed
    07 00 00000004 00000200                   # A-ABORT: kept
  `);
  const expected = h(`
    01 00 00000004 aabbccdd
    04 00 00000018
      00000006 01 03 c0c1c2c3
      0000000a 03 00 0000000000000000
    04 00 00000008
      00000004 03 02 0000
    07 00 00000004 00000200
  `);

  test('keeps PDU and PDV headers, other PDUs and command fragments; zeroes data-set bytes', () => {
    const out = Buffer.alloc(stream.length, 0xee);
    new PayloadMask().copy(stream, 0, stream.length, out, 0);
    assert.deepEqual(out, expected);
  });

  test('the same at every split point and one byte at a time', () => {
    for (let split = 0; split <= stream.length; split++) {
      const mask = new PayloadMask();
      const out = Buffer.alloc(stream.length, 0xee);
      mask.copy(stream, 0, split, out, 0);
      mask.copy(stream, split, stream.length, out, split);
      assert.deepEqual(out, expected, `split at ${split}`);
    }
    const mask = new PayloadMask();
    const out = Buffer.alloc(stream.length, 0xee);
    for (let i = 0; i < stream.length; i++) mask.copy(stream, i, i + 1, out, i);
    assert.deepEqual(out, expected);
  });

  test('fails closed: after an unknown PDU type or a PDV running past its PDU, everything is zeroed', () => {
    const cases: Array<[Buffer, number]> = [
      [h('09 00 00000002 abcd 07 00 00000004 00000200'), 6], // type 0x09: zeroed after its header
      [h('04 00 00000008 00000010 01 03 c0c1 07000000000400000200'), 12], // PDV length 16 in a PDU of 8: after the PDV header
    ];
    for (const [bad, keptUpTo] of cases) {
      const out = Buffer.alloc(bad.length, 0xee);
      new PayloadMask().copy(bad, 0, bad.length, out, 0);
      assert.deepEqual(out.subarray(0, keptUpTo), bad.subarray(0, keptUpTo));
      assert.ok(
        out.subarray(keptUpTo).every((b) => b === 0),
        out.toString('hex'),
      );
    }
  });

  test('a captured connection writes masked payload, a valid IPv4 header checksum and TCP checksum 0 (not summed)', () => {
    const connection = new CapturedConnection(0, { address: h('7f000001'), port: 1 }, { address: h('7f000001'), port: 2 }, 'headers', 1);
    const blocks: Buffer[] = [];
    const sink = (s: Segment): void => {
      const out = Buffer.alloc(connection.blockLength(s));
      assert.equal(connection.writeBlock(out, 0, s, 1), out.length);
      blocks.push(out);
    };
    connection.conversation.open(sink);
    connection.conversation.data(true, stream, 0, stream.length, sink);
    const data = blocks[3]!;
    const packet = data.subarray(28, 28 + data.readUInt32LE(20));
    assert.deepEqual(packet.subarray(40), expected);
    assert.equal(referenceChecksum(packet.subarray(0, 20)), 0, 'IPv4 header checksum');
    assert.equal(packet.readUInt16BE(20 + 16), 0, 'TCP checksum left 0');
  });
});

describe('a batch of writes captured as one run of bytes', () => {
  /** The blocks a fresh connection writes for `data` (one buffer or a batch), payload `payload`. */
  function blocksOf(data: Buffer | Buffer[], length: number, payload: 'full' | 'headers'): Buffer[] {
    const connection = new CapturedConnection(1, { address: h('7f000001'), port: 1 }, { address: h('7f000002'), port: 2 }, payload, 7);
    const blocks: Buffer[] = [];
    const sink = (s: Segment): void => {
      const out = Buffer.alloc(connection.blockLength(s));
      connection.writeBlock(out, 0, s, 1);
      blocks.push(out);
    };
    connection.conversation.open(sink);
    connection.conversation.data(false, data, 0, length, sink);
    return blocks;
  }

  test('pieces spanning segment boundaries give the same blocks as the joined bytes, full and headers', () => {
    // A P-DATA-TF with one data-set PDV (PS3.8 9.3.5) of 150,000 bytes: three segments of at most 65,495.
    const body = 150_000;
    const pdu = Buffer.alloc(6 + 6 + body, 0xab);
    pdu.writeUInt8(0x04, 0); // P-DATA-TF
    pdu.writeUInt32BE(6 + body, 2); // PDU length
    pdu.writeUInt32BE(2 + body, 6); // PDV item length
    pdu[10] = 1; // presentation context id
    pdu[11] = 0x02; // message control header: data set, last fragment
    // Cut at a PDV header byte, across the first segment boundary, and into many small pieces at the end.
    const cuts = [9, 65_000, 65_600, 140_000, ...Array.from({ length: 20 }, (_, i) => 140_001 + i * 7)];
    const pieces = [0, ...cuts].map((from, i) => pdu.subarray(from, cuts[i] ?? pdu.length));
    assert.equal(
      pieces.reduce((n, p) => n + p.length, 0),
      pdu.length,
    );
    for (const payload of ['full', 'headers'] as const) {
      const joined = blocksOf(pdu, pdu.length, payload);
      assert.equal(joined.filter((b) => b.length > 1000).length, 3, 'three data segments');
      assert.deepEqual(blocksOf(pieces, pdu.length, payload), joined, payload);
    }
  });
});
