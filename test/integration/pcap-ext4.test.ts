// --pcap written with O_DIRECT on a real block-device file system that fills and frees again: a small ext4
// in a file, mounted through a loop device (test/helpers/small-fs.ts). tmpfs takes O_DIRECT only since Linux
// 6.6, and writes through it never reach a block device; here the capture's aligned direct writes meet a
// real allocator: ENOSPC, writes cut short, space coming back.
//
// DCMTK storescu through the real proxy (--pcap on the ext4, --metrics): a small image while there is room,
// then the disk filled, two large images (more than the capture's 64 MiB of slabs can hold, so bytes are
// dropped), then the disk freed, and once the capture has caught up a small image again. Checked: the
// capture file is opened O_DIRECT (/proc/PID/fdinfo), the outage is logged and ends ('takes bytes again'),
// tshark reads the file whole, the capture holds every byte relayed after the outage, and what it holds plus
// what the proxy reports dropped (log and metric, the same number) is exactly what was relayed. Skipped,
// saying why, where the ext4 cannot be made or mounted (not root, no loop device, no mkfs.ext4).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { dcmtkErrors, echoscu, startStorescp, storescu } from '../helpers/dcmtk.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { writeTestDicom } from '../helpers/dicom-file.js';
import { killAll } from '../helpers/procs.js';
import type { LogLine } from '../helpers/proxy.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import { mountLoopExt4, skipWithReason } from '../helpers/small-fs.js';
import { SLAB_BYTES, SLAB_COUNT } from '../../src/capture/capture-file.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
/** The capture's slabs: what it holds while the disk is full, before it drops. */
const HELD = SLAB_COUNT * SLAB_BYTES;
let tmp = '';
let small: TestDicomInfo;
let large: TestDicomInfo;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'pcap-ext4-'));
  small = await writeTestDicom(path.join(tmp, 'small.dcm'), { pixelBytes: 1 * MiB, seed: 411 });
  // Sent twice while the disk is full: 2 x 2 legs x 24 MiB captured, well over the 64 MiB held.
  large = await writeTestDicom(path.join(tmp, 'large.dcm'), { pixelBytes: 24 * MiB, seed: 412 });
});

