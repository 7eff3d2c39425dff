// The certificate expiry gauge (issue 28): dicom_pdu_proxy_tls_cert_expiry_timestamp_seconds{route, cert}
// for the listener's certificate and the client certificate toward the SCP from the start, and for the SCP's
// certificate once an upstream TLS handshake has seen it, each its notAfter in seconds since the epoch. With
// one process and with --workers 2 (where the primary must not add the workers' timestamps up). Each value
// is the earliest notAfter of the chain: the file's certificates, the SCP's chain as verified. A renewed
// certificate given by a SIGHUP reload moves the gauge without a restart.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dcmtkTls, makeTestPki } from '../helpers/certs.js';
import type { Pair, TestPki } from '../helpers/certs.js';
import { echoscu, startStorescp } from '../helpers/dcmtk.js';
import type { Storescp } from '../helpers/dcmtk.js';
import { parseExposition } from '../helpers/exposition.js';
import { killAll } from '../helpers/procs.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';

const GAUGE = 'dicom_pdu_proxy_tls_cert_expiry_timestamp_seconds';
const DAY_S = 86_400;
/** Starting a primary and two workers on a loaded machine: generous, it is only an upper bound. */
const START_MS = 60_000;
let pki: TestPki;
let tmp = '';
let scp: Storescp;
let listener: Pair;
let client: Pair;
let server: Pair;

const notAfterS = (pair: Pair): number => Date.parse(new X509Certificate(fs.readFileSync(pair.cert)).validTo) / 1000;

before(async () => {
  pki = makeTestPki();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cert-expiry-'));
  // Three different lifetimes, so that each series is told apart: 10 days (the alert's 14 days away), 20,
  // and 1 for the SCP's: its chain as verified includes the site CA (2 days), the earliest must be the leaf.
  listener = pki.issue('listener10', 'proxy.test', 10);
  client = pki.issue('client20', 'proxy.test', 20);
  server = pki.issue('server1', 'storescp.test', 1);
  scp = await startStorescp({ outDir: tmp, logLevel: 'quiet', extraArgs: ['+tls', server.key, server.cert, '-pw', '-ic'] });
});

after(async () => {
  await stopAllProxies();
  await killAll();
  pki?.remove();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function gauges(proxy: ProxyProcess): Promise<Map<string, number>> {
  const res = await fetch(proxy.metricsUrl);
  assert.equal(res.status, 200);
  const samples = parseExposition(await res.text());
  return new Map([...samples].filter(([key]) => key.startsWith(`${GAUGE}{`)));
}

describe('certificate expiry on /metrics', { timeout: 90_000 }, () => {
  for (const workers of ['1', '2']) {
    test(`--workers ${workers}: listener and upstream client certificate from the start, the SCP's once seen, each its notAfter`, async () => {
      const proxy = await ProxyProcess.start(
        [
          '--upstream',
          `127.0.0.1:${scp.port}`,
          '--tls-cert',
          listener.cert,
          '--tls-key',
          listener.key,
          '--upstream-tls',
          '--upstream-tls-ca',
          pki.ca,
          '--upstream-tls-cert',
          client.cert,
          '--upstream-tls-key',
          client.key,
          '--metrics',
          '127.0.0.1:0',
          '--workers',
          workers,
        ],
        START_MS,
      );
      try {
        await proxy.waitForLog((l) => l.msg === 'metrics listening', START_MS);
        const key = (cert: string): string => `${GAUGE}{route="default",cert="${cert}"}`;
        // --workers 2: the workers set theirs when they start; read until both configured series are there.
        let start = await gauges(proxy);
        for (const deadline = Date.now() + 15_000; start.size < 2 && Date.now() < deadline; start = await gauges(proxy)) await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual(
          start,
          new Map([
            [key('listener'), notAfterS(listener)],
            [key('upstream_client'), notAfterS(client)],
          ]),
          'the configured certificates, no SCP certificate before a handshake',
        );
        const now = Date.now() / 1000;
        assert.ok(start.get(key('listener'))! - now > 9 * DAY_S && start.get(key('listener'))! - now < 11 * DAY_S, 'the listener certificate expires in 10 days');

        const r = await echoscu({ port: proxy.port, calledAet: scp.aet, debug: false, extraArgs: dcmtkTls(pki.modality, pki.ca) });
        assert.equal(r.code, 0, r.stderr);
        const seen = await gauges(proxy);
        assert.equal(seen.get(key('upstream_server')), notAfterS(server), 'the SCP certificate as seen in the handshake');
        assert.equal(seen.get(key('listener')), notAfterS(listener));
        assert.equal(seen.size, 3);
      } finally {
        await proxy.stop();
      }
    });
  }
});

describe('a renewed listener certificate, reloaded with SIGHUP', { timeout: 90_000 }, () => {
  test('the gauge moves to the new certificate’s notAfter without a restart', async () => {
    const renewed = pki.issue('listener40', 'proxy.test', 40);
    const config = path.join(tmp, 'reload.json');
    const write = (pair: Pair): void => fs.writeFileSync(config, JSON.stringify({ tlsCert: pair.cert, tlsKey: pair.key }));
    write(listener);
    const proxy = await ProxyProcess.start(['--config', config, '--upstream', `127.0.0.1:${scp.port}`, '--metrics', '127.0.0.1:0'], START_MS);
    try {
      await proxy.waitForLog((l) => l.msg === 'metrics listening', START_MS);
      const key = `${GAUGE}{route="default",cert="listener"}`;
      assert.equal((await gauges(proxy)).get(key), notAfterS(listener));
      write(renewed);
      proxy.child.kill('SIGHUP');
      await proxy.waitForLog((l) => l.msg === 'settings reloaded', START_MS);
      // Read until the new generation's route has reported it (or 15 s).
      let now = (await gauges(proxy)).get(key);
      for (const deadline = Date.now() + 15_000; now !== notAfterS(renewed) && Date.now() < deadline; now = (await gauges(proxy)).get(key))
        await new Promise((r) => setTimeout(r, 100));
      assert.equal(now, notAfterS(renewed));
    } finally {
      await proxy.stop();
    }
  });
});
