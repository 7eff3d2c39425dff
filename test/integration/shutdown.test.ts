// Graceful shutdown: SIGTERM/SIGINT drain. The listener closes at once, associations in flight finish (bounded
// by --drain-timeout), the CSV is flushed, exit 0; a second signal (or the drain timeout) aborts what is left.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeAbort } from '../../src/pdu/control.js';
import { associate, exchange, release } from '../helpers/assoc.js';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import type { Storescp } from '../helpers/dcmtk.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import { eventually } from '../helpers/proc-stats.js';
import { killAll } from '../helpers/procs.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import { FakeScp, RawPeer, buildRq } from '../helpers/raw.js';
import { readByPeer } from '../helpers/tcp-queues.js';

after(async () => {
  await stopAllProxies();
  await killAll();
});

const ABORT_NOT_SPECIFIED = encodeAbort(2, 0);
const RJ_CONGESTION = Buffer.from([0x03, 0, 0, 0, 0, 4, 0, 0x02, 0x03, 0x01]); // transient, provider (presentation), temporary congestion
const FILES = 6;

function exited(proxy: ProxyProcess, timeoutMs: number): Promise<number | null> {
  if (proxy.child.exitCode !== null) return Promise.resolve(proxy.child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`proxy did not exit within ${timeoutMs} ms`)), timeoutMs);
    proxy.child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Resolves with the connect error code, or 'connected'. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

interface Transfer {
  dir: string;
  files: string[];
  storescp: Storescp;
  proxy: ProxyProcess;
  csv: string;
  run: ReturnType<typeof storescu>;
}

/**
 * storescu sends FILES files of 1 MB through the proxy to a storescp that takes ~250 ms per file
 * (--exec-on-reception with --exec-sync), so the transfer is still going when the test signals.
 */
