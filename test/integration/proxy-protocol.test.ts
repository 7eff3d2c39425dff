// The proxy process between raw peers: every byte each side receives is checked.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { encodeAbort, encodeReleaseRp, encodeReleaseRq } from '../../src/pdu/control.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { ProxyProcess, freePort, stopAllProxies } from '../helpers/proxy.js';
import { FakeScp, IMPLICIT_LE, RawPeer, VERIFICATION, buildAc, buildRq, pdvsOf } from '../helpers/raw.js';

after(stopAllProxies);

const ABORT_UNEXPECTED = encodeAbort(2, 2); // source service-provider, reason unexpected-PDU
const ABORT_INVALID_PARAM = encodeAbort(2, 6); // source service-provider, reason invalid-PDU-parameter-value
const ABORT_UNRECOGNIZED = encodeAbort(2, 1); // source service-provider, reason unrecognized-PDU

/** Bring up an association SCU → proxy → fake SCP; returns both raw ends with the RQ/AC already exchanged. */
async function associate(proxy: ProxyProcess, scp: FakeScp, rq = buildRq({ maxLength: 16384 }), ac = buildAc({ maxLength: 16384 })) {
  const scu = await RawPeer.connect(proxy.port);
  scu.send(rq);
  const up = await scp.nextPeer();
  const [rqSeen] = await up.waitForPdus(1);
  up.send(ac);
  const [acSeen] = await scu.waitForPdus(1);
  return { scu, up, rqSeen: rqSeen!, acSeen: acSeen! };
}

