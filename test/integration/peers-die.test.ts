// Peers that die mid-association, through the real proxy process: each ends in an A-ABORT to the other
// peer within a stated bound, one log line with the reason, another association on the same process
// unaffected, and nothing left open (the proxy's descriptors return to their baseline).
// - the SCP process SIGKILLed mid-transfer (DCMTK storescp, storescu sending 48 MiB): the kernel resets
//   the connection; bound: 2 s from the kill.
// - the SCU keeps its TCP window at zero (stops reading while C-FIND responses flow): --stall-timeout
//   (1 s here); bound: stall timeout + 2 s.
// - the SCP's host unreachable mid-transfer: storescp in a network namespace of the test's own, behind a
//   veth pair; every packet into that namespace is then dropped (iptables inside it, or the link taken
//   down). The proxy's writes toward it stop draining: --stall-timeout (1 s); bound: stall timeout + 2 s.
//   Skipped, with one line saying why, where network namespaces cannot be made (not root, no CAP_NET_ADMIN).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeAbort } from '../../src/pdu/control.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { C_ECHO_RQ } from '../fixtures/annotated-commands.js';
import { associate, exchange, release } from '../helpers/assoc.js';
import type { RawAssociation } from '../helpers/assoc.js';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { writeTestDicom } from '../helpers/dicom-file.js';
import { eventually, fdCount } from '../helpers/proc-stats.js';
import { killAll, spawnPeer } from '../helpers/procs.js';
import { freePort } from '../helpers/ports.js';
import { storescpArgs } from '../helpers/dcmtk.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import { FakeScp, withTimeout } from '../helpers/raw.js';

const MiB = 1024 * 1024;
const ABORT_NOT_SPECIFIED = encodeAbort(2, 0);
let tmp = '';
let big: TestDicomInfo;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'peers-die-'));
  big = await writeTestDicom(path.join(tmp, 'big.dcm'), { pixelBytes: 48 * MiB, seed: 193 });
});

