// Real peers through the real proxy process: DCMTK (the strict conformance oracle) and dcmjs-dimse.
// Datasets are compared byte for byte; DCMTK's own debug output shows what it was told.

import assert from 'node:assert/strict';
import { readCsvRows } from '../helpers/csv.js';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  DEFAULT_FIND_KEYS,
  dcmtkErrors,
  echoscu,
  findValues,
  findscu,
  getscu,
  listFiles,
  parseDcmtkMaxPdu,
  parseFindResponses,
  parseGetSummary,
  startStorescp,
  storescu,
} from '../helpers/dcmtk.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import { startDimseScp } from '../helpers/dimse-peer.js';
import { killAll } from '../helpers/procs.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';

const MiB = 1024 * 1024;
let tmp = '';
let big: TestDicomInfo; // 16 MiB of pixel data
let small: TestDicomInfo; // 300000 bytes

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'proxy-peers-'));
  big = await writeTestDicom(path.join(tmp, 'big.dcm'), { pixelBytes: 16 * MiB, seed: 11 });
  small = await writeTestDicom(path.join(tmp, 'small.dcm'), { pixelBytes: 300_000, seed: 12 });
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

function receivedFor(files: string[], info: TestDicomInfo): string | undefined {
  return files.find((f) =>
    path
      .basename(f)
      .replace(/\.dcm$/, '')
      .endsWith(info.sopInstanceUid),
  );
}

/** Read the chunk CSV with fast-csv's parser: it must be well-formed CSV with a header row. */
const readCsv = readCsvRows;

describe('DCMTK storescu -> proxy -> storescp (bit-preserving, real max 16 KB)', { timeout: 120_000 }, () => {
  for (const [label, bytes] of [
    ['4KB', 4096],
    ['16KB', 16384],
    ['1MB', MiB],
    ['20MB', 20 * MiB],
  ] as const) {
    test(`--max-pdu ${label}: 16 MiB dataset arrives bit-identical, storescu sees ${bytes}`, async (t) => {
      const outDir = await freshDir(`store-${label}`);
      const csv = path.join(tmp, `chunks-${label}.csv`);
      const scp = await startStorescp({ outDir }); // DCMTK default: 16384
      t.after(() => scp.stop());
      const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--max-pdu', label, '--csv', csv]);
      t.after(() => proxy.stop());

      const r = await storescu({ port: proxy.port, calledAet: scp.aet, aet: 'STORESCU', files: [big.path!] });
      t.diagnostic(`storescu via proxy at ${label}: ${r.durationMs} ms`);
      assert.equal(r.code, 0, r.stderr.slice(-3000));
      assert.deepEqual(dcmtkErrors(r), []);
      assert.equal(parseDcmtkMaxPdu(r), bytes, 'storescu was told the rewritten Maximum Length');

      const got = receivedFor(scp.receivedFiles(), big);
      assert.ok(got, 'storescp stored the image');
      assert.ok(datasetBytes(got).equals(datasetBytes(big.path!)), 'dataset bytes identical');

      const negotiated = await proxy.waitForLog((l) => l.msg === 'association negotiated');
      assert.deepEqual((negotiated.maxPdu as { toScp: unknown }).toScp, { scpAnnounced: 16384, writtenToScu: bytes });
      await proxy.waitForLog((l) => l.msg === 'association closed');
      assert.equal(await proxy.stop(), 0);

      const data = (await readCsv(csv)).filter((row) => row.direction === 'to_scp' && row.type === 'P-DATA-TF');
      const largestIn = Math.max(...data.map((row) => Number(row.length)));
      const largestOut = Math.max(...data.map((row) => Number(row.out_max_length)));
      t.diagnostic(`storescu sent PDUs up to ${largestIn} bytes; the proxy sent up to ${largestOut}`);
      assert.ok(largestOut <= 16384, 'nothing over storescp real limit');
      assert.ok(largestIn <= Math.min(bytes, 131072), 'DCMTK respects what it was told and its own 128 KB cap');
      if (bytes > 16384) assert.ok(largestIn > 16384, 'storescu used the larger PDUs it was allowed');
      assert.ok(data.every((row) => row.forwarded_us !== '' && Number(row.forwarded_us) >= Number(row.last_byte_us)));
    });
  }

  for (const [fragment, expectedOut] of [
    ['repack', 131072],
    ['100KB', 102400],
  ] as const) {
    test(`--fragment ${fragment}: storescu's 4 KB PDUs are merged up to ${expectedOut} for a 128 KB storescp, bit-identical`, async (t) => {
      const outDir = await freshDir(`store-${fragment}`);
      const csv = path.join(tmp, `chunks-${fragment}.csv`);
      const scp = await startStorescp({ outDir, maxPdu: 131072 });
      t.after(() => scp.stop());
      const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--max-pdu', '4KB', '--fragment', fragment, '--csv', csv]);
      t.after(() => proxy.stop());
      const r = await storescu({ port: proxy.port, calledAet: scp.aet, aet: 'STORESCU', files: [small.path!] });
      assert.equal(r.code, 0, r.stderr.slice(-3000));
      assert.deepEqual(dcmtkErrors(r), []);
      const got = receivedFor(scp.receivedFiles(), small);
      assert.ok(got && datasetBytes(got).equals(datasetBytes(small.path!)), 'dataset bytes identical');
      await proxy.waitForLog((l) => l.msg === 'association closed');
      assert.equal(await proxy.stop(), 0);
      const data = (await readCsv(csv)).filter((row) => row.direction === 'to_scp' && row.type === 'P-DATA-TF' && row.kind === 'dataset');
      assert.ok(
        data.every((row) => Number(row.length) <= 4096),
        'storescu kept to the 4 KB it was told',
      );
      const outs = data.map((row) => Number(row.out_max_length)).filter((n) => n > 0);
      assert.equal(Math.max(...outs), expectedOut, `merged PDUs reach exactly ${expectedOut}`);
      const sent = data.reduce((n, row) => n + Number(row.out_pdus), 0);
      assert.ok(sent < data.length / 10, `${data.length} PDUs in, ${sent} out`);
    });
  }

  test('echoscu through the proxy', async (t) => {
    const scp = await startStorescp({ outDir: await freshDir('echo') });
    t.after(() => scp.stop());
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    t.after(() => proxy.stop());
    const r = await echoscu({ port: proxy.port, calledAet: scp.aet, aet: 'ECHOSCU' });
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.match(r.stderr, /^I: Received Echo Response \(Success\)$/m);
    assert.equal(parseDcmtkMaxPdu(r), 16384, 'unchanged without --max-pdu');
    const closed = await proxy.waitForLog((l) => l.msg === 'association closed');
    assert.equal(closed.outcome, 'released');
  });
});

