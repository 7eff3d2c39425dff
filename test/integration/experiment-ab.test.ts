// One short A/B experiment through the real proxy (issue 25): the built-in SCP costs a known time per
// P-DATA-TF, the proxy runs two arms (16KB and 64KB, permuted blocks per calling AE), DCMTK storescu and the
// built-in SCU send as two devices, and `stats`' analysis of the proxy's messages CSV must find the arm
// with 4 times fewer PDUs faster. The full check, 20 A/A and 20 A/B runs, is `npm run check:experiment`.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { imagePool, runExperiment } from '../helpers/experiment-run.js';
import { killAll } from '../helpers/procs.js';

let tmp = '';
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'experiment-ab-'));
});
after(async () => {
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('A/B through the proxy: the arm with 4 times fewer PDUs is found faster, and the SCP got the PDUs the arms imply', async () => {
  const images = await imagePool(path.join(tmp, 'images'), 4, 128 * 1024, 512 * 1024);
  const o = await runExperiment({
    arms: '16KB,64KB',
    seed: 3,
    delayMs: 2,
    devices: [
      { aet: 'CT_DCMTK', scu: 'dcmtk' },
      { aet: 'US_BUILTIN', scu: 'builtin' },
    ],
    // 12 associations per device: with --assign block, 12 per arm (the analysis needs 10).
    associationsPerDevice: 12,
    imagesPerAssociation: [1, 2],
    images,
    dir: path.join(tmp, 'run'),
  });
  assert.deepEqual(o.failures, []);
  assert.deepEqual(o.pooled.arms, ['16KB', '64KB']);
  const rows = o.pooled.rows;
  assert.deepEqual(
    rows.map((r) => [r.arm, r.associations]),
    [
      ['16KB', 12],
      ['64KB', 12],
    ],
    'permuted blocks: equal shares',
  );
  const b = rows.find((r) => !r.reference)!;
  assert.equal(b.verdict, 'faster', `effect ${b.ratio} [${b.low}, ${b.high}], computed ${o.computed}`);
  assert.ok(o.computed > 1.5, `computed effect ${o.computed}`);
  // Every data set took ceil(bytes / (max PDU - 6)) PDUs, but for a few that DCMTK storescu sends in one more.
  assert.ok(Math.abs(o.scpDataPdus - o.predictedDataPdus) <= 0.02 * o.predictedDataPdus, `SCP counted ${o.scpDataPdus} data PDUs, predicted ${o.predictedDataPdus}`);
  // Per device too: each device has 6 associations per arm, too few for a verdict other than not enough data.
  assert.deepEqual(
    o.perDevice.rows.filter((r) => !r.reference).map((r) => [r.stratum, r.verdict]),
    [
      ['CT_DCMTK', 'not enough data'],
      ['US_BUILTIN', 'not enough data'],
    ],
  );
});