after(async () => {
  await stopAllProxies();
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** The other association on the same proxy still exchanges and releases; the proxy's descriptors return to `baselineFds`. */
async function othersCarryOn(healthy: RawAssociation, pid: number, baselineFds: number): Promise<void> {
  await exchange(healthy);
  await release(healthy);
  await eventually(
    () => fdCount(pid) === baselineFds,
    5000,
    () => `fd count ${fdCount(pid)} back to ${baselineFds}`,
  );
}

describe('peers that die mid-association', { timeout: 120_000 }, () => {
  test('the SCP SIGKILLed mid-transfer: the SCU gets A-ABORT within 2 s, the reason is logged, the other route carries on', async (t) => {
    const outDir = path.join(tmp, 'killed');
    await mkdir(outDir);
    const scp = await startStorescp({ outDir, extraArgs: ['--ignore'] });
    t.after(() => scp.stop());
    const fake = await FakeScp.listen();
    t.after(() => fake.close());
    const proxy = await ProxyProcess.startRoutes(['--route', `127.0.0.1:0=127.0.0.1:${scp.port},id=a`, '--route', `127.0.0.1:0=127.0.0.1:${fake.port},id=b`], ['a', 'b']);
    t.after(() => proxy.stop());
    const pid = proxy.child.pid!;
    const baselineFds = fdCount(pid);
    const healthy = await associate(proxy.routePort('b'), fake);
    await exchange(healthy);

    // 5 x 48 MiB: still sending when the SCP is killed.
    const store = storescu({ port: proxy.routePort('a'), calledAet: scp.aet, files: [big.path!], debug: false, timeoutMs: 60_000, extraArgs: ['--repeat', '5'] });
    // Mid-transfer: the proxy has forwarded a few MiB of P-DATA-TF to the SCP.
    await proxy.waitForLog((l) => l.msg === 'association negotiated' && l.route === 'a');
    await new Promise((r) => setTimeout(r, 300));
    scp.peer.child.kill('SIGKILL');
    const killedAt = Date.now();
    const lost = await proxy.waitForLog((l) => l.route === 'a' && l.msg === 'connection lost: association aborted', 5000);
    assert.equal(lost.leg, 'scp');
    const r = await store;
    const elapsed = Date.now() - killedAt;
    assert.notEqual(r.code, 0, 'storescu reports the failure');
    assert.match(r.stdout + r.stderr, /Abort|abort|Peer aborted|connection/i, r.stderr.slice(-1500));
    assert.ok(elapsed < 2000, `storescu ended ${elapsed} ms after the kill (bound 2000 ms)`);
    const closed = await proxy.waitForLog((l) => l.route === 'a' && l.msg === 'association closed');
    assert.equal(closed.outcome, 'aborted');

    await othersCarryOn(healthy, pid, baselineFds);
  });

  test("the SCU's TCP window kept at zero during C-FIND responses: the SCP gets A-ABORT within --stall-timeout + 2 s, the SCU's connection is reset", async () => {
    const fake = await FakeScp.listen();
    const stallMs = 1000;
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${fake.port}`, '--stall-timeout', String(stallMs)]);
    try {
      const pid = proxy.child.pid!;
      const baselineFds = fdCount(pid);
      const healthy = await associate(proxy, fake);
      const victim = await associate(proxy, fake);
      const upBefore = victim.up.pdus().length;
      victim.scu.send(encodePData([{ contextId: 1, command: true, last: true, fragment: C_ECHO_RQ }]));
      await victim.up.waitForPdus(upBefore + 1);
      // The SCU stops reading; the SCP answers with 64 MiB (more than every socket buffer on the way holds).
      victim.scu.socket.pause();
      const response = encodePData([{ contextId: 1, command: false, last: false, fragment: Buffer.alloc(16372, 0x46) }]);
      let written = 0;
      let refusedAt = 0;
      const socket = victim.up.socket;
      while (written < 64 * MiB) {
        written += response.length;
        if (socket.write(response)) continue;
        // Wait for room; none within 500 ms means the proxy stopped reading from the SCP, because the SCU
        // stopped reading from the proxy: from here on the stall timer runs.
        const drained = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => {
            socket.off('drain', onDrain);
            resolve(false);
          }, 500);
          const onDrain = (): void => {
            clearTimeout(timer);
            resolve(true);
          };
          socket.once('drain', onDrain);
        });
        if (!drained) {
          refusedAt = Date.now() - 500;
          break;
        }
      }
      assert.ok(refusedAt > 0, 'the SCP could not write everything: backpressure reached it');
      await victim.up.waitForPdus(upBefore + 2, stallMs + 15_000);
      const elapsed = Date.now() - refusedAt;
      assert.ok(victim.up.pdus()[upBefore + 1]!.equals(ABORT_NOT_SPECIFIED), 'the SCP gets A-ABORT (2, 0)');
      assert.ok(elapsed < stallMs + 2000 + 3000, `A-ABORT ${elapsed} ms after the SCP's writes backed up (stall timeout ${stallMs} ms)`);
      const stalled = await proxy.waitForLog((l) => l.msg === 'peer stalled: association aborted');
      assert.equal(stalled.leg, 'scu');
      assert.match(String(stalled.reason), /SCU took no bytes for 1000 ms/);
      // The proxy closed both of its connections (the SCU's with a reset: it could not take an A-ABORT).
      await withTimeout(victim.up.ended, 5000, 'the proxy half-closing toward the SCP after the A-ABORT');
      victim.up.socket.end();
      const closed = await proxy.waitForLog((l) => l.msg === 'association closed' && l.outcome === 'aborted', 5000);
      victim.scu.socket.destroy();
      assert.match(String(closed.reason), /--stall-timeout/);

      await othersCarryOn(healthy, pid, baselineFds);
    } finally {
      await proxy.stop();
      await fake.close();
    }
  });

  test('the SCP host unreachable mid-transfer (packets dropped, network namespace): the SCU gets A-ABORT within --stall-timeout + 2 s, the other route carries on', async (t) => {
    const tag = `dpx${process.pid % 100000}`;
    const ns = `${tag}-ns`;
    const [hostIf, nsIf] = [`${tag}a`, `${tag}b`];
    const net24 = `10.251.${process.pid % 250}`;
    const [hostIp, scpIp] = [`${net24}.1`, `${net24}.2`];
    const sh = (args: string[]): { ok: boolean; out: string } => {
      const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8', timeout: 10_000 });
      return { ok: r.status === 0, out: `${r.stdout}${r.stderr}`.trim() };
    };
    const cleanup = (): void => {
      sh(['ip', 'netns', 'del', ns]); // deletes the veth pair with it
      sh(['ip', 'link', 'del', hostIf]);
    };
    cleanup();
    const setup = [
      ['ip', 'netns', 'add', ns],
      ['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf],
      ['ip', 'link', 'set', nsIf, 'netns', ns],
      ['ip', 'addr', 'add', `${hostIp}/30`, 'dev', hostIf],
      ['ip', 'link', 'set', hostIf, 'up'],
      ['ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', `${scpIp}/30`, 'dev', nsIf],
      ['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up'],
      ['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up'],
    ];
    for (const step of setup) {
      const r = sh(step);
      if (!r.ok) {
        cleanup();
        t.skip(`network namespaces not available here (${step.join(' ')}: ${r.out})`);
        return;
      }
    }
    t.after(cleanup);
    const outDir = path.join(tmp, 'unreachable');
    await mkdir(outDir);
    const port = await freePort();
    const scp = spawnPeer('ip', ['netns', 'exec', ns, 'storescp', ...storescpArgs({ outDir, port, bitPreserving: false, logLevel: 'quiet', extraArgs: ['--ignore'] })], {
      name: `storescp-in-${ns}`,
    });
    t.after(() => scp.kill(500).then(() => undefined));
    const deadline = Date.now() + 10_000;
    for (;;) {
      const up = await new Promise<boolean>((resolve) => {
        const sock = net.connect({ host: scpIp, port });
        sock.once('connect', () => (sock.destroy(), resolve(true)));
        sock.once('error', () => resolve(false));
      });
      if (up) break;
      assert.ok(Date.now() < deadline, 'storescp in the namespace accepts connections');
      await new Promise((r) => setTimeout(r, 100));
    }
    const fake = await FakeScp.listen();
    t.after(() => fake.close());
    const stallMs = 1000;
    const proxy = await ProxyProcess.startRoutes(
      ['--route', `127.0.0.1:0=${scpIp}:${port},id=a`, '--route', `127.0.0.1:0=127.0.0.1:${fake.port},id=b`, '--stall-timeout', String(stallMs)],
      ['a', 'b'],
    );
    t.after(() => proxy.stop());
    const pid = proxy.child.pid!;
    const baselineFds = fdCount(pid);
    const healthy = await associate(proxy.routePort('b'), fake);
    await exchange(healthy);

    // 20 x 48 MiB: still sending when the packets start being dropped, however fast the veth is.
    const store = storescu({ port: proxy.routePort('a'), calledAet: 'STORESCP', files: [big.path!], debug: false, timeoutMs: 60_000, extraArgs: ['--repeat', '20'] });
    await proxy.waitForLog((l) => l.msg === 'association negotiated' && l.route === 'a');
    await new Promise((r) => setTimeout(r, 300));
    // From now on nothing reaches the SCP's host: dropped inside its namespace (or its link is down).
    const dropped = sh(['ip', 'netns', 'exec', ns, 'iptables', '-A', 'INPUT', '-j', 'DROP']);
    const how = dropped.ok ? 'iptables DROP in the namespace' : (assert.ok(sh(['ip', 'link', 'set', hostIf, 'down']).ok), 'the veth link down');
    const droppedAt = Date.now();
    const stalled = await proxy.waitForLog((l) => l.route === 'a' && l.msg === 'peer stalled: association aborted', stallMs + 10_000);
    assert.equal(stalled.leg, 'scp');
    const r = await store;
    const elapsed = Date.now() - droppedAt;
    assert.notEqual(r.code, 0, 'storescu reports the failure');
    assert.ok(elapsed < stallMs + 2000, `storescu ended ${elapsed} ms after the packets were dropped (${how}; bound ${stallMs + 2000} ms)`);
    t.diagnostic(`${how}: storescu ended ${elapsed} ms after`);
    const closed = await proxy.waitForLog((l) => l.route === 'a' && l.msg === 'association closed', 5000);
    assert.equal(closed.outcome, 'aborted');

    await othersCarryOn(healthy, pid, baselineFds);
  });
});
