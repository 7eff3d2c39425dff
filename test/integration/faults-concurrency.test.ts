// Faults and load: an unreachable upstream, peers that vanish mid-transfer, nothing left behind (file
// descriptors, memory), and 100 concurrent associations through one proxy with every dataset bit-identical.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeAbort } from '../../src/pdu/control.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { associate, exchange, release } from '../helpers/assoc.js';
import { startStorescp } from '../helpers/dcmtk.js';
import { buildTestDicom, datasetBytes } from '../helpers/dicom-file.js';
import { eventually, fdCount, rssBytes } from '../helpers/proc-stats.js';
import { killAll, spawnPeer } from '../helpers/procs.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import { FakeScp, RawPeer, buildRq, splitPdus } from '../helpers/raw.js';
import { storeDataset } from '../helpers/store-scu.js';

after(async () => {
  await stopAllProxies();
  await killAll();
});

const ABORT_NOT_SPECIFIED = encodeAbort(2, 0);
const RJ_UNAVAILABLE = Buffer.from([0x03, 0, 0, 0, 0, 4, 0, 0x02, 0x03, 0x01]); // transient, provider (presentation), congestion
const PYTHON = ['/usr/bin/python3', '/usr/local/bin/python3'].find((p) => fs.existsSync(p));

/** A P-DATA-TF of `n` dataset bytes on context 1, not the last fragment. */
const dataPdu = (n: number, fill: number): Buffer => encodePData([{ contextId: 1, command: false, last: false, fragment: Buffer.alloc(n, fill) }]);

