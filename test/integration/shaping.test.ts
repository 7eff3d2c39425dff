// Link shaping (--latency, --bandwidth) through the real proxy process between raw peers: the bandwidth over a 10 MB
// transfer, the latency each message gains, and bounded buffering on a slow shaped link.
// Timing assertions have margins for a busy 2-core machine; each test takes a few seconds.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { after, describe, test } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeAbort } from '../../src/pdu/control.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { readCsvFile } from '../../src/analysis/csv.js';
import { rssBytes } from '../helpers/proc-stats.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import { FakeScp, RawPeer, buildAc, buildRq } from '../helpers/raw.js';

after(stopAllProxies);

/** SCU → proxy → fake SCP with the RQ/AC exchanged; no Maximum Length either side, so P-DATA passes unchanged. */
async function associate(proxy: ProxyProcess, scp: FakeScp): Promise<{ scu: RawPeer; up: RawPeer; scuStart: number; upStart: number }> {
  const scu = await RawPeer.connect(proxy.port);
  scu.send(buildRq({ maxLength: 0 }));
  const up = await scp.nextPeer();
  await up.waitForPdus(1);
  up.send(buildAc({ maxLength: 0 }));
  await scu.waitForPdus(1);
  return { scu, up, scuStart: scu.receivedLength, upStart: up.receivedLength };
}

