// --pcap through the real proxy process: DCMTK storescu -> proxy (--max-pdu 1MB) -> storescp (16 KB), the
// capture read back by tshark (Wireshark's TCP and DICOM dissectors are the oracle). Per leg, tshark must
// decode as many PDUs of each type as the chunk CSV says went that way; the A-ASSOCIATE-AC must show the
// rewritten Maximum Length on the SCU leg and the SCP's own on the SCP leg; no malformed packet, no
// warning (lost or out-of-order segment), no bad IPv4 checksum (TCP checksums are 0). Then --pcap-payload headers, rotation, and a
// capture file that cannot be created.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { readCsvRows } from '../helpers/csv.js';
import type { CsvRow } from '../helpers/csv.js';
import { dcmtkTls, makeTestPki } from '../helpers/certs.js';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import type { Storescp } from '../helpers/dcmtk.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import { killAll, runToExit } from '../helpers/procs.js';
import { BIN, ProxyProcess, REPO_ROOT, stopAllProxies } from '../helpers/proxy.js';
import { MAX_PENDING_BYTES, PcapRecorder } from '../../src/capture/recorder.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { associate } from '../helpers/assoc.js';
import { FakeScp, withTimeout } from '../helpers/raw.js';
import { readByPeer } from '../helpers/tcp-queues.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SCP_MAX_PDU = 16384;
const PROXY_MAX_PDU = MiB;
/** Wireshark's expert severities (epan/proto.h): warnings (lost, out-of-order segments) and errors (malformed). */
const PI_WARN = 0x00600000;
/**
 * What must never be in the capture's TCP/IP. IPv4 header checksums are verified (Wireshark does not by
 * default); TCP checksums are left 0 by design (not summed: see src/capture/encoding/tcp-ip.ts), and must be.
 */
const TCP_PROBLEMS = [
  'tcp.analysis.lost_segment',
  'tcp.analysis.ack_lost_segment',
  'tcp.analysis.out_of_order',
  'tcp.analysis.retransmission',
  'tcp.analysis.duplicate_ack',
  'tcp.checksum != 0',
  'ip.checksum.status == 0',
].join(' || ');
/** ... nor anywhere: no malformed packet, no warning or error from any dissector. */
const PROBLEMS = `${TCP_PROBLEMS} || _ws.malformed || _ws.expert.severity >= ${PI_WARN}`;
const CHECKSUMS = ['-o', 'ip.check_checksum:TRUE'];

let tmp = '';
let image: TestDicomInfo;
let scp: Storescp;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'pcap-'));
  image = await writeTestDicom(path.join(tmp, 'image.dcm'), { pixelBytes: 1.5 * MiB, seed: 61 });
  await mkdir(path.join(tmp, 'received'));
  scp = await startStorescp({ outDir: path.join(tmp, 'received'), maxPdu: SCP_MAX_PDU, extraArgs: ['--ignore'] });
});

after(async () => {
  await stopAllProxies();
  await killAll();
  if (tmp && !process.env.KEEP_TMP) await rm(tmp, { recursive: true, force: true });
});

interface Capture {
  dir: string;
  scpPort: number;
  file: string;
  rows: CsvRow[];
  proxy: ProxyProcess;
}

/**
 * One storescu run (the image twice, 128 KB PDUs) through a proxy with --csv and --pcap; the proxy stopped.
 * `to`: another SCP than the 16 KB storescp; `scuArgs`: more storescu arguments.
 */
