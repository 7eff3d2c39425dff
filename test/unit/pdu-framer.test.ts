// The streaming framer: identical events whatever the chunking (every split point, one byte at a time,
// random slicing), views instead of copies where a PDU lies in one chunk, and one named error per
// malformed input with nothing delivered after it.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { encodePData } from '../../src/pdu/pdata.js';
import type { FrameHandler } from '../../src/pdu/framer.js';
import { PduFramer } from '../../src/pdu/framer.js';
import { ProtocolError } from '../../src/pdu/errors.js';
import * as F from '../fixtures/annotated-pdus.js';
import { createHash } from 'node:crypto';

/** Hex with spaces for readability (Buffer.from(..., 'hex') stops at the first space). */
function h(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}

type Event =
  | { e: 'pdu'; type: number; bytes: string; t: number }
  | { e: 'data'; length: number; t: number }
  | { e: 'pdv'; itemLength: number; ctx: number; mch: number; bytes: string }
  | { e: 'dataEnd' };

/** Records events; PDV fragments are concatenated per PDV so chunking does not show. */
class Recorder implements FrameHandler {
  events: Event[] = [];
  boundaries: boolean[] = [];
  views = 0;
  private pdv: Extract<Event, { e: 'pdv' }> | undefined;
  private hash = createHash('sha1');
  private chunkBuffer: ArrayBufferLike | undefined;
  setChunk(chunk: Buffer): void {
    this.chunkBuffer = chunk.buffer;
  }
  onPdu(type: number, pdu: Buffer, t: number): void {
    if (pdu.buffer === this.chunkBuffer) this.views++;
    this.events.push({ e: 'pdu', type, bytes: pdu.toString('hex'), t });
  }
  onDataStart(length: number, _header: Buffer, t: number): void {
    this.events.push({ e: 'data', length, t });
  }
  onPdvStart(itemLength: number, ctx: number, mch: number): void {
    this.pdv = { e: 'pdv', itemLength, ctx, mch, bytes: '' };
    this.hash = createHash('sha1');
  }
  onPdvData(bytes: Buffer): void {
    assert.ok(bytes.length > 0, 'never an empty data event');
    this.hash.update(bytes);
  }
  onPdvEnd(): void {
    this.pdv!.bytes = this.hash.digest('hex'); // a digest of the fragment: chunking must not change it
    this.events.push(this.pdv!);
    this.pdv = undefined;
  }
  onDataEnd(): void {
    this.events.push({ e: 'dataEnd' });
  }
}

const BIG_FRAGMENT = Buffer.alloc(70_000);
for (let i = 0; i < BIG_FRAGMENT.length; i++) BIG_FRAGMENT[i] = (i * 7) & 0xff;

/** An association's worth of PDUs, both directions interleaved as one test stream. */
const STREAM = Buffer.concat([
  F.ECHOSCU_RQ,
  F.STORESCP_AC,
  F.PDATA_ECHO_COMMAND,
  F.PDATA_TWO_DATASET_PDVS,
  encodePData([
    { contextId: 5, command: false, last: false, fragment: BIG_FRAGMENT },
    { contextId: 5, command: false, last: true, fragment: Buffer.alloc(0) },
  ]),
  F.RELEASE_RQ,
  F.RELEASE_RP,
  F.ABORT_UNEXPECTED_PDU,
]);

/** Feed `chunks`, chunk i stamped with time i; returns the recorder. */
function feed(chunks: Buffer[], endsAtBoundary = true): Recorder {
  const framer = new PduFramer();
  const rec = new Recorder();
  chunks.forEach((chunk, i) => {
    rec.setChunk(chunk);
    framer.push(chunk, i, rec);
    rec.boundaries.push(framer.atBoundary);
  });
  if (endsAtBoundary) assert.ok(framer.atBoundary);
  return rec;
}

/** Events without times (times depend on the chunking). */
function untimed(events: Event[]): Event[] {
  return events.map((e) => ('t' in e ? { ...e, t: 0 } : e));
}

const WHOLE = feed([STREAM]);

