// The messages CSV (--messages-csv) through the real proxy process: DCMTK storescu --repeat, findscu and
// getscu against real SCPs, and constructed peers that make each column of the time split move:
// a slow-reading SCP (upstream_blocked_ms), a slow-answering SCP (scp_response_ms) and a slow-sending SCU
// (scu_idle_ms). Margins are generous: the right column must move by hundreds of ms, the others not.

import assert from 'node:assert/strict';
import { readCsvRows } from '../helpers/csv.js';
import type { CsvRow } from '../helpers/csv.js';
import fs from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MESSAGES_CSV_HEADER } from '../../src/record/messages-csv.js';
import { readPart10 } from '../../src/dicom/part10.js';
import { DEFAULT_FIND_KEYS, dcmtkErrors, findscu, getscu, parseGetSummary, startStorescp, storescu } from '../helpers/dcmtk.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import { startDimseScp } from '../helpers/dimse-peer.js';
import { killAll } from '../helpers/procs.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import { readByPeer } from '../helpers/tcp-queues.js';
import { ThrottledStoreScp, slowStore } from '../helpers/throttled-peers.js';
import { EXPLICIT_LE, FakeScp, RawPeer, SECONDARY_CAPTURE, buildAc, buildRq } from '../helpers/raw.js';
import { encodeReleaseRp, encodeReleaseRq } from '../../src/pdu/control.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { C_ECHO_RQ, C_ECHO_RSP, commandSet } from '../fixtures/annotated-commands.js';

const MiB = 1024 * 1024;
let tmp = '';
let image: TestDicomInfo; // 3 MiB of pixel data
let big: TestDicomInfo; // 16 MiB: more than loopback socket buffers hold
let small: TestDicomInfo; // 96 KB

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'messages-'));
  image = await writeTestDicom(path.join(tmp, 'image.dcm'), { pixelBytes: 3 * MiB, seed: 31 });
  big = await writeTestDicom(path.join(tmp, 'big.dcm'), { pixelBytes: 16 * MiB, seed: 32 });
  small = await writeTestDicom(path.join(tmp, 'small.dcm'), { pixelBytes: 96 * 1024, seed: 33 });
});

