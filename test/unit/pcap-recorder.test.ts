// The capture recorder's files: what it writes parses back as pcapng (section header, the two interfaces,
// packet blocks in order), rotation keeps every file within --pcap-max-size and at most --pcap-max-files of
// them, files are private, devices are left alone, and a backlog past the memory bound drops bytes (counted,
// warned) while the sequence numbers stay right.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, describe, test } from 'node:test';
import type { Logger } from 'pino';
import { MAX_PENDING_BYTES, PcapRecorder } from '../../src/capture/recorder.js';
import { mountSmallFs, skipWithReason } from '../helpers/small-fs.js';
import type { ConnectionEvents } from '../../src/events/events.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-pcap-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const MiB = 1024 * 1024;
const ENDS = { peerAddress: '::ffff:127.0.0.1', peerPort: 40000, proxyAddress: '::ffff:127.0.0.2', proxyPort: 11112 };

interface Packet {
  iface: number;
  timeUs: number;
  seq: number;
  flags: number;
  srcPort: number;
  payload: number;
}

/** The blocks of a pcapng file: interface names, then the packets (IPv4 + TCP) with their TCP fields. */
function readPcapng(file: string): { interfaces: string[]; packets: Packet[] } {
  const b = fs.readFileSync(file);
  const interfaces: string[] = [];
  const packets: Packet[] = [];
  assert.equal(b.readUInt32LE(0), 0x0a0d0d0a, 'starts with a section header');
  for (let at = 0; at < b.length;) {
    const type = b.readUInt32LE(at);
    const length = b.readUInt32LE(at + 4);
    assert.equal(b.readUInt32LE(at + length - 4), length, `block at ${at} ends with its length`);
    if (type === 1) {
      // if_name is the first option: code 2, length, value.
      assert.equal(b.readUInt16LE(at + 16), 2);
      interfaces.push(b.toString('utf8', at + 20, at + 20 + b.readUInt16LE(at + 18)));
    } else if (type === 6) {
      const p = at + 28;
      const ipLength = b.readUInt16BE(p + 2);
      const tcp = p + 20;
      const dataOffset = (b[tcp + 12]! >> 4) * 4;
      packets.push({
        iface: b.readUInt32LE(at + 8),
        timeUs: b.readUInt32LE(at + 12) * 2 ** 32 + b.readUInt32LE(at + 16),
        seq: b.readUInt32BE(tcp + 4),
        flags: b[tcp + 13]!,
        srcPort: b.readUInt16BE(tcp),
        payload: ipLength - 20 - dataOffset,
      });
    }
    at += length;
  }
  return { interfaces, packets };
}

function logger(): { log: Logger; warnings: Array<Record<string, unknown>> } {
  const warnings: Array<Record<string, unknown>> = [];
  const log = { warn: (fields: Record<string, unknown>) => warnings.push(fields), error: () => undefined } as unknown as Logger;
  return { log, warnings };
}

