// Real peers talking directly (no proxy): proves the harness (DCMTK wrappers, dcmjs-dimse SCP, test files)
// and records the baseline behaviour, including the oversized-PDU failure the proxy must repair.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  dcmtkErrors,
  echoscu,
  findValues,
  findscu,
  DEFAULT_FIND_KEYS,
  getscu,
  listFiles,
  parseDcmtkMaxPdu,
  parseDcmtkNegotiation,
  parseFindResponses,
  parseGetSummary,
  startStorescp,
  storescu,
} from '../helpers/dcmtk.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { startDimseScp } from '../helpers/dimse-peer.js';
import { killAll, runningPeers } from '../helpers/procs.js';

const MiB = 1024 * 1024;
let tmp = '';
let big: TestDicomInfo; // 16 MiB pixel data
let small: TestDicomInfo; // 300000 bytes pixel data, Rows*Columns not a multiple of 1024

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'peers-direct-'));
  big = await writeTestDicom(path.join(tmp, 'big.dcm'), { pixelBytes: 16 * MiB, seed: 1 });
  small = await writeTestDicom(path.join(tmp, 'small.dcm'), { pixelBytes: 300_000, seed: 2 });
});

after(async () => {
  await killAll();
  assert.equal(runningPeers().length, 0);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function freshDir(name: string): Promise<string> {
  const dir = path.join(tmp, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** The received file for `info` (storescp: "SC.<uid>", getscu: "<uid>"). */
function receivedFor(files: string[], info: TestDicomInfo): string | undefined {
  return files.find((f) => path.basename(f).endsWith(info.sopInstanceUid));
}

// A bound per test (60 s each), not one for the 7 together: 10 s at load 2, and a suite bound adds up every test's
// share of a starved CPU (pcap.test.ts ran past its suite bound so at load 13).
describe('real peers, direct', () => {
  test('(a) storescu -> storescp +B, 16 MiB: dataset bytes identical; max PDU parsed from storescu -d', { timeout: 60_000 }, async (t) => {
    const outDir = await freshDir('a-storescp');
    const scp = await startStorescp({ outDir, maxPdu: 65536 });
    t.after(() => scp.stop());

    const r = await storescu({ port: scp.port, calledAet: scp.aet, aet: 'STORESCU', files: [big.path!] });
    t.diagnostic(`storescu 16 MiB: ${r.durationMs} ms, exit ${r.code}`);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.deepEqual(dcmtkErrors(r), []);

    // storescu -d prints the parameters twice: RQ ("Their Max PDU Receive Size:  0"), then the parsed AC.
    const neg = parseDcmtkNegotiation(r);
    t.diagnostic(`negotiation: ${JSON.stringify(neg)}`);
    assert.deepEqual(neg, { ourMaxPdu: 16384, theirMaxPdu: 65536, maxSendPdv: 65536 - 12 });
    assert.equal(parseDcmtkMaxPdu(r), 65536);
    assert.match(r.stderr, /^D: Their Max PDU Receive Size:\s+65536$/m);
    assert.match(r.stderr, /^I: Association Accepted \(Max Send PDV: 65524\)$/m);

    const files = scp.receivedFiles();
    assert.equal(files.length, 1, files.join(', '));
    const got = receivedFor(files, big);
    assert.ok(got, `no SC.${big.sopInstanceUid} in ${files.join(', ')}`);
    const received = datasetBytes(got);
    assert.equal(received.length, big.datasetLength);
    assert.ok(received.equals(datasetBytes(big.path!)), 'dataset bytes differ');
    assert.match(scp.peer.output, /Received Store Request/);
  });

  test('(b) echoscu -> storescp succeeds', { timeout: 60_000 }, async (t) => {
    const outDir = await freshDir('b-storescp');
    const scp = await startStorescp({ outDir });
    t.after(() => scp.stop());
    const r = await echoscu({ port: scp.port, calledAet: scp.aet, aet: 'ECHOSCU' });
    t.diagnostic(`echoscu: ${r.durationMs} ms`);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.match(r.stderr, /^I: Received Echo Response \(Success\)$/m);
    assert.equal(parseDcmtkMaxPdu(r), 16384); // storescp default
  });

  test('(c) findscu -> dimse-scp gets K pending results', { timeout: 60_000 }, async (t) => {
    const K = 4;
    const scp = await startDimseScp({ findResults: K });
    t.after(() => scp.stop());
    const r = await findscu({ port: scp.port, calledAet: 'DIMSESCP', aet: 'FINDSCU', keys: DEFAULT_FIND_KEYS });
    t.diagnostic(`findscu: ${r.durationMs} ms`);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.deepEqual(dcmtkErrors(r), []);
    assert.equal(parseFindResponses(r), K);
    assert.deepEqual(findValues(r, '0010,0010'), ['FIND^PATIENT1', 'FIND^PATIENT2', 'FIND^PATIENT3', 'FIND^PATIENT4']);
    assert.deepEqual(findValues(r, '0010,0020'), ['FINDPID1', 'FINDPID2', 'FINDPID3', 'FINDPID4']);
    assert.equal(findValues(r, '0020,000d').length, K);
  });

  test('(d) getscu -> dimse-scp --max-pdu 16384: files retrieved bit-identical', { timeout: 60_000 }, async (t) => {
    const scp = await startDimseScp({ maxPdu: 16384, files: [big.path!, small.path!] });
    t.after(() => scp.stop());
    const outDir = await freshDir('d-getscu');
    const r = await getscu({
      port: scp.port,
      calledAet: 'DIMSESCP',
      aet: 'GETSCU',
      outDir,
      keys: ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${big.studyInstanceUid}`],
    });
    t.diagnostic(`getscu 16 MiB + 300 kB at 16384: ${r.durationMs} ms, exit ${r.code}`);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.deepEqual(dcmtkErrors(r), []);
    assert.equal(parseDcmtkMaxPdu(r), 16384);
    assert.deepEqual(parseGetSummary(r), { remaining: 0, completed: 2, failed: 0, warning: 0 });
    const files = listFiles(outDir);
    assert.equal(files.length, 2, files.join(', '));
    for (const info of [big, small]) {
      const got = receivedFor(files, info);
      assert.ok(got, `missing ${info.sopInstanceUid}`);
      assert.ok(datasetBytes(got).equals(datasetBytes(info.path!)), `dataset bytes differ for ${info.path}`);
    }
  });

  test('(e) getscu -> dimse-scp default max PDU: 262144-byte PDUs exceed getscu 16384, retrieval fails', { timeout: 60_000 }, async (t) => {
    const scp = await startDimseScp({ files: [big.path!, small.path!] });
    t.after(() => scp.stop());
    const outDir = await freshDir('e-getscu');
    const r = await getscu({
      port: scp.port,
      calledAet: 'DIMSESCP',
      aet: 'GETSCU',
      outDir,
      keys: ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${big.studyInstanceUid}`],
    });
    const errors = dcmtkErrors(r);
    t.diagnostic(`getscu exit ${r.code} after ${r.durationMs} ms; DCMTK errors:`);
    for (const line of errors) t.diagnostic(line);
    // The AC announced 262144 and dcmjs-dimse sent PDUs of that size although the RQ said 16384.
    assert.equal(parseDcmtkMaxPdu(r), 262144);
    assert.ok(
      errors.some((l) => /DUL Illegal PDU Length 262144\.\s+Max expected 16384/.test(l)),
      `expected the Illegal PDU Length error, got:\n${errors.join('\n')}`,
    );
    // getscu 3.6.7 -B exits 0 here: judge by the missing files / summary, not the exit code.
    const summary = parseGetSummary(r);
    assert.ok(summary === undefined || summary.completed < 2, JSON.stringify(summary));
    const got = receivedFor(listFiles(outDir), big);
    assert.ok(got === undefined || !datasetBytes(got).equals(datasetBytes(big.path!)), '16 MiB file unexpectedly intact');
  });

  test('(e2) dimse-scp --respect-rq-max (no README setMaxPduLength): dcmjs-dimse sends min(RQ, own) = 16384', { timeout: 60_000 }, async (t) => {
    const scp = await startDimseScp({ files: [big.path!], respectRqMax: true });
    t.after(() => scp.stop());
    const outDir = await freshDir('e2-getscu');
    const r = await getscu({ port: scp.port, outDir, keys: ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${big.studyInstanceUid}`] });
    t.diagnostic(`getscu: exit ${r.code}, ${r.durationMs} ms`);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.deepEqual(dcmtkErrors(r), []);
    assert.equal(parseDcmtkMaxPdu(r), 16384);
    const got = receivedFor(listFiles(outDir), big);
    assert.ok(got && datasetBytes(got).equals(datasetBytes(big.path!)));
  });

  test('(f) storescu -> dimse-scp --store-dir: stored datasets identical to the sources', { timeout: 60_000 }, async (t) => {
    const storeDir = await freshDir('f-store');
    const scp = await startDimseScp({ storeDir });
    t.after(() => scp.stop());
    const r = await storescu({ port: scp.port, calledAet: 'DIMSESCP', files: [big.path!, small.path!] });
    t.diagnostic(`storescu 16 MiB + 300 kB to dcmjs-dimse: ${r.durationMs} ms`);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.deepEqual(dcmtkErrors(r), []);
    assert.equal(parseDcmtkMaxPdu(r), 262144); // dcmjs-dimse default, announced in the AC
    const files = listFiles(storeDir);
    assert.equal(files.length, 2, files.join(', '));
    for (const info of [big, small]) {
      const got = receivedFor(
        files.map((f) => f.replace(/\.dcm$/, '')),
        info,
      );
      assert.ok(got, `missing ${info.sopInstanceUid}`);
      assert.ok(datasetBytes(`${got}.dcm`).equals(datasetBytes(info.path!)), `dataset bytes differ for ${info.path}`);
    }
  });
});
