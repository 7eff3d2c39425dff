// DICOM TLS through the proxy, against DCMTK's own TLS (storescu/storescp +tls): TLS toward the SCU only,
// toward the SCP only, and on both legs with client certificates required on both; the data sets arrive
// bit for bit. Refused handshakes (no client certificate, a certificate from another CA, an expired one,
// plaintext on the TLS port, an SCP whose certificate does not verify) are one warn line each, counted in
// the metrics, and the proxy serves the next association normally. Then the health endpoints, draining.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { associate, release } from '../helpers/assoc.js';
import { dcmtkTls, makeTestPki } from '../helpers/certs.js';
import type { TestPki } from '../helpers/certs.js';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import type { Storescp } from '../helpers/dcmtk.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import { eventually } from '../helpers/proc-stats.js';
import { killAll } from '../helpers/procs.js';
import type { RunResult } from '../helpers/procs.js';
import { ProxyProcess, freePort, stopAllProxies } from '../helpers/proxy.js';
import type { LogLine } from '../helpers/proxy.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { FakeScp, RawPeer, buildAc, buildRq } from '../helpers/raw.js';

let pki: TestPki;
let dir: string;
let seed = 15;

before(() => {
  pki = makeTestPki();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-tls-'));
});

/** A new 1.5 MB image (its own SOP instance: storescp writes a new file for each). */
async function newImage(): Promise<string> {
  const file = path.join(dir, `image-${++seed}.dcm`);
  await writeTestDicom(file, { pixelBytes: 1_500_000, seed });
  return file;
}

