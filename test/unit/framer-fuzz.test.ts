// Property tests of the framer on hostile input (test/unit/pdu-framer.test.ts covers valid
// streams under every chunking). For any bytes, in any chunking: the only thing thrown is a ProtocolError,
// nothing is delivered after it, the event sequence is well formed (PDV bytes add up to their lengths, PDVs
// fill their PDU exactly), and what the framer holds is bounded whatever the length fields claim.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MAX_ASSOCIATION_PDU_LENGTH, PDU_HEADER_LENGTH } from '../../src/pdu/constants.js';
import { ProtocolError } from '../../src/pdu/errors.js';
import type { FrameHandler } from '../../src/pdu/framer.js';
import { INITIAL_BODY_BYTES, PduFramer } from '../../src/pdu/framer.js';
import { encodePData } from '../../src/pdu/pdata.js';
import * as F from '../fixtures/annotated-pdus.js';

/** Checks the event grammar as events arrive: PDU | DataStart (PdvStart PdvData* PdvEnd)+ DataEnd. */
class GrammarChecker implements FrameHandler {
  events = 0;
  failed = false;
  private inData = false;
  private dataRemaining = 0;
  private pdvRemaining = -1;

  onPdu(type: number, pdu: Buffer): void {
    this.delivered();
    assert.ok(!this.inData, 'a whole PDU inside a P-DATA-TF');
    assert.notEqual(type, 0x04);
    assert.equal(pdu[0], type);
    assert.equal(pdu.length, PDU_HEADER_LENGTH + pdu.readUInt32BE(2), 'a whole PDU is exactly its length');
    assert.ok(pdu.length <= PDU_HEADER_LENGTH + MAX_ASSOCIATION_PDU_LENGTH);
  }
  onDataStart(length: number): void {
    this.delivered();
    assert.ok(!this.inData);
    this.inData = true;
    this.dataRemaining = length;
  }
  onPdvStart(itemLength: number): void {
    this.delivered();
    assert.ok(this.inData && this.pdvRemaining === -1, 'PDV start inside a P-DATA-TF, not inside a PDV');
    assert.ok(itemLength >= 2);
    this.dataRemaining -= 4 + itemLength;
    assert.ok(this.dataRemaining >= 0, 'a PDV within its PDU');
    this.pdvRemaining = itemLength - 2;
  }
  onPdvData(bytes: Buffer): void {
    this.delivered();
    assert.ok(bytes.length > 0);
    this.pdvRemaining -= bytes.length;
    assert.ok(this.pdvRemaining >= 0, 'no more fragment bytes than the PDV holds');
  }
  onPdvEnd(): void {
    this.delivered();
    assert.equal(this.pdvRemaining, 0, 'a PDV ends when its bytes are all there');
    this.pdvRemaining = -1;
  }
  onDataEnd(): void {
    this.delivered();
    assert.ok(this.inData && this.pdvRemaining === -1);
    assert.equal(this.dataRemaining, 0, 'the PDVs fill the P-DATA-TF exactly');
    this.inData = false;
  }
  private delivered(): void {
    assert.ok(!this.failed, 'nothing is delivered after a ProtocolError');
    this.events++;
  }
}

/** Feed `bytes` cut at `cuts`; returns how it ended. */
function run(bytes: Uint8Array, cuts: number[]): { error: ProtocolError | undefined; maxHeld: number; events: number } {
  const framer = new PduFramer();
  const checker = new GrammarChecker();
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  let error: ProtocolError | undefined;
  let maxHeld = 0;
  let at = 0;
  for (const end of [...points, buf.length]) {
    if (end <= at) continue;
    try {
      framer.push(buf.subarray(at, end), 0, checker);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err; // an assertion from the checker, or a real bug
      assert.equal(error, undefined, 'one error at most');
      error = err;
      checker.failed = true;
    }
    maxHeld = Math.max(maxHeld, framer.allocatedBytes);
    // Allocated, not only filled: the buffer follows the bytes received, never the length claimed.
    assert.ok(
      framer.allocatedBytes <= Math.max(INITIAL_BODY_BYTES, 2 * framer.bufferedBytes) + PDU_HEADER_LENGTH,
      `allocated ${framer.allocatedBytes} for ${framer.bufferedBytes} held`,
    );
    at = end;
  }
  return { error, maxHeld, events: checker.events };
}

const VALID = Buffer.concat([
  F.ECHOSCU_RQ,
  F.STORESCP_AC,
  F.PDATA_ECHO_COMMAND,
  F.PDATA_TWO_DATASET_PDVS,
  encodePData([{ contextId: 3, command: false, last: true, fragment: Buffer.alloc(3000, 0x33) }]),
  F.RELEASE_RQ,
  F.RELEASE_RP,
]);

const cuts = fc.array(fc.nat(), { maxLength: 30 });

describe('framer on hostile input (fast-check)', () => {
  test('arbitrary bytes, arbitrary chunking: ProtocolError or well-formed events, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 2048 }), cuts, (bytes, c) => {
        run(bytes, c);
      }),
      { numRuns: 2000 },
    );
  });

  test('a valid association stream with bytes overwritten: the same guarantees', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat({ max: VALID.length - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), cuts, (flips, c) => {
        const bytes = Buffer.from(VALID);
        for (const [at, value] of flips) bytes[at] = value;
        run(bytes, c);
      }),
      { numRuns: 2000 },
    );
  });

  test('truncated and spliced streams: the same guarantees', () => {
    fc.assert(
      fc.property(fc.nat({ max: VALID.length }), fc.uint8Array({ maxLength: 64 }), fc.nat({ max: VALID.length }), cuts, (cut, junk, resume, c) => {
        run(Buffer.concat([VALID.subarray(0, cut), junk, VALID.subarray(resume)]), c);
      }),
      { numRuns: 1000 },
    );
  });

  test('whatever the length fields claim, the framer holds at most one capped association PDU', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }),
        fc.oneof(fc.constant(0xffffffff), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 70_000 })),
        fc.uint8Array({ maxLength: 4096 }),
        cuts,
        (type, length, body, c) => {
          const header = Buffer.alloc(6);
          header[0] = type;
          header.writeUInt32BE(length, 2);
          const { maxHeld } = run(Buffer.concat([header, body]), c);
          assert.ok(maxHeld <= PDU_HEADER_LENGTH + Math.min(length, MAX_ASSOCIATION_PDU_LENGTH), `held ${maxHeld}`);
          if (type === 0x04) assert.ok(maxHeld <= PDU_HEADER_LENGTH, 'P-DATA-TF is never buffered');
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('the valid stream itself passes the grammar with no error (the checker is not vacuous)', () => {
    const { error, events } = run(VALID, [1, 7, 100, 500]);
    assert.equal(error, undefined);
    assert.ok(events > 10);
  });
});