after(async () => {
  await stopAllProxies();
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

type Row = CsvRow;
const readMessages = readCsvRows;

async function freshDir(name: string): Promise<string> {
  const dir = path.join(tmp, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** The transfer syntax the SCP accepted for presentation context `id`, from the 'association negotiated' line. */
function acceptedSyntax(proxy: ProxyProcess, id: number): string | undefined {
  const line = proxy.logs.find((l) => l.msg === 'association negotiated');
  const contexts = (line?.contexts ?? []) as Array<{ id: number; transferSyntax?: string }>;
  return contexts.find((c) => c.id === id)?.transferSyntax;
}

const num = (row: Row, column: string): number => {
  assert.notEqual(row[column], '', `${column} is set`);
  return Number(row[column]);
};

/** Run a proxy with --messages-csv FILE (plus `args`), run `work` through it, stop it, return the rows. */
async function throughProxy(upstreamPort: number, file: string, args: string[], work: (proxyPort: number) => Promise<void>): Promise<{ rows: Row[]; proxy: ProxyProcess }> {
  const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${upstreamPort}`, '--messages-csv', file, ...args]);
  try {
    await work(proxy.port);
    await proxy.waitForLog((l) => l.msg === 'association closed');
  } finally {
    assert.equal(await proxy.stop(), 0);
  }
  return { rows: await readMessages(file), proxy };
}

describe('messages CSV with DCMTK and dcmjs-dimse peers', { timeout: 120_000 }, () => {
  test('storescu --repeat 4: one C-STORE-RQ row per image, bytes = the data set, status 0000; a second run appends', async (t) => {
    const scp = await startStorescp({ outDir: await freshDir('repeat'), extraArgs: ['--ignore'] });
    t.after(() => scp.stop());
    const file = path.join(tmp, 'repeat.csv');
    const dataset = datasetBytes(image.path!).length;
    const part10 = readPart10(fs.readFileSync(image.path!));
    const run =
      (label: string) =>
      async (port: number): Promise<void> => {
        const r = await storescu({ port, calledAet: scp.aet, aet: 'STORESCU', files: [image.path!], extraArgs: ['--repeat', '4'] });
        assert.equal(r.code, 0, `${label}: ${r.stderr.slice(-2000)}`);
        assert.deepEqual(dcmtkErrors(r), []);
      };

    const first = await throughProxy(scp.port, file, ['--max-pdu', '1MB', '--log-level', 'debug'], run('1MB'));
    assert.equal(first.rows.length, 4);
    for (const [i, row] of first.rows.entries()) {
      assert.equal(row.command, 'C-STORE-RQ');
      assert.equal(row.assoc, '1');
      assert.equal(row.message_id, String(i + 1));
      assert.equal(row.sop_instance_uid, image.sopInstanceUid);
      assert.equal(num(row, 'bytes'), dataset, 'the data set bytes storescu sent');
      assert.equal(row.max_pdu, '1048576', 'what storescu was told');
      assert.equal(row.scp_max_pdu, '16384', "storescp's own value");
      assert.equal(row.status, '0000');
      assert.equal(row.pending_responses, '0');
      assert.ok(num(row, 'duration_ms') > 0);
      const [rqFirst, rqLast, rspFirst, rspLast] = ['request_first_byte_us', 'request_last_byte_us', 'response_first_byte_us', 'response_last_byte_us'].map((c) => num(row, c));
      assert.ok(rqFirst! < rqLast! && rqLast! < rspFirst! && rspFirst! <= rspLast!, `times in order: ${rqFirst} ${rqLast} ${rspFirst} ${rspLast}`);
      assert.equal(num(row, 'duration_ms').toFixed(3), ((rspLast! - rqFirst!) / 1000).toFixed(3));
      for (const c of ['scu_idle_ms', 'upstream_blocked_ms', 'scp_response_ms', 'proxy_busy_ms']) assert.ok(num(row, c) >= 0, c);
      // The proxy's own time is within the message's (both legs' parts are inside first request byte to last response byte).
      assert.ok(num(row, 'proxy_busy_ms') <= num(row, 'duration_ms'), `proxy_busy_ms ${row.proxy_busy_ms} within duration_ms ${row.duration_ms}`);
      assert.ok(Math.abs(Date.parse(row.started_at!) - Date.now()) < 60_000, 'started_at is now-ish wall-clock time');
      // The experiment's columns: the one --max-pdu value is the arm, as written; the AE titles of the RQ;
      // the file's SOP class; the transfer syntax storescp accepted for the context; the first generation.
      assert.equal(row.arm, '1MB');
      assert.equal(row.calling_aet, 'STORESCU');
      assert.equal(row.called_aet, scp.aet);
      assert.equal(row.sop_class_uid, part10.sopClassUid);
      assert.equal(row.transfer_syntax_uid, acceptedSyntax(first.proxy, Number(row.context_id)));
      assert.equal(row.generation, '1');
    }
    assert.equal(first.proxy.logs.find((l) => l.msg === 'association negotiated')?.arm, '1MB', 'the arm in the log line');
    // Debug: one line per message; the summary carries the totals.
    const lines = first.proxy.logs.filter((l) => l.msg === 'message completed');
    assert.equal(lines.length, 4);
    assert.equal(lines[0]!.command, 'C-STORE-RQ');
    const closed = first.proxy.logs.find((l) => l.msg === 'association closed')!;
    assert.equal(closed.messages, 4);
    const sum = (c: string): number => first.rows.reduce((s, r) => s + Number(r[c]), 0);
    assert.ok(Math.abs((closed.scuIdleMs as number) - sum('scu_idle_ms')) < 0.01);
    assert.ok(Math.abs((closed.upstreamBlockedMs as number) - sum('upstream_blocked_ms')) < 0.01);
    assert.ok(Math.abs((closed.scpResponseMs as number) - sum('scp_response_ms')) < 0.01);
    assert.ok(Math.abs((closed.proxyBusyMs as number) - sum('proxy_busy_ms')) < 0.01);

    const second = await throughProxy(scp.port, file, ['--max-pdu', '16KB'], run('16KB'));
    assert.equal(second.rows.length, 8, 'appended');
    assert.deepEqual(
      second.rows.map((r) => r.max_pdu),
      [...Array(4).fill('1048576'), ...Array(4).fill('16384')],
    );
    assert.equal(
      fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l === MESSAGES_CSV_HEADER).length,
      1,
      'one header',
    );
    assert.ok(!second.proxy.logs.some((l) => l.msg === 'message completed'), 'no debug lines at info');
  });

  test('findscu: a C-FIND-RQ row with its pending responses counted', async (t) => {
    const scp = await startDimseScp({ findResults: 5 });
    t.after(() => scp.stop());
    const file = path.join(tmp, 'find.csv');
    const { rows } = await throughProxy(scp.port, file, [], async (port) => {
      const r = await findscu({ port, calledAet: 'DIMSESCP', aet: 'FINDSCU', keys: DEFAULT_FIND_KEYS });
      assert.equal(r.code, 0, r.stderr.slice(-2000));
    });
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.command, 'C-FIND-RQ');
    assert.equal(rows[0]!.pending_responses, '5');
    assert.equal(rows[0]!.status, '0000');
    assert.ok(num(rows[0]!, 'bytes') > 0, 'the query identifier');
    assert.ok(num(rows[0]!, 'response_first_byte_us') < num(rows[0]!, 'response_last_byte_us'));
  });

  test('getscu: the C-GET-RQ row, and a row per C-STORE sub-operation the SCP sent', async (t) => {
    const scp = await startDimseScp({ files: [small.path!, image.path!], respectRqMax: true });
    t.after(() => scp.stop());
    const file = path.join(tmp, 'get.csv');
    const outDir = await freshDir('get');
    const { rows, proxy } = await throughProxy(scp.port, file, [], async (port) => {
      const r = await getscu({ port, calledAet: 'DIMSESCP', aet: 'GETSCU', outDir, keys: ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${small.studyInstanceUid}`] });
      assert.equal(r.code, 0, r.stderr.slice(-2000));
      assert.deepEqual(parseGetSummary(r), { remaining: 0, completed: 2, failed: 0, warning: 0 });
    });
    const stores = rows.filter((r) => r.command === 'C-STORE-RQ');
    const gets = rows.filter((r) => r.command === 'C-GET-RQ');
    assert.equal(gets.length, 1);
    assert.equal(stores.length, 2);
    assert.deepEqual(stores.map((r) => r.sop_instance_uid).sort(), [small.sopInstanceUid, image.sopInstanceUid].sort());
    for (const s of stores) {
      assert.equal(s.status, '0000');
      assert.equal(s.requested_by, 'scp', 'a sub-operation is a request the SCP sent');
      assert.ok(num(s, 'request_first_byte_us') > num(gets[0]!, 'request_first_byte_us'), 'within the C-GET');
    }
    assert.equal(gets[0]!.requested_by, 'scu');
    assert.ok(num(gets[0]!, 'pending_responses') >= 1);
    assert.equal(gets[0]!.status, '0000');
    const closed = proxy.logs.find((l) => l.msg === 'association closed')!;
    assert.equal(closed.messages, 1);
    assert.equal((closed.scpRequests as { messages: number }).messages, 2);
  });
});

