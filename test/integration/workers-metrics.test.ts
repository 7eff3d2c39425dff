// --workers 2 and --metrics (issue 26 item 4): the primary serves the sum of its workers' metrics. A worker
// killed with SIGKILL must not take its counters out of the sum (a *_total going down), and a scrape while
// its replacement starts must be answered at once (it used to wait 5 s for the new worker and answer 500).
// Real DCMTK peers; the counters are checked against the chunk CSV, exactly.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readCsvRows } from '../helpers/csv.js';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeTestDicom } from '../helpers/dicom-file.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { monotonicSamples, parseExposition, wentDown } from '../helpers/exposition.js';
import { eventually } from '../helpers/proc-stats.js';
import { killAll } from '../helpers/procs.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';

const PREFIX = 'dicom_pdu_proxy_';
/** Starting a primary and two workers on a loaded machine: generous, it is only an upper bound. */
const START_MS = 60_000;
let tmp = '';
const images: TestDicomInfo[] = [];

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'workers-metrics-'));
  for (let i = 0; i < 2; i++) images.push(await writeTestDicom(path.join(tmp, `image-${i}.dcm`), { pixelBytes: 1024 * 1024 + i * 778, seed: 90 + i }));
});

after(async () => {
  await stopAllProxies();
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function scrape(proxy: ProxyProcess): Promise<{ status: number; ms: number; samples: Map<string, number>; text: string }> {
  const t0 = Date.now();
  const res = await fetch(proxy.metricsUrl);
  const text = await res.text();
  return { status: res.status, ms: Date.now() - t0, samples: parseExposition(text), text };
}

/** bytes_total per direction from the chunk CSV: every forwarded PDU, header included. */
async function csvBytes(csv: string): Promise<Record<string, number>> {
  const rows = await readCsvRows(csv);
  const sum = (direction: string): number => rows.filter((r) => r.direction === direction && r.forwarded_us !== '').reduce((n, r) => n + Number(r.length) + 6, 0);
  return { to_scp: sum('to_scp'), to_scu: sum('to_scu') };
}

/**
 * bytes_total per direction equals the chunk CSV's forwarded PDUs (header included). The CSV is written in
 * batches a little after the rows: read it again until it has them all (or 15 s).
 */
async function csvMatches(csv: string, samples: Map<string, number>, when: string): Promise<void> {
  const metric = (direction: string): number | undefined => samples.get(`${PREFIX}bytes_total{route="default",direction="${direction}",arm="none"}`);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const bytes = await csvBytes(csv);
    if ((bytes.to_scp === metric('to_scp') && bytes.to_scu === metric('to_scu')) || Date.now() > deadline) {
      assert.deepEqual({ to_scp: metric('to_scp'), to_scu: metric('to_scu') }, bytes, `bytes_total = the CSV ${when}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('--workers 2 --metrics: a worker killed with SIGKILL', { timeout: 120_000 }, () => {
  test('no *_total goes down, every scrape while it restarts is answered 200, and the totals stay exact', async () => {
    const out = path.join(tmp, 'out');
    await mkdir(out);
    const scp = await startStorescp({ outDir: out, logLevel: 'quiet' });
    const csv = path.join(tmp, 'chunks.csv');
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--workers', '2', '--csv', csv, '--metrics', '127.0.0.1:0'], START_MS);
    try {
      await proxy.waitForLog((l) => l.msg === 'metrics listening', START_MS);
      const send = async (count: number): Promise<void> => {
        const results = await Promise.all(
          Array.from({ length: count }, (_, i) => storescu({ port: proxy.port, calledAet: scp.aet, aet: `SCU${i}`, files: [images[i % 2]!.path!], debug: false })),
        );
        for (const r of results) assert.equal(r.code, 0, r.stderr);
      };
      const closed = (n: number): Promise<void> =>
        eventually(
          () => proxy.logs.filter((l) => l.msg === 'association closed').length >= n,
          20_000,
          () => `${n} associations closed`,
        );
      await send(4);
      await closed(4);
      const relayedBy = new Set(proxy.logs.filter((l) => l.msg === 'association negotiated').map((l) => l.worker));
      assert.deepEqual(relayedBy, new Set([0, 1]), 'both workers relayed');
      const first = await scrape(proxy);
      assert.equal(first.status, 200, first.text);
      await csvMatches(csv, first.samples, 'before the kill');
      const before = monotonicSamples(first.samples, PREFIX);

      // Kill worker 0 and scrape, one scrape after the other, until its replacement is ready (and once more).
      const victim = proxy.logs.find((l) => l.msg === 'worker ready' && l.worker === 0)!.pid as number;
      process.kill(victim, 'SIGKILL');
      const replaced = proxy.waitForLog((l) => l.msg === 'worker ready' && l.worker === 0 && l.pid !== victim, 30_000);
      let ready = false;
      void replaced.then(() => (ready = true));
      let previous = before;
      let scrapes = 0;
      for (let last = false; !last;) {
        last = ready;
        const s = await scrape(proxy);
        scrapes++;
        assert.equal(s.status, 200, `scrape ${scrapes} while worker 0 restarts: ${s.text}`);
        const now = monotonicSamples(s.samples, PREFIX);
        assert.deepEqual(wentDown(previous, now), [], `scrape ${scrapes}: nothing went down`);
        previous = now;
      }
      await replaced;
      const afterKill = await scrape(proxy);
      // No traffic since the first scrape: the dead worker's counters are all still in the sum.
      assert.deepEqual(wentDown(before, monotonicSamples(afterKill.samples, PREFIX)), []);
      for (const [key, value] of before) if (key.includes('_total')) assert.equal(afterKill.samples.get(key), value, `${key} unchanged by the kill`);

      // The new worker's counts add to the dead one's: the totals equal the CSV again.
      await send(2);
      await closed(6);
      const relayedAfter = new Set(
        proxy.logs
          .filter((l) => l.msg === 'association negotiated')
          .slice(4)
          .map((l) => l.worker),
      );
      assert.ok(relayedAfter.size > 0);
      const last = await scrape(proxy);
      await csvMatches(csv, last.samples, 'after the kill');
      assert.equal(last.samples.get(`${PREFIX}associations_total{route="default"}`), 6);
      assert.equal(last.samples.get(`${PREFIX}associations_open{route="default"}`), 0);
    } finally {
      await proxy.stop();
      await scp.stop();
    }
  });
});
