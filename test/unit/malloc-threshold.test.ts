// The start-up malloc tuning (src/proxy/malloc-threshold.ts) is off unless DICOM_PDU_PROXY_MALLOC_TUNING=on:
// measured by what it allocates (its 8 MiB block shows in arrayBuffers until the next collection).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TUNING_BLOCK_BYTES, raiseMallocThresholds } from '../../src/proxy/malloc-threshold.js';

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
