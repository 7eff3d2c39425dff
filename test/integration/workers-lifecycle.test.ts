// --workers under what operators do to it: a worker killed with SIGKILL again and again under load (the
// metrics' totals never go down, no CSV row is broken, the admission counts stay right, /readyz stays ready
// while the other worker serves, the stop is bounded), a worker killed just before SIGTERM (its replacement
// never keeps the primary alive), and the primary killed (its workers stop writing and exit).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readCsvRows } from '../helpers/csv.js';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import { writeTestDicom } from '../helpers/dicom-file.js';
import { eventually } from '../helpers/proc-stats.js';
import { killAll } from '../helpers/procs.js';
import type { RunResult } from '../helpers/procs.js';
import { LOG_WAIT_MS, ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import type { LogLine } from '../helpers/proxy.js';
import { RawPeer, buildRq } from '../helpers/raw.js';

let dir: string;
const images: string[] = [];
const RJ_LOCAL_LIMIT = Buffer.from([0x03, 0, 0, 0, 0, 4, 0, 0x02, 0x03, 0x02]);

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-workers-life-'));
  for (let i = 0; i < 2; i++) {
    images.push(path.join(dir, `image-${i}.dcm`));
    await writeTestDicom(images[i]!, { pixelBytes: 1_000_000, seed: 900 + i });
  }
});

