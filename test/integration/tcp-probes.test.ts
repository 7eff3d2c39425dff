// TCP probes (a load balancer's or Kubernetes' TCP check, `nc -z`, `echo >/dev/tcp/HOST/PORT`) against a
// plain and a TLS listener: connections that open and close without an A-ASSOCIATE-RQ, some with a stray
// byte, some never closed by the client. The proxy's descriptors come back to their baseline within
// --artim-timeout, --max-pending bounds silent connections on a TLS listener as on a plain one (handshakes in
// progress count), and SIGTERM with all of that open still ends within --drain-timeout + 2 s while a
// transfer in flight finishes.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { dcmtkTls, makeTestPki } from '../helpers/certs.js';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeTestDicom } from '../helpers/dicom-file.js';
import type { TestPki } from '../helpers/certs.js';
import { eventually, socketCount } from '../helpers/proc-stats.js';
import { killAll } from '../helpers/procs.js';
import { LOG_WAIT_MS, ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import { FakeScp, buildRq } from '../helpers/raw.js';

let pki: TestPki;

before(() => {
  pki = makeTestPki();
});

after(async () => {
  await stopAllProxies();
  await killAll();
  pki?.remove();
});

const ARTIM_MS = 2000;

/** Open `count` connections, `parallel` at a time; each sends `stray` (if any) and closes at once. */
async function probe(port: number, count: number, stray: Buffer | undefined, parallel = 50): Promise<void> {
  let started = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      // As `nc -z` does: close() at once (the client does not wait for the proxy's FIN).
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        if (stray) s.write(stray, () => s.destroy());
        else s.destroy();
      });
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.resume();
    });
  const lane = async (): Promise<void> => {
    while (started < count) {
      started++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
}

/** Connections opened and held (nothing sent); resolves once all are connected. */
async function hold(port: number, count: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  for (let i = 0; i < count; i++) {
    sockets.push(
      await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
        s.on('error', () => undefined);
        s.once('error', reject);
        s.resume();
      }),
    );
  }
  return sockets;
}

function tlsArgs(): string[] {
  return ['--tls-cert', pki.proxy.cert, '--tls-key', pki.proxy.key];
}

async function startProxy(scp: FakeScp & { port: number }, extra: string[]): Promise<{ proxy: ProxyProcess; pid: number; baseline: number }> {
  const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--artim-timeout', String(ARTIM_MS), ...extra]);
  const pid = proxy.child.pid!;
  return { proxy, pid, baseline: socketCount(pid) };
}

// The waits below are bounded by LOG_WAIT_MS beyond what the proxy is given (--artim-timeout): they start when
// the test's last probe ends, and a starved proxy may still be accepting and closing the thousand connections
// then (2 sockets of 1,000 were still open 7 s after, once, at load 14 on 2 shared cores under nice 10). The
// defect this guards against kept its sockets for good (CLOSE-WAIT 130 s later): it still fails.
for (const kind of ['plain', 'tls'] as const) {
  describe(`TCP probes on a ${kind} listener`, () => {
    test('1,000 open/close probes, half with a stray byte: sockets back to the baseline within --artim-timeout', async () => {
      const scp = await FakeScp.listen();
      try {
        const { proxy, pid, baseline } = await startProxy(scp, kind === 'tls' ? tlsArgs() : []);
        await probe(proxy.port, 500, undefined);
        await probe(proxy.port, 500, Buffer.from('\n'));
        await eventually(
          () => socketCount(pid) <= baseline,
          ARTIM_MS + LOG_WAIT_MS,
          () => `sockets back to ${baseline} (now ${socketCount(pid)})`,
        );
        assert.equal(await proxy.stop(10_000, 5000), 0);
      } finally {
        await scp.close();
      }
    });

    test('--max-pending 100 holds 300 silent connections to about 100 sockets, and they go when the clients close', async () => {
      const scp = await FakeScp.listen();
      try {
        const { proxy, pid, baseline } = await startProxy(scp, [...(kind === 'tls' ? tlsArgs() : []), '--max-pending', '100', '--artim-timeout', '60000']);
        const held = await hold(proxy.port, 300);
        // Each new connection beyond the bound closes the oldest: at most 100 pending at a time (+1 for the one
        // being accepted when the oldest is closed).
        await eventually(
          () => socketCount(pid) <= baseline + 101,
          LOG_WAIT_MS,
          () => `at most ${baseline + 101} sockets (now ${socketCount(pid)})`,
        );
        for (const s of held) s.destroy();
        await eventually(
          () => socketCount(pid) <= baseline,
          LOG_WAIT_MS,
          () => `sockets back to ${baseline} (now ${socketCount(pid)})`,
        );
        assert.equal(await proxy.stop(10_000, 5000), 0);
      } finally {
        await scp.close();
      }
    });
  });
}

