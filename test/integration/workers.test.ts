// --workers N: the relay in N processes, one proxy to its users. Real DCMTK peers (data compared byte for
// byte, the CSV files and the metrics against the bytes relayed) and raw peers where the test needs an
// association held open: global --max-associations and --max-pending, --bandwidth pinned to one worker,
// the SIGTERM drain, and a worker killed mid-run.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { associate, exchange, release } from '../helpers/assoc.js';
import { dcmtkTls, makeTestPki } from '../helpers/certs.js';
import { readCsvRows } from '../helpers/csv.js';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { eventually } from '../helpers/proc-stats.js';
import { killAll, runToExit } from '../helpers/procs.js';
import { BIN, ProxyProcess, REPO_ROOT, stopAllProxies } from '../helpers/proxy.js';
import type { LogLine } from '../helpers/proxy.js';
import { FakeScp, RawPeer, buildRq, withTimeout } from '../helpers/raw.js';

const RJ_LOCAL_LIMIT = Buffer.from([0x03, 0, 0, 0, 0, 4, 0, 0x02, 0x03, 0x02]); // transient, provider (presentation), local limit exceeded
const MiB = 1024 * 1024;
let tmp = '';
const images: TestDicomInfo[] = [];

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'workers-'));
  for (let i = 0; i < 3; i++) images.push(await writeTestDicom(path.join(tmp, `image-${i}.dcm`), { pixelBytes: 2 * MiB + i * 1000, seed: 70 + i }));
});

