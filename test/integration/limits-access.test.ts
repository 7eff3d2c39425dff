// Limits and access: ARTIM and idle timers, --max-associations, idle connections that must not keep
// a real association out, and the access lists. Raw peers where bytes matter, DCMTK where a real SCU helps.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeAbort } from '../../src/pdu/control.js';
import { associate, exchange, release } from '../helpers/assoc.js';
import { echoscu, startStorescp } from '../helpers/dcmtk.js';
import { killAll } from '../helpers/procs.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import type { LogLine } from '../helpers/proxy.js';
import { eventually } from '../helpers/proc-stats.js';
import { FakeScp, RawPeer, buildRq, withTimeout } from '../helpers/raw.js';

after(async () => {
  await stopAllProxies();
  await killAll();
});

const RJ_LOCAL_LIMIT = Buffer.from([0x03, 0, 0, 0, 0, 4, 0, 0x02, 0x03, 0x02]); // transient, provider (presentation), local limit exceeded
const RJ_CALLING_AE = Buffer.from([0x03, 0, 0, 0, 0, 4, 0, 0x01, 0x01, 0x03]); // permanent, service-user, calling AE not recognized
const ABORT_NOT_SPECIFIED = encodeAbort(2, 0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The proxy closed its side (a FIN or a reset reached the peer). */
const gone = (p: RawPeer): boolean => p.socket.readableEnded || p.socket.destroyed;
const closedByProxy = (p: RawPeer, ms = 5000): Promise<void> => withTimeout(Promise.race([p.ended, p.closed]), ms, 'the proxy to close the connection');

async function withProxy(args: string[], run: (proxy: ProxyProcess, scp: FakeScp) => Promise<void>): Promise<void> {
  const scp = await FakeScp.listen();
  const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, ...args]);
  proxy.child.setMaxListeners(0);
  try {
    await run(proxy, scp);
    assert.equal(proxy.child.exitCode, null, 'the proxy is still running');
  } finally {
    await proxy.stop();
    await scp.close();
  }
}

/** Send an RQ and expect exactly `rj` back, then the proxy's FIN. */
async function expectReject(port: number, rq: Buffer, rj: Buffer): Promise<void> {
  const scu = await RawPeer.connect(port);
  scu.send(rq);
  const [got] = await scu.waitForPdus(1);
  assert.deepEqual(got, rj);
  await scu.ended;
  scu.socket.end();
  await scu.waitClosed();
}

describe('ARTIM (--artim-timeout)', () => {
  test('a connection that sends nothing is closed; dribbling part of an RQ does not extend the deadline', async () => {
    await withProxy(['--artim-timeout', '800'], async (proxy) => {
      const silent = await RawPeer.connect(proxy.port);
      const dribbler = await RawPeer.connect(proxy.port);
      const t0 = Date.now();
      const rq = buildRq({ maxLength: 16384 });
      let stop = false;
      void (async () => {
        for (let i = 0; i < rq.length - 1 && !stop && !dribbler.socket.destroyed; i++) {
          dribbler.send(rq.subarray(i, i + 1));
          await sleep(50); // the whole RQ would take ~5 s
        }
      })();
      await Promise.all([closedByProxy(silent, 3000), closedByProxy(dribbler, 3000)]);
      stop = true;
      const took = Date.now() - t0;
      assert.ok(took >= 700, `closed after ${took} ms, not before ARTIM`);
      assert.equal(silent.receivedLength, 0, 'ARTIM expiry is a close, not a PDU');
      assert.equal(dribbler.receivedLength, 0);
      const artim = (): LogLine[] => proxy.logs.filter((l) => l.msg === 'connection closed: no association requested');
      await eventually(
        () => artim().length === 2,
        2000,
        () => `${artim().length} ARTIM log lines`,
      );
      const lines = artim();
      assert.match(String(lines[0]!.reason), /ARTIM/);
    });
  });

  test('an RQ that arrives in time stops ARTIM: the association outlives it', async () => {
    await withProxy(['--artim-timeout', '500'], async (proxy, scp) => {
      const a = await associate(proxy, scp);
      await sleep(800);
      await exchange(a);
      await release(a);
    });
  });
});

describe('idle timeout (--idle-timeout)', () => {
  test('traffic keeps an association alive; silence in both directions aborts it toward both peers', async () => {
    await withProxy(['--idle-timeout', '1000'], async (proxy, scp) => {
      const a = await associate(proxy, scp);
      for (let i = 0; i < 8; i++) {
        await sleep(200);
        await exchange(a); // 1.6 s in all, never 1 s silent
      }
      const upBefore = a.up.pdus().length;
      const scuBefore = a.scu.pdus().length;
      const t0 = Date.now();
      const [toScu, toScp] = await Promise.all([a.scu.waitForPdus(scuBefore + 1, 3000), a.up.waitForPdus(upBefore + 1, 3000)]);
      assert.ok(Date.now() - t0 >= 900);
      assert.deepEqual(toScu[scuBefore], ABORT_NOT_SPECIFIED);
      assert.deepEqual(toScp[upBefore], ABORT_NOT_SPECIFIED);
      const line = await proxy.waitForLog((l) => l.msg === 'association aborted by the proxy');
      assert.match(String(line.reason), /--idle-timeout/);
      a.scu.socket.end();
      a.up.socket.end();
      await Promise.all([a.scu.waitClosed(), a.up.waitClosed()]);
    });
  });
});