async function capture(name: string, args: string[] = [], to: Storescp = scp, scuArgs: string[] = []): Promise<Capture> {
  const dir = path.join(tmp, name);
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'chunks.pcapng');
  const csv = path.join(dir, 'chunks.csv');
  const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${to.port}`, '--max-pdu', String(PROXY_MAX_PDU), '--csv', csv, '--pcap', file, ...args]);
  try {
    const r = await storescu({ port: proxy.port, calledAet: to.aet, files: [image.path!, image.path!], maxSendPdu: 131072, debug: false, extraArgs: scuArgs });
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    await proxy.waitForLog((l) => l.msg === 'association closed');
  } finally {
    assert.equal(await proxy.stop(), 0, proxy.stderr);
  }
  return { dir, scpPort: to.port, file, rows: await readCsvRows(csv), proxy };
}

/** tshark with DICOM decoded on both legs' server ports (the dissector binds to 104 by itself). */
async function tshark(c: Capture, file: string, args: string[], decodeAs = true): Promise<string> {
  const ports = decodeAs ? ['-d', `tcp.port==${c.proxy.port},dicom`, '-d', `tcp.port==${c.scpPort},dicom`] : [];
  const { stdout } = await run('tshark', ['-r', file, ...ports, ...args], { maxBuffer: 64 * MiB });
  return stdout;
}

/** tshark -T fields: one array of values per frame (a frame holding several PDUs gives "0x04,0x04"). */
async function fields(c: Capture, file: string, filter: string, names: string[], decodeAs = true): Promise<string[][]> {
  const out = await tshark(c, file, ['-Y', filter, '-T', 'fields', '-E', 'separator=/t', ...names.flatMap((n) => ['-e', n])], decodeAs);
  return out
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => l.split('\t'));
}

type Leg = 'scu' | 'scp';
type Count = Map<string, number>;
const key = (leg: Leg, direction: string, type: number): string => `${leg} ${direction} 0x${type.toString(16).padStart(2, '0')}`;
const TYPES: Record<string, number> = { 'A-ASSOCIATE-RQ': 1, 'A-ASSOCIATE-AC': 2, 'A-ASSOCIATE-RJ': 3, 'P-DATA-TF': 4, 'A-RELEASE-RQ': 5, 'A-RELEASE-RP': 6, 'A-ABORT': 7 };
const add = (m: Count, k: string, n: number): void => void m.set(k, (m.get(k) ?? 0) + n);

/**
 * What the chunk CSV says each leg carried: a row is a PDU received (SCU leg for to_scp rows, SCP leg for
 * to_scu rows); out_pdus is how many PDUs it became toward its receiver (the other leg).
 */
function expectedCounts(rows: CsvRow[]): Count {
  const m: Count = new Map();
  for (const r of rows) {
    const type = TYPES[r.type!]!;
    const [received, sent]: [Leg, Leg] = r.direction === 'to_scp' ? ['scu', 'scp'] : ['scp', 'scu'];
    add(m, key(received, r.direction!, type), 1);
    if (Number(r.out_pdus) > 0) add(m, key(sent, r.direction!, type), Number(r.out_pdus));
  }
  return m;
}

/** What tshark decodes, per leg (interface name), direction (by the server port) and PDU type. */
async function decodedCounts(c: Capture, file = c.file, decodeAs = true): Promise<Count> {
  const m: Count = new Map();
  for (const [leg, dstport, types] of await fields(c, file, 'dicom.pdu.type', ['frame.interface_name', 'tcp.dstport', 'dicom.pdu.type'], decodeAs)) {
    const toServer = Number(dstport) === (leg === 'scu' ? c.proxy.port : c.scpPort);
    for (const t of types!.split(',')) add(m, key(leg as Leg, toServer ? 'to_scp' : 'to_scu', Number(t)), 1);
  }
  return m;
}

/** 16-byte windows spread over the image's data set (pseudo-random pixel data: each occurs once). */
function datasetSamples(): Buffer[] {
  const dataset = datasetBytes(image.path!);
  const out: Buffer[] = [];
  for (let at = 1024; at + 16 <= dataset.length; at += Math.floor(dataset.length / 97)) out.push(dataset.subarray(at, at + 16));
  return out;
}

const sorted = (m: Count): Array<[string, number]> => [...m].sort(([a], [b]) => a.localeCompare(b));

// A bound per test, not one for the suite: the suite's 13 tests took 50 s at load 7 and 122 s at load 13 (2 shared
// cores, nice 10), past the 120 s the suite had, while its slowest test took 41 s. Each bound is a hang guard.
const EACH = { timeout: 120_000 };

describe('--pcap: a Wireshark capture of both legs', () => {
  let full: Capture;

  before(async () => {
    full = await capture('full');
  });

  test('per leg, tshark decodes as many PDUs of each type as the chunk CSV has', EACH, async () => {
    const expected = expectedCounts(full.rows);
    assert.ok((expected.get(key('scp', 'to_scp', 4)) ?? 0) > (expected.get(key('scu', 'to_scp', 4)) ?? 0), 're-fragmented toward the SCP');
    assert.deepEqual(sorted(await decodedCounts(full)), sorted(expected));
  });

  test('plain `tshark -r FILE -Y dicom` decodes the same: the heuristic dissector finds the A-ASSOCIATE-RQ', EACH, async () => {
    assert.deepEqual(sorted(await decodedCounts(full, full.file, false)), sorted(expectedCounts(full.rows)));
  });

  test("the A-ASSOCIATE-AC: rewritten Maximum Length on the SCU leg, the SCP's own on the SCP leg", EACH, async () => {
    const acs = await fields(full, full.file, 'dicom.pdu.type == 0x02', ['frame.interface_name', 'dicom.max_pdu_len']);
    assert.deepEqual(acs.sort(), [
      ['scp', String(SCP_MAX_PDU)],
      ['scu', String(PROXY_MAX_PDU)],
    ]);
  });

  test('no malformed packet, no lost or out-of-order segment, no bad IPv4 checksum, TCP checksums 0; segments within 65,535 bytes', EACH, async () => {
    assert.equal(await tshark(full, full.file, [...CHECKSUMS, '-Y', PROBLEMS]), '');
    const lengths = (await fields(full, full.file, 'tcp', ['ip.len'])).map(([l]) => Number(l));
    assert.ok(lengths.length > 100 && Math.max(...lengths) <= 65535, `largest IP datagram ${Math.max(...lengths)}`);
    // Each connection opens with SYN, SYN-ACK, ACK and closes with a FIN each way.
    const flags = await fields(full, full.file, 'tcp.flags.syn == 1 || tcp.flags.fin == 1', ['frame.interface_name', 'tcp.flags.str']);
    for (const leg of ['scu', 'scp']) assert.equal(flags.filter(([l]) => l === leg).length, 4, `${leg}: 2 SYNs, 2 FINs`);
  });

  test('the problem filter does catch a damaged capture (one data packet cut out)', EACH, async () => {
    const damaged = path.join(full.dir, 'damaged.pcapng');
    const bytes = fs.readFileSync(full.file);
    // The first Enhanced Packet Block (type 6) past the middle that carries data (more than the 40 header bytes).
    let at = 0;
    while (at < bytes.length && (at < bytes.length / 2 || bytes.readUInt32LE(at) !== 6 || bytes.readUInt32LE(at + 20) <= 40)) at += bytes.readUInt32LE(at + 4);
    assert.ok(at < bytes.length, 'a data packet past the middle');
    fs.writeFileSync(damaged, Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + bytes.readUInt32LE(at + 4))]));
    assert.notEqual(await tshark(full, damaged, [...CHECKSUMS, '-Y', PROBLEMS]), '');
  });

  test('the file is private (0600) and holds the data set as sent', EACH, () => {
    assert.equal(fs.statSync(full.file).mode & 0o777, 0o600);
    const capture = fs.readFileSync(full.file);
    assert.ok(capture.includes(Buffer.from(image.patientName)), 'patient name');
    const samples = datasetSamples();
    const found = samples.filter((s) => capture.includes(s)).length;
    // A sample can straddle a fragment or segment boundary; nearly all lie within one.
    assert.ok(found >= samples.length * 0.9, `${found} of ${samples.length} data-set samples`);
  });

  test('--pcap-payload headers: no data-set byte survives, PDU lengths unchanged, commands kept, tshark still decodes', EACH, async () => {
    const headers = await capture('headers', ['--pcap-payload', 'headers']);
    assert.deepEqual(sorted(await decodedCounts(headers)), sorted(expectedCounts(headers.rows)));
    assert.equal(await tshark(headers, headers.file, [...CHECKSUMS, '-Y', TCP_PROBLEMS]), '');
    // Wireshark reads the zeroed data set as empty elements; the last one is cut short, which it reports at the
    // next PDV ("Early termination of tag"). That is the only complaint allowed.
    const complaints = await fields(headers, headers.file, `_ws.malformed || _ws.expert.severity >= ${PI_WARN}`, ['_ws.expert.message']);
    for (const [message] of complaints) assert.match(message!, /^Early termination of tag\. Data is missing$/);
    const bytes = fs.readFileSync(headers.file);
    assert.ok(!bytes.includes(Buffer.from(image.patientName)), 'no patient name');
    for (const sample of datasetSamples()) assert.ok(!bytes.includes(sample), `data-set bytes ${sample.toString('hex')}`);
    // The C-STORE-RQ command set is whole: its Affected SOP Instance UID is there.
    assert.ok(bytes.includes(Buffer.from(image.sopInstanceUid)), 'the command set');
    // PDU lengths as received, SCU leg: the chunk CSV's length column.
    const lengths = (await fields(headers, headers.file, 'dicom.pdu.type && frame.interface_name == "scu"', ['tcp.dstport', 'dicom.pdu.len']))
      .filter(([port]) => Number(port) === headers.proxy.port)
      .flatMap(([, l]) => l!.split(',').map(Number));
    assert.deepEqual(
      lengths,
      headers.rows.filter((r) => r.direction === 'to_scp').map((r) => Number(r.length)),
    );
  });

  test('--pcap-max-size rotates to FILE.1, FILE.2; --pcap-max-files bounds how many are kept; each file reads alone', EACH, async () => {
    const rotated = await capture('rotated', ['--pcap-max-size', '1MB', '--pcap-max-files', '3']);
    const names = fs
      .readdirSync(rotated.dir)
      .filter((n) => n.startsWith('chunks.pcapng'))
      .sort();
    assert.deepEqual(names, ['chunks.pcapng', 'chunks.pcapng.1', 'chunks.pcapng.2']);
    for (const name of names) {
      const file = path.join(rotated.dir, name);
      assert.ok(fs.statSync(file).size <= MiB, `${name}: ${fs.statSync(file).size} bytes`);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600, name);
      const frames = await fields(rotated, file, 'frame', ['frame.interface_name']);
      assert.ok(frames.length > 10, `${name} reads: ${frames.length} frames`);
    }
    // The newest file holds the end: the A-RELEASE-RP.
    assert.equal((await fields(rotated, rotated.file, 'dicom.pdu.type == 0x06', ['frame.interface_name'])).length, 2);
  });

  test('TLS on both legs: the capture holds each leg decrypted, decoded like plain TCP', EACH, async () => {
    const pki = makeTestPki();
    const outDir = path.join(tmp, 'tls-received');
    await mkdir(outDir);
    const tlsScp = await startStorescp({ outDir, maxPdu: SCP_MAX_PDU, extraArgs: ['--ignore', ...dcmtkTls(pki.scp, pki.ca), '-ic'] }); // -ic: no client certificate asked
    try {
      const tls = await capture(
        'tls',
        ['--tls-cert', pki.proxy.cert, '--tls-key', pki.proxy.key, '--upstream-tls', '--upstream-tls-ca', pki.ca],
        tlsScp,
        dcmtkTls(pki.modality, pki.ca),
      );
      assert.deepEqual(sorted(await decodedCounts(tls)), sorted(expectedCounts(tls.rows)));
      assert.equal(await tshark(tls, tls.file, [...CHECKSUMS, '-Y', PROBLEMS]), '');
    } finally {
      await tlsScp.stop();
      fs.rmSync(pki.dir, { recursive: true, force: true });
    }
  });

  test('a capture that could not keep up (every slab being written): a valid pcapng, the hole shown, nothing malformed', EACH, async () => {
    const file = path.join(tmp, 'overflow.pcapng');
    const recorder = await PcapRecorder.open(file);
    const ends = { peerAddress: '127.0.0.1', peerPort: 40001, proxyAddress: '127.0.0.1', proxyPort: 11112 };
    const c = recorder.connection('scu', ends, performance.now())!;
    // Without a turn of the event loop no write completes: past the slabs, bytes are dropped.
    const chunk = Buffer.alloc(MiB, 0x5a);
    const chunks = MAX_PENDING_BYTES / MiB + 8;
    for (let i = 0; i < chunks; i++) c.fromPeer(chunk, performance.now());
    c.toPeer(Buffer.alloc(100, 1), performance.now()); // the other way, after the hole
    c.peerFin(performance.now());
    c.proxyFin(performance.now());
    await recorder.close();
    assert.ok(recorder.dropped >= 7 * MiB, `dropped ${recorder.dropped}`);
    const tsharkRun = async (filter: string): Promise<string> => (await run('tshark', ['-r', file, '-Y', filter], { maxBuffer: 64 * MiB })).stdout;
    assert.equal(await tsharkRun(`_ws.malformed || _ws.expert.severity > ${PI_WARN}`), '', 'no malformed packet, no error');
    assert.notEqual(await tsharkRun('tcp.analysis.lost_segment'), '', 'the hole is shown as a segment not captured');
    assert.equal((await tsharkRun('tcp.flags.fin == 1')).trim().split('\n').length, 2, 'both FINs, after the hole');
  });

  test('SIGTERM with a connection still open: its end (FIN or RST from the proxy) is in the file', EACH, async () => {
    const dir = path.join(tmp, 'sigterm');
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, 'open.pcapng');
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--pcap', file]);
    const socket = net.connect(proxy.port, '127.0.0.1');
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    socket.write(Buffer.from([0x07])); // the first byte of an A-ABORT, never finished
    // Read by the proxy before the signal (a connection that sent nothing would be closed unread by the drain).
    await readByPeer(socket);
    const code = await proxy.stop(10_000, 300);
    socket.destroy();
    assert.notEqual(code, null, 'the proxy exited');
    const ends = (await run('tshark', ['-r', file, '-Y', `tcp.srcport == ${proxy.port} && (tcp.flags.fin == 1 || tcp.flags.reset == 1)`])).stdout;
    assert.notEqual(ends, '', `the proxy's FIN or RST toward the SCU is in the capture:\n${(await run('tshark', ['-r', file])).stdout}`);
    assert.equal((await run('tshark', ['-r', file, '-Y', 'tcp.len == 1'])).stdout.trim().split('\n').length, 1, 'the byte sent');
  });

  test("an abort with a PDU half forwarded: the proxy's RST toward the SCU and its FIN toward the SCP are in the file", EACH, async () => {
    const dir = path.join(tmp, 'reset');
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, 'reset.pcapng');
    const fake = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${fake.port}`, '--pcap', file]);
    try {
      const { scu, up } = await associate(proxy, fake);
      const before = scu.receivedLength;
      // The SCP starts an 8000-byte data set fragment and sends 1000 bytes of it: the proxy forwards them at
      // once, so the PDU toward the SCU is half written and no A-ABORT can follow it there.
      const pdu = encodePData([{ contextId: 1, command: false, last: true, fragment: Buffer.alloc(8000, 0x44) }]);
      up.send(pdu.subarray(0, 1012));
      await scu.waitForBytes(before + 1012);
      // Garbage from the SCU (an unknown PDU type): the proxy aborts the association.
      scu.send(Buffer.concat([Buffer.from([0x0f, 0, 0, 0, 0, 4]), Buffer.alloc(4)]));
      await withTimeout(up.ended, 5000, 'the proxy half-closing toward the SCP after its A-ABORT');
      up.socket.end();
      await proxy.waitForLog((l) => l.msg === 'association closed' && l.outcome === 'aborted', 5000);
      scu.socket.destroy();
    } finally {
      await proxy.stop();
      await fake.close();
    }
    const shown = async (filter: string): Promise<string> => (await run('tshark', ['-r', file, '-Y', filter])).stdout.trim();
    assert.notEqual(await shown(`tcp.srcport == ${proxy.port} && tcp.flags.reset == 1`), '', `the proxy's RST toward the SCU:\n${await shown('tcp')}`);
    assert.notEqual(await shown(`tcp.dstport == ${fake.port} && tcp.flags.fin == 1`), '', `the proxy's FIN toward the SCP:\n${await shown('tcp')}`);
    assert.equal((await shown(`tcp.dstport == ${fake.port} && dicom.pdu.type == 7`)).split('\n').length, 1, 'the A-ABORT toward the SCP');
  });

  test('a capture file that cannot be created: one line naming --pcap, exit 2', EACH, async () => {
    const notADir = path.join(tmp, 'a-file');
    fs.writeFileSync(notADir, '');
    for (const file of [path.join(tmp, 'no-such-dir', 'x.pcapng'), path.join(notADir, 'x.pcapng')]) {
      const r = await runToExit(process.execPath, [BIN, '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:104', '--pcap', file], { timeoutMs: 10_000, cwd: REPO_ROOT });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^dicom-pdu-proxy: --pcap ${file.replace(/[.]/g, '\\.')}: (ENOENT|ENOTDIR) \\(cannot create the capture file\\)\\n$`));
    }
  });
});