describe('framer: chunking does not change the events', () => {
  test('whole stream: the expected PDUs, association PDUs as views of the chunk', () => {
    const kinds = WHOLE.events.map((e) => (e.e === 'pdu' ? e.type : e.e));
    assert.deepEqual(kinds, [1, 2, 'data', 'pdv', 'dataEnd', 'data', 'pdv', 'pdv', 'dataEnd', 'data', 'pdv', 'pdv', 'dataEnd', 5, 6, 7]);
    assert.equal((WHOLE.events[0] as { bytes: string }).bytes, F.ECHOSCU_RQ.toString('hex'));
    assert.equal(WHOLE.views, 5, 'every non-data PDU was handed out without a copy');
    const big = WHOLE.events[10] as Extract<Event, { e: 'pdv' }>;
    assert.equal(big.bytes, createHash('sha1').update(BIG_FRAGMENT).digest('hex'));
    assert.deepEqual(WHOLE.events[11], { e: 'pdv', itemLength: 2, ctx: 5, mch: 2, bytes: createHash('sha1').digest('hex') });
  });

  test('split in two at every point', () => {
    const expected = untimed(WHOLE.events);
    // Every split point of the small PDUs, and a stride through the 70 KB P-DATA-TF.
    for (let at = 1; at < STREAM.length; at += at < 600 || at > STREAM.length - 100 ? 1 : 97) {
      const rec = feed([STREAM.subarray(0, at), STREAM.subarray(at)]);
      assert.deepEqual(untimed(rec.events), expected, `split at ${at}`);
    }
  });

  test('one byte at a time', () => {
    const head = STREAM.subarray(0, 2000); // every PDU boundary of the first four PDUs and into the fifth
    const chunks = [...head].map((b) => Buffer.from([b]));
    chunks.push(STREAM.subarray(2000));
    assert.deepEqual(untimed(feed(chunks).events), untimed(WHOLE.events));
  });

  test('random slicing (fast-check)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: STREAM.length - 1 }), { maxLength: 40 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let from = 0;
        for (const p of points) {
          chunks.push(STREAM.subarray(from, p));
          from = p;
        }
        chunks.push(STREAM.subarray(from));
        assert.deepEqual(untimed(feed(chunks).events), untimed(WHOLE.events));
      }),
      { numRuns: 200 },
    );
  });

  test('firstByteTime is the time of the chunk holding the first byte', () => {
    // The RQ starts in chunk 0 and ends in chunk 1; the AC starts in chunk 1.
    const rec = feed([STREAM.subarray(0, 3), STREAM.subarray(3, F.ECHOSCU_RQ.length + 2), STREAM.subarray(F.ECHOSCU_RQ.length + 2)]);
    assert.equal((rec.events[0] as { t: number }).t, 0);
    assert.equal((rec.events[1] as { t: number }).t, 1);
  });

  test('atBoundary is true exactly between PDUs', () => {
    const end = F.ECHOSCU_RQ.length;
    const rec = feed([STREAM.subarray(0, end - 1), STREAM.subarray(end - 1, end), STREAM.subarray(end, end + 3)], false);
    assert.deepEqual(rec.boundaries, [false, true, false]);
  });
});

