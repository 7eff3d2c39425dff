// MessageTracker fed synthetic link events: requests matched to responses, split command PDVs, pending
// counts, C-GET sub-operations the other way, forward/response ordering, the time split, and what is
// reported when an association ends early or a command set cannot be decoded.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_COMMAND_SET_LENGTH } from '../../src/dimse/command.js';
import type { LegTimes } from '../../src/dimse/tracker.js';
import { MessageTracker, durationUs, responseUs } from '../../src/dimse/tracker.js';
import type { Direction, MessageRecord, PduRecord } from '../../src/events/events.js';
import { C_ECHO_RQ, C_ECHO_RSP, C_FIND_RSP_PENDING, C_STORE_RQ, C_STORE_RSP, INSTANCE_UID, commandSet } from '../fixtures/annotated-commands.js';

const COMMAND = 0x01;
const LAST = 0x02;

class FakeLeg implements LegTimes {
  idle = 0;
  blocked = 0;
  busy = 0;
  idleUs(): number {
    return this.idle;
  }
  blockedUs(): number {
    return this.blocked;
  }
  busyUs(): number {
    return this.busy;
  }
}

interface Pdv {
  command: boolean;
  last: boolean;
  /** Bytes, or a number of dataset bytes (zeros). */
  bytes: Buffer | number;
  contextId?: number;
  /** Deliver the fragment in pieces of this size (as chunks would). */
  pieces?: number;
}

function pduRecord(direction: Direction, firstByteUs: number): PduRecord {
  return {
    assoc: 1,
    direction,
    seq: 0,
    type: 'P-DATA-TF',
    length: 0,
    pdvs: 0,
    contextId: undefined,
    kind: '',
    last: false,
    firstByteUs,
    lastByteUs: firstByteUs,
    forwardedUs: undefined,
    outPdus: 0,
    outMaxLength: 0,
    violation: false,
  };
}

class Harness {
  readonly legs = { to_scp: new FakeLeg(), to_scu: new FakeLeg() };
  readonly rows: MessageRecord[] = [];
  readonly undecodable: Array<[Direction, string]> = [];
  readonly tracker = new MessageTracker(1, this.legs, Date.UTC(2026, 0, 2, 3, 4, 5, 0), {
    message: (m) => this.rows.push(m),
    undecodable: (d, why) => this.undecodable.push([d, why]),
  });

  constructor() {
    this.tracker.setLimits(1048576, 16384);
    this.tracker.setTags({ arm: '1MB#2', callingAet: 'CT01', calledAet: 'PACS', generation: 3 });
    this.tracker.setTransferSyntaxes(new Map([[1, '1.2.840.10008.1.2']]));
  }

  /** One P-DATA-TF: first byte at `firstUs`, every PDV's last byte at `endUs`. */
  pdu(direction: Direction, firstUs: number, endUs: number, pdvs: Pdv[]): PduRecord {
    const record = pduRecord(direction, firstUs);
    const leg = this.legs[direction];
    this.tracker.dataStart(direction, firstUs, leg.idle, leg.blocked, leg.busy);
    for (const pdv of pdvs) {
      const mch = (pdv.command ? COMMAND : 0) | (pdv.last ? LAST : 0);
      this.tracker.pdvStart(direction, pdv.contextId ?? 1, mch);
      const bytes = typeof pdv.bytes === 'number' ? Buffer.alloc(pdv.bytes) : pdv.bytes;
      const step = pdv.pieces ?? Math.max(1, bytes.length);
      for (let i = 0; i < bytes.length; i += step) this.tracker.pdvData(direction, bytes.subarray(i, i + step));
      this.tracker.pdvEnd(direction, endUs, record);
    }
    return record;
  }

