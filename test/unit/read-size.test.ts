// ReadSizer: a link's read buffer grows from 64 KiB to 256 KiB when a read fills it, goes back after 16
// reads in a row that would have fit the small one, and the large buffers of a process stay within one budget.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LARGE_READ_BUFFER_BYTES, READ_BUFFER_BYTES, ReadBufferBudget, ReadSizer, SHRINK_AFTER_SMALL_READS } from '../../src/proxy/read-size.js';

const SMALL = READ_BUFFER_BYTES;
const LARGE = LARGE_READ_BUFFER_BYTES;

test('a read that fills the small buffer moves the link to the large one; partial reads do not', () => {
  const budget = new ReadBufferBudget(4 * LARGE);
  const sizer = new ReadSizer(budget);
  assert.equal(sizer.size, SMALL);
  assert.equal(sizer.next(SMALL - 1), SMALL, 'one byte short of full: stays small');
  assert.equal(sizer.next(1), SMALL);
  assert.equal(budget.usedBytes, 0);
  assert.equal(sizer.next(SMALL), LARGE, 'full');
  assert.equal(budget.usedBytes, LARGE);
});

test('back to the small buffer after exactly SHRINK_AFTER_SMALL_READS reads in a row that fit it; a larger read restarts the count', () => {
  const budget = new ReadBufferBudget(4 * LARGE);
  const sizer = new ReadSizer(budget);
  sizer.next(SMALL);
  for (let i = 1; i < SHRINK_AFTER_SMALL_READS; i++) assert.equal(sizer.next(SMALL), LARGE, `small read ${i}`);
  assert.equal(sizer.next(SMALL + 1), LARGE, 'a read over the small size');
  for (let i = 1; i < SHRINK_AFTER_SMALL_READS; i++) assert.equal(sizer.next(100), LARGE, `small read ${i} after it`);
  assert.equal(budget.usedBytes, LARGE);
  assert.equal(sizer.next(100), SMALL, `small read ${SHRINK_AFTER_SMALL_READS}`);
  assert.equal(budget.usedBytes, 0, 'the budget is given back');
  assert.equal(sizer.next(SMALL), LARGE, 'and it can grow again');
});

test('the budget bounds the large buffers of all links; release() gives a share back once, and only when held', () => {
  const budget = new ReadBufferBudget(2 * LARGE);
  const links = [new ReadSizer(budget), new ReadSizer(budget), new ReadSizer(budget)];
  assert.deepEqual(
    links.map((l) => l.next(SMALL)),
    [LARGE, LARGE, SMALL],
  );
  assert.equal(budget.usedBytes, 2 * LARGE);
  assert.equal(links[2]!.next(SMALL), SMALL, 'still no room');
  links[0]!.release(); // its socket closed
  links[0]!.release(); // a second close event changes nothing
  assert.equal(budget.usedBytes, LARGE);
  assert.equal(links[0]!.size, SMALL);
  assert.equal(links[2]!.next(SMALL), LARGE, 'room again');
  links[1]!.release();
  links[2]!.release();
  links[2]!.release();
  assert.equal(budget.usedBytes, 0);
});