/** Feed one SCU-leg connection: `chunks` chunks of `size` bytes from the peer, then FINs both ways. */
async function feed(recorder: PcapRecorder, chunks: number, size: number, yieldEvery = 8): Promise<ConnectionEvents> {
  const c = recorder.connection('scu', ENDS, performance.now())!;
  const chunk = Buffer.alloc(size, 0x5a);
  for (let i = 0; i < chunks; i++) {
    c.fromPeer(chunk, performance.now());
    if (yieldEvery > 0 && i % yieldEvery === yieldEvery - 1) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  c.peerFin(performance.now());
  c.proxyFin(performance.now());
  c.closed(performance.now());
  return c;
}

describe('PcapRecorder files', () => {
  test('one file: section header, interfaces scu and scp, the handshake, data in order, FINs; mode 0600', async () => {
    const file = path.join(dir, 'one.pcapng');
    fs.writeFileSync(file, 'old content');
    fs.chmodSync(file, 0o644);
    const recorder = await PcapRecorder.open(file);
    await feed(recorder, 20, 100_000);
    await recorder.close();
    assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'an existing file is made private');
    const { interfaces, packets } = readPcapng(file);
    assert.deepEqual(interfaces, ['scu', 'scp']);
    assert.ok(packets.every((p) => p.iface === 0));
    assert.deepEqual(
      packets.slice(0, 3).map((p) => p.flags),
      [0x02, 0x12, 0x10],
    );
    const data = packets.filter((p) => p.payload > 0);
    assert.equal(
      data.reduce((n, p) => n + p.payload, 0),
      20 * 100_000,
    );
    for (let i = 1; i < data.length; i++) assert.equal(data[i]!.seq, (data[i - 1]!.seq + data[i - 1]!.payload) >>> 0);
    assert.ok(
      packets.every((p, i) => i === 0 || p.timeUs >= packets[i - 1]!.timeUs),
      'timestamps never go back',
    );
    assert.equal(packets.filter((p) => p.flags & 0x01).length, 2, 'a FIN each way');
  });

  test('rotation: every file within the size, at most N files, each a whole pcapng file', async () => {
    const file = path.join(dir, 'rot.pcapng');
    const recorder = await PcapRecorder.open(file, { maxSize: MiB, maxFiles: 3 });
    await feed(recorder, 100, 40_000);
    await recorder.close();
    const names = fs
      .readdirSync(dir)
      .filter((n) => n.startsWith('rot.pcapng'))
      .sort();
    assert.deepEqual(names, ['rot.pcapng', 'rot.pcapng.1', 'rot.pcapng.2']);
    let last = -1;
    for (const name of ['rot.pcapng.2', 'rot.pcapng.1', 'rot.pcapng']) {
      const f = path.join(dir, name);
      assert.ok(fs.statSync(f).size <= MiB, `${name}: ${fs.statSync(f).size}`);
      assert.equal(fs.statSync(f).mode & 0o777, 0o600);
      const { interfaces, packets } = readPcapng(f);
      assert.deepEqual(interfaces, ['scu', 'scp']);
      // Oldest to newest: the sequence numbers carry on from file to file.
      const first = packets.find((p) => p.payload > 0)!;
      if (last >= 0) assert.equal(first.seq, last);
      const data = packets.filter((p) => p.payload > 0);
      last = (data[data.length - 1]!.seq + data[data.length - 1]!.payload) >>> 0;
    }
  });

  test('a device is written to but neither made private nor rotated (--pcap /dev/null)', async () => {
    const before = fs.statSync('/dev/null').mode;
    const recorder = await PcapRecorder.open('/dev/null', { maxSize: MiB, maxFiles: 2 });
    await feed(recorder, 40, 40_000);
    await recorder.close();
    assert.equal(fs.statSync('/dev/null').mode, before);
    assert.ok(!fs.existsSync('/dev/null.1'));
  });

  test('a backlog past the memory bound drops bytes, warns once, counts them; sequence numbers stay right', async () => {
    const file = path.join(dir, 'drop.pcapng');
    const { log, warnings } = logger();
    const recorder = await PcapRecorder.open(file, { log });
    const size = 1 * MiB;
    const chunks = Math.ceil(MAX_PENDING_BYTES / size) + 8;
    await feed(recorder, chunks, size, 0); // never yields: nothing is encoded until the end
    await recorder.close();
    assert.equal(warnings.length, 2, JSON.stringify(warnings));
    const dropped = warnings[1]!.droppedBytes as number;
    assert.ok(dropped >= 7 * size && chunks * size - dropped <= MAX_PENDING_BYTES + size, `dropped ${dropped}`);
    const data = readPcapng(file).packets.filter((p) => p.payload > 0);
    assert.equal(
      data.reduce((n, p) => n + p.payload, 0),
      chunks * size - dropped,
    );
    const fin = readPcapng(file).packets.find((p) => p.flags & 0x01 && p.srcPort === ENDS.peerPort)!;
    assert.equal(fin.seq, (data[0]!.seq + chunks * size) >>> 0, 'the FIN comes after every byte, captured or not');
  });
});

