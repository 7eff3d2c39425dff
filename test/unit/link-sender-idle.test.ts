// Sender idle time (scu_idle_ms): a wait between two chunks from a sender counts as the sender's only while
// the proxy's event loop had nothing else to do. Time the loop spent on other work (other associations, the
// other direction, the recorders) is the proxy's own. Driven with a fake clock and a fake loop-idle counter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import type { Socket } from 'node:net';
import { Link, type LinkOwner } from '../../src/proxy/link.js';
import type { PDataObserver } from '../../src/dimse/tracker.js';

/** A P-DATA-TF carrying one data set PDV of `data` bytes (PS3.8 9.3.5): header 6, PDV item header 6. */
function pdata(data: number, last: boolean): Buffer {
  const pdu = Buffer.alloc(6 + 6 + data);
  pdu[0] = 0x04; // P-DATA-TF
  pdu.writeUInt32BE(6 + data, 2); // PDU length
  pdu.writeUInt32BE(2 + data, 6); // PDV item length: context id + message control header + data
  pdu[10] = 1; // presentation context id
  pdu[11] = last ? 0x02 : 0x00; // data set fragment, last or not
  return pdu;
}

function linkWith(loopIdle: (() => number) | undefined, clock: { now: number }, observer?: PDataObserver): Link {
  const owner: LinkOwner = {
    onControlPdu: () => {},
    dataAllowed: () => true,
    onProtocolError: (_l, err) => assert.fail(err),
    onInternalError: (_l, err) => assert.fail(err),
    onStalled: () => {},
    onRecord: () => {},
  };
  const link = new Link('to_scp', 1, owner, () => clock.now, loopIdle);
  link.observer = observer ?? { dataStart: () => {}, pdvStart: () => {}, pdvData: () => {}, pdvEnd: () => {} };
  const source = Object.assign(new EventEmitter(), { pause() {}, resume() {} });
  link.attachSource(source as unknown as Socket);
  link.attachDest(new Writable({ write: (_c, _e, cb) => cb() }) as unknown as Socket);
  return Object.assign(link, { feed: (b: Buffer) => source.emit('data', b) });
}

const pdu = pdata(1000, true);
const first = pdu.subarray(0, 500);
const rest = pdu.subarray(500);

test('without a loop-idle counter, the whole wait between two chunks is the sender idle', () => {
  const clock = { now: 0 };
  const link = linkWith(undefined, clock) as Link & { feed(b: Buffer): void };
  link.feed(first);
  clock.now = 100_000; // 100 ms later the rest arrives
  link.feed(rest);
  assert.equal(link.times.idleUs(), 100_000);
});

test('with a loop-idle counter, only the time the loop waited with nothing to do is the sender idle', () => {
  const clock = { now: 0 };
  let loopIdleUs = 5_000_000; // cumulative since the process started
  const link = linkWith(() => loopIdleUs, clock) as Link & { feed(b: Buffer): void };
  link.feed(first);
  clock.now = 100_000;
  loopIdleUs += 30_000; // of those 100 ms the loop was idle for 30; the other 70 it worked for others
  link.feed(rest);
  assert.equal(link.times.idleUs(), 30_000);
  assert.equal(link.times.busyUs(), 70_000, "the other 70 are the proxy's own (the chunks' processing took no time on this clock)");
});

test('loop idle time beyond the wait itself never makes the sender idle longer than the wait', () => {
  const clock = { now: 0 };
  let loopIdleUs = 0;
  const link = linkWith(() => loopIdleUs, clock) as Link & { feed(b: Buffer): void };
  link.feed(first);
  clock.now = 40_000;
  loopIdleUs += 90_000; // cannot happen with one clock, but the bound holds anyway
  link.feed(rest);
  assert.equal(link.times.idleUs(), 40_000);
});

test("busy: each chunk's processing and the loop-busy part of the wait; a P-DATA-TF's start carries the total its first chunk found", () => {
  const clock = { now: 0 };
  let loopIdleUs = 0;
  const starts: number[] = [];
  const observer: PDataObserver = {
    dataStart: (_direction, _first, _idle, _blocked, busy) => starts.push(busy),
    pdvStart: () => {
      clock.now += 200; // the processing of the chunk takes 200 us (the tracker's work, say)
    },
    pdvData: () => {},
    pdvEnd: () => {},
  };
  const link = linkWith(() => loopIdleUs, clock, observer) as Link & { feed(b: Buffer): void };
  link.feed(pdu);
  assert.equal(link.times.busyUs(), 200);
  clock.now += 10_000; // 10 ms until the next PDU, the loop idle 4 ms of them: 6 ms it worked for others
  loopIdleUs += 4_000;
  link.feed(pdu);
  assert.deepEqual(starts, [0, 200 + 6_000], 'before each first chunk is processed, its wait included');
  assert.equal(link.times.busyUs(), 200 + 6_000 + 200);
  assert.equal(link.times.idleUs(), 4_000);
  // A header split over two chunks: the message started with the first one, so it gets that chunk's total
  // (the 1 ms loop-busy wait before the second chunk is the message's own).
  link.feed(pdu.subarray(0, 3));
  clock.now += 1_000;
  link.feed(pdu.subarray(3));
  assert.equal(starts[2], 6_400);
  assert.equal(link.times.busyUs(), 6_400 + 1_000 + 200);
});