after(async () => {
  await stopAllProxies();
  await killAll();
  pki?.remove();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function outDir(name: string): string {
  const d = path.join(dir, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

/** storescp wrote one more file, holding exactly the data set of `image`. */
function assertReceivedIntact(scp: Storescp, image: string): void {
  const files = scp.receivedFiles();
  const fresh = files.filter((f) => !receivedBefore.get(scp)?.has(f));
  receivedBefore.set(scp, new Set(files));
  assert.equal(fresh.length, 1, 'one more file stored');
  assert.ok(datasetBytes(fresh[0]!).equals(datasetBytes(image)), 'data set bit-identical');
}
const receivedBefore = new Map<Storescp, Set<string>>();

function ok(r: RunResult, what: string): void {
  assert.equal(r.code, 0, `${what}: storescu exit ${r.code}\n${r.stdout}${r.stderr}`);
}

function failed(r: RunResult, what: string): void {
  assert.notEqual(r.code, 0, `${what}: storescu should have failed\n${r.stdout}${r.stderr}`);
}

/** The next 'TLS handshake failed' line after `seen` of them, on `leg`. */
async function handshakeFailure(proxy: ProxyProcess, seen: number, leg: 'scu' | 'scp'): Promise<LogLine> {
  const lines = (): LogLine[] => proxy.logs.filter((l) => l.msg === 'TLS handshake failed: connection closed');
  await eventually(
    () => lines().length > seen,
    10_000,
    () => `a handshake failure line; logs: ${JSON.stringify(proxy.logs.slice(-5))}`,
  );
  const line = lines()[seen]!;
  assert.equal(line.level, 40, 'warn');
  assert.equal(line.leg, leg);
  return line;
}

interface LegTls {
  version: string;
  cipher: string;
  peerSubject?: string;
}

function legTls(line: LogLine, leg: 'scu' | 'scp'): LegTls {
  const t = (line.tls as Record<string, LegTls> | undefined)?.[leg];
  assert.ok(t, `tls.${leg} in ${line.msg}: ${JSON.stringify(line)}`);
  assert.match(t.version, /^TLSv1\.[23]$/);
  assert.match(t.cipher, /^TLS_/);
  return t;
}

describe('TLS toward the SCU (terminate), client certificates required', () => {
  let scp: Storescp;
  let proxy: ProxyProcess;

  before(async () => {
    scp = await startStorescp({ outDir: outDir('terminate') });
    proxy = await ProxyProcess.start([
      '--upstream',
      `127.0.0.1:${scp.port}`,
      '--tls-cert',
      pki.proxy.cert,
      '--tls-key',
      pki.proxy.key,
      '--tls-ca',
      pki.ca,
      '--tls-client-auth',
      'required',
      '--metrics',
      '127.0.0.1:0',
    ]);
    await proxy.waitForLog((l) => l.msg === 'metrics listening');
  });

  test('storescu +tls with its certificate: stored bit for bit; the log names the version, suite and subject', async () => {
    const image = await newImage();
    ok(await storescu({ port: proxy.port, files: [image], extraArgs: dcmtkTls(pki.modality, pki.ca) }), 'modality');
    assertReceivedIntact(scp, image);
    const requested = await proxy.waitForLog((l) => l.msg === 'association requested');
    assert.equal(legTls(requested, 'scu').peerSubject, 'CN=modality');
    const negotiated = await proxy.waitForLog((l) => l.msg === 'association negotiated');
    legTls(negotiated, 'scu');
    assert.equal((negotiated.tls as Record<string, unknown>).scp, undefined, 'the SCP leg is plain');
  });

  test('refused: no certificate, another CA, expired, plaintext; each one warn line; then the next SCU is served', async () => {
    let seen = 0;
    const image = await newImage();
    // A TLS client without a certificate (DCMTK's tools always send one with +tls): it sends an RQ, which
    // must never reach the SCP.
    const scpConnections = scp.receivedFiles().length;
    await new Promise<void>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: proxy.port, ca: fs.readFileSync(pki.ca) }, () => s.write(buildRq({ maxLength: 16384 })));
      s.on('data', () => assert.fail('no reply to a client without a certificate'));
      s.on('error', () => undefined);
      s.on('close', () => resolve());
    });
    assert.equal((await handshakeFailure(proxy, seen++, 'scu')).reason, 'no_client_certificate');

    failed(await storescu({ port: proxy.port, files: [image], extraArgs: dcmtkTls(pki.stranger, pki.ca) }), 'stranger');
    const stranger = await handshakeFailure(proxy, seen++, 'scu');
    assert.equal(stranger.reason, 'unknown_ca');
    assert.match(String(stranger.detail), /CN=stranger/);

    failed(await storescu({ port: proxy.port, files: [image], extraArgs: dcmtkTls(pki.expired, pki.ca) }), 'expired');
    assert.equal((await handshakeFailure(proxy, seen++, 'scu')).reason, 'expired');

    failed(await storescu({ port: proxy.port, files: [image] }), 'plaintext');
    assert.equal((await handshakeFailure(proxy, seen, 'scu')).reason, 'plaintext');

    assert.equal(scp.receivedFiles().length, scpConnections, 'nothing reached the SCP');
    assert.equal(proxy.logs.filter((l) => l.msg === 'association requested').length, 1, 'no association for a refused handshake');

    ok(await storescu({ port: proxy.port, files: [image], extraArgs: dcmtkTls(pki.modality, pki.ca) }), 'modality again');
    assertReceivedIntact(scp, image);

    const metrics = await (await fetch(proxy.metricsUrl)).text();
    for (const reason of ['no_client_certificate', 'unknown_ca', 'expired', 'plaintext']) {
      assert.match(metrics, new RegExp(`^dicom_pdu_proxy_tls_handshake_failures_total\\{route="default",leg="scu",reason="${reason}"\\} 1$`, 'm'), reason);
    }
  });

  test('SIGTERM: exit 0', async () => {
    assert.equal(await proxy.stop(), 0);
  });
});

