// The chunk CSV recorder encodes each row straight into its batch buffer (no string per row). The bytes
// must be exactly those of the field list joined with commas (chunkCsvRow), whatever the values: checked
// here through a real file, with the values that take the unusual paths.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { PduRecord } from '../../src/events/events.js';
import { CHUNK_CSV_COLUMNS, ChunkCsvRecorder, chunkCsvRow } from '../../src/record/chunk-csv.js';

const base: PduRecord = {
  assoc: 7,
  direction: 'to_scp',
  seq: 42,
  type: 'P-DATA-TF',
  length: 16378,
  pdvs: 1,
  contextId: 3,
  kind: 'dataset',
  last: true,
  firstByteUs: 1234.5, // Math.round: 1235
  lastByteUs: 1300.49, // 1300
  forwardedUs: 1301.51, // 1302
  outPdus: 2,
  outMaxLength: 16384,
  violation: false,
};

const cases: Array<[PduRecord, string | undefined]> = [
  [base, undefined], // the default route
  [{ ...base, contextId: undefined, forwardedUs: undefined, kind: '', type: 'A-ABORT', last: false, violation: true }, 'r1'], // empty fields
  [{ ...base, assoc: 0, seq: 9, length: 10, pdvs: 0, outPdus: 0, outMaxLength: 0, firstByteUs: 0.4, lastByteUs: 9.5 }, 'ct'], // one-digit numbers
  [{ ...base, length: 4294967295, seq: Number.MAX_SAFE_INTEGER, firstByteUs: 1e15 + 0.5 }, 'big'], // widest integers
  [{ ...base, firstByteUs: -0.4, lastByteUs: -12.6, forwardedUs: 1e22 }, 'odd'], // -0, a negative, exponent notation
  [{ ...base, length: NaN, outMaxLength: 1.5, type: '0x7f' }, 'x'], // not integers at all
  [base, 'größe-ü'], // a route id that is not ASCII: UTF-8, as before
  [{ ...base, arm: '16KB#2', generation: 3 }, 'ct'], // an arm and a later generation
  [{ ...base, arm: '', generation: 1 }, undefined], // no arm, written out
  [{ ...base, arm: '1.5 MB', generation: 12345678 }, 'r2'], // a label with a space and a dot, a large generation
];
// Every digit count from 1 to 16, at its edges (10^k - 1, 10^k, 10^k + 1) and in between: numbers are
// written two digits at a time, so odd and even counts and zeros inside a number take different steps.
for (let k = 1; k <= 16; k++) {
  const p = 10 ** k;
  const values = [p - 1, p, p + 1, Math.floor(p / 3), Math.floor(p * 0.7) + 5, p * 5 + 7, p + 100].filter((v) => Number.isSafeInteger(v));
  for (const v of values) cases.push([{ ...base, seq: v, length: v % 4294967296, firstByteUs: v, outMaxLength: Math.floor(v / 7) }, `k${k}`]);
}

test('every encoded row is the field list joined with commas, byte for byte', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chunk-csv-'));
  try {
    const file = path.join(dir, 'chunks.csv');
    const recorder = await ChunkCsvRecorder.open(file);
    const expected = [CHUNK_CSV_COLUMNS.join(',')];
    for (let round = 0; round < 3; round++) {
      for (const [record, route] of cases) {
        recorder.pdu(record, route);
        expected.push(chunkCsvRow(record, route).join(','));
      }
    }
    await recorder.close();
    assert.equal(fs.readFileSync(file, 'utf8'), `${expected.join('\n')}\n`);
    assert.ok(expected[5]!.includes(',-13,1e+22,'), 'the odd values took the String() path');
    assert.ok(
      expected.some((row) => row.includes(',9007199254740991,')) && expected.some((row) => row.includes(',1000000000000000,')),
      'the widest and a power of ten were written',
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