describe('faults', () => {
  test(
    'an upstream that never answers the TCP handshake: A-ASSOCIATE-RJ within 3 s (default --connect-timeout)',
    { skip: PYTHON ? false : 'no python3 for the black-hole listener' },
    async () => {
      // A listener with a full accept queue that never accepts: further SYNs are dropped, as by a firewall.
      const hole = spawnPeer(PYTHON!, ['-c', 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)'], {
        name: 'black-hole',
      });
      const [, portText] = await hole.waitForOutput(/^(\d+)$/m, 10_000);
      const port = Number(portText);
      const filler = await RawPeer.connect(port); // takes the one queue slot
      const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${port}`]);
      try {
        const scu = await RawPeer.connect(proxy.port);
        const t0 = Date.now();
        scu.send(buildRq({ maxLength: 16384 }));
        const [rj] = await scu.waitForPdus(1, 5000);
        const took = Date.now() - t0;
        assert.deepEqual(rj, RJ_UNAVAILABLE);
        assert.ok(took <= 4000, `RJ after ${took} ms (the timer is 3000 ms; the margin is for a loaded test machine)`);
        assert.ok(took >= 2500, `RJ after ${took} ms: it was the connect timeout, not a refusal`);
        const warn = await proxy.waitForLog((l) => l.msg.includes('upstream unavailable'));
        assert.match(String(warn.reason), /no connection to .* within 3000 ms/);
        await scu.ended;
        scu.socket.end();
        await scu.waitClosed();
      } finally {
        filler.destroy();
        await proxy.stop();
        await hole.kill();
      }
    },
  );

  test('the upstream resets mid-transfer: the SCU gets A-ABORT', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    try {
      const a = await associate(proxy, scp);
      for (let i = 0; i < 20; i++) a.scu.send(dataPdu(16000, i));
      await a.up.waitForBytes(10 * 16012);
      a.up.socket.resetAndDestroy();
      const pdus = await a.scu.waitForPdus(2);
      assert.deepEqual(pdus[1], ABORT_NOT_SPECIFIED);
      await a.scu.ended;
      a.scu.socket.end();
      const lost = await proxy.waitForLog((l) => l.msg === 'connection lost: association aborted');
      assert.equal(lost.leg, 'scp');
      assert.equal((await proxy.waitForLog((l) => l.msg === 'association closed')).outcome, 'aborted');
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('the upstream resets while the proxy holds the SCU back (backpressure): A-ABORT, and both close at once', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]); // --close-timeout 30 s
    try {
      const a = await associate(proxy, scp);
      a.up.socket.pause(); // the SCP stops reading: the proxy must stop reading the SCU
      const block = dataPdu(16000, 7);
      for (let i = 0; i < 1000; i++) a.scu.socket.write(block); // 16 MB, more than the socket buffers hold
      await new Promise((r) => setTimeout(r, 500));
      a.up.socket.resetAndDestroy();
      await a.scu.ended;
      assert.deepEqual(a.scu.pdus()[1], ABORT_NOT_SPECIFIED);
      a.scu.socket.end();
      const t0 = Date.now();
      const closed = await proxy.waitForLog((l) => l.msg === 'association closed', 5000);
      assert.equal(closed.outcome, 'aborted');
      assert.ok(Date.now() - t0 < 5000, 'not held until the close timeout');
      await a.scu.waitClosed();
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('the SCU dies between PDUs: the SCP gets A-ABORT; dying inside a PDU: the SCP connection is reset', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    try {
      const a = await associate(proxy, scp);
      for (let i = 0; i < 5; i++) a.scu.send(dataPdu(16000, i));
      await a.up.waitForBytes(splitPdus(a.up.bytes).pdus[0]!.length + 5 * 16012);
      a.scu.socket.resetAndDestroy();
      const pdus = await a.up.waitForPdus(7);
      assert.deepEqual(pdus[6], ABORT_NOT_SPECIFIED);
      await a.up.ended;
      a.up.socket.end();

      const b = await associate(proxy, scp);
      const half = dataPdu(16000, 9);
      b.scu.send(half.subarray(0, 9000)); // passes through as it streams: the SCP has part of a PDU
      await b.up.waitForBytes(splitPdus(b.up.bytes).pdus[0]!.length + 8000);
      b.scu.socket.resetAndDestroy();
      await b.up.waitClosed();
      assert.ok(splitPdus(b.up.bytes).rest.length > 0, 'the SCP holds a partial PDU, so no A-ABORT could be framed');
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('nothing is left behind: after many faulty associations the file descriptors return to the baseline', async () => {
    const scp = await FakeScp.listen();
    const deadPort = (await FakeScp.listen()).server; // closed below: a port that refuses
    const refusedPort = (deadPort.address() as { port: number }).port;
    await new Promise((r) => deadPort.close(r));
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--artim-timeout', '500']);
    const refusing = await ProxyProcess.start(['--upstream', `127.0.0.1:${refusedPort}`]);
    try {
      const pid = proxy.child.pid!;
      const baselineFds = fdCount(pid);
      const refusingPid = refusing.child.pid!;
      const refusingBaselineFds = fdCount(refusingPid);
      const baselineRss = rssBytes(pid);
      for (let round = 0; round < 3; round++) {
        const work: Array<Promise<void>> = [];
        for (let i = 0; i < 8; i++) {
          // Released normally.
          work.push(
            (async () => {
              const a = await associate(proxy, scp);
              await exchange(a);
              await release(a);
            })(),
          );
        }
        const faulty: Array<() => Promise<void>> = [
          async () => {
            // SCU vanishes mid-transfer.
            const a = await associate(proxy, scp);
            a.scu.send(dataPdu(30000, 1));
            a.scu.socket.resetAndDestroy();
            await Promise.race([a.up.ended, a.up.closed]);
            a.up.destroy();
          },
          async () => {
            // SCP vanishes mid-transfer.
            const a = await associate(proxy, scp);
            a.scu.send(dataPdu(30000, 2));
            a.up.socket.resetAndDestroy();
            await Promise.race([a.scu.ended, a.scu.closed]);
            a.scu.destroy();
          },
          async () => {
            // Silent connection: ARTIM.
            const p = await RawPeer.connect(proxy.port);
            await Promise.race([p.ended, p.closed]);
            p.destroy();
          },
          async () => {
            // Garbage.
            const p = await RawPeer.connect(proxy.port);
            p.send(Buffer.from('\x16\x03\x01 not DICOM, a TLS hello maybe'));
            await Promise.race([p.ended, p.closed]);
            p.destroy();
          },
          async () => {
            // Half an RQ, then gone.
            const p = await RawPeer.connect(proxy.port);
            p.send(buildRq({ maxLength: 16384 }).subarray(0, 30));
            p.socket.resetAndDestroy();
          },
        ];
        for (const f of faulty) for (let i = 0; i < 3; i++) work.push(f());
        await Promise.all(work);
      }
      // Refused upstream, on the second proxy (RJ), a few times.
      for (let i = 0; i < 5; i++) {
        const p = await RawPeer.connect(refusing.port);
        p.send(buildRq({ maxLength: 16384 }));
        await p.waitForPdus(1);
        p.destroy();
      }
      const expected = 3 * (8 + 5 * 3);
      await eventually(
        () => proxy.logs.filter((l) => l.msg === 'association closed').length === expected,
        10_000,
        () => `${proxy.logs.filter((l) => l.msg === 'association closed').length} of ${expected} closed`,
      );
      await eventually(
        () => fdCount(pid) === baselineFds,
        5000,
        () => `fd count ${fdCount(pid)} back to ${baselineFds}`,
      );
      const rss = rssBytes(pid);
      assert.ok(rss - baselineRss < 64 * 1024 * 1024, `RSS ${rss} vs baseline ${baselineRss}`);
      await eventually(
        () => refusing.logs.filter((l) => l.msg === 'association closed').length === 5,
        5000,
        () => 'refusing proxy: 5 closed',
      );
      // The proxy whose upstream refuses: each RJ'd association's two sockets are closed again.
      await eventually(
        () => fdCount(refusingPid) === refusingBaselineFds,
        5000,
        () => `refusing proxy: fd count ${fdCount(refusingPid)} back to ${refusingBaselineFds}`,
      );
      assert.equal(refusing.child.exitCode, null, 'the refusing proxy is alive');
    } finally {
      await proxy.stop();
      await refusing.stop();
      await scp.close();
    }
  });
});

describe('concurrency', () => {
  test('100 concurrent associations through one proxy to storescp: every dataset arrives bit-identical', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-conc-'));
    const storescp = await startStorescp({ outDir: dir, logLevel: 'quiet', extraArgs: ['--fork'] });
    // --max-pdu 64KB: the senders may send 64 KB PDUs; the proxy cuts them to storescp's 16 KB.
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${storescp.port}`, '--max-pdu', '64KB']);
    try {
      const N = 100;
      const sent = new Map<string, Buffer>();
      const jobs: Array<Promise<number>> = [];
      // Every sender waits, after its A-ASSOCIATE-AC, until all N are associated: N associations at once.
      let associated = 0;
      let allAssociated!: () => void;
      const barrier = new Promise<void>((resolve) => (allAssociated = resolve));
      const afterAc = (): Promise<void> => {
        if (++associated === N) allAssociated();
        return barrier;
      };
      for (let i = 0; i < N; i++) {
        const { bytes, info } = buildTestDicom({ pixelBytes: 20_000 + 2 * 997 * i, seed: 1000 + i });
        const dataset = bytes.subarray(info.datasetOffset);
        sent.set(info.sopInstanceUid, dataset);
        // Fragment sizes from 2 KB to ~64 KB: some pass unchanged, some are split.
        const fragmentBytes = 2048 * (1 + ((i * 7) % 31));
        jobs.push(storeDataset({ port: proxy.port, calledAe: storescp.aet, dataset, sopInstanceUid: info.sopInstanceUid, fragmentBytes, afterAc, timeoutMs: 60_000 }));
      }
      const t0 = Date.now();
      const statuses = await Promise.all(jobs);
      const bytes = [...sent.values()].reduce((n, d) => n + d.length, 0);
      t.diagnostic(`${N} associations, ${(bytes / 1048576).toFixed(1)} MiB of datasets, ${Date.now() - t0} ms from first connect to last release (storescp --fork)`);
      assert.deepEqual(statuses, new Array(N).fill(0), 'every C-STORE succeeded');
      const files = storescp.receivedFiles();
      assert.equal(files.length, N);
      for (const file of files) {
        const uid = path.basename(file).replace(/^[A-Z]{2}\./, '');
        const expected = sent.get(uid);
        assert.ok(expected, `${file} is one of ours`);
        assert.ok(datasetBytes(file).equals(expected), `${uid}: stored dataset identical to what was sent`);
      }
    } finally {
      await proxy.stop();
      await storescp.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
