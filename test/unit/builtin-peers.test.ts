// The pure parts of the built-in peers: command sets they encode (byte for byte as DCMTK 3.6.7 sends them),
// the fragment plan and its P-DATA-TF headers (annotated bytes), the A-ASSOCIATE-AC of an accept-all SCP,
// and the Part 10 pieces (file meta, reading a file, the SOP Instance UID slot).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildTestDicom, datasetOffset } from '../../src/dicom/synthetic.js';
import { encodeFileMeta, findTopLevel, fixedLengthUid, FIXED_UID_LENGTH, readPart10, withUidSlot } from '../../src/dicom/part10.js';
import { C_ECHO_RSP, C_STORE_RQ, C_STORE_RSP, NO_DATA_SET, decodeCommandSet, encodeCommandSet } from '../../src/dimse/command.js';
import { decodeAssociate, maxLength, presentationContextsAc, presentationContextsRq } from '../../src/pdu/associate.js';
import { UINT32_MAX } from '../../src/pdu/constants.js';
import { fragmentPlan, MAX_FRAGMENT_UINT32, planHeaders } from '../../src/pdu/pdata.js';
import { acceptAll, buildAssociateAc, buildAssociateRq } from '../../src/peers/negotiation.js';
import * as fixtures from '../fixtures/annotated-commands.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

test('command sets: C-STORE-RQ, C-STORE-RSP and C-ECHO-RSP byte for byte as DCMTK sends them', () => {
  const rq = encodeCommandSet({
    commandField: C_STORE_RQ,
    affectedSopClassUid: fixtures.SECONDARY_CAPTURE_UID,
    messageId: 7,
    priority: 0,
    dataSetType: 0x0002,
    affectedSopInstanceUid: fixtures.INSTANCE_UID,
  });
  assert.deepEqual(rq, fixtures.C_STORE_RQ);
  const rsp = encodeCommandSet({
    commandField: C_STORE_RSP,
    affectedSopClassUid: fixtures.SECONDARY_CAPTURE_UID,
    messageIdBeingRespondedTo: 7,
    dataSetType: NO_DATA_SET,
    status: 0,
    affectedSopInstanceUid: fixtures.INSTANCE_UID,
  });
  assert.deepEqual(rsp, fixtures.C_STORE_RSP);
  const echo = encodeCommandSet({ commandField: C_ECHO_RSP, affectedSopClassUid: fixtures.VERIFICATION_UID, messageIdBeingRespondedTo: 1, dataSetType: NO_DATA_SET, status: 0 });
  assert.deepEqual(echo, fixtures.C_ECHO_RSP);
  // And the decoder reads back what was encoded: an even-length UID has no padding.
  const d = decodeCommandSet(
    encodeCommandSet({ commandField: C_STORE_RSP, messageIdBeingRespondedTo: 65535, dataSetType: NO_DATA_SET, status: 0xa700, affectedSopInstanceUid: '1.22' }),
  );
  assert.deepEqual([d.commandField, d.messageIdBeingRespondedTo, d.status, d.affectedSopInstanceUid], [C_STORE_RSP, 65535, 0xa700, '1.22']);
});