/** A TLS association that negotiates (A-ASSOCIATE-RQ, AC back) and then stays idle, never closing by itself. */
async function idleTlsAssociation(port: number): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(pki.ca), cert: fs.readFileSync(pki.modality.cert), key: fs.readFileSync(pki.modality.key) });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  socket.write(buildRq({ called: 'STORESCP', calling: 'IDLE', maxLength: 16384 }));
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  return socket;
}

for (const workers of [1, 2]) {
  describe(`SIGTERM with probes, handshakes, idle associations and a transfer in flight (--workers ${workers})`, () => {
    test('the transfer finishes and the process exits within --drain-timeout + 2 s', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-probes-'));
      fs.mkdirSync(path.join(dir, 'in'), { recursive: true });
      const scp = await startStorescp({ outDir: path.join(dir, 'in'), logLevel: 'quiet', extraArgs: ['--fork'] });
      const images: string[] = [];
      for (let i = 0; i < 4; i++) {
        images.push(path.join(dir, `image-${i}.dcm`));
        await writeTestDicom(images[i]!, { pixelBytes: 8_000_000, seed: 400 + i });
      }
      const drainMs = 8000;
      const proxy = await ProxyProcess.start([
        '--upstream',
        `127.0.0.1:${scp.port}`,
        ...tlsArgs(),
        '--drain-timeout',
        String(drainMs),
        '--metrics',
        '127.0.0.1:0',
        '--artim-timeout',
        '60000',
        // The transfer takes about 2 s: in flight when SIGTERM comes, over well before the drain timeout.
        '--bandwidth-to-scp',
        '16MB/s',
        ...(workers > 1 ? ['--workers', String(workers)] : []),
      ]);
      try {
        // A probe that sent one byte and closed, silent connections held open (TLS handshakes that never
        // start), idle associations that never close.
        await probe(proxy.port, 5, Buffer.from('\n'));
        const held = await hold(proxy.port, 5);
        const idle = [await idleTlsAssociation(proxy.port), await idleTlsAssociation(proxy.port)];
        const transfer = storescu({ port: proxy.port, files: images, extraArgs: dcmtkTls(pki.modality, pki.ca), timeoutMs: 60_000 });
        // The two idle associations and storescu's.
        await eventually(
          () => proxy.logs.filter((l) => l.msg === 'association negotiated').length >= 3,
          20_000,
          () => `three associations negotiated: ${JSON.stringify(proxy.logs.map((l) => [l.msg, l.reason, l.detail]))}`,
        );
        const t0 = Date.now();
        proxy.child.kill('SIGTERM');
        // Bounded here too: a proxy that never stops fails the test instead of hanging it.
        const code = await new Promise<number | null | 'running'>((resolve) => {
          if (proxy.child.exitCode !== null) return resolve(proxy.child.exitCode);
          const timer = setTimeout(() => resolve('running'), drainMs + 10_000);
          proxy.child.once('exit', (c) => (clearTimeout(timer), resolve(c)));
        });
        const took = Date.now() - t0;
        const result = await transfer;
        for (const s of held) s.destroy();
        for (const s of idle) s.destroy();
        assert.ok(took <= drainMs + 2000, `exited after ${took} ms (bound ${drainMs + 2000})`);
        assert.equal(result.code, 0, `the transfer in flight finished: ${result.stdout}${result.stderr}`);
        assert.equal(scp.receivedFiles().length, images.length, 'every image stored');
        assert.equal(code, 1, 'exit status 1: the idle associations were cut short at the drain timeout');
      } finally {
        await proxy.stop();
        await scp.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
