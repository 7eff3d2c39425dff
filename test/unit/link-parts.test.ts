// The parts of a link and of a session that work without sockets (src/proxy/write-batch.ts,
// sender-time.ts, stall-watch.ts, association-state.ts, negotiation.ts, teardown.ts), each on its own.

import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { WriteBatch } from '../../src/proxy/write-batch.js';
import { SenderTime } from '../../src/proxy/sender-time.js';
import { StallWatch } from '../../src/proxy/stall-watch.js';
import { AssociationStatus, State, controlPduInTurn } from '../../src/proxy/association-state.js';
import { acceptedContextTable, peerMaxLength, withMaxLength } from '../../src/proxy/negotiation.js';
import { lostLegTeardown, protocolErrorTeardown, stalledTeardown } from '../../src/proxy/teardown.js';
import { AbortReason, PduType } from '../../src/pdu/constants.js';
import { decodeAssociate, maxLength } from '../../src/pdu/associate.js';

test('write batch: adjacent views of one buffer become one entry, others stay apart, in order', () => {
  const read = Buffer.from('0123456789');
  const other = Buffer.from('abc');
  const batch = new WriteBatch();
  batch.add(read.subarray(0, 3));
  batch.add(read.subarray(3, 7));
  batch.add(other);
  batch.add(read.subarray(7, 10));
  assert.equal(batch.length, 3);
  const out = batch.take();
  assert.deepEqual(
    out.map((b) => b.toString()),
    ['0123456', 'abc', '789'],
  );
  assert.equal(out[0]!.buffer, read.buffer, 'the merged entry is a view, not a copy');
  assert.equal(batch.length, 0, 'take starts a new batch');
});

test('write batch: the open PDU is withdrawn, also from the middle of a merged run', () => {
  const read = Buffer.from('HHHHdddd');
  const batch = new WriteBatch();
  batch.add(read.subarray(0, 2)); // a complete PDU before
  batch.pduStart();
  batch.add(read.subarray(2, 4));
  batch.add(read.subarray(4, 8));
  assert.equal(batch.withdrawOpenPdu(), true);
  assert.deepEqual(
    batch.take().map((b) => b.toString()),
    ['HH'],
  );
});

test('write batch: a PDU cannot be withdrawn once any of it was taken, nor after it ended', () => {
  const batch = new WriteBatch();
  batch.pduStart();
  batch.add(Buffer.from('part'));
  batch.take();
  assert.equal(batch.withdrawOpenPdu(), false);
  batch.pduStart();
  batch.add(Buffer.from('whole'));
  batch.pduEnd();
  assert.equal(batch.withdrawOpenPdu(), false);
  assert.equal(batch.take().length, 1);
});

test('sender time: a wait counts as idle less the time the sender was held paused', () => {
  let now = 0;
  const times = new SenderTime(() => now);
  times.chunkArrived(now);
  times.chunkDone();
  now = 100;
  assert.equal(times.pause(), true);
  assert.equal(times.pause(), false, 'paused already');
  now = 130;
  times.resume();
  now = 150;
  times.chunkArrived(now);
  assert.equal(times.blockedUs(), 30);
  assert.equal(times.idleUs(), 120);
  assert.equal(times.idleAtChunk(true), 120);
  assert.equal(times.idleAtChunk(false), 0);
  assert.equal(times.blockedAtChunk(true), 30);
});

test('sender time: a pause in progress counts as blocked until forgotten', () => {
  let now = 0;
  const times = new SenderTime(() => now);
  times.pause();
  now = 40;
  assert.equal(times.blockedUs(), 40);
  times.forgetPause();
  assert.equal(times.blockedUs(), 0);
});

test('stall watch: fires once after the timeout, not when the receiver drained first, never with 0', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    let stalls = 0;
    const watch = new StallWatch(() => stalls++);
    watch.start(0);
    mock.timers.tick(10_000);
    assert.equal(stalls, 0);
    watch.start(100);
    mock.timers.tick(50);
    watch.end();
    mock.timers.tick(100);
    assert.equal(stalls, 0);
    watch.start(100);
    watch.start(100); // a second refusal does not restart the watch
    mock.timers.tick(100);
    assert.equal(stalls, 1);
  } finally {
    mock.timers.reset();
  }
});

test('association state: which control PDU is in turn where', () => {
  assert.equal(controlPduInTurn(State.AwaitRq, PduType.AssociateRq, true), true);
  assert.equal(controlPduInTurn(State.AwaitRq, PduType.AssociateRq, false), false);
  assert.equal(controlPduInTurn(State.Established, PduType.AssociateRq, true), false);
  assert.equal(controlPduInTurn(State.AwaitAc, PduType.AssociateAc, false), true);
  assert.equal(controlPduInTurn(State.AwaitAc, PduType.AssociateRj, true), false);
  assert.equal(controlPduInTurn(State.Established, PduType.ReleaseRq, true), true);
  assert.equal(controlPduInTurn(State.AwaitAc, PduType.ReleaseRq, true), false);
  assert.equal(controlPduInTurn(State.Established, PduType.ReleaseRp, false), false);
  assert.equal(controlPduInTurn(State.Releasing, PduType.ReleaseRp, false), true);
  for (const state of Object.values(State)) assert.equal(controlPduInTurn(state, PduType.Abort, true), true);
  assert.equal(controlPduInTurn(State.Established, PduType.PDataTf, true), false);
});