test('fragment plan: fragments of L - 6 (PDU-length exactly L), the last shorter; 0 = one fragment; empty = one empty', () => {
  assert.deepEqual(fragmentPlan(40, 16), [
    { offset: 0, length: 10, last: false },
    { offset: 10, length: 10, last: false },
    { offset: 20, length: 10, last: false },
    { offset: 30, length: 10, last: true },
  ]);
  assert.deepEqual(
    fragmentPlan(41, 16).map((f) => f.length),
    [10, 10, 10, 10, 1],
  );
  assert.deepEqual(fragmentPlan(16 * 1024 * 1024, 0), [{ offset: 0, length: 16 * 1024 * 1024, last: true }]);
  assert.deepEqual(fragmentPlan(0, 16384), [{ offset: 0, length: 0, last: true }]);
  // An odd Maximum Length still gets even fragments (floor((L - 6) / 2) * 2), so the PDU is L - 1.
  assert.deepEqual(
    fragmentPlan(20, 17).map((f) => f.length),
    [10, 10],
  );
  // 16MB at 16KB: 1024 PDUs of 16384 (fragment 16378) and a remainder.
  const plan = fragmentPlan(16 * 1024 * 1024 + 400, 16384);
  assert.equal(plan.length, Math.ceil((16 * 1024 * 1024 + 400) / 16378));
  assert.ok(plan.slice(0, -1).every((f) => f.length === 16378 && !f.last));
  assert.equal(plan.at(-1)!.last, true);
  assert.equal(
    plan.reduce((n, f) => n + f.length, 0),
    16 * 1024 * 1024 + 400,
  );
  // No maximum, over 4 GiB: cut where a PDU-length still fits a UInt32.
  const huge = fragmentPlan(5 * 2 ** 30, 0);
  assert.deepEqual(
    huge.map((f) => f.length),
    [MAX_FRAGMENT_UINT32, 5 * 2 ** 30 - MAX_FRAGMENT_UINT32],
  );
  assert.ok(MAX_FRAGMENT_UINT32 + 6 <= UINT32_MAX && MAX_FRAGMENT_UINT32 % 2 === 0);
});

test('plan headers: one P-DATA-TF + PDV header per fragment, annotated', () => {
  const headers = planHeaders(fragmentPlan(14, 16), 3, false);
  assert.deepEqual(
    headers,
    hex(
      '04 00 00000010' + //  P-DATA-TF, reserved, PDU-length 16 (the Maximum Length)
        '0000000c 03 00' + //   PDV item length 12 (fragment 10 + 2), context 3, MCH 00: data set, not last
        '04 00 0000000a' + //  P-DATA-TF, PDU-length 10
        '00000006 03 02', //    PDV item length 6 (fragment 4), context 3, MCH 02: data set, last
    ),
  );
  assert.deepEqual(planHeaders(fragmentPlan(100, 0), 1, true), hex('04 00 0000006a  00000066 01 03')); // 106 = 6 + 100; MCH 03: command, last
});

test('negotiation: the RQ proposes what it is given; the AC accepts each context with its first transfer syntax', () => {
  const rq = decodeAssociate(
    buildAssociateRq({
      calledAet: 'ANY-SCP',
      callingAet: 'PDU-BENCH',
      maxLength: 64 * 1024 * 1024,
      contexts: [
        { id: 1, abstractSyntax: '1.2.840.10008.5.1.4.1.1.7', transferSyntaxes: ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2'] },
        { id: 3, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] },
      ],
    }),
  );
  assert.equal(maxLength(rq), 64 * 1024 * 1024);
  assert.deepEqual(
    presentationContextsRq(rq).map((c) => [c.id, c.abstractSyntax, c.transferSyntaxes.length]),
    [
      [1, '1.2.840.10008.5.1.4.1.1.7', 2],
      [3, '1.2.840.10008.1.1', 1],
    ],
  );
  const ac = decodeAssociate(buildAssociateAc(rq, acceptAll(rq), 0));
  assert.equal(maxLength(ac), 0);
  assert.deepEqual(presentationContextsAc(ac), [
    { id: 1, result: 0, transferSyntax: '1.2.840.10008.1.2.1' },
    { id: 3, result: 0, transferSyntax: '1.2.840.10008.1.2' },
  ]);
  assert.deepEqual(ac.fixed, rq.fixed, 'AE titles echoed');
});