describe('association negotiation', () => {
  test('--max-pdu rewrites only the 4 value bytes of the AC Maximum Length; RQ passes unchanged', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--max-pdu', '1MB']);
    try {
      // An RQ with an unknown top-level item (0x7F) and an unknown user-information sub-item (0x5F).
      const rq = buildRq({
        maxLength: 16384,
        extraItems: [{ type: 0x7f, reserved: 0, head: Buffer.from('opaque-item!') }],
        extraUserItems: [{ type: 0x5f, reserved: 0x33, head: Buffer.from([1, 2, 3]) }],
      });
      const ac = buildAc({ maxLength: 16384 });
      const { scu, rqSeen, acSeen } = await associate(proxy, scp, rq, ac);
      assert.deepEqual(rqSeen, rq, 'RQ forwarded byte for byte, unknown items included');
      assert.equal(acSeen.length, ac.length);
      const diff = [...acSeen].flatMap((b, i) => (b === ac[i] ? [] : [i]));
      const at = ac.indexOf(Buffer.from([0x51, 0x00, 0x00, 0x04])) + 4;
      assert.ok(
        diff.every((i) => i >= at && i < at + 4),
        `only the Maximum Length value changed (diff at ${diff})`,
      );
      assert.equal(acSeen.readUInt32BE(at), 1048576);
      const negotiated = await proxy.waitForLog((l) => l.msg === 'association negotiated');
      assert.equal(negotiated.assoc, 1);
      scu.destroy();
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('--max-pdu-rq rewrites the RQ; an RQ without a Maximum Length gets one inserted', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--max-pdu-rq', '64KB']);
    try {
      const rq = buildRq({ maxLength: 16384 });
      const a = await associate(proxy, scp, rq);
      assert.equal(a.rqSeen.length, rq.length);
      const at = rq.indexOf(Buffer.from([0x51, 0x00, 0x00, 0x04])) + 4;
      assert.equal(a.rqSeen.readUInt32BE(at), 65536);
      assert.deepEqual(Buffer.concat([a.rqSeen.subarray(0, at), a.rqSeen.subarray(at + 4)]), Buffer.concat([rq.subarray(0, at), rq.subarray(at + 4)]));
      a.scu.destroy();

      const bare = buildRq({ maxLength: undefined });
      const b = await associate(proxy, scp, bare);
      assert.equal(b.rqSeen.length, bare.length + 8, 'one 8-byte sub-item inserted');
      const inserted = b.rqSeen.indexOf(Buffer.from([0x51, 0x00, 0x00, 0x04]));
      assert.ok(inserted > 0);
      assert.equal(b.rqSeen.readUInt32BE(inserted + 4), 65536);
      b.scu.destroy();
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('A-ASSOCIATE-RJ from the SCP reaches the SCU unchanged and both connections close', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    try {
      const scu = await RawPeer.connect(proxy.port);
      scu.send(buildRq({ maxLength: 16384 }));
      const up = await scp.nextPeer();
      await up.waitForPdus(1);
      const rj = Buffer.from([0x03, 0x00, 0, 0, 0, 4, 0x00, 0x01, 0x01, 0x03]); // permanent, service-user, calling AE not recognised
      up.send(rj);
      const [got] = await scu.waitForPdus(1);
      assert.deepEqual(got, rj);
      scu.socket.end(); // the requestor closes after RJ; the FIN is passed on
      await up.ended;
      up.socket.end();
      await scu.waitClosed();
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('an unreachable upstream answers the RQ with A-ASSOCIATE-RJ (transient) promptly', async () => {
    const deadPort = await freePort();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${deadPort}`]);
    try {
      const scu = await RawPeer.connect(proxy.port);
      const t0 = Date.now();
      scu.send(buildRq({ maxLength: 16384 }));
      const [rj] = await scu.waitForPdus(1, 3000);
      assert.ok(Date.now() - t0 < 3000);
      // A-ASSOCIATE-RJ: result 2 transient, source 3 service-provider (presentation), reason 1 temporary congestion
      assert.deepEqual(rj, Buffer.from([0x03, 0x00, 0, 0, 0, 4, 0x00, 0x02, 0x03, 0x01]));
      await scu.ended; // the proxy half-closes after the RJ
      const warn = await proxy.waitForLog((l) => l.msg.includes('upstream unavailable'));
      assert.equal(warn.level, 40);
    } finally {
      await proxy.stop();
    }
  });
});

describe('protocol errors end the association with A-ABORT and leave others alone', () => {
  const cases: Array<{ name: string; bytes: Buffer; abort: Buffer; code: string }> = [
    { name: 'unknown PDU type 0x08', bytes: Buffer.from([0x08, 0, 0, 0, 0, 4, 0, 0, 0, 0]), abort: ABORT_UNRECOGNIZED, code: 'unknown-pdu-type' },
    {
      name: 'P-DATA-TF before any association',
      bytes: encodePData([{ contextId: 1, command: true, last: true, fragment: Buffer.alloc(8) }]),
      abort: ABORT_UNEXPECTED,
      code: 'unexpected-pdu',
    },
    { name: 'A-RELEASE-RQ with PDU-length 5', bytes: Buffer.from([0x05, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0]), abort: ABORT_INVALID_PARAM, code: 'fixed-pdu-length' },
    {
      name: 'an item overrunning its PDU',
      bytes: (() => {
        const rq = Buffer.from(buildRq({ maxLength: 16384 }));
        rq.writeUInt16BE(0xfff0, 74 + 2); // the application context item claims 65520 bytes
        return rq;
      })(),
      abort: ABORT_INVALID_PARAM,
      code: 'item-overrun',
    },
  ];
  for (const c of cases) {
    test(`before association: ${c.name}`, async () => {
      const scp = await FakeScp.listen();
      const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
      try {
        const scu = await RawPeer.connect(proxy.port);
        scu.send(c.bytes);
        const [abort] = await scu.waitForPdus(1);
        assert.deepEqual(abort, c.abort);
        await scu.ended; // after A-ABORT the proxy half-closes and waits for the peer (ARTIM)
        scu.socket.end();
        await scu.waitClosed();
        const warn = await proxy.waitForLog((l) => l.level === 40 && l.msg.startsWith('protocol error'));
        assert.equal(warn.assoc, 1);
        assert.equal(warn.code, c.code);
        assert.equal(scp.peers.length, 0, 'the upstream was never contacted');
      } finally {
        await proxy.stop();
        await scp.close();
      }
    });
  }

  test('mid-association errors abort both peers; a parallel association carries on', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    try {
      const good = await associate(proxy, scp);
      const bad = await associate(proxy, scp);
      // PDV item length 1 (< 2) in an otherwise well-framed P-DATA-TF.
      bad.scu.send(Buffer.from([0x04, 0, 0, 0, 0, 6, 0, 0, 0, 1, 1, 0]));
      const [toScu] = await bad.scu.waitForPdus(2); // AC, then the abort
      void toScu;
      assert.deepEqual(bad.scu.pdus()[1], ABORT_INVALID_PARAM);
      const upPdus = await bad.up.waitForPdus(2); // RQ, then the abort
      assert.deepEqual(upPdus[1], ABORT_INVALID_PARAM);
      await bad.scu.ended;
      bad.scu.socket.end();
      bad.up.socket.end();
      await bad.scu.waitClosed();
      const warn = await proxy.waitForLog((l) => l.level === 40 && l.code === 'pdv-too-short');
      assert.equal(warn.assoc, 2);

      // The first association still works: a message, then release.
      const data = encodePData([{ contextId: 1, command: true, last: true, fragment: Buffer.alloc(64, 7) }]);
      good.scu.send(data);
      const got = await good.up.waitForPdus(2);
      assert.deepEqual(got[1], data);
      good.scu.send(encodeReleaseRq());
      await good.up.waitForPdus(3);
      good.up.send(encodeReleaseRp());
      await good.scu.waitForPdus(2);
      good.scu.socket.end();
      await good.up.ended; // FIN propagated
      good.up.socket.end();
      await good.scu.waitClosed();
      const closed = await proxy.waitForLog((l) => l.msg === 'association closed' && l.assoc === 1);
      assert.equal(closed.outcome, 'released');
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('an error inside a read withdraws the PDU it had begun to pass on: the SCP gets the whole PDUs before it, then A-ABORT', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    try {
      const a = await associate(proxy, scp);
      const whole = encodePData([{ contextId: 1, command: true, last: true, fragment: Buffer.alloc(64, 7) }]);
      // One write: a whole P-DATA-TF, then one whose header is already passed on when its PDV (item length 1) fails.
      a.scu.send(Buffer.concat([whole, Buffer.from([0x04, 0, 0, 0, 0, 6, 0, 0, 0, 1, 1, 0])]));
      const upPdus = await a.up.waitForPdus(3); // RQ, the whole PDU, the abort
      assert.deepEqual(upPdus[1], whole);
      assert.deepEqual(upPdus[2], ABORT_INVALID_PARAM);
      await a.up.ended;
      assert.equal(a.up.bytes.length, upPdus[0]!.length + whole.length + ABORT_INVALID_PARAM.length, 'nothing of the failed PDU');
      a.scu.socket.end();
      a.up.socket.end();
      await proxy.waitForLog((l) => l.level === 40 && l.code === 'pdv-too-short');
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('an unknown PDU type from the SCP aborts both sides', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    try {
      const a = await associate(proxy, scp);
      a.up.send(Buffer.from([0x0c, 0, 0, 0, 0, 0]));
      assert.deepEqual((await a.scu.waitForPdus(2))[1], ABORT_UNRECOGNIZED);
      assert.deepEqual((await a.up.waitForPdus(2))[1], ABORT_UNRECOGNIZED);
      await Promise.all([a.scu.ended, a.up.ended]);
      a.scu.socket.end();
      a.up.socket.end();
      await Promise.all([a.scu.waitClosed(), a.up.waitClosed()]);
      const closed = await proxy.waitForLog((l) => l.msg === 'association closed');
      assert.equal(closed.outcome, 'aborted');
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('an SCU that vanishes mid-association makes the proxy send A-ABORT upstream', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    try {
      const a = await associate(proxy, scp);
      a.scu.destroy();
      const up = await a.up.waitForPdus(2);
      assert.deepEqual(up[1], encodeAbort(2, 0));
      await a.up.ended;
      a.up.socket.end();
      const closed = await proxy.waitForLog((l) => l.msg === 'association closed');
      assert.equal(closed.outcome, 'aborted');
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('A-RELEASE-RQ/RP pass unchanged; each FIN is passed on as a half-close', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    try {
      const a = await associate(proxy, scp);
      a.scu.send(encodeReleaseRq());
      assert.deepEqual((await a.up.waitForPdus(2))[1], encodeReleaseRq());
      a.up.send(encodeReleaseRp());
      assert.deepEqual((await a.scu.waitForPdus(2))[1], encodeReleaseRp());
      // The SCP closes first (as DCMTK does after RP): the SCU sees the FIN while its side stays writable.
      a.up.socket.end();
      await a.scu.ended;
      assert.ok(!a.scu.socket.writableEnded, 'half-close only: the SCU side is still open');
      a.scu.socket.end();
      await a.up.ended;
      const closed = await proxy.waitForLog((l) => l.msg === 'association closed');
      assert.equal(closed.outcome, 'released');
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('release collision: both peers send A-RELEASE-RQ, each RP is forwarded, the association is released', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    try {
      const a = await associate(proxy, scp);
      a.scu.send(encodeReleaseRq());
      a.up.send(encodeReleaseRq());
      assert.deepEqual((await a.up.waitForPdus(2))[1], encodeReleaseRq());
      assert.deepEqual((await a.scu.waitForPdus(2))[1], encodeReleaseRq());
      a.scu.send(encodeReleaseRp());
      a.up.send(encodeReleaseRp());
      assert.deepEqual((await a.up.waitForPdus(3))[2], encodeReleaseRp());
      assert.deepEqual((await a.scu.waitForPdus(3))[2], encodeReleaseRp());
      a.up.socket.end();
      a.scu.socket.end();
      const closed = await proxy.waitForLog((l) => l.msg === 'association closed');
      assert.equal(closed.outcome, 'released');
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('A-ABORT from a peer is forwarded unchanged', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    try {
      const a = await associate(proxy, scp);
      const abort = encodeAbort(0, 0);
      a.scu.send(abort);
      assert.deepEqual((await a.up.waitForPdus(2))[1], abort);
      a.up.socket.end();
      await a.scu.ended;
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });
});

describe('re-fragmentation and the chunk CSV', () => {
  test('a PDU over the real limit is split into even fragments; the CSV has one row per received PDU', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pdu-proxy-'));
    const csv = path.join(dir, 'chunks.csv');
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--max-pdu', '1MB', '--csv', csv]);
    try {
      const a = await associate(proxy, scp, buildRq({ maxLength: 16384 }), buildAc({ maxLength: 16384 }));
      const payload = Buffer.alloc(40000);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
      a.scu.send(encodePData([{ contextId: 1, command: false, last: true, fragment: payload }])); // 40006 > 16384
      const pdus = await a.up.waitForPdus(1 + 3);
      const data = pdus.slice(1).map(pdvsOf);
      // 16384 - 6 = 16378 per fragment: 16378 + 16378 + 7244 = 40000; the last bit only on the third.
      assert.deepEqual(
        data.map((p) => p.length),
        [1, 1, 1],
      );
      assert.deepEqual(
        data.map((p) => p[0]!.fragment.length),
        [16378, 16378, 7244],
      );
      assert.deepEqual(
        data.map((p) => p[0]!.mch),
        [0, 0, 2],
      );
      assert.deepEqual(
        pdus.slice(1).map((p) => p.readUInt32BE(2)),
        [16384, 16384, 7250],
      );
      assert.deepEqual(Buffer.concat(data.map((p) => p[0]!.fragment)), payload);

      // A PDU that fits passes unchanged.
      const small = encodePData([{ contextId: 1, command: true, last: true, fragment: Buffer.alloc(100, 1) }]);
      a.up.send(small);
      assert.deepEqual((await a.scu.waitForPdus(2))[1], small);

      a.scu.send(encodeReleaseRq());
      await a.up.waitForPdus(5);
      a.up.send(encodeReleaseRp());
      await a.scu.waitForPdus(3);
      a.scu.socket.end();
      await a.up.ended;
      a.up.socket.end();
      await a.scu.waitClosed();
      await proxy.waitForLog((l) => l.msg === 'association closed');
      assert.equal(await proxy.stop(), 0, 'SIGTERM exits 0');

      const lines = fs.readFileSync(csv, 'utf8').trim().split('\n');
      assert.equal(
        lines[0],
        'assoc,direction,seq,type,length,pdvs,context_id,kind,last,first_byte_us,last_byte_us,forwarded_us,out_pdus,out_max_length,violation,route,arm,generation',
      );
      const rows = lines.slice(1).map((l) => l.split(','));
      const byKey = new Map(rows.map((r) => [`${r[1]}:${r[2]}`, r]));
      assert.equal(rows.length, 6); // RQ, AC, P-DATA, P-DATA back, RELEASE-RQ, RELEASE-RP
      const big = byKey.get('to_scp:2')!;
      assert.deepEqual(big.slice(0, 9), ['1', 'to_scp', '2', 'P-DATA-TF', '40006', '1', '1', 'dataset', '1']);
      assert.deepEqual(big.slice(12, 16), ['3', '16384', '0', 'default']);
      const [first, last, forwarded] = big.slice(9, 12).map(Number) as [number, number, number];
      assert.ok(first <= last && last <= forwarded, `timestamps ordered: ${first} ${last} ${forwarded}`);
      assert.deepEqual(byKey.get('to_scu:1')!.slice(3, 5), ['A-ASSOCIATE-AC', String(buildAc({ maxLength: 16384 }).length - 6)]);
      assert.deepEqual(byKey.get('to_scu:2')!.slice(3, 9), ['P-DATA-TF', '106', '1', '1', 'command', '1']);
    } finally {
      await proxy.stop();
      await scp.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('association PDUs over the Maximum Length are no violation: it bounds P-DATA-TF only (PS3.8 D.1)', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    try {
      // 200 contexts: the RQ is about 12 KB and the AC about 6 KB, both over the 4096 each side announces.
      const ids = Array.from({ length: 200 }, (_, i) => 2 * i + 1);
      const rq = buildRq({ maxLength: 4096, contexts: ids.map((id) => ({ id, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_LE] })) });
      const ac = buildAc({ maxLength: 4096, contexts: ids.map((id) => ({ id, transferSyntax: IMPLICIT_LE })) });
      assert.ok(rq.length > 4096 + 6 && ac.length > 4096 + 6);
      const a = await associate(proxy, scp, rq, ac);
      a.scu.send(encodePData([{ contextId: 1, command: true, last: true, fragment: Buffer.alloc(4090, 1) }])); // exactly 4096: allowed
      await a.up.waitForPdus(2);
      a.scu.destroy();
      await a.up.ended;
      a.up.socket.end();
      const closed = await proxy.waitForLog((l) => l.msg === 'association closed');
      assert.equal((closed.toScp as { violations: number }).violations, 0);
      assert.equal((closed.toScu as { violations: number }).violations, 0);
      assert.equal(proxy.logs.filter((l) => /over the Maximum Length/.test(String(l.msg))).length, 0);
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });

  test('a PDU over the Maximum Length the proxy announced is repaired and counted as a violation', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--max-pdu', '16KB']);
    try {
      const a = await associate(proxy, scp, buildRq({ maxLength: 16384 }), buildAc({ maxLength: 65536 }));
      const payload = Buffer.alloc(100_000, 9);
      a.scu.send(encodePData([{ contextId: 1, command: false, last: true, fragment: payload }])); // told 16384, sends 100006
      const pdus = await a.up.waitForPdus(1 + 2);
      assert.deepEqual(
        pdus.slice(1).map((p) => p.readUInt32BE(2)),
        [65536, 100_000 - 65530 + 6],
      );
      a.scu.destroy();
      await a.up.ended; // A-ABORT, then FIN: close like a real peer
      a.up.socket.end();
      const closed = await proxy.waitForLog((l) => l.msg === 'association closed');
      assert.equal((closed.toScp as { violations: number }).violations, 1);
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });
});
