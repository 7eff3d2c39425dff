// The soak's memory probe (src/proxy/memory-probe.ts): off unless DICOM_PDU_PROXY_MEMORY_PROBE=on, and
// when on, SIGUSR2 collects fully: a dropped 32 MiB Buffer's backing store is gone from the 'after' figures.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MEMORY_PROBE_MESSAGE, MEMORY_PROBE_SIGNAL, installMemoryProbe } from '../../src/proxy/memory-probe.js';
import type { MemoryProbeReport } from '../../src/proxy/memory-probe.js';

const MiB = 1024 * 1024;

describe('memory probe', () => {
  test('off unless DICOM_PDU_PROXY_MEMORY_PROBE=on: no handler', () => {
    const listeners = process.listenerCount(MEMORY_PROBE_SIGNAL);
    assert.equal(installMemoryProbe({ info: () => assert.fail('logged') }, {}), undefined);
    assert.equal(installMemoryProbe({ info: () => assert.fail('logged') }, { DICOM_PDU_PROXY_MEMORY_PROBE: '1' }), undefined);
    assert.equal(process.listenerCount(MEMORY_PROBE_SIGNAL), listeners);
  });

  // 100 times: V8 frees a collected Buffer's backing store on a background thread, and a probe that read the
  // figures before that free (one run in 12 with a single collection) failed a fresh-clone run once.
  test('on: the signal logs one line, after a full collection that freed a dropped Buffer (100 times)', () => {
    const lines: Array<{ object: { probe: MemoryProbeReport }; message: string }> = [];
    const remove = installMemoryProbe(
      { info: (object, message) => lines.push({ object: object as { probe: MemoryProbeReport }, message }) },
      { DICOM_PDU_PROXY_MEMORY_PROBE: 'on' },
    );
    assert.ok(remove, 'installed');
    try {
      for (let i = 1; i <= 100; i++) {
        const holder: { buffer?: Buffer } = { buffer: Buffer.allocUnsafeSlow(32 * MiB) };
        holder.buffer![0] = 1;
        assert.ok(process.memoryUsage().arrayBuffers >= 32 * MiB, 'the Buffer is counted while held');
        delete holder.buffer;
        process.emit(MEMORY_PROBE_SIGNAL, MEMORY_PROBE_SIGNAL);
        assert.equal(lines.length, i);
        assert.equal(lines[i - 1]!.message, MEMORY_PROBE_MESSAGE);
        const { before, after, resourceUsage } = lines[i - 1]!.object.probe;
        assert.ok(before.arrayBuffers - after.arrayBuffers >= 32 * MiB, `probe ${i}: array buffers ${before.arrayBuffers} -> ${after.arrayBuffers}`);
        assert.ok(resourceUsage.maxRSS > 0);
      }
    } finally {
      remove();
    }
    assert.equal(process.listenerCount(MEMORY_PROBE_SIGNAL), 0);
  });
});