test('Part 10: file meta written, read back; the SOP Instance UID slot is patched in place', () => {
  const meta = encodeFileMeta({ sopClassUid: '1.2.840.10008.5.1.4.1.1.7', sopInstanceUid: '1.2.3', transferSyntax: '1.2.840.10008.1.2.1' });
  assert.equal(meta.toString('latin1', 128, 132), 'DICM');
  assert.ok(meta.subarray(0, 128).equals(Buffer.alloc(128)), 'zero preamble');
  assert.deepEqual(meta.subarray(132, 144), hex('0200 0000 554c 0400' + meta.readUInt32LE(140).toString(16).padStart(2, '0') + '000000')); // (0002,0000) UL 4
  assert.equal(meta.readUInt32LE(140), meta.length - 144, 'group length counts what follows it');
  const dataset = hex('0800 1800 5549 0400 312e 3200'); // (0008,0018) UI "1.2\0"
  const read = readPart10(Buffer.concat([meta, dataset]));
  assert.deepEqual([read.sopClassUid, read.sopInstanceUid, read.transferSyntax], ['1.2.840.10008.5.1.4.1.1.7', '1.2.3', '1.2.840.10008.1.2.1']);
  assert.deepEqual(read.dataset, dataset);

  const { bytes, info } = buildTestDicom({ pixelBytes: 64, seed: 5 });
  const original = bytes.subarray(datasetOffset(bytes));
  const uid = fixedLengthUid(Buffer.alloc(16));
  assert.equal(uid.length, FIXED_UID_LENGTH);
  assert.equal(fixedLengthUid(Buffer.alloc(16, 0xff)).length, FIXED_UID_LENGTH);
  const slotted = withUidSlot(original, '1.2.840.10008.1.2.1', uid)!;
  assert.equal(slotted.dataset.length, original.length - info.sopInstanceUid.length - (info.sopInstanceUid.length % 2) + FIXED_UID_LENGTH);
  assert.equal(slotted.dataset.toString('latin1', slotted.slot.value, slotted.slot.value + slotted.slot.length), uid);
  // Everything after the UID is unchanged.
  const found = findTopLevel(original, 0x00080018, false)!;
  assert.ok(slotted.dataset.subarray(slotted.slot.value + FIXED_UID_LENGTH).equals(original.subarray(found.value + found.length)));
  assert.equal(withUidSlot(original, '1.2.840.10008.1.2.2', uid), undefined, 'big endian: not walked');
});

test('message reader: a command set split over PDUs and chunks arrives whole; data set bytes stream; limits enforced', async () => {
  const { MessageReader } = await import('../../src/peers/reader.js');
  const { encodePData } = await import('../../src/pdu/pdata.js');
  const events: string[] = [];
  const reader = new MessageReader({
    onPdu: (type) => events.push(`pdu ${type}`),
    onCommand: (id, c) => events.push(`command ${id} ${c.commandField} ${c.messageId}`),
    onDataset: (id, bytes) => events.push(`data ${id} ${bytes.length}`),
    onDatasetEnd: (id) => events.push(`end ${id}`),
  });
  reader.contexts = new Set([1]);
  reader.maxLength = 64;
  const command = fixtures.C_STORE_RQ; // 112 bytes: two command PDVs of 58 and 54
  const wire = Buffer.concat([
    encodePData([{ contextId: 1, command: true, last: false, fragment: command.subarray(0, 58) }]),
    encodePData([{ contextId: 1, command: true, last: true, fragment: command.subarray(58) }]),
    encodePData([{ contextId: 1, command: false, last: true, fragment: Buffer.alloc(40) }]),
  ]);
  // One byte at a time: every split point at once.
  for (let i = 0; i < wire.length; i++) reader.push(wire.subarray(i, i + 1));
  assert.deepEqual(
    events.filter((e) => !e.startsWith('data')),
    ['command 1 1 7', 'end 1'],
  );
  assert.equal(events.filter((e) => e.startsWith('data')).length, 40, 'one event per byte fed, never assembled');
  // Over the announced maximum, and on a context that was not accepted: ProtocolError with its code.
  assert.throws(
    () =>
      new MessageReader({ onPdu() {}, onCommand() {}, onDataset() {}, onDatasetEnd() {} }).push(
        encodePData([{ contextId: 1, command: false, last: true, fragment: Buffer.alloc(60) }]),
      ),
    /unknown-context-id|not accepted/,
  );
  const limited = new MessageReader({ onPdu() {}, onCommand() {}, onDataset() {}, onDatasetEnd() {} });
  limited.contexts = new Set([1]);
  limited.maxLength = 64;
  assert.throws(
    () => limited.push(encodePData([{ contextId: 1, command: false, last: true, fragment: Buffer.alloc(60) }])),
    (e: Error & { code?: string }) => e.code === 'pdu-over-maximum',
  );
});
