import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { BatchedLines, MAX_QUEUED_BYTES } from '../../src/record/batched-lines.js';
import type { LineSink, LinesLog } from '../../src/record/batched-lines.js';

async function openTemp(): Promise<{ file: fs.promises.FileHandle; path: string; cleanup: () => void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'batched-lines-'));
  const p = path.join(dir, 'out.csv');
  const file = await fs.promises.open(p, 'w');
  return { file, path: p, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

test('BatchedLines: every line arrives once, in order, across many batch buffers (over 256 KiB, multi-byte text)', async () => {
  const t = await openTemp();
  try {
    const lines = new BatchedLines(t.file, 100, 1000);
    lines.queueNow('header\n');
    const expected: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      // Some lines carry 2- and 3-byte UTF-8 characters, so byte and character counts differ.
      const line = i % 7 === 0 ? `${i},Ünïcödé,€${'x'.repeat(i % 50)}` : `${i},to_scp,P-DATA-TF,${i * 3}`;
      expected.push(line);
      lines.push(line);
    }
    await lines.close();
    const text = fs.readFileSync(t.path, 'utf8');
    assert.equal(text, `header\n${expected.join('\n')}\n`);
    assert.ok(Buffer.byteLength(text) > 256 * 1024, 'the test crosses several batch buffers');
  } finally {
    t.cleanup();
  }
});

test('BatchedLines: a line longer than a batch buffer is written whole, after what was queued before it', async () => {
  const t = await openTemp();
  try {
    const lines = new BatchedLines(t.file, 4096, 1000);
    const long = 'L'.repeat(300 * 1024);
    lines.push('before');
    lines.push(long);
    lines.push('after');
    await lines.close();
    assert.equal(fs.readFileSync(t.path, 'utf8'), `before\n${long}\nafter\n`);
  } finally {
    t.cleanup();
  }
});

test('BatchedLines: a batch is written after maxLines lines, and the rest after maxDelayMs, without close()', async () => {
  const t = await openTemp();
  try {
    const lines = new BatchedLines(t.file, 3, 50);
    for (const l of ['a', 'b', 'c']) lines.push(l);
    await sleep(20); // well under maxDelayMs: only the full batch can be on disk
    assert.equal(fs.readFileSync(t.path, 'utf8'), 'a\nb\nc\n');
    lines.push('d');
    assert.equal(fs.readFileSync(t.path, 'utf8'), 'a\nb\nc\n', 'one line waits for the timer');
    const deadline = Date.now() + 5000;
    while (fs.readFileSync(t.path, 'utf8') !== 'a\nb\nc\nd\n' && Date.now() < deadline) await sleep(10);
    assert.equal(fs.readFileSync(t.path, 'utf8'), 'a\nb\nc\nd\n');
    await lines.close();
    lines.push('ignored after close');
    assert.equal(fs.readFileSync(t.path, 'utf8'), 'a\nb\nc\nd\n');
  } finally {
    t.cleanup();
  }
});

/** A sink in memory whose writes can be stalled (never complete), failed (ENOSPC) or cut short. */
class TestSink implements LineSink {
  mode: 'ok' | 'stall' | 'full' = 'ok';
  /** At most this many bytes per write (a short write, as a disk filling up gives). */
  maxPerWrite = Infinity;
  readonly written: Buffer[] = [];
  writes = 0;
  /** Bytes handed to write() and not yet completed or failed. */
  inFlight = 0;
  closed = false;

