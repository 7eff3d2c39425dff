// Hostile input at every stage ends in an A-ABORT or a close, the proxy process stays up,
// a healthy association running in parallel is untouched, and the proxy's memory stays bounded.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { encodeAbort, encodeReleaseRq } from '../../src/pdu/control.js';
import { encodePData, singlePdvHeader } from '../../src/pdu/pdata.js';
import type { RawAssociation } from '../helpers/assoc.js';
import { associate, exchange, release } from '../helpers/assoc.js';
import { rssBytes } from '../helpers/proc-stats.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import { FakeScp, RawPeer, buildAc, buildRq, pdvsOf, splitPdus } from '../helpers/raw.js';

after(stopAllProxies);

const ABORT_UNRECOGNIZED = encodeAbort(2, 1);
const ABORT_UNEXPECTED = encodeAbort(2, 2);
const ABORT_INVALID = encodeAbort(2, 6);
const ABORT_NOT_SPECIFIED = encodeAbort(2, 0);
const MiB = 1024 * 1024;
/** How much the proxy's RSS may grow over the whole table (it streams: nothing here should buffer much). */
const RSS_GROWTH_LIMIT = 64 * MiB;

function pduHeader(type: number, length: number): Buffer {
  const b = Buffer.alloc(6);
  b[0] = type;
  b.writeUInt32BE(length, 2);
  return b;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Write `bytes` one byte at a time, each in its own TCP segment. */
async function dribble(peer: RawPeer, bytes: Buffer): Promise<void> {
  for (let i = 0; i < bytes.length; i++) {
    peer.send(bytes.subarray(i, i + 1));
    await sleep(1);
  }
}

/** The peer got exactly `abort` as its next PDU after `before` PDUs, then a FIN; answer it with ours. */
async function expectAbort(peer: RawPeer, before: number, abort: Buffer): Promise<void> {
  const pdus = await peer.waitForPdus(before + 1);
  assert.deepEqual(pdus[before], abort);
  await peer.ended;
  peer.socket.end();
}

interface HostileCase {
  name: string;
  /** Error code the proxy logs (warn, 'protocol error: ...'), when it is a protocol error. */
  code?: string;
  /** Establish an association first (through the fake SCP) and attack from inside it. */
  established: boolean;
  /** Not established, yet the SCP is reached (the case is about the A-ASSOCIATE-AC). */
  contactsUpstream?: boolean;
  run(scu: RawPeer, assoc: RawAssociation | undefined, scp: FakeScp): Promise<void>;
}

const RQ = buildRq({ maxLength: 16384 });

const cases: HostileCase[] = [
  {
    name: 'non-DICOM bytes (an HTTP request)',
    code: 'unknown-pdu-type',
    established: false,
    async run(scu) {
      scu.send(Buffer.from('GET / HTTP/1.1\r\nHost: pacs\r\n\r\n'));
      await expectAbort(scu, 0, ABORT_UNRECOGNIZED);
    },
  },
  {
    name: 'unknown PDU type 0x0F with a body',
    code: 'unknown-pdu-type',
    established: false,
    async run(scu) {
      scu.send(Buffer.concat([pduHeader(0x0f, 16), Buffer.alloc(16)]));
      await expectAbort(scu, 0, ABORT_UNRECOGNIZED);
    },
  },
  {
    name: 'A-ASSOCIATE-RQ PDU-length too small (10)',
    code: 'association-pdu-too-short',
    established: false,
    async run(scu) {
      scu.send(Buffer.concat([pduHeader(0x01, 10), Buffer.alloc(10)]));
      await expectAbort(scu, 0, ABORT_INVALID);
    },
  },
  {
    name: 'A-ASSOCIATE-RQ claiming 4 GiB',
    code: 'association-pdu-too-long',
    established: false,
    async run(scu) {
      scu.send(Buffer.concat([pduHeader(0x01, 0xffffffff), RQ.subarray(6)]));
      await expectAbort(scu, 0, ABORT_INVALID);
    },
  },
  {
    // A Maximum Length of 1..7 leaves no room for an even fragment: nothing can be sent within it.
    name: 'A-ASSOCIATE-RQ announcing Maximum Length 4',
    code: 'max-length-too-small',
    established: false,
    async run(scu) {
      scu.send(buildRq({ maxLength: 4 }));
      await expectAbort(scu, 0, ABORT_INVALID);
    },
  },
  {
    name: 'A-ASSOCIATE-AC announcing Maximum Length 7 (the SCP side)',
    code: 'max-length-too-small',
    established: false,
    contactsUpstream: true,
    async run(scu, _assoc, scp) {
      scu.send(RQ);
      const up = await scp.nextPeer();
      await up.waitForPdus(1);
      up.send(buildAc({ maxLength: 7 }));
      await Promise.all([expectAbort(scu, 0, ABORT_INVALID), expectAbort(up, 1, ABORT_INVALID)]);
    },
  },
  {
    name: 'A-ABORT with an inconsistent PDU-length (5)',
    code: 'fixed-pdu-length',
    established: false,
    async run(scu) {
      scu.send(Buffer.concat([pduHeader(0x07, 5), Buffer.alloc(5)]));
      await expectAbort(scu, 0, ABORT_INVALID);
    },
  },
  {
    name: 'an item overrunning its PDU',
    code: 'item-overrun',
    established: false,
    async run(scu) {
      const rq = Buffer.from(RQ);
      rq.writeUInt16BE(0xfff0, 74 + 2);
      scu.send(rq);
      await expectAbort(scu, 0, ABORT_INVALID);
    },
  },
  {
    name: 'P-DATA-TF before any association (claiming 4 GiB)',
    code: 'unexpected-pdu',
    established: false,
    async run(scu) {
      scu.send(Buffer.concat([pduHeader(0x04, 0xffffffff), singlePdvHeader(1000, 1, 0), Buffer.alloc(1000)]));
      await expectAbort(scu, 0, ABORT_UNEXPECTED);
    },
  },
  {
    name: 'a truncated A-ASSOCIATE-RQ, then close',
    established: false,
    async run(scu) {
      scu.send(RQ.subarray(0, 40));
      scu.socket.end();
      await scu.waitClosed();
      assert.equal(scu.receivedLength, 0, 'nothing to answer: the proxy just closes');
    },
  },
  {
    name: 'a second A-ASSOCIATE-RQ',
    code: 'unexpected-pdu',
    established: true,
    async run(scu, a) {
      scu.send(RQ);
      await Promise.all([expectAbort(scu, 1, ABORT_UNEXPECTED), expectAbort(a!.up, 1, ABORT_UNEXPECTED)]);
    },
  },
  {
    name: 'PDV item length below 2',
    code: 'pdv-too-short',
    established: true,
    async run(scu, a) {
      scu.send(Buffer.concat([pduHeader(0x04, 6), Buffer.from([0, 0, 0, 1, 1, 0])]));
      await Promise.all([expectAbort(scu, 1, ABORT_INVALID), expectAbort(a!.up, 1, ABORT_INVALID)]);
    },
  },
  {
    name: 'PDV item length beyond its PDU',
    code: 'pdv-overrun',
    established: true,
    async run(scu, a) {
      scu.send(Buffer.concat([pduHeader(0x04, 20), singlePdvHeader(100, 1, 3).subarray(6), Buffer.alloc(14)]));
      await Promise.all([expectAbort(scu, 1, ABORT_INVALID), expectAbort(a!.up, 1, ABORT_INVALID)]);
    },
  },
  {
    name: 'P-DATA-TF too short to hold a PDV',
    code: 'pdata-too-short',
    established: true,
    async run(scu, a) {
      scu.send(Buffer.concat([pduHeader(0x04, 3), Buffer.alloc(3)]));
      await Promise.all([expectAbort(scu, 1, ABORT_INVALID), expectAbort(a!.up, 1, ABORT_INVALID)]);
    },
  },
  {
    name: 'a PDV on a presentation context the AC did not accept (id 3)',
    code: 'unknown-context-id',
    established: true,
    async run(scu, a) {
      scu.send(encodePData([{ contextId: 3, command: true, last: true, fragment: Buffer.alloc(32) }]));
      await Promise.all([expectAbort(scu, 1, ABORT_INVALID), expectAbort(a!.up, 1, ABORT_INVALID)]);
      assert.equal(a!.up.pdus().length, 2, 'nothing of the bad P-DATA-TF reached the SCP');
    },
  },
  {
    name: 'the SCP answering on a context id the AC did not accept (id 5)',
    code: 'unknown-context-id',
    established: true,
    async run(scu, a) {
      a!.up.send(encodePData([{ contextId: 5, command: true, last: true, fragment: Buffer.alloc(32) }]));
      await Promise.all([expectAbort(scu, 1, ABORT_INVALID), expectAbort(a!.up, 1, ABORT_INVALID)]);
    },
  },
  {
    name: 'an unknown PDU type mid-association',
    code: 'unknown-pdu-type',
    established: true,
    async run(scu, a) {
      scu.send(pduHeader(0x55, 0));
      await Promise.all([expectAbort(scu, 1, ABORT_UNRECOGNIZED), expectAbort(a!.up, 1, ABORT_UNRECOGNIZED)]);
    },
  },
  {
    name: 'a P-DATA-TF 64 times over the announced maximum is repaired, not refused',
    established: true,
    async run(scu, a) {
      const payload = Buffer.alloc(MiB);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 7 + 3) & 0xff;
      scu.send(encodePData([{ contextId: 1, command: false, last: true, fragment: payload }]));
      const pieces = Math.ceil(MiB / 16378);
      const up = await a!.up.waitForPdus(1 + pieces);
      const data = up.slice(1);
      assert.ok(
        data.every((p) => p.length - 6 <= 16384),
        'every PDU within the SCP limit',
      );
      assert.deepEqual(Buffer.concat(data.flatMap(pdvsOf).map((p) => p.fragment)), payload);
      scu.send(encodeReleaseRq());
      await a!.up.waitForPdus(2 + pieces);
      a!.up.destroy(); // the SCP vanishes: the SCU gets A-ABORT
      await expectAbort(scu, 1, ABORT_NOT_SPECIFIED);
    },
  },
  {
    name: 'byte-by-byte dribbling of the RQ and of a P-DATA-TF works',
    established: false,
    async run(scu, _a, scp) {
      // Not an attack that must fail: a slow sender is still served, just slowly.
      await dribble(scu, RQ);
      const up = await scp.nextPeer();
      const [rq] = await up.waitForPdus(1);
      assert.deepEqual(rq, RQ);
      up.send(buildAc({ maxLength: 16384 }));
      await scu.waitForPdus(1);
      const data = encodePData([{ contextId: 1, command: true, last: true, fragment: Buffer.from('dribbled, one byte at a time!!') }]);
      await dribble(scu, data);
      const got = await up.waitForPdus(2);
      assert.deepEqual(got[1], data);
      await release({ scu, up });
    },
  },
];