describe('TLS toward the SCP (originate)', () => {
  let scp: Storescp;
  let stranger: Storescp;
  let proxy: ProxyProcess;

  before(async () => {
    // -ic: these SCPs ask for no client certificate.
    scp = await startStorescp({ outDir: outDir('originate'), extraArgs: ['+tls', pki.scp.key, pki.scp.cert, '-pw', '-ic'] });
    stranger = await startStorescp({ outDir: outDir('stranger'), extraArgs: ['+tls', pki.stranger.key, pki.stranger.cert, '-pw', '-ic'] });
    const [strangerPort, misnamedPort, insecurePort] = [await freePort(), await freePort(), await freePort()];
    proxy = await ProxyProcess.start([
      '--upstream',
      `127.0.0.1:${scp.port}`,
      '--upstream-tls',
      '--upstream-tls-ca',
      pki.ca,
      '--route',
      `127.0.0.1:${strangerPort}=127.0.0.1:${stranger.port},id=stranger`,
      '--route',
      `127.0.0.1:${misnamedPort}=127.0.0.1:${scp.port},upstream-tls-servername=pacs.example,id=misnamed`,
      '--route',
      `127.0.0.1:${insecurePort}=127.0.0.1:${stranger.port},upstream-tls-insecure=true,id=insecure`,
      '--metrics',
      '127.0.0.1:0',
    ]);
    await proxy.waitForLog((l) => l.msg === 'listening' && l.route === 'insecure');
    await proxy.waitForLog((l) => l.msg === 'metrics listening');
  });

  test('plain storescu → proxy → storescp +tls: stored bit for bit; the SCP leg is logged', async () => {
    const image = await newImage();
    ok(await storescu({ port: proxy.port, files: [image] }), 'plain SCU');
    assertReceivedIntact(scp, image);
    const negotiated = await proxy.waitForLog((l) => l.msg === 'association negotiated');
    assert.equal(legTls(negotiated, 'scp').peerSubject, 'CN=storescp.test');
    assert.equal((negotiated.tls as Record<string, unknown>).scu, undefined, 'the SCU leg is plain');
  });

  test('an SCP whose certificate does not verify: the SCU gets A-ASSOCIATE-RJ, one warn line; the next association is served', async () => {
    const image = await newImage();
    const r = await storescu({ port: proxy.routePort('stranger'), files: [image] });
    failed(r, 'stranger SCP');
    assert.match(r.stdout + r.stderr, /Association Rejected/);
    const line = await handshakeFailure(proxy, 0, 'scp');
    assert.equal(line.reason, 'unknown_ca');
    assert.equal(line.route, 'stranger');
    assert.equal(stranger.receivedFiles().length, 0);

    const m = await storescu({ port: proxy.routePort('misnamed'), files: [image] });
    failed(m, 'misnamed');
    assert.equal((await handshakeFailure(proxy, 1, 'scp')).reason, 'name_mismatch');

    ok(await storescu({ port: proxy.port, files: [image] }), 'plain SCU again');
    assertReceivedIntact(scp, image);
    const metrics = await (await fetch(proxy.metricsUrl)).text();
    assert.match(metrics, /^dicom_pdu_proxy_tls_handshake_failures_total\{route="stranger",leg="scp",reason="unknown_ca"\} 1$/m);
    assert.match(metrics, /^dicom_pdu_proxy_tls_handshake_failures_total\{route="misnamed",leg="scp",reason="name_mismatch"\} 1$/m);
  });

  test('--upstream-tls-insecure: a warning at start-up, and the unverified SCP is reached', async () => {
    const warning = await proxy.waitForLog((l) => l.route === 'insecure' && /NOT verified/.test(l.msg));
    assert.equal(warning.level, 40);
    assert.equal(proxy.logs.filter((l) => /NOT verified/.test(l.msg)).length, 1, 'only the insecure route warns');
    const image = await newImage();
    ok(await storescu({ port: proxy.routePort('insecure'), files: [image] }), 'insecure route');
    assertReceivedIntact(stranger, image);
    assert.equal(await proxy.stop(), 0);
  });
});

describe('TLS on both legs, client certificates required on both (ATNA)', () => {
  test('storescu +tls → proxy → storescp +tls -rc: stored bit for bit, both legs logged', async () => {
    const scp = await startStorescp({ outDir: outDir('both'), extraArgs: [...dcmtkTls(pki.scp, pki.ca), '-rc'] });
    const proxy = await ProxyProcess.start([
      '--upstream',
      `127.0.0.1:${scp.port}`,
      '--tls-cert',
      pki.proxy.cert,
      '--tls-key',
      pki.proxy.key,
      '--tls-ca',
      pki.ca,
      '--tls-client-auth',
      'required',
      '--upstream-tls',
      '--upstream-tls-ca',
      pki.ca,
      '--upstream-tls-cert',
      pki.proxy.cert,
      '--upstream-tls-key',
      pki.proxy.key,
    ]);
    const images = [await newImage(), await newImage()];
    ok(await storescu({ port: proxy.port, files: images, extraArgs: dcmtkTls(pki.modality, pki.ca) }), 'TLS → TLS');
    const stored = scp.receivedFiles().map((f) => datasetBytes(f));
    assert.equal(stored.length, 2);
    for (const image of images)
      assert.ok(
        stored.some((b) => b.equals(datasetBytes(image))),
        'data set bit-identical',
      );
    const image = images[0]!;
    const negotiated = await proxy.waitForLog((l) => l.msg === 'association negotiated');
    assert.equal(legTls(negotiated, 'scu').peerSubject, 'CN=modality');
    assert.equal(legTls(negotiated, 'scp').peerSubject, 'CN=storescp.test');
    const closed = await proxy.waitForLog((l) => l.msg === 'association closed');
    assert.equal(closed.outcome, 'released');

    // Without the proxy's client certificate the SCP (-rc) refuses the handshake: A-ASSOCIATE-RJ to the SCU.
    const noClientCert = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--upstream-tls', '--upstream-tls-ca', pki.ca]);
    failed(await storescu({ port: noClientCert.port, files: [image] }), 'no client certificate toward the SCP');
    // With TLS 1.3 the SCP refuses after the proxy's side of the handshake is done: an alert, then the close.
    const line = await handshakeFailure(noClientCert, 0, 'scp');
    assert.equal(line.reason, 'no_client_certificate');
    assert.equal(await noClientCert.stop(), 0);
    assert.equal(await proxy.stop(), 0);
  });
});