describe('dcmjs-dimse SCP through the proxy with --max-pdu-rq', { timeout: 120_000 }, () => {
  test('findscu: every pending result arrives', async (t) => {
    const scp = await startDimseScp({ findResults: 5 });
    t.after(() => scp.stop());
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--max-pdu-rq', '64KB']);
    t.after(() => proxy.stop());
    const r = await findscu({ port: proxy.port, calledAet: 'DIMSESCP', aet: 'FINDSCU', keys: DEFAULT_FIND_KEYS });
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.deepEqual(dcmtkErrors(r), []);
    assert.equal(parseFindResponses(r), 5);
    assert.deepEqual(findValues(r, '0010,0020'), ['FINDPID1', 'FINDPID2', 'FINDPID3', 'FINDPID4', 'FINDPID5']);
    const requested = await proxy.waitForLog((l) => l.msg === 'association negotiated');
    assert.deepEqual((requested.maxPdu as { toScu: unknown }).toScu, { scuAnnounced: 16384, writtenToScp: 65536 });
  });

  test('getscu: the SCP sends 262144-byte PDUs to a 16 KB SCU; the proxy repairs them and getscu accepts', async (t) => {
    // Directly, this SCP makes getscu fail with "DUL Illegal PDU Length 262144. Max expected 16384"
    // (peers-direct.test.ts, case e). Through the proxy the same transfer must succeed bit for bit.
    const scp = await startDimseScp({ files: [big.path!, small.path!] });
    t.after(() => scp.stop());
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--max-pdu-rq', '64KB']);
    t.after(() => proxy.stop());
    const outDir = await freshDir('getscu');
    const r = await getscu({
      port: proxy.port,
      calledAet: 'DIMSESCP',
      aet: 'GETSCU',
      outDir,
      keys: ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${big.studyInstanceUid}`],
    });
    t.diagnostic(`getscu via proxy: ${r.durationMs} ms`);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.deepEqual(dcmtkErrors(r), []);
    assert.deepEqual(parseGetSummary(r), { remaining: 0, completed: 2, failed: 0, warning: 0 });
    const files = listFiles(outDir);
    for (const info of [big, small]) {
      const got = receivedFor(files, info);
      assert.ok(got, `missing ${info.sopInstanceUid}`);
      assert.ok(datasetBytes(got).equals(datasetBytes(info.path!)), `dataset bytes differ for ${info.path}`);
    }
    const closed = await proxy.waitForLog((l) => l.msg === 'association closed');
    const toScu = closed.toScu as { violations: number; largestPduIn: number };
    t.diagnostic(`SCP sent PDUs up to ${toScu.largestPduIn} bytes after being told 65536: ${toScu.violations} violations repaired`);
    assert.ok(toScu.violations > 0, 'violations counted');
    assert.ok(toScu.largestPduIn > 65536);
  });
});