// Each test below constructs one delay and checks that it lands in its own column, at least most of it (a
// lower bound a loaded machine cannot break), and that each other column got less than half of what the
// constructed one holds. The other columns are not zero: they hold the peers' and the proxy's own latency,
// which a loaded machine stretches (the slow reader's SCP runs in this test process and, after its pause,
// reads the MiBs the kernel buffers held before it answers: 600 ms of scp_response_ms once, at load 11 on
// 2 cores, against a fixed bound of 300 ms). Half of the constructed delay still tells a delay counted in
// the wrong column from latency, and scales with it: a starved peer also lengthens the constructed column.
describe('where the time went: each constructed delay moves its own column', { timeout: 120_000 }, () => {
  test('an SCP that stops reading for 1 s mid-data set: upstream_blocked_ms, not scu_idle_ms', async (t) => {
    const scp = await ThrottledStoreScp.start({ pauseAfterBytes: MiB, pauseMs: 1000 });
    t.after(() => scp.close());
    const file = path.join(tmp, 'slow-reader.csv');
    const { rows } = await throughProxy(scp.port, file, [], async (port) => {
      const r = await storescu({ port, calledAet: 'ANY-SCP', aet: 'STORESCU', files: [big.path!] });
      assert.equal(r.code, 0, r.stderr.slice(-2000));
    });
    assert.equal(rows.length, 1);
    const row = rows[0]!;
    t.diagnostic(`slow reader: duration ${row.duration_ms} ms, scu_idle ${row.scu_idle_ms}, upstream_blocked ${row.upstream_blocked_ms}, scp_response ${row.scp_response_ms}`);
    assert.equal(num(row, 'bytes'), datasetBytes(big.path!).length);
    const blocked = num(row, 'upstream_blocked_ms');
    assert.ok(blocked >= 600, 'most of the pause shows as blocked');
    assert.ok(num(row, 'scu_idle_ms') < blocked / 2, 'the SCU was not slow (storescu reads a 16 MiB file: some idle is normal)');
    assert.ok(num(row, 'scp_response_ms') < blocked / 2, 'the SCP answered at once (after reading what the kernel held)');
  });

  test('an SCP that takes 800 ms to answer: scp_response_ms', async (t) => {
    const scp = await ThrottledStoreScp.start({ respondDelayMs: 800 });
    t.after(() => scp.close());
    const file = path.join(tmp, 'slow-answer.csv');
    const { rows } = await throughProxy(scp.port, file, [], async (port) => {
      const r = await storescu({ port, calledAet: 'ANY-SCP', aet: 'STORESCU', files: [small.path!] });
      assert.equal(r.code, 0, r.stderr.slice(-2000));
    });
    const row = rows[0]!;
    t.diagnostic(`slow answer: duration ${row.duration_ms} ms, scu_idle ${row.scu_idle_ms}, upstream_blocked ${row.upstream_blocked_ms}, scp_response ${row.scp_response_ms}`);
    const response = num(row, 'scp_response_ms');
    assert.ok(response >= 700);
    assert.ok(num(row, 'scu_idle_ms') < response / 2);
    assert.ok(num(row, 'upstream_blocked_ms') < response / 2);
    assert.ok(num(row, 'duration_ms') >= num(row, 'scp_response_ms'));
  });

  test('an SCU that sleeps 200 ms between data set PDUs: scu_idle_ms, not upstream_blocked_ms', async (t) => {
    const scp = await startStorescp({ outDir: await freshDir('slow-sender') });
    t.after(() => scp.stop());
    const file = path.join(tmp, 'slow-sender.csv');
    const dataset = datasetBytes(small.path!);
    let status: number | undefined;
    const { rows } = await throughProxy(scp.port, file, [], async (port) => {
      status = await slowStore({ port, calledAe: scp.aet, sopInstanceUid: small.sopInstanceUid, dataset, pieces: 6, sleepMs: 200 });
    });
    assert.equal(status, 0, 'storescp stored it');
    const row = rows[0]!;
    t.diagnostic(`slow sender: duration ${row.duration_ms} ms, scu_idle ${row.scu_idle_ms}, upstream_blocked ${row.upstream_blocked_ms}, scp_response ${row.scp_response_ms}`);
    assert.equal(num(row, 'bytes'), dataset.length);
    const idle = num(row, 'scu_idle_ms');
    assert.ok(idle >= 800, '5 sleeps of 200 ms');
    assert.ok(num(row, 'upstream_blocked_ms') < idle / 2);
    assert.ok(num(row, 'scp_response_ms') < idle / 2);
  });

  test("an SCU that stops 400 ms inside the first PDU header: the wait is the message's", async (t) => {
    const scp = await startStorescp({ outDir: await freshDir('split-header'), extraArgs: ['--ignore'] });
    t.after(() => scp.stop());
    const file = path.join(tmp, 'split-header.csv');
    const dataset = datasetBytes(small.path!);
    const { rows } = await throughProxy(scp.port, file, [], async (port) => {
      const status = await slowStore({ port, calledAe: scp.aet, sopInstanceUid: small.sopInstanceUid, dataset, pieces: 1, sleepMs: 0, headerSplitMs: 400 });
      assert.equal(status, 0);
    });
    const row = rows[0]!;
    t.diagnostic(`split header: duration ${row.duration_ms} ms, scu_idle ${row.scu_idle_ms}`);
    assert.ok(num(row, 'scu_idle_ms') >= 300, 'counted from the first byte, in the chunk before the header was complete');
    assert.ok(num(row, 'request_last_byte_us') - num(row, 'request_first_byte_us') >= 300_000);
  });
});

