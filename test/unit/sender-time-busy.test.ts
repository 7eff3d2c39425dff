// The proxy's own time on a sender's bytes (SenderTime busyUs, proxy_busy_ms): each chunk's processing,
// plus the part of each wait between two chunks that was neither the sender paused (blocked) nor the event
// loop idle. Driven with a fake clock and a fake cumulative loop-idle counter, in microseconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SenderTime } from '../../src/proxy/sender-time.js';

class Fake {
  now = 0;
  loopIdle = 1_000_000; // cumulative since the process started: only differences matter
  readonly times: SenderTime;
  constructor(withLoopIdle = true) {
    this.times = new SenderTime(() => this.now, withLoopIdle ? () => this.loopIdle : undefined);
  }
  /** A chunk arrives now and takes `processingUs` to be processed and written. */
  chunk(processingUs: number): void {
    this.times.chunkArrived(this.now);
    this.now += processingUs;
    this.times.chunkDone();
  }
}

test("own processing: each chunk's arrival to done counts as busy", () => {
  const f = new Fake();
  f.chunk(120);
  assert.equal(f.times.busyUs(), 120);
  f.chunk(80); // arrives at once after the first: no wait in between
  assert.equal(f.times.busyUs(), 200);
  assert.equal(f.times.idleUs(), 0);
});

test('busy wait: the part of a wait during which the loop was not idle is busy, the rest idle', () => {
  const f = new Fake();
  f.chunk(100);
  f.now += 10_000; // 10 ms until the next chunk
  f.loopIdle += 3_000; // the loop was idle 3 ms of them; 7 ms it worked for other associations
  f.chunk(50);
  assert.equal(f.times.idleUs(), 3_000);
  assert.equal(f.times.busyUs(), 100 + 7_000 + 50);
});

test('idle wait: a wait the loop spent idle is all the sender idle, none busy', () => {
  const f = new Fake();
  f.chunk(100);
  f.now += 10_000;
  f.loopIdle += 10_000;
  f.chunk(50);
  assert.equal(f.times.idleUs(), 10_000);
  assert.equal(f.times.busyUs(), 150);
});

test('blocked wait: time the sender was held paused is neither idle nor busy', () => {
  const f = new Fake();
  f.chunk(100);
  f.times.pause(); // the receiver stopped reading
  f.now += 8_000;
  f.times.resume();
  f.now += 2_000; // then 2 ms before the next chunk, the loop idle 500 us of them
  f.loopIdle += 8_000 + 500; // idle while the sender was paused too: not double-counted as busy
  f.chunk(50);
  assert.equal(f.times.blockedUs(), 8_000);
  // wait 10 ms - blocked 8 ms = 2 ms, at most the loop's idle 8.5 ms: all 2 ms idle, nothing busy.
  assert.equal(f.times.idleUs(), 2_000);
  assert.equal(f.times.busyUs(), 150);
});

test('blocked and busy in one wait: the busy part is the wait less blocked less loop idle', () => {
  const f = new Fake();
  f.chunk(0);
  f.times.pause();
  f.now += 4_000;
  f.times.resume();
  f.now += 6_000;
  f.loopIdle += 1_000; // of the 6 ms not blocked, the loop was idle 1 (at most: it may have been idle while paused)
  f.chunk(0);
  assert.equal(f.times.blockedUs(), 4_000);
  assert.equal(f.times.idleUs(), 1_000);
  assert.equal(f.times.busyUs(), 5_000);
});

test('without a loop-idle counter, every wait is the sender idle: busy is the processing alone', () => {
  const f = new Fake(false);
  f.chunk(100);
  f.now += 10_000;
  f.chunk(50);
  assert.equal(f.times.idleUs(), 10_000);
  assert.equal(f.times.busyUs(), 150);
});

test("the wait before the first chunk is nobody's; a wait still in progress is not counted yet", () => {
  const f = new Fake();
  f.now = 50_000;
  f.chunk(10); // the first chunk ever: no wait before it counts
  assert.equal(f.times.busyUs(), 10);
  f.now += 30_000; // waiting, loop busy: not counted until the next chunk arrives
  assert.equal(f.times.busyUs(), 10);
});

test('busyAtChunk: the total when the current (or previous) chunk arrived, its wait in, its processing not', () => {
  const f = new Fake();
  f.chunk(100);
  f.now += 1_000; // loop busy throughout
  f.times.chunkArrived(f.now);
  assert.equal(f.times.busyAtChunk(true), 1_100, 'the wait before it, not yet its processing');
  assert.equal(f.times.busyAtChunk(false), 0, 'the first chunk arrived with nothing before');
  f.now += 40;
  f.times.chunkDone();
  assert.equal(f.times.busyUs(), 1_140);
  assert.equal(f.times.busyAtChunk(true), 1_100);
});

test('chunkDone without chunkArrived adds nothing (no processing to count)', () => {
  const f = new Fake();
  f.now = 500;
  f.times.chunkDone();
  assert.equal(f.times.busyUs(), 0);
});