describe('--max-associations', () => {
  test('an RQ over the limit gets A-ASSOCIATE-RJ (transient, local limit exceeded); a slot frees when one ends', async () => {
    await withProxy(['--max-associations', '2'], async (proxy, scp) => {
      const a = await associate(proxy, scp);
      const b = await associate(proxy, scp);
      await expectReject(proxy.port, buildRq({ maxLength: 16384 }), RJ_LOCAL_LIMIT);
      assert.equal(scp.peers.length, 2, 'the refused association never reached the SCP');
      const line = await proxy.waitForLog((l) => l.msg === 'association rejected by the proxy');
      assert.equal(line.code, 'max-associations');
      await exchange(a);
      await release(a);
      await proxy.waitForLog((l) => l.msg === 'association closed' && l.assoc === 1);
      const c = await associate(proxy, scp);
      await exchange(c);
      await release(c);
      await release(b);
    });
  });

  test('idle connections never keep a real association out (over --max-pending of them: the oldest are closed)', async () => {
    const MAX_PENDING_CONNECTIONS = 32;
    await withProxy(['--max-associations', '2', '--max-pending', String(MAX_PENDING_CONNECTIONS)], async (proxy, scp) => {
      const idle: RawPeer[] = [];
      const count = MAX_PENDING_CONNECTIONS + 44;
      for (let i = 0; i < count; i++) idle.push(await RawPeer.connect(proxy.port));
      // Idle connections do not count as associations: both slots are still free.
      const a = await associate(proxy, scp);
      const b = await associate(proxy, scp);
      await exchange(a);
      await exchange(b);
      // The oldest silent connections made room for the newer ones; the newest are still open.
      await eventually(
        () => idle.filter(gone).length >= count - MAX_PENDING_CONNECTIONS,
        5000,
        () => `${idle.filter(gone).length} closed`,
      );
      const firstOpen = idle.findIndex((p) => !gone(p));
      assert.ok(firstOpen >= count - MAX_PENDING_CONNECTIONS, `the oldest were closed first (first open: ${firstOpen})`);
      assert.ok(
        idle.slice(firstOpen).every((p) => !gone(p)),
        'closed connections are a prefix: the oldest',
      );
      const evicted = (): number => proxy.logs.filter((l) => l.msg === 'connection closed before an association was requested').length;
      await eventually(
        () => evicted() >= 44,
        5000,
        () => `${evicted()} evicted`,
      );
      for (const p of idle) p.destroy();
      await release(a);
      await release(b);
    });
  });
});

describe('access lists', () => {
  test('--allow-calling-aet: others get A-ASSOCIATE-RJ (permanent, calling AE not recognized); AE titles are logged as values', async () => {
    await withProxy(['--allow-calling-aet', 'MODALITY1, CT 2'], async (proxy, scp) => {
      const hostile = 'x"}\n{"msg":"ok';
      await expectReject(proxy.port, buildRq({ calling: hostile, maxLength: 16384 }), RJ_CALLING_AE);
      await expectReject(proxy.port, buildRq({ calling: 'modality1', maxLength: 16384 }), RJ_CALLING_AE); // case matters
      assert.equal(scp.peers.length, 0, 'the SCP was never contacted');
      // The RJ can reach the peer before the proxy's log line reaches the test (logs go through a pipe).
      const rejected = (): typeof proxy.logs => proxy.logs.filter((l) => l.msg === 'association rejected by the proxy');
      await eventually(
        () => rejected().length >= 2,
        5000,
        () => `${rejected().length} rejection lines`,
      );
      const lines = rejected();
      assert.equal(lines.length, 2);
      assert.equal(lines[0]!.code, 'calling-ae-not-allowed');
      assert.equal(lines[0]!.callingAe, hostile.trim(), 'the hostile AE title is one field value, verbatim');
      assert.ok(
        proxy.logs.every((l) => l.msg !== 'ok'),
        'no log line was forged',
      );
      const a = await associate(proxy, scp, buildRq({ calling: 'CT 2', maxLength: 16384 }));
      await exchange(a);
      await release(a);
    });
  });

  test('--allow-peer: an address outside the list gets A-ASSOCIATE-RJ after its RQ; inside, it is served', async () => {
    await withProxy(['--allow-peer', '10.0.0.0/8,fd00::/8'], async (proxy, scp) => {
      await expectReject(proxy.port, buildRq({ maxLength: 16384 }), RJ_CALLING_AE);
      const line = await proxy.waitForLog((l) => l.msg === 'association rejected by the proxy');
      assert.equal(line.code, 'peer-not-allowed');
      assert.equal(line.peer, '127.0.0.1');
      assert.equal(scp.peers.length, 0);
    });
    await withProxy(['--allow-peer', '192.168.1.7, 127.0.0.0/8'], async (proxy, scp) => {
      const a = await associate(proxy, scp);
      await exchange(a);
      await release(a);
    });
  });

  test('DCMTK echoscu: a refused calling AE sees the rejection reason; an allowed one gets its C-ECHO through', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-access-'));
    const storescp = await startStorescp({ outDir: dir });
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${storescp.port}`, '--allow-calling-aet', 'GOODSCU']);
    try {
      const refused = await echoscu({ port: proxy.port, calledAet: storescp.aet, aet: 'BADSCU' });
      assert.notEqual(refused.code, 0);
      assert.match(refused.stdout + refused.stderr, /Calling AE Title Not Recognized/i);
      const allowed = await echoscu({ port: proxy.port, calledAet: storescp.aet, aet: 'GOODSCU' });
      assert.equal(allowed.code, 0, allowed.stderr);
    } finally {
      await proxy.stop();
      await storescp.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