describe('backpressure toward a TLS receiver', () => {
  test("an SCP that stops reading over TLS: the proxy stops taking the SCU's bytes and --stall-timeout aborts both legs", async () => {
    // A TLS SCP that answers the A-ASSOCIATE-RQ and then reads nothing more.
    const server = tls.createServer({ key: fs.readFileSync(pki.scp.key), cert: fs.readFileSync(pki.scp.cert) }, (socket) => {
      socket.once('data', () => {
        socket.write(buildAc({ maxLength: 16384 }));
        socket.pause();
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const scpPort = (server.address() as { port: number }).port;
    const stallMs = 1000;
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scpPort}`, '--upstream-tls', '--upstream-tls-ca', pki.ca, '--stall-timeout', String(stallMs)]);
    try {
      const scu = await RawPeer.connect(proxy.port);
      scu.send(buildRq({ maxLength: 16384 }));
      await scu.waitForPdus(1, 10_000);
      // Stream 16 KB P-DATA-TF PDUs (honouring the socket's own backpressure) until the proxy aborts.
      const pdu = encodePData([{ contextId: 1, command: false, last: false, fragment: Buffer.alloc(16_378, 5) }]);
      let aborted = false;
      const abort = scu.waitForPdus(2, 30_000).then((pdus) => {
        aborted = true;
        return pdus[1]!;
      });
      let sent = 0;
      while (!aborted && sent < 256 * 1024 * 1024) {
        if (!scu.socket.write(pdu)) await Promise.race([new Promise((resolve) => scu.socket.once('drain', resolve)), abort]);
        sent += pdu.length;
      }
      assert.equal((await abort)[0], 0x07, 'the SCU gets an A-ABORT');
      assert.ok(sent < 256 * 1024 * 1024, `the proxy stopped taking bytes (${sent} sent before the abort)`);
      const stalled = await proxy.waitForLog((l) => l.msg === 'peer stalled: association aborted');
      assert.equal(stalled.leg, 'scp');
      scu.socket.destroy();
    } finally {
      await proxy.stop();
      server.close();
    }
  });
});

describe('health endpoints', () => {
  test('--health: /healthz 200, /readyz 200 while serving and 503 while draining; other paths 404', async () => {
    const scp = await FakeScp.listen();
    const healthPort = await freePort();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--health', `127.0.0.1:${healthPort}`, '--drain-timeout', '20000']);
    const base = `http://127.0.0.1:${healthPort}`;
    await proxy.waitForLog((l) => l.msg === 'health listening');
    const get = async (p: string): Promise<[number, string]> => {
      const res = await fetch(`${base}${p}`);
      return [res.status, await res.text()];
    };
    assert.deepEqual(await get('/healthz'), [200, 'ok\n']);
    assert.deepEqual(await get('/readyz'), [200, 'ready\n']);
    assert.equal((await get('/metrics'))[0], 404, 'no metrics without --metrics');

    // An association in flight keeps the proxy draining after SIGTERM: not ready, still alive.
    const a = await associate(proxy, scp);
    const exited = new Promise<number | null>((resolve) => proxy.child.once('exit', (code) => resolve(code)));
    proxy.child.kill('SIGTERM');
    await proxy.waitForLog((l) => l.msg === 'shutting down: draining associations in flight');
    assert.deepEqual(await get('/readyz'), [503, 'draining\n']);
    assert.deepEqual(await get('/healthz'), [200, 'ok\n']);
    await release(a);
    assert.equal(await exited, 0);
    await scp.close();
  });

  test('on the --metrics port when metrics are on', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--metrics', '127.0.0.1:0']);
    await proxy.waitForLog((l) => l.msg === 'metrics listening');
    const base = proxy.metricsUrl.replace(/\/metrics$/, '');
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(await ready.text(), 'ready\n');
    assert.equal((await fetch(`${base}/metrics`)).status, 200);
    assert.equal(await proxy.stop(), 0);
    await scp.close();
  });
});
