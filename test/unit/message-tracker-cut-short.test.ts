// A request whose data set was cut short (a new command came before its last fragment) and that then got
// its final response must still be reported (found by the tracker fuzz target): it was dropped from the
// outstanding table when answered, was never forwarded whole, and so was reported neither then nor at close().

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageTracker } from '../../src/dimse/tracker.js';
import type { Direction, MessageRecord, PduRecord } from '../../src/events/events.js';
import { commandSet } from '../fixtures/annotated-commands.js';

const legs = { idleUs: () => 0, blockedUs: () => 0, busyUs: () => 0 };
let time = 0;
let seq = 0;

function pdv(tracker: MessageTracker, direction: Direction, mch: number, bytes: Buffer): void {
  const pdu = {
    assoc: 1,
    direction,
    seq: ++seq,
    type: 'P-DATA-TF',
    length: bytes.length + 6,
    pdvs: 1,
    contextId: 1,
    kind: 'command',
    last: true,
    firstByteUs: time,
    lastByteUs: time,
    forwardedUs: time,
    outPdus: 1,
    outMaxLength: 0,
    violation: false,
  } satisfies PduRecord;
  tracker.dataStart(direction, ++time, 0, 0, 0);
  tracker.pdvStart(direction, 1, mch);
  tracker.pdvData(direction, bytes);
  tracker.pdvEnd(direction, ++time, pdu);
  tracker.forwarded(pdu);
}

test('a request cut short, then answered: reported once, with the bytes that came and its status', () => {
  const records: MessageRecord[] = [];
  const tracker = new MessageTracker(1, { to_scp: legs, to_scu: legs }, 0, { message: (r) => records.push(r), undecodable: () => undefined });
  // C-STORE-RQ MessageID 1 announcing a data set; 10 data set bytes without the last bit.
  pdv(
    tracker,
    'to_scp',
    0x03,
    commandSet([
      [0x0002, '1.2.840.10008.5.1.4.1.1.7'],
      [0x0100, 0x0001],
      [0x0110, 1],
      [0x0800, 0x0000],
      [0x1000, '1.2.3'],
    ]),
  );
  pdv(tracker, 'to_scp', 0x00, Buffer.alloc(10));
  // A C-ECHO-RQ MessageID 2 cuts the data set short.
  pdv(
    tracker,
    'to_scp',
    0x03,
    commandSet([
      [0x0002, '1.2.840.10008.1.1'],
      [0x0100, 0x0030],
      [0x0110, 2],
      [0x0800, 0x0101],
    ]),
  );
  // The SCP answers the C-STORE (failure, a700) and the C-ECHO (success).
  pdv(
    tracker,
    'to_scu',
    0x03,
    commandSet([
      [0x0100, 0x8001],
      [0x0120, 1],
      [0x0800, 0x0101],
      [0x0900, 0xa700],
    ]),
  );
  pdv(
    tracker,
    'to_scu',
    0x03,
    commandSet([
      [0x0100, 0x8030],
      [0x0120, 2],
      [0x0800, 0x0101],
      [0x0900, 0x0000],
    ]),
  );
  tracker.close();
  const byId = new Map(records.map((r) => [r.messageId, r]));
  assert.equal(records.length, 2, JSON.stringify(records.map((r) => [r.messageId, r.command])));
  assert.equal(byId.get(1)?.command, 'C-STORE-RQ');
  assert.equal(byId.get(1)?.bytes, 10);
  assert.equal(byId.get(1)?.status, 0xa700);
  assert.equal(byId.get(1)?.requestForwardedUs, undefined, 'never forwarded whole');
  assert.equal(byId.get(2)?.status, 0);
});