after(async () => {
  await stopAllProxies();
  await killAll();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The pids of the workers that are up now (their last 'worker ready' line per index, not yet seen dead). */
function workerPids(proxy: ProxyProcess): number[] {
  const byIndex = new Map<number, number>();
  for (const l of proxy.logs) if (l.msg === 'worker ready') byIndex.set(l.worker as number, l.pid as number);
  return [...byIndex.values()].filter(alive);
}

/** The sum of a metric's series. */
function total(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

const TOTALS = ['dicom_pdu_proxy_bytes_total', 'dicom_pdu_proxy_pdus_total', 'dicom_pdu_proxy_associations_total', 'dicom_pdu_proxy_associations_ended_total'];

describe('--workers 2: a worker killed 20 times under load', { timeout: 300_000 }, () => {
  test('totals never go down, every CSV row whole, admission counts right, /readyz ready throughout, stop bounded', async () => {
    const out = path.join(dir, 'in');
    fs.mkdirSync(out);
    const scp = await startStorescp({ outDir: out, logLevel: 'quiet', extraArgs: ['--fork'] });
    const csv = path.join(dir, 'chunks.csv');
    const messages = path.join(dir, 'messages.csv');
    const drainMs = 5000;
    const proxy = await ProxyProcess.start([
      '--upstream',
      `127.0.0.1:${scp.port}`,
      '--workers',
      '2',
      '--metrics',
      '127.0.0.1:0',
      '--csv',
      csv,
      '--messages-csv',
      messages,
      '--max-associations',
      '6',
      '--drain-timeout',
      String(drainMs),
    ]);
    proxy.child.setMaxListeners(0);
    // Also ended by a failure (finally): senders still looping would keep this file's process alive.
    let sending = true;
    try {
      await proxy.waitForLog((l) => l.msg === 'metrics listening');
      const metricsUrl = proxy.metricsUrl;
      const readyzUrl = metricsUrl.replace(/\/metrics$/, '/readyz');
      const results: RunResult[] = [];
      const sender = async (): Promise<void> => {
        while (sending) results.push(await storescu({ port: proxy.port, files: images, timeoutMs: 60_000 }));
      };
      const senders = [sender(), sender(), sender()];
      let last = new Map<string, number>();
      const checkTotals = async (): Promise<void> => {
        const res = await fetch(metricsUrl);
        assert.equal(res.status, 200, 'every scrape answers');
        const text = await res.text();
        const now = new Map(TOTALS.map((n) => [n, total(text, n)]));
        for (const [name, value] of now) assert.ok(value >= (last.get(name) ?? 0), `${name} went down: ${last.get(name)} -> ${value}`);
        last = now;
      };
      let notReady = 0;
      for (let kill = 0; kill < 20; kill++) {
        // A new worker loads the proxy's modules as a start does: LOG_WAIT_MS tells a hang from a loaded
        // machine (15 s was too short once, at load 14 with the test under nice 10).
        await eventually(
          () => workerPids(proxy).length === 2,
          LOG_WAIT_MS,
          () => `both workers up before kill ${kill + 1}`,
        );
        await checkTotals();
        const victims = workerPids(proxy);
        const victim = victims[kill % victims.length]!;
        const died = proxy.logs.filter((l) => l.msg === 'worker died: its connections are lost; starting a new one').length;
        process.kill(victim, 'SIGKILL');
        await eventually(
          () => proxy.logs.filter((l) => l.msg === 'worker died: its connections are lost; starting a new one').length > died,
          10_000,
          () => `worker ${victim} reported dead`,
        );
        // One worker is still up: the proxy is ready.
        if ((await fetch(readyzUrl)).status !== 200) notReady++;
        await checkTotals();
      }
      sending = false;
      await Promise.all(senders);
      await eventually(
        () => workerPids(proxy).length === 2,
        LOG_WAIT_MS,
        () => 'both workers up after the kills',
      );
      await checkTotals();
      assert.equal(notReady, 0, '/readyz answered 200 while one worker restarted');
      assert.ok(
        results.some((r) => r.code === 0),
        'associations succeeded between the kills',
      );

      // Admission counts: nothing is in flight now, so exactly --max-associations can be open at once again
      // (the killed workers' admitted associations were given back). First the last senders' associations
      // must be over in the proxy too, not only in storescu, which exits on the A-RELEASE-RP, before the proxy
      // has closed both connections and given the admission back. A worker answers a scrape after the
      // messages it sent before, so associations_open 0 (dead workers' gauges leave the sum) means so.
      let open = -1;
      for (const deadline = Date.now() + LOG_WAIT_MS; open !== 0 && Date.now() < deadline;) {
        open = total(await (await fetch(metricsUrl)).text(), 'dicom_pdu_proxy_associations_open');
        if (open !== 0) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(open, 0, 'no association open once the senders stopped');
      const held: RawPeer[] = [];
      for (let i = 0; i < 6; i++) {
        const p = await RawPeer.connect(proxy.port);
        p.send(buildRq({ called: 'STORESCP', maxLength: 16384 }));
        await p.waitForPdus(1, 10_000);
        assert.equal(p.pdus()[0]![0], 0x02, `association ${i + 1} of 6 accepted`);
        held.push(p);
      }
      const seventh = await RawPeer.connect(proxy.port);
      seventh.send(buildRq({ called: 'STORESCP', maxLength: 16384 }));
      const [rj] = await seventh.waitForPdus(1, 10_000);
      assert.deepEqual(rj, RJ_LOCAL_LIMIT, 'the 7th gets A-ASSOCIATE-RJ (local limit exceeded)');
      for (const p of [...held, seventh]) p.destroy();

      // The stop is bounded, then every CSV row is whole.
      const t0 = Date.now();
      const code = await proxy.stop(drainMs + 10_000, drainMs + 10_000);
      assert.ok(Date.now() - t0 <= drainMs + 2000, `stopped in ${Date.now() - t0} ms`);
      assert.notEqual(code, null);
      const chunkRows = await readCsvRows(csv);
      const messageRows = await readCsvRows(messages);
      assert.ok(chunkRows.length > 100 && messageRows.length > 10, `${chunkRows.length} chunk rows, ${messageRows.length} message rows`);
      for (const r of chunkRows) assert.ok(/^\d+$/.test(r.assoc!) && /^\d+$/.test(r.length!), `a whole chunk row: ${JSON.stringify(r)}`);
      for (const r of messageRows) assert.ok(/^\d+$/.test(r.assoc!) && /^\d+$/.test(r.bytes!), `a whole message row: ${JSON.stringify(r)}`);
    } finally {
      sending = false;
      await proxy.stop();
      await scp.stop();
    }
  });
});

// A bound per test (the two took 58 s together once at load 14, against 60 s for both).
describe('--workers 2: the edges of a worker’s life', () => {
  test('a worker killed just before SIGTERM: the proxy still exits within --drain-timeout + 2 s, no worker left', { timeout: 60_000 }, async () => {
    const proxy = await ProxyProcess.start(['--upstream', '127.0.0.1:9', '--workers', '2', '--drain-timeout', '3000']);
    await eventually(
      () => workerPids(proxy).length === 2,
      LOG_WAIT_MS,
      () => 'both workers up',
    );
    const pids = workerPids(proxy);
    process.kill(pids[0]!, 'SIGKILL');
    await proxy.waitForLog((l: LogLine) => l.msg === 'worker died: its connections are lost; starting a new one');
    // The replacement is due in 1 s: SIGTERM now.
    const t0 = Date.now();
    proxy.child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => proxy.child.once('exit', (c) => resolve(c)));
    assert.ok(Date.now() - t0 <= 5000, `exited after ${Date.now() - t0} ms`);
    assert.equal(code, 0);
    // Every worker goes (a replacement that started too): each one still alive is polled until it is gone,
    // bounded, instead of looked at once after 1.5 s (a starved worker can take longer to exit).
    await new Promise((r) => setTimeout(r, 1500)); // a replacement due 1 s after the kill would have started by now
    const replacements = proxy.logs.filter((l) => l.msg === 'worker ready' && !pids.includes(l.pid as number)).map((l) => l.pid as number);
    await eventually(
      () => [...replacements, pids[1]!].every((pid) => !alive(pid)),
      LOG_WAIT_MS,
      () => `no worker left running: ${[...replacements, pids[1]!].filter(alive).join(', ')} still alive`,
    );
  });

  test('the primary killed: its workers stop writing the CSV and exit', { timeout: 60_000 }, async () => {
    const scp = await startStorescp({ outDir: fs.mkdtempSync(path.join(dir, 'in-')), logLevel: 'quiet', extraArgs: ['--fork'] });
    const csv = path.join(dir, 'orphan.csv');
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--workers', '2', '--csv', csv]);
    try {
      await eventually(
        () => workerPids(proxy).length === 2,
        LOG_WAIT_MS,
        () => 'both workers up',
      );
      const pids = workerPids(proxy);
      const sending = storescu({ port: proxy.port, files: images, timeoutMs: 30_000 });
      await proxy.waitForLog((l) => l.msg === 'association negotiated');
      process.kill(proxy.child.pid!, 'SIGKILL');
      await eventually(
        () => pids.every((p) => !alive(p)),
        5000,
        () => `workers ${pids.filter(alive).join(', ')} still running`,
      );
      await sending;
      // Nothing more is written once they are gone.
      const size = fs.statSync(csv).size;
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(fs.statSync(csv).size, size);
    } finally {
      await scp.stop();
    }
  });
});