after(async () => {
  await stopAllProxies();
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** Which worker (index) and process logged the line. */
const workerOf = (l: LogLine): number => l.worker as number;

async function metricsText(proxy: ProxyProcess): Promise<string> {
  const res = await fetch(proxy.metricsUrl);
  assert.equal(res.status, 200);
  return res.text();
}

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  assert.ok(line, `${name}{${labels}} in the metrics`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('--workers: bad values', () => {
  for (const [args, env, named] of [
    [['--workers', '0'], {}, '--workers'],
    [['--workers', 'x'], {}, '--workers'],
    [['--workers', '1.5'], {}, '--workers'],
    [[], { PDU_PROXY_WORKERS: 'many' }, 'PDU_PROXY_WORKERS'],
  ] as Array<[string[], Record<string, string>, string]>) {
    test(`${args.join(' ') || JSON.stringify(env)}: one line naming it, exit 2`, async () => {
      const r = await runToExit(process.execPath, [BIN, '--upstream', '127.0.0.1:104', ...args], { timeoutMs: 10_000, cwd: REPO_ROOT, env: { ...process.env, ...env } });
      assert.equal(r.code, 2);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, new RegExp(`^dicom-pdu-proxy: (environment )?${named}: .*not a number of workers`));
    });
  }
});

test('a CSV file that cannot be opened: one line naming the flag and the file, exit 2, with one process or two workers', async () => {
  const missing = path.join(tmp, 'no-such-dir');
  for (const workers of ['1', '2']) {
    for (const flag of ['--csv', '--messages-csv']) {
      const file = path.join(missing, `${flag.slice(2)}.csv`);
      // With both files asked for and the first one fine, the second one is named (and the first is closed again).
      const args = flag === '--messages-csv' ? ['--csv', path.join(tmp, `fine-${workers}.csv`), flag, file] : [flag, file];
      const r = await runToExit(process.execPath, [BIN, '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:104', '--workers', workers, ...args], {
        timeoutMs: 10_000,
        cwd: REPO_ROOT,
      });
      assert.equal(r.code, 2, `--workers ${workers} ${flag}: ${r.stderr}`);
      assert.equal(r.stderr, `dicom-pdu-proxy: ${flag} ${file}: ENOENT\n`);
    }
  }
});

test('--pcap with --workers 2: refused in one line, exit 2, no capture file', async () => {
  const file = path.join(tmp, 'refused.pcapng');
  const r = await runToExit(process.execPath, [BIN, '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:104', '--workers', '2', '--pcap', file], {
    timeoutMs: 10_000,
    cwd: REPO_ROOT,
  });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^dicom-pdu-proxy: --pcap cannot be used with --workers 2 .*\n$/);
  assert.equal(fs.existsSync(file), false);
});

describe('--workers 2 with DCMTK peers', { timeout: 120_000 }, () => {
  test('6 storescu at once: data bit for bit, one CSV each with whole rows, unique ids, metrics equal to the CSV', async () => {
    const out = path.join(tmp, 'out-parallel');
    await mkdir(out);
    const scp = await startStorescp({ outDir: out, logLevel: 'quiet' });
    const csv = path.join(tmp, 'chunks.csv');
    const messagesCsv = path.join(tmp, 'messages.csv');
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--workers', '2', '--csv', csv, '--messages-csv', messagesCsv, '--metrics', '127.0.0.1:0']);
    try {
      await proxy.waitForLog((l) => l.msg === 'metrics listening');
      const sends = Array.from({ length: 6 }, (_, i) => storescu({ port: proxy.port, calledAet: scp.aet, aet: `SCU${i}`, files: [images[i % 3]!.path!], debug: false }));
      const results = await Promise.all(sends);
      for (const r of results) assert.equal(r.code, 0, r.stderr);
      for (const image of images) {
        const got = scp.receivedFiles().find((f) => f.includes(image.sopInstanceUid));
        assert.ok(got, `storescp stored ${image.sopInstanceUid}`);
        assert.ok(datasetBytes(got).equals(datasetBytes(image.path!)), 'data set bit for bit');
      }
      // Both workers carried associations; ids are unique over the whole proxy.
      const negotiated = proxy.logs.filter((l) => l.msg === 'association negotiated');
      assert.equal(negotiated.length, 6);
      assert.deepEqual(new Set(negotiated.map(workerOf)), new Set([0, 1]), 'both workers relayed');
      const ids = negotiated.map((l) => l.assoc);
      assert.equal(new Set(ids).size, 6, `unique association ids: ${ids.join(',')}`);
      await eventually(
        () => proxy.logs.filter((l) => l.msg === 'association closed').length === 6,
        10_000,
        () => 'every association closed',
      );
      const text = await metricsText(proxy);
      const code = await proxy.stop(20_000, 15_000);
      assert.equal(code, 0, proxy.stderr);
      // One header, then whole rows from both processes (fast-csv parses every one with every column).
      const raw = fs.readFileSync(csv, 'utf8');
      assert.equal(raw.split('\n').filter((l) => l.startsWith('assoc,')).length, 1, 'one header row');
      assert.ok(raw.endsWith('\n'));
      const rows = await readCsvRows(csv);
      assert.ok(rows.every((r) => r.route === 'default' && /^\d+$/.test(r.assoc!) && /^\d+$/.test(r.length!)));
      assert.deepEqual(new Set(rows.map((r) => Number(r.assoc))), new Set(ids), 'the CSV has the associations the logs have');
      for (const direction of ['to_scp', 'to_scu']) {
        const csvBytes = rows.filter((r) => r.direction === direction && r.forwarded_us !== '').reduce((n, r) => n + Number(r.length) + 6, 0);
        assert.equal(metric(text, 'dicom_pdu_proxy_bytes_total', `route="default",direction="${direction}",arm="none"`), csvBytes, `${direction}: metrics = CSV`);
      }
      // Every data set went through: P-DATA carries it plus the PDV headers and the DIMSE commands, little more.
      const sent = [0, 1, 2, 0, 1, 2].reduce((n, i) => n + images[i]!.datasetLength, 0);
      const toScp = rows.filter((r) => r.direction === 'to_scp' && r.type === 'P-DATA-TF').reduce((n, r) => n + Number(r.length), 0);
      assert.ok(toScp > sent && toScp < sent + 6 * 64 * 1024, `P-DATA to the SCP ${toScp} for ${sent} data-set bytes`);
      assert.equal(metric(text, 'dicom_pdu_proxy_associations_total', 'route="default"'), 6);
      const messages = await readCsvRows(messagesCsv);
      assert.equal(messages.length, 6, 'one message row per C-STORE, from both workers');
    } finally {
      await proxy.stop();
      await scp.stop();
    }
  });
});

describe('--workers 2 with DICOM TLS toward the SCU', { timeout: 60_000 }, () => {
  test('the handshake runs in the worker: storescu +tls x 2 stored bit for bit; a plaintext SCU refused and counted', async () => {
    const pki = makeTestPki();
    const out = path.join(tmp, 'out-tls');
    await mkdir(out);
    const scp = await startStorescp({ outDir: out, logLevel: 'quiet' });
    const tlsArgs = ['--tls-cert', pki.proxy.cert, '--tls-key', pki.proxy.key, '--tls-ca', pki.ca, '--tls-client-auth', 'required'];
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--workers', '2', ...tlsArgs, '--metrics', '127.0.0.1:0']);
    try {
      await proxy.waitForLog((l) => l.msg === 'metrics listening');
      const results = await Promise.all(
        [0, 1].map((i) => storescu({ port: proxy.port, calledAet: scp.aet, files: [images[i]!.path!], extraArgs: dcmtkTls(pki.modality, pki.ca), debug: false })),
      );
      for (const r of results) assert.equal(r.code, 0, r.stderr);
      for (const image of images.slice(0, 2)) {
        const got = scp.receivedFiles().find((f) => f.includes(image.sopInstanceUid));
        assert.ok(got && datasetBytes(got).equals(datasetBytes(image.path!)), 'data set bit for bit');
      }
      const plain = await storescu({ port: proxy.port, calledAet: scp.aet, files: [images[2]!.path!], debug: false });
      assert.notEqual(plain.code, 0, 'a plaintext SCU is refused');
      await proxy.waitForLog((l) => l.msg === 'TLS handshake failed: connection closed');
      const ids = proxy.logs.filter((l) => l.msg === 'association negotiated').map((l) => l.assoc);
      assert.equal(new Set(ids).size, 2, `unique association ids: ${ids.join(',')}`);
      const text = await metricsText(proxy);
      assert.equal(metric(text, 'dicom_pdu_proxy_tls_handshake_failures_total', 'route="default",leg="scu",reason="plaintext"'), 1);
      assert.equal(await proxy.stop(), 0);
    } finally {
      await proxy.stop();
      await scp.stop();
      pki.remove();
    }
  });
});

async function withProxy(args: string[], run: (proxy: ProxyProcess, scp: FakeScp) => Promise<void>): Promise<void> {
  const scp = await FakeScp.listen();
  const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--workers', '2', ...args]);
  proxy.child.setMaxListeners(0);
  try {
    await run(proxy, scp);
  } finally {
    await proxy.stop();
    await scp.close();
  }
}

const negotiatedBy = (proxy: ProxyProcess, assoc: number): Promise<LogLine> => proxy.waitForLog((l) => l.msg === 'association negotiated' && l.assoc === assoc);

// A bound per test (60 s each), not one for the 5 together: 7 s quiet, 34 s at load 14 (2 shared cores, nice 10),
// against the 60 s the suite had; a suite bound adds up every test's share of a starved CPU.
describe('--workers 2: one proxy to its users', () => {
  test('--max-associations counts over every worker; a refused RQ gets the same RJ as with one process', { timeout: 60_000 }, async () => {
    await withProxy(['--max-associations', '2'], async (proxy, scp) => {
      const a = await associate(proxy, scp);
      const b = await associate(proxy, scp);
      const [la, lb] = await Promise.all([negotiatedBy(proxy, 1), negotiatedBy(proxy, 2)]);
      assert.notEqual(workerOf(la), workerOf(lb), 'the two associations are in different workers');
      const c = await RawPeer.connect(proxy.port);
      c.send(buildRq({ maxLength: 16384 }));
      const [rj] = await c.waitForPdus(1);
      assert.deepEqual(rj, RJ_LOCAL_LIMIT);
      assert.equal(scp.peers.length, 2, 'the refused association never reached the SCP');
      assert.equal((await proxy.waitForLog((l) => l.msg === 'association rejected by the proxy')).code, 'max-associations');
      c.destroy();
      await exchange(a);
      await release(a);
      await proxy.waitForLog((l) => l.msg === 'association closed' && l.assoc === 1);
      const d = await associate(proxy, scp);
      await exchange(d);
      await release(d);
      await release(b);
    });
  });

  test('--max-pending counts over every worker: the oldest silent connections are closed', { timeout: 60_000 }, async () => {
    const MAX = 8;
    await withProxy(['--max-pending', String(MAX)], async (proxy) => {
      const idle: RawPeer[] = [];
      for (let i = 0; i < MAX + 6; i++) idle.push(await RawPeer.connect(proxy.port));
      const gone = (p: RawPeer): boolean => p.socket.readableEnded || p.socket.destroyed;
      await eventually(
        () => idle.filter(gone).length >= 6,
        5000,
        () => `${idle.filter(gone).length} closed`,
      );
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(
        idle.map(gone),
        idle.map((_, i) => i < 6),
        'exactly the 6 oldest were closed',
      );
      for (const p of idle) p.destroy();
    });
  });

  test('a route with --bandwidth stays in one worker (its one wire per direction)', { timeout: 60_000 }, async () => {
    await withProxy(['--bandwidth', '1Gbit'], async (proxy, scp) => {
      const all = [];
      for (let i = 0; i < 4; i++) all.push(await associate(proxy, scp));
      const lines = await Promise.all([1, 2, 3, 4].map((id) => negotiatedBy(proxy, id)));
      assert.equal(new Set(lines.map(workerOf)).size, 1);
      for (const a of all) await release(a);
    });
  });

  test('SIGTERM drains every worker: associations in flight finish, new connections are refused, exit 0', { timeout: 60_000 }, async () => {
    await withProxy(['--health', '127.0.0.1:0'], async (proxy, scp) => {
      const readyz = String((await proxy.waitForLog((l) => l.msg === 'health listening')).readyz);
      assert.equal((await fetch(readyz)).status, 200, 'ready: every worker is up');
      const a = await associate(proxy, scp);
      const b = await associate(proxy, scp);
      const [la, lb] = await Promise.all([negotiatedBy(proxy, 1), negotiatedBy(proxy, 2)]);
      assert.notEqual(workerOf(la), workerOf(lb), 'one association in each worker');
      const exited = new Promise<number | null>((resolve) => proxy.child.once('exit', (code) => resolve(code)));
      proxy.child.kill('SIGTERM');
      await proxy.waitForLog((l) => l.msg === 'shutting down: draining associations in flight');
      const draining = await fetch(readyz);
      assert.equal(draining.status, 503);
      assert.equal(await draining.text(), 'draining\n');
      await assert.rejects(RawPeer.connect(proxy.port), 'the listener is closed');
      await exchange(a);
      await exchange(b);
      await release(a);
      await release(b);
      assert.equal(await withTimeout(exited, 10_000, 'the proxy to exit'), 0);
      assert.equal(proxy.logs.filter((l) => l.msg === 'worker stopped').length, 2);
    });
  });

  test('a worker killed mid-run: logged and replaced; the other worker’s association finishes intact', { timeout: 60_000 }, async () => {
    await withProxy(['--health', '127.0.0.1:0'], async (proxy, scp) => {
      const readyz = String((await proxy.waitForLog((l) => l.msg === 'health listening')).readyz);
      const a = await associate(proxy, scp);
      const b = await associate(proxy, scp);
      const [la, lb] = await Promise.all([negotiatedBy(proxy, 1), negotiatedBy(proxy, 2)]);
      assert.notEqual(workerOf(la), workerOf(lb));
      const victim = la.pid as number;
      process.kill(victim, 'SIGKILL');
      const died = await proxy.waitForLog((l) => l.msg === 'worker died: its connections are lost; starting a new one');
      assert.equal(died.worker, workerOf(la));
      await withTimeout(Promise.race([a.scu.ended, a.scu.closed]), 5000, 'the killed worker’s SCU connection to close');
      await exchange(b);
      await release(b);
      const fresh = await proxy.waitForLog((l) => l.msg === 'worker ready' && l.worker === workerOf(la) && l.pid !== victim);
      assert.equal((await fetch(readyz)).status, 200, 'ready again: every worker is up');
      // New connections are served, by the new worker too.
      const c = await associate(proxy, scp);
      const d = await associate(proxy, scp);
      const lines = await Promise.all([negotiatedBy(proxy, 3), negotiatedBy(proxy, 4)]);
      assert.ok(
        lines.some((l) => l.pid === fresh.pid),
        'the new worker took an association',
      );
      await exchange(c);
      await exchange(d);
      await release(c);
      await release(d);
      assert.equal(proxy.child.exitCode, null, 'the proxy is still running');
    });
  });
});