describe('PcapRecorder on a disk that fills and frees again (a small tmpfs)', () => {
  test('writes that fail are retried: capturing resumes when space returns; every file whole; rotation goes on', async (t) => {
    const fsys = mountSmallFs(8 * MiB);
    if (typeof fsys === 'string') return skipWithReason(t, fsys);
    t.after(() => fsys.unmount());
    const errors: Array<Record<string, unknown>> = [];
    const { log, warnings } = logger();
    (log as unknown as { error: (f: Record<string, unknown>) => void }).error = (f) => void errors.push(f);
    const file = path.join(fsys.dir, 'cap.pcapng');
    const recorder = await PcapRecorder.open(file, { log, maxSize: 2 * MiB, maxFiles: 2 });
    const size = 20_000;
    await feed(recorder, 20, size); // 400 kB with room
    await new Promise((r) => setTimeout(r, 300));
    fsys.fill();
    await feed(recorder, 20, size); // the disk is full: written short, then refused
    await new Promise((r) => setTimeout(r, 300));
    fsys.free();
    await new Promise((r) => setTimeout(r, 1500)); // a retry finds room again
    await feed(recorder, 200, size); // 4 MB more: rotations
    await recorder.close();
    const files = fs.readdirSync(fsys.dir).filter((f) => f.startsWith('cap.pcapng'));
    assert.deepEqual(files.sort(), ['cap.pcapng', 'cap.pcapng.1']);
    let captured = 0;
    for (const f of files) {
      const { interfaces, packets } = readPcapng(path.join(fsys.dir, f)); // throws on a broken block
      assert.deepEqual(interfaces, ['scu', 'scp']);
      for (const p of packets) captured += p.payload;
    }
    const dropped = recorder.dropped;
    // What rotated out was deleted: the files hold at most what was fed and not dropped.
    assert.ok(errors.length === 1 && errors[0]!.err === 'ENOSPC', `one error line for the outage: ${JSON.stringify(errors)}`);
    assert.ok(
      warnings.some((w) => w.droppedBytesInOutage !== undefined),
      `a line when writing resumes: ${JSON.stringify(warnings)}`,
    );
    assert.ok(captured > 0 && captured <= 240 * size - dropped, `captured ${captured}, dropped ${dropped}`);
  });

  test('nothing rotated, the disk full then freed: captured + dropped = fed, exactly, and the capture resumes', async (t) => {
    const fsys = mountSmallFs(4 * MiB);
    if (typeof fsys === 'string') return skipWithReason(t, fsys);
    t.after(() => fsys.unmount());
    const { log } = logger();
    const file = path.join(fsys.dir, 'cap.pcapng');
    const recorder = await PcapRecorder.open(file, { log });
    const size = 10_000;
    await feed(recorder, 20, size);
    await new Promise((r) => setTimeout(r, 300));
    fsys.fill();
    await feed(recorder, 20, size);
    await new Promise((r) => setTimeout(r, 300));
    fsys.free();
    await new Promise((r) => setTimeout(r, 1500));
    await feed(recorder, 20, size);
    await recorder.close();
    const { packets } = readPcapng(file);
    const captured = packets.reduce((n, p) => n + p.payload, 0);
    assert.equal(captured + recorder.dropped, 60 * size, `captured ${captured} + dropped ${recorder.dropped}`);
    assert.ok(captured >= 40 * size, `the capture resumed after the outage (captured ${captured})`);
    // The sequence numbers run on over what was dropped: each connection's data packets in order.
    const last = packets.filter((p) => p.payload > 0).at(-1)!;
    assert.ok(last.payload > 0);
  });

  test('the disk still full at close: the file is cut back to its last whole block; captured + dropped = fed, exactly', async (t) => {
    const fsys = mountSmallFs(2 * MiB);
    if (typeof fsys === 'string') return skipWithReason(t, fsys);
    t.after(() => fsys.unmount());
    const { log, warnings } = logger();
    const file = path.join(fsys.dir, 'cap.pcapng');
    const recorder = await PcapRecorder.open(file, { log });
    const size = 10_000;
    await feed(recorder, 20, size);
    await new Promise((r) => setTimeout(r, 300));
    fsys.fill();
    await feed(recorder, 30, size);
    await recorder.close(); // gives up after its wait
    const { packets } = readPcapng(file);
    const captured = packets.reduce((n, p) => n + p.payload, 0);
    assert.ok(captured >= 20 * size, `what was written before the disk filled stays (${captured})`);
    assert.equal(captured + recorder.dropped, 50 * size, `captured ${captured} + dropped ${recorder.dropped}`);
    assert.equal(warnings.at(-1)!.droppedBytes, recorder.dropped);
  });
});