  /** A whole message (command, then the data set if `dataset` bytes are given) in one PDU. */
  message(direction: Direction, firstUs: number, endUs: number, command: Buffer, dataset?: number): PduRecord {
    const pdvs: Pdv[] = [{ command: true, last: true, bytes: command }];
    if (dataset !== undefined) pdvs.push({ command: false, last: true, bytes: dataset });
    return this.pdu(direction, firstUs, endUs, pdvs);
  }

  forward(record: PduRecord, atUs: number | undefined): void {
    record.forwardedUs = atUs;
    this.tracker.forwarded(record);
  }
}

describe('MessageTracker: request and response', () => {
  test('C-ECHO: one row with every time, reported once answered and forwarded', () => {
    const h = new Harness();
    const rq = h.message('to_scp', 1000, 1000, C_ECHO_RQ);
    h.forward(rq, 1100);
    assert.equal(h.rows.length, 0, 'not before the response');
    h.message('to_scu', 1500, 1600, C_ECHO_RSP);
    assert.equal(h.rows.length, 1);
    const m = h.rows[0]!;
    assert.deepEqual(m, {
      assoc: 1,
      direction: 'to_scp',
      messageId: 1,
      command: 'C-ECHO-RQ',
      contextId: 1,
      sopInstanceUid: '',
      bytes: 0,
      maxPdu: 1048576,
      scpMaxPdu: 16384,
      requestFirstByteUs: 1000,
      requestLastByteUs: 1000,
      requestForwardedUs: 1100,
      responseFirstByteUs: 1500,
      responseLastByteUs: 1600,
      senderIdleUs: 0,
      receiverBlockedUs: 0,
      proxyBusyUs: 0,
      pendingResponses: 0,
      status: 0,
      startedAt: '2026-01-02T03:04:05.001Z',
      // The association's tags, the request's Affected SOP Class UID (NUL padding dropped) and its
      // presentation context's accepted transfer syntax.
      arm: '1MB#2',
      callingAet: 'CT01',
      calledAet: 'PACS',
      sopClassUid: '1.2.840.10008.1.1',
      transferSyntaxUid: '1.2.840.10008.1.2',
      generation: 3,
    });
    assert.equal(durationUs(m), 600);
    assert.equal(responseUs(m), 400);
  });

  test('the response may come before the forward is reported: the row waits for it', () => {
    const h = new Harness();
    const rq = h.message('to_scp', 10, 20, C_ECHO_RQ);
    h.message('to_scu', 500, 600, C_ECHO_RSP);
    assert.equal(h.rows.length, 0);
    h.forward(rq, 550); // a late write callback
    assert.equal(h.rows.length, 1);
    assert.equal(responseUs(h.rows[0]!), 0, 'never negative');
  });

  test('C-STORE: command split over PDVs and PDUs (one-byte pieces), data set over 3 PDUs; bytes, UID, idle and blocked', () => {
    const h = new Harness();
    const cut = [0, 5, 50, C_STORE_RQ.length];
    h.legs.to_scp.idle = 7_000; // before the message: not its own
    h.legs.to_scp.blocked = 3_000;
    h.pdu('to_scp', 1000, 1010, [
      { command: true, last: false, bytes: C_STORE_RQ.subarray(cut[0], cut[1]), contextId: 3, pieces: 1 },
      { command: true, last: false, bytes: C_STORE_RQ.subarray(cut[1], cut[2]), contextId: 3, pieces: 1 },
    ]);
    h.pdu('to_scp', 1020, 1030, [{ command: true, last: true, bytes: C_STORE_RQ.subarray(cut[2], cut[3]), contextId: 3, pieces: 7 }]);
    h.legs.to_scp.idle += 250; // the SCU paused mid-message
    h.pdu('to_scp', 1040, 1500, [{ command: false, last: false, bytes: 16000, contextId: 3, pieces: 4000 }]);
    h.legs.to_scp.blocked += 900; // the SCP stopped reading for a while
    h.pdu('to_scp', 2500, 2600, [{ command: false, last: false, bytes: 16000, contextId: 3 }]);
    const last = h.pdu('to_scp', 2700, 2800, [{ command: false, last: true, bytes: 1234, contextId: 3 }]);
    h.legs.to_scp.idle += 10_000; // after the last byte: not counted
    h.legs.to_scp.blocked += 100; // still blocked until the last byte is forwarded: counted
    h.forward(last, 3000);
    h.legs.to_scp.blocked += 5_000; // after the forward: not counted
    h.message('to_scu', 4000, 4100, C_STORE_RSP);
    assert.equal(h.rows.length, 1);
    const m = h.rows[0]!;
    assert.equal(m.command, 'C-STORE-RQ');
    assert.equal(m.messageId, 7);
    assert.equal(m.contextId, 3);
    assert.equal(m.sopInstanceUid, INSTANCE_UID);
    assert.equal(m.bytes, 16000 + 16000 + 1234);
    assert.equal(m.requestFirstByteUs, 1000);
    assert.equal(m.requestLastByteUs, 2800);
    assert.equal(m.requestForwardedUs, 3000);
    assert.equal(m.senderIdleUs, 250);
    assert.equal(m.receiverBlockedUs, 1000);
    assert.equal(responseUs(m), 1000);
    assert.equal(m.status, 0);
  });

  test("proxy busy: the request leg's from its first byte to its last byte forwarded, plus the response leg's within the response", () => {
    const h = new Harness();
    h.legs.to_scp.busy = 40_000; // other messages before: not this one's
    h.legs.to_scu.busy = 9_000;
    h.pdu('to_scp', 1000, 1010, [{ command: true, last: true, bytes: C_STORE_RQ, contextId: 3 }]);
    h.legs.to_scp.busy += 300; // processing the chunks, and the loop busy between them
    h.pdu('to_scp', 1040, 1500, [{ command: false, last: false, bytes: 16000, contextId: 3 }]);
    h.legs.to_scp.busy += 200;
    const last = h.pdu('to_scp', 2700, 2800, [{ command: false, last: true, bytes: 1234, contextId: 3 }]);
    h.legs.to_scp.busy += 50; // the last chunk's processing, done before its write callback: counted
    h.forward(last, 3000);
    h.legs.to_scp.busy += 7_000; // after the forward (the next request's chunks): not counted
    h.legs.to_scu.busy += 2_000; // before the response's first byte (the wait for the SCP): not counted
    // The response in two chunks: the wait between them and the first one's processing are in the
    // duration (first request byte to last response byte); the last chunk's processing is after it.
    h.pdu('to_scu', 4000, 4000, [{ command: true, last: false, bytes: C_STORE_RSP.subarray(0, 10) }]);
    h.legs.to_scu.busy += 25;
    h.pdu('to_scu', 4050, 4100, [{ command: true, last: true, bytes: C_STORE_RSP.subarray(10) }]);
    h.legs.to_scu.busy += 1_000; // after the last response byte: not counted
    h.tracker.close();
    assert.equal(h.rows.length, 1);
    assert.equal(h.rows[0]!.proxyBusyUs, 300 + 200 + 50 + 25);
    assert.equal(h.tracker.totals.to_scp.busyUs, 575);
  });

  test('proxy busy of a request never forwarded is read when the association ends', () => {
    const h = new Harness();
    h.pdu('to_scp', 1000, 1010, [{ command: true, last: true, bytes: C_STORE_RQ, contextId: 3 }]);
    h.legs.to_scp.busy += 120;
    h.pdu('to_scp', 1040, 1500, [{ command: false, last: false, bytes: 16000, contextId: 3 }]);
    h.legs.to_scp.busy += 80;
    h.tracker.close();
    assert.equal(h.rows.length, 1);
    assert.equal(h.rows[0]!.proxyBusyUs, 200);
    assert.equal(h.rows[0]!.responseLastByteUs, undefined);
  });

  test('C-FIND: pending responses with identifiers are counted; the first response byte is the first pending one', () => {
    const h = new Harness();
    const rq = h.message(
      'to_scp',
      100,
      110,
      commandSet([
        [0x0100, 0x0020],
        [0x0110, 3],
        [0x0800, 0x0000],
      ]),
      200,
    );
    h.forward(rq, 120);
    for (let i = 0; i < 3; i++) {
      h.pdu('to_scu', 1000 + i * 100, 1010 + i * 100, [{ command: true, last: true, bytes: C_FIND_RSP_PENDING }]);
      h.pdu('to_scu', 1020 + i * 100, 1030 + i * 100, [{ command: false, last: true, bytes: 300 }]);
    }
    assert.equal(h.rows.length, 0);
    h.message(
      'to_scu',
      2000,
      2010,
      commandSet([
        [0x0100, 0x8020],
        [0x0120, 3],
        [0x0800, 0x0101],
        [0x0900, 0x0000],
      ]),
    );
    const m = h.rows[0]!;
    assert.equal(m.command, 'C-FIND-RQ');
    assert.equal(m.bytes, 200, 'the request identifier, not the responses');
    assert.equal(m.pendingResponses, 3);
    assert.equal(m.responseFirstByteUs, 1000);
    assert.equal(m.responseLastByteUs, 2010);
    assert.equal(m.status, 0);
  });

  test('a failure status is the final status (a700), ff01 counts as pending', () => {
    const h = new Harness();
    h.forward(
      h.message(
        'to_scp',
        1,
        2,
        commandSet([
          [0x0100, 0x0020],
          [0x0110, 5],
          [0x0800, 0],
        ]),
        10,
      ),
      3,
    );
    h.message(
      'to_scu',
      10,
      11,
      commandSet([
        [0x0100, 0x8020],
        [0x0120, 5],
        [0x0800, 0],
        [0x0900, 0xff01],
      ]),
      10,
    );
    h.message(
      'to_scu',
      20,
      21,
      commandSet([
        [0x0100, 0x8020],
        [0x0120, 5],
        [0x0800, 0x0101],
        [0x0900, 0xa700],
      ]),
    );
    assert.equal(h.rows[0]!.pendingResponses, 1);
    assert.equal(h.rows[0]!.status, 0xa700);
  });

  test("C-GET: the SCP's C-STORE sub-operation (same MessageID, other direction) gets its own row", () => {
    const h = new Harness();
    h.forward(
      h.message(
        'to_scp',
        100,
        100,
        commandSet([
          [0x0100, 0x0010],
          [0x0110, 1],
          [0x0800, 0],
        ]),
        50,
      ),
      101,
    );
    // The SCP's sub-operation: MessageID 1 too, in its own numbering.
    const sub = h.message(
      'to_scu',
      200,
      300,
      commandSet([
        [0x0100, 0x0001],
        [0x0110, 1],
        [0x0800, 0],
        [0x1000, '1.2.3'],
      ]),
      5000,
    );
    h.forward(sub, 310);
    h.message(
      'to_scp',
      400,
      410,
      commandSet([
        [0x0100, 0x8001],
        [0x0120, 1],
        [0x0800, 0x0101],
        [0x0900, 0],
      ]),
    );
    assert.equal(h.rows.length, 1);
    assert.deepEqual(
      { dir: h.rows[0]!.direction, cmd: h.rows[0]!.command, bytes: h.rows[0]!.bytes, uid: h.rows[0]!.sopInstanceUid, resp: responseUs(h.rows[0]!) },
      { dir: 'to_scu', cmd: 'C-STORE-RQ', bytes: 5000, uid: '1.2.3', resp: 90 },
    );
    h.message(
      'to_scu',
      500,
      510,
      commandSet([
        [0x0100, 0x8010],
        [0x0120, 1],
        [0x0800, 0x0101],
        [0x0900, 0xff00],
      ]),
    );
    h.message(
      'to_scu',
      600,
      610,
      commandSet([
        [0x0100, 0x8010],
        [0x0120, 1],
        [0x0800, 0x0101],
        [0x0900, 0],
      ]),
    );
    assert.equal(h.rows.length, 2);
    const get = h.rows[1]!;
    assert.equal(get.command, 'C-GET-RQ');
    assert.equal(get.direction, 'to_scp');
    assert.equal(get.pendingResponses, 1);
    assert.equal(get.responseFirstByteUs, 500, 'its first response, not the sub-operation');
    assert.equal(get.responseLastByteUs, 610);
    assert.deepEqual(h.tracker.totals.to_scu.messages, 1);
    assert.deepEqual(h.tracker.totals.to_scp.messages, 1);
  });
});