after(async () => {
  await stopAllProxies();
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

type Link = { bytesIn: number; bytesOut: number };

/** Bytes relayed on both legs of an association, from its 'association closed' line. */
function relayedBy(closed: LogLine): number {
  return ['toScp', 'toScu'].reduce((n, k) => n + (closed[k] as Link).bytesIn + (closed[k] as Link).bytesOut, 0);
}

/** The open flags of the descriptor `pid` holds on `file` (/proc/PID/fdinfo: octal). */
function openFlags(pid: number, file: string): number {
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    if (target !== file) continue;
    const m = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
    assert.ok(m, `a flags line in /proc/${pid}/fdinfo/${fd}`);
    return parseInt(m[1]!, 8);
  }
  throw new Error(`process ${pid} holds no descriptor on ${file}`);
}

async function droppedMetric(url: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const m = /^dicom_pdu_proxy_capture_bytes_dropped_total (\d+)$/m.exec(text);
  assert.ok(m, `a capture_bytes_dropped_total sample in:\n${text.slice(0, 2000)}`);
  return Number(m[1]);
}

describe('--pcap with O_DIRECT on an ext4 loop device that fills and frees', { timeout: 180_000 }, () => {
  test('direct writes; the outage logged and over; tshark reads the file whole; captured + dropped = relayed, nothing lost after the outage', async (t) => {
    const fsys = mountLoopExt4(160 * MiB);
    if (typeof fsys === 'string') return skipWithReason(t, fsys);
    t.after(() => fsys.unmount());
    const scp = await startStorescp({ outDir: tmp, extraArgs: ['--ignore'], logLevel: 'quiet' });
    t.after(() => scp.stop());
    const pcap = path.join(fsys.dir, 'capture.pcapng');
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--pcap', pcap, '--metrics', '127.0.0.1:0', '--log-level', 'info']);
    t.after(() => proxy.stop());
    await proxy.waitForLog((l) => l.msg === 'metrics listening');
    const metricsUrl = proxy.metricsUrl;

    // The file system took O_DIRECT: the descriptor the proxy writes through has it.
    const flags = openFlags(proxy.child.pid!, pcap);
    assert.ok((flags & fs.constants.O_DIRECT) !== 0, `O_DIRECT in the capture file's flags (0${flags.toString(8)})`);

    const send = async (files: string[]): Promise<void> => {
      const r = await storescu({ port: proxy.port, calledAet: scp.aet, files, debug: false, dimseTimeoutSec: 60, timeoutMs: 120_000 });
      assert.equal(r.code, 0, `${r.stderr.slice(-1500)}\nproxy: ${proxy.stderr}`);
      assert.deepEqual(dcmtkErrors(r), []);
    };
    const echo = async (): Promise<void> => {
      const r = await echoscu({ port: proxy.port, calledAet: scp.aet, debug: false });
      assert.equal(r.code, 0, `${r.stderr.slice(-1500)}\nproxy: ${proxy.stderr}`);
    };
    const closed = (n: number): Promise<LogLine> => proxy.waitForLog((l) => l.msg === 'association closed' && l.assoc === n, 60_000);

    // 1. Room on the disk.
    await send([small.path!]);
    await echo();
    await Promise.all([closed(1), closed(2)]);

    // 2. The disk full: the writes fail and are retried; once the slabs are all held, bytes are dropped.
    fsys.fill();
    assert.equal(fsys.available(), 0, 'the filler took every free block');
    const sizeAtFill = fs.statSync(pcap).size;
    await send([large.path!, large.path!]);
    await closed(3);
    const failed = await proxy.waitForLog((l) => l.recorder === '--pcap' && l.level >= 50, 30_000);
    assert.equal(failed.err, 'ENOSPC', JSON.stringify(failed));
    assert.match(failed.msg, /retried/);
    assert.ok((await droppedMetric(metricsUrl)) > 0, 'bytes dropped while the disk was full (the slabs were all held)');

    // 3. Space again: a retry writes what was held, and the capture takes bytes again.
    fsys.free();
    const again = await proxy.waitForLog((l) => l.msg === 'pcap: the capture file takes bytes again; capturing goes on', 30_000);
    const droppedInOutage = again.droppedBytesInOutage as number;
    assert.ok(droppedInOutage > 0, JSON.stringify(again));
    // Caught up: the held slabs (all of them, when bytes were dropped) are on disk. Direct writes extend the
    // file as they complete, so its size says how far the capture got.
    for (let i = 0; i < 600 && fs.statSync(pcap).size < sizeAtFill + HELD - 4 * MiB; i++) await sleep(100);
    assert.ok(fs.statSync(pcap).size >= sizeAtFill + HELD - 4 * MiB, `the held slabs written: ${fs.statSync(pcap).size} bytes, ${sizeAtFill} at the fill`);
    assert.equal(await droppedMetric(metricsUrl), droppedInOutage, 'every drop was in the outage');

    // 4. After the outage: captured in full.
    await send([small.path!]);
    await echo();
    const late = await Promise.all([closed(4), closed(5)]);
    const all = [...(await Promise.all([1, 2, 3].map(closed))), ...late];
    const droppedAtEnd = await droppedMetric(metricsUrl);
    assert.equal(await proxy.stop(), 0, `a clean exit: ${proxy.stderr}`);
    assert.equal(proxy.stderr, '', 'nothing on stderr');
    const last = proxy.logs.find((l) => l.recorder === '--pcap' && l.msg === 'pcap: bytes dropped from the capture');
    assert.equal(last?.droppedBytes, droppedAtEnd, `the closing line and the metric report the same drops: ${JSON.stringify(last)}`);
    assert.equal(droppedAtEnd, droppedInOutage, 'none dropped after the outage');

    // The file reads whole: no error from tshark (a file cut short is one), nothing malformed.
    const fields = await run('tshark', ['-r', pcap, '-T', 'fields', '-e', 'tcp.stream', '-e', 'tcp.len'], { maxBuffer: 256 * MiB });
    const complaints = fields.stderr.split('\n').filter((l) => l && !l.startsWith('Running as user'));
    assert.deepEqual(complaints, [], 'tshark reads the file without a complaint');
    const { stdout: malformed } = await run('tshark', ['-r', pcap, '-Y', '_ws.malformed'], { maxBuffer: 64 * MiB });
    assert.equal(malformed, '', 'nothing malformed');
    // The bytes not captured show as holes in the streams of the outage.
    const { stdout: holes } = await run('tshark', ['-r', pcap, '-Y', 'tcp.analysis.lost_segment', '-T', 'fields', '-e', 'tcp.stream'], { maxBuffer: 64 * MiB });
    assert.ok(holes.trim().length > 0, 'tshark sees segments not captured');

    const perStream = new Map<number, number>();
    for (const line of fields.stdout.split('\n').filter(Boolean)) {
      const [stream, len] = line.split('\t');
      perStream.set(Number(stream), (perStream.get(Number(stream)) ?? 0) + Number(len || 0));
    }
    const captured = [...perStream.values()].reduce((a, b) => a + b, 0);
    const relayed = all.reduce((n, l) => n + relayedBy(l), 0);
    assert.equal(captured + droppedAtEnd, relayed, `${captured} bytes captured + ${droppedAtEnd} dropped = ${relayed} relayed on both legs`);
    // Two legs per association, streams numbered in the order they appear: the last four are associations 4 and 5.
    assert.equal(perStream.size, 2 * all.length, `${perStream.size} TCP streams`);
    const afterOutage = [...perStream.keys()].sort((a, b) => a - b).slice(-4);
    const capturedAfter = afterOutage.reduce((n, s) => n + perStream.get(s)!, 0);
    assert.equal(capturedAfter, relayedBy(late[0]) + relayedBy(late[1]), 'every byte relayed after the outage is in the capture');
  });
});
