// The start-up malloc tuning (src/proxy/malloc-threshold.ts) is off unless DICOM_PDU_PROXY_MALLOC_TUNING=on:
// measured by what it allocates (its 8 MiB block shows in arrayBuffers until the next collection), and by
// what it is for (glibc's thresholds raised once the block is freed).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { TUNING_BLOCK_BYTES, raiseMallocThresholds } from '../../src/proxy/malloc-threshold.js';
import { skipWithReason } from '../helpers/small-fs.js';

/** Bytes of ArrayBuffer backing stores `f` allocated (what it dropped is still counted: no collection runs in between). */
function allocatedBy(f: () => void): number {
  const before = process.memoryUsage().arrayBuffers;
  f();
  return process.memoryUsage().arrayBuffers - before;
}

test('off by default, and with any value but on: no block allocated', () => {
  for (const env of [{}, { DICOM_PDU_PROXY_MALLOC_TUNING: 'off' }, { DICOM_PDU_PROXY_MALLOC_TUNING: '1' }]) {
    assert.ok(allocatedBy(() => raiseMallocThresholds(env)) < TUNING_BLOCK_BYTES / 2, JSON.stringify(env));
  }
});

test('DICOM_PDU_PROXY_MALLOC_TUNING=on allocates its block', () => {
  assert.ok(allocatedBy(() => raiseMallocThresholds({ DICOM_PDU_PROXY_MALLOC_TUNING: 'on' })) >= TUNING_BLOCK_BYTES);
});

// What the block is for: once the collector frees it, glibc serves blocks up to its size from the heap (brk)
// instead of a mapping of their own. Seen in a child process (its own malloc state): after the tuning and a
// collection, a 4 MiB buffer grows the [heap] of /proc/self/maps by about its size; untuned, it is mapped on
// its own and the heap does not grow.
const PROBE = `
import fs from 'node:fs';
import { TUNING_BLOCK_BYTES, raiseMallocThresholds } from ${JSON.stringify(new URL('../../src/proxy/malloc-threshold.ts', import.meta.url).pathname)};
const heap = () => {
  const line = fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').find((l) => l.endsWith('[heap]'));
  if (!line) return 0;
  const [from, to] = line.split(' ')[0].split('-').map((x) => parseInt(x, 16));
  return to - from;
};
raiseMallocThresholds(process.env);
// Until the block is freed (the collector may free backing stores on another thread), at most 2 s.
for (let i = 0; i < 200 && process.memoryUsage().arrayBuffers >= TUNING_BLOCK_BYTES / 2; i++) {
  globalThis.gc();
  await new Promise((resolve) => setTimeout(resolve, 10));
}
const before = heap();
const probe = Buffer.allocUnsafeSlow(4 * 1024 * 1024);
probe.fill(1);
process.stdout.write(String(heap() - before));
`;

function heapGrowthFor4MiB(tuning: string): number {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', PROBE], {
    env: { ...process.env, DICOM_PDU_PROXY_MALLOC_TUNING: tuning },
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return Number(r.stdout);
}

test('on: once collected, the block raises glibc’s thresholds (a 4 MiB buffer comes from the heap); off: it does not', (t) => {
  const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;
  if (glibc === undefined || !existsSync('/proc/self/maps')) return skipWithReason(t, 'not glibc on Linux: the thresholds it raises are glibc’s');
  const MiB = 1024 * 1024;
  const tuned = heapGrowthFor4MiB('on');
  assert.ok(tuned >= 2 * MiB, `tuned: the heap grew ${tuned} bytes for a 4 MiB buffer`);
  const untuned = heapGrowthFor4MiB('off');
  assert.ok(untuned < 1 * MiB, `untuned: the heap grew ${untuned} bytes (the buffer is mapped on its own)`);
});