describe('command sets the proxy cannot decode', { timeout: 60_000 }, () => {
  test('forwarded unchanged, warned once, counted; the next message is still tracked', async (t) => {
    const scp = await FakeScp.listen();
    t.after(() => scp.close());
    const file = path.join(tmp, 'undecodable.csv');
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--messages-csv', file]);
    t.after(() => proxy.stop());
    const scu = await RawPeer.connect(proxy.port);
    scu.send(buildRq({ maxLength: 16384 }));
    const up = await scp.nextPeer();
    await up.waitForPdus(1);
    up.send(buildAc({ maxLength: 16384 }));
    await scu.waitForPdus(1);
    // Two command sets that are not group 0000 implicit VR LE, then a C-ECHO-RQ.
    const garbage = [Buffer.from('080018000200000041420000', 'hex'), Buffer.from('0000000104000000', 'hex')];
    const sent = [...garbage, C_ECHO_RQ].map((fragment) => encodePData([{ contextId: 1, command: true, last: true, fragment }]));
    for (const pdu of sent) scu.send(pdu);
    const seen = await up.waitForPdus(4);
    assert.deepEqual(seen.slice(1), sent, 'forwarded byte for byte');
    up.send(encodePData([{ contextId: 1, command: true, last: true, fragment: C_ECHO_RSP }]));
    await scu.waitForPdus(2);
    scu.send(encodeReleaseRq());
    await up.waitForPdus(5);
    up.send(encodeReleaseRp());
    await scu.waitForPdus(3);
    scu.socket.end();
    up.socket.end();
    const closed = await proxy.waitForLog((l) => l.msg === 'association closed');
    assert.equal(closed.outcome, 'released');
    assert.equal(closed.undecodableCommands, 2);
    assert.equal(closed.messages, 1);
    const warned = proxy.logs.filter((l) => l.msg === 'DIMSE command set not decodable: message not tracked');
    assert.equal(warned.length, 1, 'one warn line, not one per message');
    assert.equal(warned[0]!.from, 'SCU');
    assert.equal(await proxy.stop(), 0);
    const rows = await readMessages(file);
    assert.deepEqual(
      rows.map((r) => [r.command, r.status]),
      [['C-ECHO-RQ', '0000']],
    );
  });
});