async function startSlowTransfer(extraProxyArgs: string[] = []): Promise<Transfer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-drain-'));
  const inDir = path.join(dir, 'in');
  const outDir = path.join(dir, 'out');
  fs.mkdirSync(inDir);
  fs.mkdirSync(outDir);
  const files: string[] = [];
  for (let i = 0; i < FILES; i++) {
    const file = path.join(inDir, `f${i}.dcm`);
    await writeTestDicom(file, { pixelBytes: 1024 * 1024, seed: 40 + i });
    files.push(file);
  }
  const storescp = await startStorescp({ outDir, extraArgs: ['--exec-on-reception', 'sleep 0.25', '--exec-sync'] });
  const csv = path.join(dir, 'chunks.csv');
  const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${storescp.port}`, '--csv', csv, ...extraProxyArgs]);
  proxy.child.setMaxListeners(0);
  const run = storescu({ port: proxy.port, calledAet: storescp.aet, aet: 'DRAINSCU', files, debug: false, timeoutMs: 60_000 });
  // Mid-way: the association is up and at least one file has been stored, not all of them.
  await proxy.waitForLog((l) => l.msg === 'association negotiated');
  await eventually(
    () => storescp.receivedFiles().length >= 1,
    20_000,
    () => 'a first stored file',
  );
  return { dir, files, storescp, proxy, csv, run };
}

describe('graceful shutdown', () => {
  test('SIGTERM mid-transfer: new connections refused, the transfer completes intact, CSV complete, exit 0', async () => {
    const t = await startSlowTransfer();
    try {
      assert.ok(t.storescp.receivedFiles().length < FILES, 'signalled while the transfer is in flight');
      t.proxy.child.kill('SIGTERM');
      await t.proxy.waitForLog((l) => l.msg === 'shutting down: draining associations in flight');
      assert.equal(await tryConnect(t.proxy.port), 'ECONNREFUSED', 'the listener is closed at once');

      const result = await t.run;
      assert.equal(result.code, 0, result.stderr);
      assert.equal(await exited(t.proxy, 20_000), 0);

      const stored = t.storescp.receivedFiles();
      assert.equal(stored.length, FILES, 'every file arrived');
      const sent = new Set(t.files.map((f) => datasetBytes(f).toString('base64')));
      for (const f of stored) assert.ok(sent.has(datasetBytes(f).toString('base64')), `${f} is bit-identical to a sent dataset`);

      const closed = t.proxy.logs.find((l) => l.msg === 'association closed')!;
      assert.equal(closed.outcome, 'released');
      const stopped = t.proxy.logs.find((l) => l.msg === 'stopped')!;
      assert.equal(stopped.aborted, 0);
      // The CSV holds one row per PDU received, both ways, up to the A-RELEASE-RP.
      const rows = fs
        .readFileSync(t.csv, 'utf8')
        .trim()
        .split('\n')
        .slice(1)
        .map((r) => r.split(','));
      const counts = closed as unknown as { toScp: { pdusIn: number }; toScu: { pdusIn: number } };
      assert.equal(rows.length, counts.toScp.pdusIn + counts.toScu.pdusIn);
      assert.ok(
        rows.some((r) => r[1] === 'to_scu' && r[3] === 'A-RELEASE-RP'),
        'the release is in the CSV',
      );
    } finally {
      await t.proxy.stop();
      await t.storescp.stop();
      fs.rmSync(t.dir, { recursive: true, force: true });
    }
  });

  test('a second signal aborts what is left (A-ABORT) and exits promptly with status 1', async () => {
    const t = await startSlowTransfer();
    try {
      t.proxy.child.kill('SIGTERM');
      await t.proxy.waitForLog((l) => l.msg === 'shutting down: draining associations in flight');
      t.proxy.child.kill('SIGINT');
      const t0 = Date.now();
      assert.equal(await exited(t.proxy, 10_000), 1);
      assert.ok(Date.now() - t0 < 5000, 'the second signal does not wait for the drain');
      const result = await t.run;
      assert.notEqual(result.code, 0, 'storescu saw its association aborted');
      assert.ok(t.storescp.receivedFiles().length < FILES);
      const closed = t.proxy.logs.find((l) => l.msg === 'association closed')!;
      assert.equal(closed.outcome, 'aborted');
      assert.ok(t.proxy.logs.some((l) => l.msg === 'shutting down: aborting associations still in flight'));
      const csv = fs.readFileSync(t.csv, 'utf8');
      assert.ok(csv.startsWith('assoc,direction,seq'), 'the CSV was flushed and closed');
      assert.ok(csv.trim().split('\n').length > 2);
    } finally {
      await t.proxy.stop();
      await t.storescp.stop();
      fs.rmSync(t.dir, { recursive: true, force: true });
    }
  });

  test('during a drain: an RQ gets A-ASSOCIATE-RJ (transient), a silent connection is closed, --drain-timeout aborts the rest', async () => {
    const scp = await FakeScp.listen();
    // The drain's window must hold the steps below (the log line, the silent connection closed, an RJ, one
    // exchange: six local round trips); 3 s leaves a loaded machine room, and the abort is checked to come no sooner.
    const DRAIN_MS = 3000;
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--drain-timeout', String(DRAIN_MS)]);
    try {
      const a = await associate(proxy, scp);
      const late = await RawPeer.connect(proxy.port);
      late.send(buildRq({ maxLength: 16384 }).subarray(0, 10)); // started, not finished, before the signal
      const silent = await RawPeer.connect(proxy.port);
      await readByPeer(late.socket); // the proxy has read the 10 bytes (unread, the drain would close it as silent)
      const signalled = Date.now();
      proxy.child.kill('SIGTERM');
      await proxy.waitForLog((l) => l.msg === 'shutting down: draining associations in flight');
      await Promise.race([silent.ended, silent.closed]);
      assert.equal(silent.receivedLength, 0, 'a connection that sent nothing is just closed');
      late.send(buildRq({ maxLength: 16384 }).subarray(10));
      const [rj] = await late.waitForPdus(1);
      assert.deepEqual(rj, RJ_CONGESTION);
      await exchange(a); // the association in flight still works during the drain
      const t0 = Date.now();
      const [toScu, toScp] = await Promise.all([a.scu.waitForPdus(3, 5000), a.up.waitForPdus(3, 5000)]);
      assert.deepEqual(toScu[2], ABORT_NOT_SPECIFIED);
      assert.deepEqual(toScp[2], ABORT_NOT_SPECIFIED);
      assert.ok(Date.now() - signalled >= DRAIN_MS - 50, `aborted ${Date.now() - signalled} ms after SIGTERM, not before --drain-timeout`);
      a.scu.socket.end();
      a.up.socket.end();
      late.socket.end();
      assert.equal(await exited(proxy, 10_000), 1);
      assert.ok(Date.now() - t0 < 5000);
      const line = proxy.logs.find((l) => l.msg === 'shutting down: aborting associations still in flight')!;
      assert.match(String(line.reason), /drain timeout/);
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('with nothing in flight, SIGINT exits 0 at once', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    try {
      const a = await associate(proxy, scp);
      await exchange(a);
      await release(a);
      await proxy.waitForLog((l) => l.msg === 'association closed');
      proxy.child.kill('SIGINT');
      assert.equal(await exited(proxy, 5000), 0);
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });
});
