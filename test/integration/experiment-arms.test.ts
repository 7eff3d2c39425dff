// An experiment on live traffic (issue 25): several --max-pdu arms, one per association, through the real
// proxy. DCMTK storescu -> proxy -> storescp stores every data set bit-identical whatever the arm, and each
// storescu is told its arm's Maximum Length; --assign block keeps every calling AE title balanced; the guard
// withdraws, for one device only, an arm that device cannot cope with. With --workers 2 the assignment and
// the guard stay in the primary: the same checks hold.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { decodeAssociate, maxLength } from '../../src/pdu/associate.js';
import { AbortSource, PduType } from '../../src/pdu/constants.js';
import { encodeAbort, encodeReleaseRq } from '../../src/pdu/control.js';
import { readCsvRows } from '../helpers/csv.js';
import { dcmtkErrors, echoscu, parseDcmtkMaxPdu, startStorescp, storescu } from '../helpers/dcmtk.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import { killAll } from '../helpers/procs.js';
import type { LogLine } from '../helpers/proxy.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import { RawPeer, buildRq } from '../helpers/raw.js';

const KiB = 1024;
const MiB = 1024 * 1024;
let tmp = '';

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'experiment-arms-'));
});

after(async () => {
  await stopAllProxies();
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function freshDir(name: string): Promise<string> {
  const dir = path.join(tmp, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** The arm of each association, from the 'association negotiated' lines: assoc id -> arm label. */
function armsByAssoc(proxy: ProxyProcess): Map<number, string> {
  const out = new Map<number, string>();
  for (const l of proxy.logs) if (l.msg === 'association negotiated') out.set(l.assoc as number, l.arm as string);
  return out;
}

/** The calling AE title of each association, from the 'association requested' lines. */
function callingByAssoc(proxy: ProxyProcess): Map<number, string> {
  const out = new Map<number, string>();
  for (const l of proxy.logs) if (l.msg === 'association requested') out.set(l.assoc as number, l.callingAe as string);
  return out;
}

/** Wait until the proxy has logged `n` lines that pass `test` (counted over what it logged so far, then as lines come). */
async function waitForCount(proxy: ProxyProcess, n: number, test: (l: LogLine) => boolean): Promise<void> {
  let seen = 0;
  await proxy.waitForLog((l) => test(l) && ++seen >= n);
}

const closed = (l: LogLine): boolean => l.msg === 'association closed';

/**
 * A test SCU that cannot cope with large PDUs: it proposes Verification, reads the A-ASSOCIATE-AC and, when
 * told a Maximum Length of `limit` or more, sends A-ABORT and closes; otherwise it releases and closes. Returns the
 * Maximum Length it was told.
 */
async function fragileScu(port: number, calling: string, limit: number): Promise<number> {
  const scu = await RawPeer.connect(port);
  try {
    scu.send(buildRq({ calling, called: 'STORESCP', maxLength: 16 * KiB }));
    const [ac] = await scu.waitForPdus(1, 10_000);
    assert.equal(ac![0], PduType.AssociateAc, 'the SCP accepted');
    const told = maxLength(decodeAssociate(ac!)) ?? 0;
    if (told >= limit) {
      scu.send(encodeAbort(AbortSource.ServiceUser, 0));
    } else {
      scu.send(encodeReleaseRq());
      const [, rp] = await scu.waitForPdus(2, 10_000);
      assert.equal(rp![0], PduType.ReleaseRp);
    }
    // Then it closes the connection, as an SCU does after its A-ABORT or the A-RELEASE-RP (PS3.8 9.2).
    return told;
  } finally {
    scu.destroy();
  }
}

describe('arms with DCMTK: storescu -> proxy -> storescp', { timeout: 180_000 }, () => {
  const ARMS: ReadonlyArray<[string, number]> = [
    ['16KB', 16 * KiB],
    ['64KB', 64 * KiB],
    ['1MB', MiB],
  ];
  let images: TestDicomInfo[] = [];

  before(async () => {
    // One image per association (storescp names its files by SOP Instance UID): 1.5 MiB of pixel data each.
    images = await Promise.all(Array.from({ length: 6 }, (_, i) => writeTestDicom(path.join(tmp, `image${i}.dcm`), { pixelBytes: 1.5 * MiB, seed: 250 + i })));
  });

  for (const workers of [1, 2]) {
    test(`--workers ${workers}: every data set bit-identical whatever the arm; storescu told its arm's Maximum Length; every row names the arm`, async (t) => {
      const outDir = await freshDir(`store-${workers}`);
      const messagesCsv = path.join(tmp, `messages-${workers}.csv`);
      const chunksCsv = path.join(tmp, `chunks-${workers}.csv`);
      const scp = await startStorescp({ outDir }); // accepts 16 KB PDUs itself
      t.after(() => scp.stop());
      const proxy = await ProxyProcess.start([
        '--upstream',
        `127.0.0.1:${scp.port}`,
        '--max-pdu',
        ARMS.map(([label]) => label).join(','),
        '--assign',
        'rotate',
        '--assign-seed',
        '7',
        '--workers',
        String(workers),
        '--messages-csv',
        messagesCsv,
        '--csv',
        chunksCsv,
      ]);
      t.after(() => proxy.stop());

      const told: number[] = [];
      for (const image of images) {
        const r = await storescu({ port: proxy.port, calledAet: scp.aet, aet: 'MODALITY1', files: [image.path!] });
        assert.equal(r.code, 0, r.stderr.slice(-3000));
        assert.deepEqual(dcmtkErrors(r), []);
        told.push(parseDcmtkMaxPdu(r)!);
        // One at a time: the i-th association is the i-th storescu.
        await waitForCount(proxy, told.length, closed);
      }
      assert.equal(await proxy.stop(), 0, proxy.stderr);

      // Each storescu was told its association's arm; rotate over 6 associations: each arm twice.
      const arms = armsByAssoc(proxy);
      const ids = [...arms.keys()].sort((a, b) => a - b);
      assert.equal(ids.length, images.length);
      const value = new Map(ARMS);
      ids.forEach((id, i) => assert.equal(told[i], value.get(arms.get(id)!), `association ${id} (${arms.get(id)}): storescu told ${told[i]}`));
      for (const [label] of ARMS) assert.equal([...arms.values()].filter((a) => a === label).length, 2, `${label} twice`);

      // Bit-identical, whatever the arm.
      for (const image of images) {
        const got = scp.receivedFiles().find((f) => path.basename(f).includes(image.sopInstanceUid));
        assert.ok(got, `storescp stored ${image.sopInstanceUid}`);
        assert.ok(datasetBytes(got).equals(datasetBytes(image.path!)), `data set of ${image.sopInstanceUid} identical`);
      }

      // The records: every message row and every PDU row carries its association's arm and generation 1.
      const rows = await readCsvRows(messagesCsv);
      assert.equal(rows.length, images.length);
      for (const row of rows) {
        const arm = arms.get(Number(row.assoc));
        assert.equal(row.arm, arm);
        assert.equal(Number(row.max_pdu), value.get(arm!), 'max_pdu is the arm');
        assert.equal(row.calling_aet, 'MODALITY1');
        assert.equal(row.called_aet, scp.aet);
        assert.equal(row.generation, '1');
      }
      const chunks = await readCsvRows(chunksCsv);
      assert.ok(chunks.length > 0);
      for (const row of chunks) {
        assert.equal(row.arm, arms.get(Number(row.assoc)), `chunk row of association ${row.assoc}`);
        assert.equal(row.generation, '1');
      }
    });
  }
});

describe('--assign block: balance per calling AE title', { timeout: 180_000 }, () => {
  test('2 arms, 3 AE titles (echoscu, interleaved unevenly): after every 4 associations of a device its arms are equal', async (t) => {
    const scp = await startStorescp({ outDir: await freshDir('balance') });
    t.after(() => scp.stop());
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--max-pdu', '16KB,1MB', '--assign-seed', '2026']);
    t.after(() => proxy.stop());
    const order = ['CT01', 'CT01', 'MR01', 'CT01', 'US01', 'MR01', 'CT01', 'US01'];
    const plan = Array.from({ length: 3 }, () => order).flat(); // CT01 12, MR01 6, US01 6
    const told: number[] = [];
    for (const aet of plan) {
      const r = await echoscu({ port: proxy.port, calledAet: scp.aet, aet });
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      told.push(parseDcmtkMaxPdu(r)!);
      await waitForCount(proxy, told.length, closed);
    }
    assert.equal(await proxy.stop(), 0, proxy.stderr);
    const seed = proxy.logs.find((l) => l.msg === 'experiment');
    assert.equal(seed?.seed, 2026, 'the seed used is logged');
    assert.deepEqual(seed?.arms, ['16KB', '1MB']);
    assert.deepEqual(proxy.logs.find((l) => l.msg === 'listening')?.maxPdu, ['16KB', '1MB'], "the 'listening' line names the arms");

    const arms = armsByAssoc(proxy);
    const calling = callingByAssoc(proxy);
    const ids = [...arms.keys()].sort((a, b) => a - b);
    assert.equal(ids.length, plan.length);
    const counts = new Map<string, Map<string, number>>();
    ids.forEach((id, i) => {
      const device = calling.get(id)!;
      const arm = arms.get(id)!;
      assert.equal(device, plan[i]);
      assert.equal(told[i], arm === '1MB' ? MiB : 16 * KiB, `echoscu of association ${id} told its arm`);
      const c =
        counts.get(device) ??
        new Map([
          ['16KB', 0],
          ['1MB', 0],
        ]);
      c.set(arm, c.get(arm)! + 1);
      counts.set(device, c);
      const n = c.get('16KB')! + c.get('1MB')!;
      if (n % 4 === 0) assert.equal(c.get('16KB'), c.get('1MB'), `${device} after ${n}: ${[...c].join(' ')}`);
    });
  });
});

describe('the guard', { timeout: 180_000 }, () => {
  for (const workers of [1, 2]) {
    test(`--workers ${workers}: an SCU that aborts whenever told 1MB or more gets that arm withdrawn within its first 6 associations; another device keeps both arms`, async (t) => {
      const scp = await startStorescp({ outDir: await freshDir(`guard-${workers}`) });
      t.after(() => scp.stop());
      const proxy = await ProxyProcess.start([
        '--upstream',
        `127.0.0.1:${scp.port}`,
        '--max-pdu',
        '64KB,1MB',
        '--assign',
        'rotate',
        '--assign-seed',
        '3',
        '--workers',
        String(workers),
        '--metrics',
        '127.0.0.1:0',
      ]);
      t.after(() => proxy.stop());
      const fragile: number[] = [];
      const other: number[] = [];
      for (let i = 0; i < 10; i++) {
        fragile.push(await fragileScu(proxy.port, 'ULTRASOUND1', MiB));
        // A device that copes with anything: it must go on seeing both arms.
        other.push(await fragileScu(proxy.port, 'CT01', Number.MAX_SAFE_INTEGER));
        await waitForCount(proxy, 2 * (i + 1), closed);
      }
      const withdrawn = proxy.logs.filter((l) => l.msg === 'experiment arm withdrawn for a calling AE');
      assert.equal(withdrawn.length, 1, JSON.stringify(withdrawn));
      assert.equal(withdrawn[0]!.arm, '1MB');
      assert.equal(withdrawn[0]!.callingAe, 'ULTRASOUND1');
      assert.equal(withdrawn[0]!.level, 40, 'a warn line');
      // Rotate: the 1MB arm's third failure in a row is the device's 5th or 6th association.
      const large = fragile.map((told, i) => [told, i] as const).filter(([told]) => told >= MiB);
      assert.equal(large.length, 3, `told 1MB three times: ${fragile.join(', ')}`);
      assert.ok(large[2]![1] < 6, `withdrawn within the first 6: ${fragile.join(', ')}`);
      assert.ok(
        fragile.slice(large[2]![1] + 1).every((told) => told === 64 * KiB),
        'only 64KB after the withdrawal',
      );
      assert.deepEqual(new Set(other), new Set([64 * KiB, MiB]), 'the other device keeps both arms');
      const res = await fetch(proxy.metricsUrl);
      const text = await res.text();
      assert.match(text, /^dicom_pdu_proxy_experiment_arm_withdrawn_total\{route="default",arm="1MB"\} 1$/m);
      assert.equal(await proxy.stop(), 0, proxy.stderr);
    });
  }

  test('--guard off: the same SCU is told 1MB every other time, to the end', async (t) => {
    const scp = await startStorescp({ outDir: await freshDir('guard-off') });
    t.after(() => scp.stop());
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--max-pdu', '64KB,1MB', '--assign', 'rotate', '--guard', 'off']);
    t.after(() => proxy.stop());
    const told: number[] = [];
    for (let i = 0; i < 8; i++) {
      told.push(await fragileScu(proxy.port, 'ULTRASOUND1', MiB));
      await waitForCount(proxy, i + 1, closed);
    }
    assert.equal(told.filter((v) => v === MiB).length, 4, told.join(', '));
    assert.ok(!proxy.logs.some((l) => l.msg === 'experiment arm withdrawn for a calling AE'));
    assert.equal(await proxy.stop(), 0, proxy.stderr);
  });
});
