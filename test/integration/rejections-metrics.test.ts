// associations_rejected_total{route, by}: who rejected an association, the SCP (its A-ASSOCIATE-RJ passed
// on), the proxy's admission rules, or the proxy because the SCP could not be reached (what the
// "upstream unreachable" alert of deploy/prometheus watches). Raw peers, one proxy with three routes.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { parseExposition } from '../helpers/exposition.js';
import { FakeScp, RawPeer, buildRq } from '../helpers/raw.js';
import { ProxyProcess, freePort, stopAllProxies } from '../helpers/proxy.js';

const RJ_BY_SCP = Buffer.from([0x03, 0, 0, 0, 0, 4, 0, 0x01, 0x01, 0x07]); // permanent, service user, called AE not recognized

after(async () => {
  await stopAllProxies();
});

test('associations_rejected_total counts each rejection once, by scp, proxy or upstream_unavailable', async () => {
  const scp = await FakeScp.listen();
  const closed = await freePort(); // nothing listens there
  const [toScp, guarded, unreachable] = await Promise.all([freePort(), freePort(), freePort()]);
  const proxy = await ProxyProcess.startRoutes(
    [
      '--route',
      `127.0.0.1:${toScp}=127.0.0.1:${scp.port},id=scp`,
      '--route',
      `127.0.0.1:${guarded}=127.0.0.1:${scp.port},id=guarded,allow-calling-aet=MODALITY`,
      '--route',
      `127.0.0.1:${unreachable}=127.0.0.1:${closed},id=unreachable`,
      '--metrics',
      '127.0.0.1:0',
    ],
    ['scp', 'guarded', 'unreachable'],
  );
  try {
    const rejectedOnce = async (port: number, calling: string, answer?: () => Promise<void>): Promise<void> => {
      const scu = await RawPeer.connect(port);
      scu.send(buildRq({ maxLength: 16384, calling }));
      await answer?.();
      const [rj] = await scu.waitForPdus(1);
      assert.equal(rj![0], 0x03, 'an A-ASSOCIATE-RJ');
      scu.destroy();
    };
    await rejectedOnce(toScp, 'MODALITY', async () => {
      const upstream = await scp.nextPeer();
      await upstream.waitForPdus(1);
      // As an SCP does: the RJ, then the connection closed.
      upstream.send(RJ_BY_SCP);
      upstream.socket.end();
    });
    await rejectedOnce(guarded, 'STRANGER');
    await rejectedOnce(unreachable, 'MODALITY');
    const want = new Map([
      ['scp', { scp: 1, proxy: 0, upstream_unavailable: 0 }],
      ['guarded', { scp: 0, proxy: 1, upstream_unavailable: 0 }],
      ['unreachable', { scp: 0, proxy: 0, upstream_unavailable: 1 }],
    ]);
    // The counts arrive when each association has ended: read until they are all there (or 10 s).
    const got = async (): Promise<Map<string, Record<string, number | undefined>>> => {
      const samples = parseExposition(await (await fetch(proxy.metricsUrl)).text());
      const by = (route: string, who: string): number | undefined => samples.get(`dicom_pdu_proxy_associations_rejected_total{route="${route}",by="${who}"}`);
      return new Map([...want.keys()].map((route) => [route, { scp: by(route, 'scp'), proxy: by(route, 'proxy'), upstream_unavailable: by(route, 'upstream_unavailable') }]));
    };
    let seen = await got();
    for (const deadline = Date.now() + 10_000; JSON.stringify([...seen]) !== JSON.stringify([...want]) && Date.now() < deadline; seen = await got()) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(seen, want);
  } finally {
    await proxy.stop();
    await scp.close();
  }
});