describe('MessageTracker: the end of an association, and bad input', () => {
  test('aborted before the response: the row has no status and no response times', () => {
    const h = new Harness();
    h.forward(h.message('to_scp', 100, 200, C_ECHO_RQ), 250);
    h.tracker.close();
    assert.equal(h.rows.length, 1);
    const m = h.rows[0]!;
    assert.equal(m.status, undefined);
    assert.equal(m.responseFirstByteUs, undefined);
    assert.equal(durationUs(m), undefined);
    assert.equal(responseUs(m), undefined);
    h.tracker.close();
    assert.equal(h.rows.length, 1, 'close is once');
  });

  test('aborted mid-data set: bytes so far, no last byte; a request never forwarded counts blocked time to the end', () => {
    const h = new Harness();
    h.message('to_scp', 100, 110, C_STORE_RQ);
    h.pdu('to_scp', 120, 130, [{ command: false, last: false, bytes: 4000 }]);
    h.legs.to_scp.idle = 77;
    h.legs.to_scp.blocked = 500;
    h.tracker.close();
    const m = h.rows[0]!;
    assert.equal(m.bytes, 4000);
    assert.equal(m.requestLastByteUs, undefined);
    assert.equal(m.senderIdleUs, 77);
    assert.equal(m.receiverBlockedUs, 500);
    assert.equal(m.status, undefined);
  });

  test('received and answered but never reported forwarded: reported at close', () => {
    const h = new Harness();
    h.message('to_scp', 100, 110, C_ECHO_RQ);
    h.message('to_scu', 200, 210, C_ECHO_RSP);
    assert.equal(h.rows.length, 0);
    h.tracker.close();
    assert.equal(h.rows.length, 1);
    assert.equal(h.rows[0]!.status, 0);
    assert.equal(h.rows[0]!.requestForwardedUs, undefined);
  });

  test('a command set over 64 KiB is undecodable: no row, reported once, and the next message is tracked', () => {
    const h = new Harness();
    h.pdu('to_scp', 1, 2, [{ command: true, last: false, bytes: MAX_COMMAND_SET_LENGTH - 10 }]);
    h.pdu('to_scp', 3, 4, [{ command: true, last: true, bytes: 20 }]);
    h.pdu('to_scp', 5, 6, [{ command: false, last: true, bytes: 100 }]); // its data set: ignored
    assert.deepEqual(h.undecodable, [['to_scp', `command set longer than ${MAX_COMMAND_SET_LENGTH} bytes`]]);
    h.forward(h.message('to_scp', 10, 11, C_ECHO_RQ), 12);
    h.message('to_scu', 20, 21, C_ECHO_RSP);
    assert.equal(h.rows.length, 1);
    assert.equal(h.rows[0]!.command, 'C-ECHO-RQ');
    assert.equal(h.tracker.undecodable, 1);
  });

  test('malformed command sets and requests without MessageID are reported, not thrown', () => {
    const h = new Harness();
    h.message('to_scp', 1, 2, Buffer.from('0800 1800 02000000 4142'.replace(/ /g, ''), 'hex'));
    h.message(
      'to_scp',
      3,
      4,
      commandSet([
        [0x0100, 0x0030],
        [0x0800, 0x0101],
      ]),
    );
    h.message('to_scp', 5, 6, commandSet([[0x0110, 4]]));
    assert.equal(h.undecodable.length, 3);
    assert.match(h.undecodable[0]![1], /outside group 0000/);
    assert.match(h.undecodable[1]![1], /C-ECHO-RQ without MessageID/);
    assert.match(h.undecodable[2]![1], /no CommandField/);
    h.tracker.close();
    assert.equal(h.rows.length, 0);
  });

  test('C-CANCEL-RQ gets no row; a response to an unknown MessageID is ignored', () => {
    const h = new Harness();
    h.forward(
      h.message(
        'to_scp',
        1,
        2,
        commandSet([
          [0x0100, 0x0020],
          [0x0110, 3],
          [0x0800, 0],
        ]),
        10,
      ),
      3,
    );
    h.message(
      'to_scp',
      5,
      6,
      commandSet([
        [0x0100, 0x0fff],
        [0x0120, 3],
        [0x0800, 0x0101],
      ]),
    );
    h.message('to_scu', 7, 8, C_ECHO_RSP); // answers MessageID 1: nobody asked
    h.message(
      'to_scu',
      9,
      10,
      commandSet([
        [0x0100, 0x8020],
        [0x0120, 3],
        [0x0800, 0x0101],
        [0x0900, 0xfe00],
      ]),
    );
    assert.equal(h.rows.length, 1);
    assert.equal(h.rows[0]!.status, 0xfe00);
    assert.deepEqual(h.undecodable, []);
  });

  test('a MessageID reused before its answer: the first request is reported unanswered', () => {
    const h = new Harness();
    h.forward(h.message('to_scp', 1, 2, C_ECHO_RQ), 3);
    h.forward(h.message('to_scp', 10, 11, C_ECHO_RQ), 12);
    assert.equal(h.rows.length, 1);
    assert.equal(h.rows[0]!.requestFirstByteUs, 1);
    assert.equal(h.rows[0]!.status, undefined);
    h.message('to_scu', 20, 21, C_ECHO_RSP);
    assert.equal(h.rows.length, 2);
    assert.equal(h.rows[1]!.requestFirstByteUs, 10);
  });

  test("a new command before the data set's last fragment: the cut request keeps the bytes it had", () => {
    const h = new Harness();
    h.message('to_scp', 1, 2, C_STORE_RQ);
    h.pdu('to_scp', 3, 4, [{ command: false, last: false, bytes: 300 }]);
    h.forward(h.message('to_scp', 10, 11, C_ECHO_RQ), 12);
    h.message('to_scu', 20, 21, C_ECHO_RSP);
    h.tracker.close();
    const store = h.rows.find((r) => r.command === 'C-STORE-RQ')!;
    assert.equal(store.bytes, 300);
    assert.equal(store.requestLastByteUs, undefined);
  });

  test('totals per direction sum the rows', () => {
    const h = new Harness();
    for (let i = 0; i < 3; i++) {
      const start = i * 1000;
      h.pdu('to_scp', start, start + 5, [{ command: true, last: false, bytes: C_ECHO_RQ.subarray(0, 20) }]);
      h.legs.to_scp.idle += 30;
      const rq = h.pdu('to_scp', start + 40, start + 45, [{ command: true, last: true, bytes: C_ECHO_RQ.subarray(20) }]);
      h.legs.to_scp.blocked += 8;
      h.legs.to_scp.busy += 11;
      h.forward(rq, start + 60);
      h.message('to_scu', start + 110, start + 120, C_ECHO_RSP);
    }
    assert.deepEqual(h.tracker.totals.to_scp, { messages: 3, idleUs: 90, blockedUs: 24, responseUs: 150, busyUs: 33 });
    assert.deepEqual(h.tracker.totals.to_scu, { messages: 0, idleUs: 0, blockedUs: 0, responseUs: 0, busyUs: 0 });
  });
});