  write(buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }> {
    this.writes++;
    if (this.mode === 'stall') {
      this.inFlight += length;
      return new Promise(() => {});
    }
    if (this.mode === 'full') {
      return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
    }
    const n = Math.min(length, this.maxPerWrite);
    this.written.push(Buffer.from(buffer.subarray(offset, offset + n)));
    return Promise.resolve({ bytesWritten: n });
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  text(): string {
    return Buffer.concat(this.written).toString('utf8');
  }
}

class TestLog implements LinesLog {
  readonly lines: Array<{ level: 'error' | 'warn' | 'info'; msg: string; fields: Record<string, unknown> }> = [];
  error(fields: Record<string, unknown>, msg: string): void {
    this.lines.push({ level: 'error', msg, fields });
  }
  warn(fields: Record<string, unknown>, msg: string): void {
    this.lines.push({ level: 'warn', msg, fields });
  }
  info(fields: Record<string, unknown>, msg: string): void {
    this.lines.push({ level: 'info', msg, fields });
  }
  count(level: string): number {
    return this.lines.filter((l) => l.level === level).length;
  }
}

const row = (i: number): string => `${i},to_scp,P-DATA-TF,${String(i).padStart(40, '0')}`;

test('BatchedLines: a file that never completes a write holds at most MAX_QUEUED_BYTES; the rest is dropped, counted, and one error line says so', async () => {
  const sink = new TestSink();
  sink.mode = 'stall';
  const log = new TestLog();
  const lines = new BatchedLines(sink, 1000, 1000, { log, closeWaitMs: 50 });
  const total = 200_000; // ~13 MB of rows: several times the bound
  for (let i = 0; i < total; i++) lines.push(row(i));
  assert.ok(lines.queuedBytes <= MAX_QUEUED_BYTES, `queued ${lines.queuedBytes} bytes, bound ${MAX_QUEUED_BYTES}`);
  const rowBytes = row(total).length + 1;
  const heldRows = Math.ceil(MAX_QUEUED_BYTES / rowBytes) + 1000; // the queue plus the batch being filled
  assert.ok(lines.droppedRows >= total - heldRows, `dropped ${lines.droppedRows} of ${total}; at most ${heldRows} can be held`);
  assert.equal(sink.writes, 1, 'one write in flight at a time');
  assert.equal(log.count('error'), 1, JSON.stringify(log.lines));
  await lines.close(); // gives up on the hung write after closeWaitMs
  assert.equal(lines.droppedRows, total, 'nothing reached the file: every row is counted as dropped');
  assert.equal(sink.closed, false, 'a file with a write still in flight is not closed under it');
});

test('BatchedLines: a failing write (ENOSPC) is logged once, rows are dropped and counted, and writing resumes when the file takes bytes again', async () => {
  const sink = new TestSink();
  sink.mode = 'full';
  const log = new TestLog();
  const lines = new BatchedLines(sink, 10, 10, { log, retryMs: 20 });
  lines.queueNow('header\n');
  for (let i = 0; i < 10; i++) lines.push(`lost-${i}`); // a full batch while the header's write fails
  await sleep(100); // several retries
  for (let i = 0; i < 25; i++) lines.push(`lost-${10 + i}`);
  await sleep(50);
  assert.equal(log.count('error'), 1, `one error line for the whole outage: ${JSON.stringify(log.lines)}`);
  assert.ok(sink.writes >= 3, `the write is retried (${sink.writes} writes)`);
  assert.equal(lines.droppedRows, 35);
  assert.ok(lines.queuedBytes <= 'header\n'.length, 'only the batch being retried is kept');
  sink.mode = 'ok';
  const deadline = Date.now() + 5000;
  while (!log.lines.some((l) => l.msg === 'recorder writing again') && Date.now() < deadline) await sleep(10);
  const resumed = log.lines.find((l) => l.msg === 'recorder writing again');
  assert.ok(resumed, JSON.stringify(log.lines));
  assert.equal(resumed.fields.droppedRows, 35);
  for (let i = 0; i < 3; i++) lines.push(`kept-${i}`);
  await lines.close();
  assert.equal(sink.text(), 'header\nkept-0\nkept-1\nkept-2\n', 'the retried header is written whole, then the rows after the outage');
  assert.equal(lines.droppedRows, 35);
  assert.equal(log.count('error'), 1);
  assert.ok(sink.closed);
});

test('BatchedLines: short writes are continued where they stopped (no row is cut or repeated)', async () => {
  const sink = new TestSink();
  sink.maxPerWrite = 7;
  const lines = new BatchedLines(sink, 50, 5);
  const expected: string[] = [];
  for (let i = 0; i < 500; i++) {
    expected.push(row(i));
    lines.push(row(i));
  }
  await lines.close();
  assert.equal(sink.text(), `${expected.join('\n')}\n`);
  assert.equal(lines.droppedRows, 0);
});

test('BatchedLines: close() on a file that still fails gives up at once and counts what it could not write', async () => {
  const sink = new TestSink();
  sink.mode = 'full';
  const log = new TestLog();
  const lines = new BatchedLines(sink, 1000, 1000, { log, retryMs: 60_000, closeWaitMs: 60_000 });
  for (let i = 0; i < 5; i++) lines.push(`row-${i}`);
  const started = Date.now();
  await lines.close();
  assert.ok(Date.now() - started < 1000, 'close does not wait for the retry timer');
  assert.equal(lines.droppedRows, 5);
  assert.ok(
    log.lines.some((l) => l.msg === 'recorder closed: rows were dropped' && l.fields.droppedRows === 5),
    JSON.stringify(log.lines),
  );
  assert.ok(sink.closed);
});

/**
 * One regular file on a disk of `capacity` bytes, shared by any number of writers (each an O_APPEND sink):
 * a write takes what fits (a short write) and fails with ENOSPC when nothing does, as write(2) on a full
 * file system; cutTail() removes bytes from the end when they are there, as the recorders' files do.
 */
class SharedFile {
  bytes = Buffer.alloc(0);
  constructor(public capacity: number) {}