describe('an association cut short', { timeout: 60_000 }, () => {
  test('shutdown mid-data set: the row is written with the bytes so far, no last byte, no status', async (t) => {
    const scp = await startStorescp({ outDir: await freshDir('cut'), extraArgs: ['--ignore'] });
    t.after(() => scp.stop());
    const file = path.join(tmp, 'cut.csv');
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--messages-csv', file, '--close-timeout', '3000']);
    t.after(() => proxy.stop());
    const scu = await RawPeer.connect(proxy.port);
    t.after(() => scu.destroy());
    scu.send(buildRq({ called: scp.aet, maxLength: 16384, contexts: [{ id: 1, abstractSyntax: SECONDARY_CAPTURE, transferSyntaxes: [EXPLICIT_LE] }] }));
    const [ac] = await scu.waitForPdus(1);
    assert.equal(ac![0], 0x02, 'accepted');
    const command = commandSet([
      [0x0002, SECONDARY_CAPTURE],
      [0x0100, 0x0001],
      [0x0110, 5],
      [0x0700, 0],
      [0x0800, 0],
      [0x1000, small.sopInstanceUid],
    ]);
    scu.send(encodePData([{ contextId: 1, command: true, last: true, fragment: command }]));
    scu.send(encodePData([{ contextId: 1, command: false, last: false, fragment: datasetBytes(small.path!).subarray(0, 10_000) }]));
    await proxy.waitForLog((l) => l.msg === 'association negotiated');
    await readByPeer(scu.socket); // the proxy has read (and counted) the data set bytes
    // SIGTERM drains (the SCU never finishes), the second SIGTERM 200 ms later aborts what is in flight.
    const stopped = proxy.stop(10_000, 200);
    const [, abort] = await scu.waitForPdus(2);
    assert.equal(abort![0], 0x07, 'the SCU gets an A-ABORT');
    scu.destroy();
    assert.equal(await stopped, 1, 'exit status 1: an association in flight was cut');
    const rows = await readMessages(file);
    assert.equal(rows.length, 1);
    const row = rows[0]!;
    assert.deepEqual(
      [row.command, row.message_id, row.bytes, row.request_last_byte_us, row.response_first_byte_us, row.duration_ms, row.status],
      ['C-STORE-RQ', '5', '10000', '', '', '', ''],
    );
    const closed = proxy.logs.find((l) => l.msg === 'association closed')!;
    assert.equal(closed.outcome, 'aborted');
    assert.equal(closed.messages, 1);
  });
});