describe('hostile input through a running proxy', () => {
  let scp: Awaited<ReturnType<typeof FakeScp.listen>>;
  let proxy: ProxyProcess;
  let healthy: RawAssociation;
  let baselineRss = 0;
  let peakRss = 0;

  before(async () => {
    scp = await FakeScp.listen();
    proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`]);
    healthy = await associate(proxy, scp);
    // Many waits on one long-lived peer and one process: not a leak.
    healthy.scu.socket.setMaxListeners(0);
    healthy.up.socket.setMaxListeners(0);
    proxy.child.setMaxListeners(0);
    await exchange(healthy);
    baselineRss = rssBytes(proxy.child.pid!);
  });

  after(async () => {
    await proxy.stop();
    await scp.close();
  });

  let assoc = 1; // the healthy association is 1
  for (const c of cases) {
    test(c.name, async () => {
      const id = ++assoc;
      const upstreamBefore = scp.peers.length;
      let scu: RawPeer;
      let a: RawAssociation | undefined;
      if (c.established) {
        a = await associate(proxy, scp);
        scu = a.scu;
      } else {
        scu = await RawPeer.connect(proxy.port);
      }
      await c.run(scu, a, scp);
      await scu.waitClosed();
      const closed = await proxy.waitForLog((l) => l.msg === 'association closed' && l.assoc === id);
      if (c.code) {
        const warn = await proxy.waitForLog((l) => l.assoc === id && l.msg.startsWith('protocol error'));
        assert.equal(warn.code, c.code);
        assert.equal(closed.outcome, 'aborted');
        if (!c.established && !c.contactsUpstream) assert.equal(scp.peers.length, upstreamBefore, 'the upstream was never contacted');
      }
      // The process is alive, the parallel association still carries messages, memory stays bounded.
      assert.equal(proxy.child.exitCode, null);
      await exchange(healthy);
      const rss = rssBytes(proxy.child.pid!);
      peakRss = Math.max(peakRss, rss);
      assert.ok(rss - baselineRss < RSS_GROWTH_LIMIT, `RSS ${rss} grew more than ${RSS_GROWTH_LIMIT} over ${baselineRss}`);
    });
  }

  test('the healthy association releases normally; no internal errors were logged', async (t) => {
    await release(healthy);
    const closed = await proxy.waitForLog((l) => l.msg === 'association closed' && l.assoc === 1);
    assert.equal(closed.outcome, 'released');
    assert.equal(proxy.logs.filter((l) => String(l.reason ?? '').includes('internal error')).length, 0);
    assert.ok(
      proxy.logs.every((l) => l.level < 50),
      'no error or fatal log lines',
    );
    assert.ok(peakRss > 0);
    t.diagnostic(`proxy RSS ${(baselineRss / MiB).toFixed(1)} MiB at the start, peak ${(peakRss / MiB).toFixed(1)} MiB over ${cases.length} hostile cases`);
  });
});

describe('a 4 GiB P-DATA-TF claim followed by a stall', () => {
  test('is streamed with bounded memory, and --idle-timeout ends it with A-ABORT', async (t) => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--idle-timeout', '1500']);
    try {
      const a = await associate(proxy, scp);
      const baseline = rssBytes(proxy.child.pid!);
      const claim = 0xfffffff0;
      a.scu.send(Buffer.concat([pduHeader(0x04, claim), singlePdvHeader(claim - 6, 1, 0).subarray(6)]));
      // 32 MiB of it, with backpressure, then silence.
      const block = Buffer.alloc(MiB, 0x42);
      for (let i = 0; i < 32; i++) {
        if (!a.scu.socket.write(block)) await new Promise((r) => a.scu.socket.once('drain', r));
      }
      const sentAt = Date.now();
      const pieces = Math.floor((32 * MiB) / 16378);
      // Re-fragmented to the SCP's 16384 as it streams (counted in bytes: splitting 32 MiB per chunk is slow).
      await a.up.waitForBytes(RQ.length + pieces * (16384 + 6), 20_000);
      const rss = rssBytes(proxy.child.pid!);
      assert.ok(rss - baseline < RSS_GROWTH_LIMIT, `RSS grew by ${rss - baseline} bytes while streaming 32 MiB`);
      t.diagnostic(`proxy RSS ${(baseline / MiB).toFixed(1)} MiB before, ${(rss / MiB).toFixed(1)} MiB after 32 MiB of a 4 GiB P-DATA-TF`);
      // Silence: the idle timeout aborts. The SCU gets a framed A-ABORT; the SCP, mid-PDU, a reset or an A-ABORT.
      await expectAbort(a.scu, 1, ABORT_NOT_SPECIFIED);
      await Promise.race([a.up.ended, a.up.closed]);
      if (splitPdus(a.up.bytes).rest.length === 0) {
        assert.deepEqual(a.up.pdus().at(-1), ABORT_NOT_SPECIFIED, 'at a PDU boundary the SCP gets a framed A-ABORT');
        a.up.socket.end();
      } else {
        await a.up.closed; // mid-PDU, an A-ABORT cannot be framed: the connection is reset
        assert.ok(a.up.socket.destroyed);
      }
      await a.up.waitClosed();
      assert.ok(Date.now() - sentAt >= 1000, 'not before the idle timeout');
      const aborted = await proxy.waitForLog((l) => l.msg === 'association aborted by the proxy');
      assert.match(String(aborted.reason), /idle/);
      assert.equal(proxy.child.exitCode, null);
    } finally {
      await proxy.stop();
      await scp.close();
    }
  });
});