/** A one-PDV P-DATA-TF of exactly `total` bytes on the wire (12 bytes of headers). */
function pdata(total: number, fill: Buffer, last = false): Buffer {
  return encodePData([{ contextId: 1, command: false, last, fragment: fill.subarray(0, total - 12) }]);
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('--bandwidth', () => {
  test('10 MB at 50 Mbit/s takes 1.6 s ± 10%, and arrives bit-identical', async (t) => {
    const scp = await FakeScp.listen();
    let proxy: ProxyProcess | undefined;
    try {
      proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--bandwidth', '50Mbit']);
      const { scu, up, upStart } = await associate(proxy, scp);
      // 100 PDUs of 100,000 bytes: 10,000,000 bytes on the wire = 80,000,000 bits = 1.6 s at 50,000,000 bit/s.
      const payload = randomBytes(100 * 100_000);
      const pdus = Array.from({ length: 100 }, (_, i) => pdata(100_000, payload.subarray(i * 100_000), i === 99));
      const sent = sha(Buffer.concat(pdus));
      const t0 = performance.now();
      for (const p of pdus) scu.send(p);
      await up.waitForBytes(upStart + 10_000_000, 20_000);
      const seconds = (performance.now() - t0) / 1000;
      t.diagnostic(`10,000,000 bytes at 50 Mbit/s: ${seconds.toFixed(3)} s`);
      assert.equal(up.receivedLength, upStart + 10_000_000, 'nothing more');
      assert.equal(sha(up.bytes.subarray(upStart)), sent, 'the bytes arrive unchanged and in order');
      assert.ok(seconds >= 1.6 * 0.9 && seconds <= 1.6 * 1.1, `10 MB at 50 Mbit/s took ${seconds.toFixed(3)} s (expected 1.6 s ± 10%)`);
      scu.destroy();
      up.destroy();
    } finally {
      await proxy?.stop();
      await scp.close();
    }
  });

  test('associations share the link: two 2.5 MB transfers at once through a 50 Mbit/s proxy take 0.8 s together', async (t) => {
    const scp = await FakeScp.listen();
    let proxy: ProxyProcess | undefined;
    try {
      proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--bandwidth', '50Mbit']);
      const a = await associate(proxy, scp);
      const b = await associate(proxy, scp);
      const fill = randomBytes(100_000);
      const pdus = Array.from({ length: 25 }, () => pdata(100_000, fill));
      const t0 = performance.now();
      for (const p of pdus) {
        a.scu.send(p);
        b.scu.send(p);
      }
      const done = (peer: RawPeer, start: number) => peer.waitForBytes(start + 2_500_000, 20_000).then(() => performance.now() - t0);
      const [msA, msB] = await Promise.all([done(a.up, a.upStart), done(b.up, b.upStart)]);
      const seconds = Math.max(msA, msB) / 1000;
      t.diagnostic(`2 x 2,500,000 bytes at 50 Mbit/s shared: ${(msA / 1000).toFixed(3)} s and ${(msB / 1000).toFixed(3)} s`);
      // 5,000,000 bytes = 40,000,000 bits over one 50 Mbit/s link: 0.8 s (each alone would take 0.4 s).
      assert.ok(seconds >= 0.8 * 0.9 && seconds <= 0.8 * 1.15, `both done after ${seconds.toFixed(3)} s (expected 0.8 s)`);
      assert.ok(Math.min(msA, msB) / 1000 > 0.6, 'neither had the link to itself');
      for (const x of [a, b]) {
        x.scu.destroy();
        x.up.destroy();
      }
    } finally {
      await proxy?.stop();
      await scp.close();
    }
  });

  test('a slow shaped link pauses the sender: memory stays bounded, not the transfer size', async (t) => {
    const scp = await FakeScp.listen();
    // 8 Mbit/s = 1,000,000 bytes/s: in 3 s about 3 MB get through of the 64 MB the SCU tries to send.
    let proxy: ProxyProcess | undefined;
    try {
      proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--bandwidth', '8Mbit']);
      const { scu, up, upStart } = await associate(proxy, scp);
      const pid = proxy.child.pid!;
      const baseline = rssBytes(pid);
      const oneMb = pdata(1 << 20, randomBytes(1 << 20));
      let handed = 0;
      let stop = false;
      const pump = (): void => {
        while (!stop && handed < 64 << 20) {
          handed += oneMb.length;
          if (!scu.socket.write(oneMb)) {
            scu.socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
      let peakRss = baseline;
      const t0 = performance.now();
      while (performance.now() - t0 < 3000) {
        await new Promise((r) => setTimeout(r, 100));
        peakRss = Math.max(peakRss, rssBytes(pid));
      }
      stop = true;
      const delivered = up.receivedLength - upStart;
      const growthMb = (peakRss - baseline) / 2 ** 20;
      t.diagnostic(`3 s at 8 Mbit/s: delivered ${delivered} bytes, SCU handed over ${(handed / 2 ** 20).toFixed(1)} MiB, proxy RSS +${growthMb.toFixed(1)} MiB`);
      // Delivered at the rate (not all at once); accepted from the SCU = delivered + the shaper's 1 MiB queue +
      // kernel socket buffers, far below the 64 MB it tried to send.
      assert.ok(delivered > 1_500_000 && delivered < 4_500_000, `delivered ${delivered} bytes in 3 s at 1 MB/s`);
      assert.ok(handed < 24 << 20, `the SCU could hand over only ${(handed / 2 ** 20).toFixed(1)} MiB: it was paused`);
      assert.ok(growthMb < 32, `proxy RSS grew by ${growthMb.toFixed(1)} MiB while 64 MiB were offered`);
      scu.destroy();
      up.destroy();
    } finally {
      await proxy?.stop();
      await scp.close();
    }
  });
});

describe('--latency', () => {
  /** Send a small P-DATA from the SCU, answer it from the SCP as soon as it arrives, `n` times: round trips in ms. */
  async function roundTrips(proxy: ProxyProcess, scp: FakeScp, n: number): Promise<{ rtts: number[]; towardScp: number[] }> {
    const { scu, up, scuStart, upStart } = await associate(proxy, scp);
    const request = pdata(212, Buffer.alloc(200, 7), true);
    const response = pdata(112, Buffer.alloc(100, 9), true);
    const rtts: number[] = [];
    const towardScp: number[] = [];
    for (let i = 1; i <= n; i++) {
      const t0 = performance.now();
      scu.send(request);
      await up.waitForBytes(upStart + i * request.length, 5000);
      towardScp.push(performance.now() - t0);
      up.send(response);
      await scu.waitForBytes(scuStart + i * response.length, 5000);
      rtts.push(performance.now() - t0);
    }
    scu.destroy();
    up.destroy();
    return { rtts, towardScp };
  }

  test('--latency 100: each request/response round trip gains 2 × 100 ms (100 ms each way)', async (t) => {
    const scp = await FakeScp.listen();
    let proxy: ProxyProcess | undefined;
    try {
      proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--latency', '100']);
      const { rtts, towardScp } = await roundTrips(proxy, scp, 5);
      t.diagnostic(`round trips ${rtts.map((r) => r.toFixed(1)).join(', ')} ms; one way ${towardScp.map((r) => r.toFixed(1)).join(', ')} ms`);
      for (const rtt of rtts) assert.ok(rtt >= 200, `round trip ${rtt.toFixed(1)} ms, never under 2 × 100 ms`);
      for (const t of towardScp) assert.ok(t >= 100, `one way ${t.toFixed(1)} ms, never under 100 ms`);
      assert.ok(median(rtts) < 200 + 80, `median round trip ${median(rtts).toFixed(1)} ms (200 ms + overhead): ${rtts.map((r) => r.toFixed(1))}`);
      assert.ok(median(towardScp) < 100 + 50, `median one way ${median(towardScp).toFixed(1)} ms`);
    } finally {
      await proxy?.stop();
      await scp.close();
    }
  });

  test('--latency 60:30 jitters each way within [30, 90] ms; --latency-to-scu 0 leaves responses undelayed', async (t) => {
    const scp = await FakeScp.listen();
    let proxy: ProxyProcess | undefined;
    try {
      proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--latency', '60:30', '--latency-to-scu', '0']);
      const { rtts, towardScp } = await roundTrips(proxy, scp, 8);
      t.diagnostic(`one way ${towardScp.map((r) => r.toFixed(1)).join(', ')} ms; round trips ${rtts.map((r) => r.toFixed(1)).join(', ')} ms`);
      for (const t of towardScp) assert.ok(t >= 30, `one way ${t.toFixed(1)} ms, never under 60 - 30 ms`);
      // Each message starts on an idle link, so its delay is its own draw: not all the same.
      assert.ok(Math.max(...towardScp) - Math.min(...towardScp) > 5, `jitter shows: ${towardScp.map((t) => t.toFixed(1))}`);
      assert.ok(median(towardScp) < 90 + 50, `median one way ${median(towardScp).toFixed(1)} ms`);
      // Only the way to the SCP is delayed: the response adds little.
      const back = rtts.map((r, i) => r - towardScp[i]!);
      assert.ok(median(back) < 30, `median way back ${median(back).toFixed(1)} ms with --latency-to-scu 0`);
    } finally {
      await proxy?.stop();
      await scp.close();
    }
  });
});

describe('order and end of stream on a shaped link', () => {
  test('P-DATA then A-ABORT then FIN: the SCP gets them in that order, the FIN only after the delayed bytes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-shaping-'));
    const csv = path.join(dir, 'chunks.csv');
    const scp = await FakeScp.listen();
    let proxy: ProxyProcess | undefined;
    try {
      proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--latency', '150', '--csv', csv]);
      const { scu, up, upStart } = await associate(proxy, scp);
      const data = pdata(40_000, randomBytes(40_000), true);
      const abort = encodeAbort(0, 0);
      const t0 = performance.now();
      scu.send(data);
      scu.send(abort);
      scu.socket.end();
      await up.ended;
      const endedMs = performance.now() - t0;
      assert.ok(endedMs >= 150, `FIN after the delayed bytes (${endedMs.toFixed(1)} ms)`);
      assert.deepEqual(up.bytes.subarray(upStart), Buffer.concat([data, abort]), 'P-DATA then A-ABORT, whole');
      scu.destroy();
      up.destroy();
      await proxy.stop();
      // The chunk CSV's forwarded_us is when the bytes were really written: after the added latency.
      const { rows } = await readCsvFile(csv);
      const sent = rows.find((r) => r.type === 'P-DATA-TF' && r.direction === 'to_scp');
      assert.ok(sent, 'the P-DATA-TF row');
      const heldUs = Number(sent.forwarded_us) - Number(sent.last_byte_us);
      assert.ok(heldUs >= 150_000, `forwarded ${heldUs} µs after its last byte arrived`);
    } finally {
      await proxy?.stop();
      await scp.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