  sink(): LineSink & { cutTail(tail: Buffer): Promise<boolean> } {
    return {
      write: (buffer, offset, length) => {
        const n = Math.min(length, this.capacity - this.bytes.length);
        if (n <= 0) return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
        this.bytes = Buffer.concat([this.bytes, buffer.subarray(offset, offset + n)]);
        return Promise.resolve({ bytesWritten: n });
      },
      close: () => Promise.resolve(),
      cutTail: (tail) => {
        const at = this.bytes.length - tail.length;
        if (at < 0 || !this.bytes.subarray(at).equals(tail)) return Promise.resolve(false);
        this.bytes = this.bytes.subarray(0, at);
        return Promise.resolve(true);
      },
    };
  }

  lines(): string[] {
    return this.bytes.toString('utf8').split('\n');
  }
}

/** Whether every line of `text` but the last (empty) one is a whole row of `row()` or `other-N`. */
function wholeRows(lines: string[]): boolean {
  return lines.at(-1) === '' && lines.slice(0, -1).every((l) => /^\d+,to_scp,P-DATA-TF,\d{40}$/.test(l) || /^other-\d+$/.test(l));
}

test('BatchedLines: a short write to a regular file (the disk filled mid-batch) leaves no half row, whether the disk stays full or frees again; drops counted exactly', async () => {
  const file = new SharedFile(1000); // room for 16 whole rows (60-61 bytes with their newline), and part of a 17th
  const log = new TestLog();
  const lines = new BatchedLines(file.sink(), 20, 5, { log, retryMs: 20 });
  for (let i = 0; i < 20; i++) lines.push(row(i)); // one batch of 20 rows: written short
  await sleep(60); // the short write, and retries that find the disk full
  assert.ok(wholeRows(file.lines()), `only whole rows while the disk is full:\n${file.bytes.toString().slice(-200)}`);
  assert.equal(file.lines().length - 1, 16);
  assert.equal(log.count('error'), 1, JSON.stringify(log.lines));
  file.capacity = 1_000_000; // space again
  await sleep(100);
  for (let i = 20; i < 25; i++) lines.push(row(i));
  await lines.close();
  assert.deepEqual(file.lines(), [...Array.from({ length: 25 }, (_, i) => row(i)), ''], 'the rest of the batch is written when space returns, whole, in order; nothing is lost');
  assert.equal(lines.droppedRows, 0);

  // The disk stays full until close: the file ends with whole rows, the rest is counted.
  const full = new SharedFile(1000);
  const closing = new BatchedLines(full.sink(), 20, 5, { log: new TestLog(), retryMs: 20, closeWaitMs: 50 });
  for (let i = 0; i < 20; i++) closing.push(row(i));
  await sleep(30);
  await closing.close();
  assert.ok(wholeRows(full.lines()), full.bytes.toString().slice(-200));
  assert.equal(closing.droppedRows, 20 - (full.lines().length - 1), 'every row not in the file is counted, no more');
});

test('BatchedLines: two writers on one file (--workers): a batch cut short is never split around the other writer’s batch', async () => {
  const file = new SharedFile(1000);
  const a = new BatchedLines(file.sink(), 20, 5, { retryMs: 30 });
  const b = new BatchedLines(file.sink(), 5, 5, { retryMs: 30 });
  for (let i = 0; i < 20; i++) a.push(row(i)); // written short: the disk fills inside row 16
  await sleep(10);
  file.capacity = 1_000_000; // space returns before a's retry, and b writes first
  for (let i = 0; i < 5; i++) b.push(`other-${i}`);
  await b.close();
  await a.close();
  const lines = file.lines();
  assert.ok(wholeRows(lines), `every line a whole row:\n${lines.join('\n')}`);
  assert.deepEqual(
    lines.filter((l) => l.includes(',')),
    Array.from({ length: 20 }, (_, i) => row(i)),
    "a's rows, each once, in order",
  );
  assert.equal(lines.filter((l) => l.startsWith('other-')).length, 5);
  assert.equal(a.droppedRows + b.droppedRows, 0);
});

test('BatchedLines.queueNow: ahead of the lines still being collected, behind nothing queued yet', async () => {
  const t = await openTemp();
  try {
    const lines = new BatchedLines(t.file, 100, 1000);
    lines.push('first row');
    lines.queueNow('header\n');
    lines.push('second row');
    await lines.close();
    assert.equal(fs.readFileSync(t.path, 'utf8'), 'header\nfirst row\nsecond row\n');
  } finally {
    t.cleanup();
  }
});