test('association status: a release collision ends with the second RP; the ended event reports it', () => {
  const status = new AssociationStatus();
  const requested = status.requestedEvent(7, true);
  assert.deepEqual(requested, { phase: 'requested', assoc: 7, admitted: true });
  status.state = State.Established;
  status.releaseRequested();
  status.releaseRequested();
  assert.equal(status.releaseAnswered(), false);
  assert.equal(status.state, State.Releasing);
  assert.equal(status.releaseAnswered(), true);
  assert.equal(status.state, State.Ended);
  assert.deepEqual(status.endedEvent(7), { phase: 'ended', assoc: 7, requested: true, admitted: true, outcome: 'released', abort: undefined, rejectedBy: undefined });
});

test('association status: an abort keeps its cause; without one, a lost connection', () => {
  const status = new AssociationStatus();
  status.abort('peer_stalled', 'SCP took no bytes');
  assert.equal(status.state, State.Aborted);
  assert.deepEqual(status.endedEvent(1), { phase: 'ended', assoc: 1, requested: false, admitted: false, outcome: 'aborted', abort: 'peer_stalled', rejectedBy: undefined });
  const other = new AssociationStatus();
  other.outcome = 'aborted';
  assert.deepEqual(other.endedEvent(2), { phase: 'ended', assoc: 2, requested: false, admitted: false, outcome: 'aborted', abort: 'connection_lost', rejectedBy: undefined });
  const rejected = new AssociationStatus();
  rejected.reject('upstream_unavailable', 'upstream unavailable: 127.0.0.1:1: ECONNREFUSED');
  assert.deepEqual(rejected.endedEvent(3), {
    phase: 'ended',
    assoc: 3,
    requested: false,
    admitted: false,
    outcome: 'rejected',
    abort: undefined,
    rejectedBy: 'upstream_unavailable',
  });
});

/** An A-ASSOCIATE-RQ with one presentation context and a Maximum Length sub-item of `max` (none: undefined). */
function associateRq(max: number | undefined): Buffer {
  const item = (type: number, body: Buffer): Buffer => {
    const h = Buffer.alloc(4);
    h[0] = type;
    h.writeUInt16BE(body.length, 2);
    return Buffer.concat([h, body]);
  };
  const uid = (type: number, text: string): Buffer => item(type, Buffer.from(text, 'latin1'));
  const context = item(0x20, Buffer.concat([Buffer.from([1, 0, 0, 0]), uid(0x30, '1.2.840.10008.1.1'), uid(0x40, '1.2.840.10008.1.2')]));
  const maxItem = max === undefined ? Buffer.alloc(0) : item(0x51, Buffer.from([max >>> 24, (max >>> 16) & 0xff, (max >>> 8) & 0xff, max & 0xff]));
  const user = item(0x50, Buffer.concat([maxItem, uid(0x52, '1.2.3.4')]));
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(1, 0);
  fixed.write('CALLED'.padEnd(16), 4, 'latin1');
  fixed.write('CALLING'.padEnd(16), 20, 'latin1');
  const body = Buffer.concat([fixed, uid(0x10, '1.2.840.10008.3.1.1.1'), context, user]);
  const header = Buffer.alloc(6);
  header[0] = 0x01;
  header.writeUInt32BE(body.length, 2);
  return Buffer.concat([header, body]);
}

test('negotiation: a peer Maximum Length is used, missing (0), or unusable (1..7)', () => {
  assert.deepEqual(peerMaxLength(decodeAssociate(associateRq(16384))), { value: 16384, missing: false, unusable: undefined });
  assert.deepEqual(peerMaxLength(decodeAssociate(associateRq(undefined))), { value: 0, missing: true, unusable: undefined });
  assert.deepEqual(peerMaxLength(decodeAssociate(associateRq(0))), { value: 0, missing: false, unusable: undefined });
  assert.match(peerMaxLength(decodeAssociate(associateRq(7))).unusable ?? '', /^Maximum Length 7: no P-DATA-TF can carry data/);
});

test('negotiation: the Maximum Length is rewritten only when a value is forced', () => {
  const raw = associateRq(16384);
  const rq = decodeAssociate(raw);
  const kept = withMaxLength(raw, rq, 16384, undefined);
  assert.equal(kept.out, raw);
  assert.equal(kept.written, 16384);
  const forced = withMaxLength(raw, rq, 16384, 65536);
  assert.equal(forced.written, 65536);
  assert.equal(maxLength(decodeAssociate(forced.out)), 65536);
});

test('negotiation: only accepted presentation contexts are in the table', () => {
  const table = acceptedContextTable([
    { id: 1, result: 0 },
    { id: 3, result: 3 },
    { id: 5, result: 0 },
  ]);
  assert.deepEqual([table[1], table[3], table[5], table[7]], [1, 0, 1, 0]);
});

test('teardown: each cause says what the peers get and what the summary says', () => {
  const protocol = protocolErrorTeardown('SCU sent A-ASSOCIATE-AC in state established', 'unexpected-pdu', AbortReason.UnexpectedPdu);
  assert.equal(protocol.cause, 'protocol_error');
  assert.equal(protocol.reason, 'protocol error: SCU sent A-ASSOCIATE-AC in state established');
  assert.equal(protocol.abortReason, AbortReason.UnexpectedPdu);
  assert.equal(protocol.lost, undefined);
  const stalled = stalledTeardown('scp', 2000);
  assert.equal(stalled.reason, 'SCP took no bytes for 2000 ms (--stall-timeout)');
  assert.equal(stalled.lost, 'scp');
  assert.equal(stalled.resetLost, true);
  const lost = lostLegTeardown('scu', 'closed the connection');
  assert.equal(lost.reason, 'SCU closed the connection during the association');
  assert.equal(lost.resetLost, undefined);
});