describe('framer: malformed input', () => {
  const cases: Array<[string, Buffer, string, number]> = [
    ['unknown PDU type 0x08', h('080000000004 00000000'), 'unknown-pdu-type', 1],
    ['unknown PDU type 0x00', h('000000000004 00000000'), 'unknown-pdu-type', 1],
    ['A-RELEASE-RQ with length 5', h('050000000005 0000000000'), 'fixed-pdu-length', 6],
    ['A-ABORT with length 0', h('070000000000'), 'fixed-pdu-length', 6],
    ['A-ASSOCIATE-RJ with length 3', h('030000000003 000101'), 'fixed-pdu-length', 6],
    ['A-ASSOCIATE-RQ with length 67', h('010000000043'), 'association-pdu-too-short', 6],
    ['A-ASSOCIATE-RQ claiming 0xFFFFFFFF bytes', h('0100ffffffff'), 'association-pdu-too-long', 6],
    ['P-DATA-TF with length 5', h('040000000005 0000000201'), 'pdata-too-short', 6],
    ['PDV item length 0', h('040000000006 00000000 0100'), 'pdv-too-short', 6],
    ['PDV item length 1', h('040000000006 00000001 0100'), 'pdv-too-short', 6],
    ['PDV overrunning its PDU', h('040000000008 00000005 0100 aabb'), 'pdv-overrun', 6],
    ['3 bytes after the last PDV', h('04000000000b 00000004 0102 aabb 000000'), 'pdv-header-truncated', 6],
  ];
  for (const [name, bytes, code, reason] of cases) {
    test(`${name}: ${code}, nothing delivered after it`, () => {
      const framer = new PduFramer();
      const rec = new Recorder();
      const input = Buffer.concat([bytes, F.RELEASE_RQ]);
      assert.throws(
        () => framer.push(input, 0, rec),
        (err: unknown) => err instanceof ProtocolError && err.code === code && err.reason === reason,
      );
      assert.ok(!rec.events.some((e) => e.e === 'pdu' && e.type === 5), 'nothing after the error');
      framer.push(F.RELEASE_RQ, 1, rec); // a failed framer ignores further input
      assert.ok(!rec.events.some((e) => e.e === 'pdu' && e.type === 5));
      assert.ok(framer.bufferedBytes <= 6, 'no buffer sized by the claimed length');
    });
  }

  test('a P-DATA-TF claiming ~4 GiB streams 10 MB without buffering', () => {
    const framer = new PduFramer();
    let data = 0;
    const handler: FrameHandler = {
      onPdu() {},
      onDataStart() {},
      onPdvStart() {},
      onPdvData(b) {
        data += b.length;
      },
      onPdvEnd() {},
      onDataEnd() {},
    };
    framer.push(h('0400fffffff0 ffffffea 0100'), 0, handler);
    const chunk = Buffer.alloc(65536);
    for (let i = 0; i < 160; i++) {
      framer.push(chunk, i, handler);
      assert.ok(framer.bufferedBytes <= 6);
    }
    assert.equal(data, 160 * 65536);
    assert.equal(framer.atBoundary, false);
  });

  test('stop() halts delivery', () => {
    const framer = new PduFramer();
    const seen: number[] = [];
    const handler: FrameHandler = {
      onPdu(type) {
        seen.push(type);
        if (type === 5) framer.stop();
      },
      onDataStart() {},
      onPdvStart() {},
      onPdvData() {},
      onPdvEnd() {},
      onDataEnd() {},
    };
    framer.push(Buffer.concat([F.RELEASE_RQ, F.RELEASE_RP]), 0, handler);
    framer.push(F.ABORT_UNEXPECTED_PDU, 1, handler);
    assert.deepEqual(seen, [5]);
  });
});

describe('framer: memory follows the bytes received, not the length claimed', () => {
  /** An A-ASSOCIATE-RQ header claiming the largest association PDU the framer accepts (1 MiB), and 10 body bytes. */
  const claim = Buffer.concat([h('010000100000'), Buffer.alloc(10, 0x20)]);
  const silent: FrameHandler = { onPdu() {}, onDataStart() {}, onPdvStart() {}, onPdvData() {}, onPdvEnd() {}, onDataEnd() {} };

  test('256 connections that each sent a 1 MiB A-ASSOCIATE-RQ header (16 bytes) do not reserve 256 MiB', () => {
    // Measured as the process's ArrayBuffer memory (what Buffer.allocUnsafe of 1 MiB takes), framers alive.
    const before = process.memoryUsage().arrayBuffers;
    const framers = Array.from({ length: 256 }, () => {
      const framer = new PduFramer();
      framer.push(claim, 0, silent);
      return framer;
    });
    const grew = process.memoryUsage().arrayBuffers - before;
    assert.ok(grew < 16 * 1024 * 1024, `256 pending RQs allocated ${(grew / 1024 / 1024).toFixed(1)} MiB`);
    for (const framer of framers) assert.ok(framer.allocatedBytes <= 4096, `allocated ${framer.allocatedBytes}`);
  });

  test('the buffer grows as bytes arrive (at most twice what is held), and the PDU comes out whole', () => {
    const length = 200_000;
    const rq = Buffer.alloc(6 + length, 0x41);
    rq.writeUInt8(1, 0);
    rq.writeUInt32BE(length, 2);
    const framer = new PduFramer();
    let got: Buffer | undefined;
    const handler: FrameHandler = { ...silent, onPdu: (_t, pdu) => (got = Buffer.from(pdu)) };
    for (let at = 0; at < rq.length; at += 1000) {
      framer.push(rq.subarray(at, Math.min(rq.length, at + 1000)), 0, handler);
      if (got) break;
      assert.ok(framer.allocatedBytes <= Math.max(4096, 2 * framer.bufferedBytes), `allocated ${framer.allocatedBytes} for ${framer.bufferedBytes} held`);
    }
    assert.ok(got?.equals(rq), 'the PDU is delivered byte for byte');
    assert.equal(framer.allocatedBytes, 0);
  });
});
