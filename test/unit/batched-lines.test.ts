import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { BatchedLines } from '../../src/record/batched-lines.js';

async function openTemp(): Promise<{ file: fs.WriteStream; path: string; cleanup: () => void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'batched-lines-'));
  const p = path.join(dir, 'out.csv');
  const file = fs.createWriteStream(p);
  await once(file, 'open');
  return { file, path: p, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

test('BatchedLines: every line arrives once, in order, across many batch buffers (over 256 KiB, multi-byte text)', async () => {
  const t = await openTemp();
  try {
    const lines = new BatchedLines(t.file, 100, 1000);
    lines.writeNow('header\n');
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
