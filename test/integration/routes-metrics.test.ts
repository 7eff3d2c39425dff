// Several routes in one proxy process (--route) and the Prometheus endpoint (--metrics), with real peers:
// route "a" goes to a raw fake SCP (exact bytes, a violation, an A-ABORT, a garbage connection), route "b"
// to DCMTK's storescp with storescu sending 16 MiB images. Route a's aborts must leave b's transfer
// bit-identical; both CSVs carry the route ids with association ids unique across routes; the metrics,
// scraped over HTTP, must equal what the peers sent.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readCsvRows } from '../helpers/csv.js';
import type { CsvRow } from '../helpers/csv.js';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeAbort } from '../../src/pdu/control.js';
import { AbortReason, AbortSource } from '../../src/pdu/constants.js';
import { singlePdvHeader } from '../../src/pdu/pdata.js';
import { dcmtkErrors, startStorescp, storescu } from '../helpers/dcmtk.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import { associate, exchange, release } from '../helpers/assoc.js';
import { killAll } from '../helpers/procs.js';
import type { LogLine } from '../helpers/proxy.js';
import { BIN, ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import { FakeScp, RawPeer, buildAc, buildRq, withTimeout } from '../helpers/raw.js';

const MiB = 1024 * 1024;
let tmp = '';
let image: TestDicomInfo;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'routes-metrics-'));
  image = await writeTestDicom(path.join(tmp, 'image.dcm'), { pixelBytes: 16 * MiB, seed: 81 });
});

after(async () => {
  await stopAllProxies();
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

type Row = CsvRow;
const readCsv = readCsvRows;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The Prometheus text format, enough of it: `name{a="x",b="y"} value` lines. */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_]+)="([^"]*)"/g)) labels[k!] = v!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.equal(found.length, 1, `one sample ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return found[0]!.value;
}

/** A P-DATA-TF with one dataset PDV (not last) of `fragment` bytes on context 1. */
function pdata(fragment: number): Buffer {
  return Buffer.concat([singlePdvHeader(fragment, 1, 0), Buffer.alloc(fragment, 0x5a)]);
}

describe('two routes in one process, and --metrics', { timeout: 90_000 }, () => {
  test('an abort on route a leaves route b transferring bit-identical; CSVs and metrics per route', async (t) => {
    const outDir = path.join(tmp, 'b');
    await mkdir(outDir);
    const fake = await FakeScp.listen();
    t.after(() => fake.close());
    const scp = await startStorescp({ outDir, extraArgs: ['--unique-filenames'] });
    t.after(() => scp.stop());
    const chunks = path.join(tmp, 'chunks.csv');
    const messages = path.join(tmp, 'messages.csv');
    const proxy = await ProxyProcess.startRoutes(
      [
        '--route',
        `127.0.0.1:0=127.0.0.1:${fake.port},id=a,max-pdu=4KB`,
        '--route',
        `127.0.0.1:0=127.0.0.1:${scp.port},id=b,max-pdu=1MB`,
        '--metrics',
        '127.0.0.1:0',
        '--csv',
        chunks,
        '--messages-csv',
        messages,
      ],
      ['a', 'b'],
    );
    t.after(() => proxy.stop());

    // Route b: three 16 MiB images in one association, in flight while route a misbehaves.
    const repeat = 3;
    const store = storescu({
      port: proxy.routePort('b'),
      calledAet: scp.aet,
      aet: 'STORESCU',
      files: [image.path!],
      extraArgs: ['--repeat', String(repeat)],
      debug: false,
      timeoutMs: 60_000,
    });
    await proxy.waitForLog((l) => l.msg === 'association negotiated' && l.route === 'b');

    // Route a, connection 1: a raw SCU. RQ, AC (the SCP's 16 KB; the SCU is told 4 KB), an 8000-byte
    // P-DATA-TF over the 4 KB it was told (a violation, repaired), then A-ABORT.
    const rq = buildRq({ maxLength: 16384 });
    const ac = buildAc({ maxLength: 16384 });
    const big = pdata(8000 - 6);
    const abort = encodeAbort(AbortSource.ServiceUser, AbortReason.NotSpecified);
    const scu = await RawPeer.connect(proxy.routePort('a'));
    scu.send(rq);
    const up = await fake.nextPeer();
    await up.waitForPdus(1);
    up.send(ac);
    await scu.waitForPdus(1);
    scu.send(big);
    await up.waitForBytes(rq.length + big.length);
    scu.send(abort);
    await up.waitForBytes(rq.length + big.length + abort.length);
    scu.socket.end();
    up.socket.end();
    await Promise.all([scu.waitClosed(), up.waitClosed()]);

    // Route a, connection 2: garbage instead of an A-ASSOCIATE-RQ (a protocol error: A-ABORT, closed).
    const junk = await RawPeer.connect(proxy.routePort('a'));
    junk.send(Buffer.alloc(64, 0xff));
    await withTimeout(junk.ended, 5000, 'the proxy closing the garbage connection');
    junk.socket.end();
    await junk.waitClosed();
    const aborts = proxy.logs.filter((l) => l.route === 'a' && l.msg === 'association closed' && l.outcome === 'aborted');

    const r = await store;
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.deepEqual(dcmtkErrors(r), []);
    const received = scp.receivedFiles();
    assert.equal(received.length, repeat, 'every image stored');
    const sent = datasetBytes(image.path!);
    for (const file of received) assert.ok(datasetBytes(file).equals(sent), `${file}: dataset bytes identical`);
    const closedB = await proxy.waitForLog((l) => l.msg === 'association closed' && l.route === 'b');
    assert.equal(closedB.outcome, 'released');
    // Route a's association and garbage connection were aborted while b's association was still open.
    await proxy.waitForLog((l) => l.route === 'a' && l.msg === 'association closed' && l.outcome === 'aborted' && /protocol error/.test(String(l.reason)));
    t.diagnostic(`route a: ${aborts.length} aborted before route b finished`);
    assert.ok(proxy.logs.indexOf(closedB) > proxy.logs.findIndex((l) => l.route === 'a' && l.msg === 'association closed'), 'b finished after a aborted');

    const closedA = proxy.logs.filter((l): l is LogLine & { toScp: { bytesIn: number } } => l.route === 'a' && l.msg === 'association closed');
    assert.equal(closedA.length, 2);

    // ---- metrics, over HTTP, while the proxy still runs
    const res = await fetch(proxy.metricsUrl);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const m = parseMetrics(await res.text());
    const P = 'dicom_pdu_proxy_';
    // Route a: exactly the bytes and PDUs the raw peers sent (the garbage never made a PDU).
    assert.equal(value(m, `${P}bytes_total`, { route: 'a', direction: 'to_scp', arm: '4KB' }), rq.length + big.length + abort.length);
    assert.equal(value(m, `${P}bytes_total`, { route: 'a', direction: 'to_scu', arm: '4KB' }), ac.length);
    assert.equal(value(m, `${P}pdus_total`, { route: 'a', direction: 'to_scp' }), 3);
    assert.equal(value(m, `${P}pdus_total`, { route: 'a', direction: 'to_scu' }), 1);
    assert.equal(value(m, `${P}violations_repaired_total`, { route: 'a', direction: 'to_scp' }), 1);
    assert.equal(value(m, `${P}associations_total`, { route: 'a' }), 1);
    assert.equal(value(m, `${P}associations_open`, { route: 'a' }), 0);
    assert.equal(value(m, `${P}aborts_total`, { route: 'a', reason: 'scu_abort' }), 1);
    assert.equal(value(m, `${P}aborts_total`, { route: 'a', reason: 'protocol_error' }), 1);
    assert.equal(value(m, `${P}associations_ended_total`, { route: 'a', outcome: 'aborted' }), 1);
    assert.equal(value(m, `${P}pdu_size_bytes_count`, { route: 'a', direction: 'to_scp' }), 3);
    assert.equal(value(m, `${P}pdu_size_bytes_bucket`, { route: 'a', direction: 'to_scp', le: '4096' }), 2, 'RQ and A-ABORT under 4 KB, the P-DATA-TF not');
    assert.equal(value(m, `${P}pdu_size_bytes_bucket`, { route: 'a', direction: 'to_scp', le: '8192' }), 3);
    // Route b: what the proxy counted on the sockets (its association summary), and nothing aborted.
    type Leg = { bytesIn: number; pdusIn: number; pdusOut: number };
    const bSummary = closedB as LogLine & { toScp: Leg; toScu: Leg };
    for (const direction of ['to_scp', 'to_scu'] as const) {
      const leg = direction === 'to_scp' ? bSummary.toScp : bSummary.toScu;
      assert.equal(value(m, `${P}bytes_total`, { route: 'b', direction, arm: '1MB' }), leg.bytesIn, `b ${direction} bytes`);
      assert.equal(value(m, `${P}pdus_total`, { route: 'b', direction }), leg.pdusIn, `b ${direction} PDUs in`);
      assert.equal(value(m, `${P}pdus_sent_total`, { route: 'b', direction }), leg.pdusOut, `b ${direction} PDUs out`);
      assert.equal(value(m, `${P}violations_repaired_total`, { route: 'b', direction }), 0);
    }
    assert.ok(bSummary.toScp.bytesIn > repeat * 16 * MiB, 'the images went through b');
    assert.ok(bSummary.toScp.pdusOut > bSummary.toScp.pdusIn, "storescu's 128 KB PDUs were cut for storescp's 16 KB");
    assert.equal(value(m, `${P}associations_total`, { route: 'b' }), 1);
    assert.equal(value(m, `${P}associations_ended_total`, { route: 'b', outcome: 'released' }), 1);
    assert.equal(value(m, `${P}associations_open`, { route: 'b' }), 0);
    for (const reason of ['scu_abort', 'scp_abort', 'protocol_error', 'connection_lost', 'idle_timeout', 'shutdown']) {
      assert.equal(value(m, `${P}aborts_total`, { route: 'b', reason }), 0, `b: no ${reason}`);
    }
    assert.equal(value(m, `${P}message_duration_seconds_count`, { route: 'b', direction: 'to_scp', arm: '1MB' }), repeat);
    assert.equal(value(m, `${P}message_duration_seconds_bucket`, { route: 'b', direction: 'to_scp', arm: '1MB', le: '+Inf' }), repeat);
    // Anything but GET /metrics is a 404.
    assert.equal((await fetch(proxy.metricsUrl.replace(/\/metrics$/, '/'))).status, 404);
    assert.equal((await fetch(proxy.metricsUrl, { method: 'POST' })).status, 404);

    assert.equal(await proxy.stop(), 0);

    // ---- the CSVs: a route column, association ids unique across routes
    const pdus = await readCsv(chunks);
    const byRoute = (route: string): Row[] => pdus.filter((p) => p.route === route);
    assert.equal(byRoute('a').length + byRoute('b').length, pdus.length, 'every row has route a or b');
    const idsA = new Set(byRoute('a').map((p) => p.assoc));
    const idsB = new Set(byRoute('b').map((p) => p.assoc));
    assert.equal(idsB.size, 1);
    assert.ok(
      [...idsA].every((id) => !idsB.has(id)),
      `association ids unique across routes: a ${[...idsA]} b ${[...idsB]}`,
    );
    assert.equal(byRoute('b').filter((p) => p.direction === 'to_scp').length, bSummary.toScp.pdusIn);
    assert.deepEqual(
      byRoute('a')
        .filter((p) => p.direction === 'to_scp')
        .map((p) => [p.type, p.violation]),
      [
        ['A-ASSOCIATE-RQ', '0'],
        ['P-DATA-TF', '1'],
        ['A-ABORT', '0'],
      ],
    );
    const rows = await readCsv(messages);
    const stores = rows.filter((row) => row.route === 'b');
    assert.equal(stores.length, repeat);
    assert.ok(stores.every((row) => row.command === 'C-STORE-RQ' && row.status === '0000' && idsB.has(row.assoc)));
  });

  test('SIGTERM drains every route: both listeners close, associations in flight on both finish, exit 0', async () => {
    const [up1, up2] = await Promise.all([FakeScp.listen(), FakeScp.listen()]);
    try {
      const proxy = await ProxyProcess.startRoutes(['--route', `127.0.0.1:0=127.0.0.1:${up1.port},id=one`, '--route', `127.0.0.1:0=127.0.0.1:${up2.port},id=two`], ['one', 'two']);
      const ports = [proxy.routePort('one'), proxy.routePort('two')];
      const a = await associate(ports[0]!, up1);
      const b = await associate(ports[1]!, up2);
      const exited = new Promise<number | null>((resolve) => proxy.child.once('exit', (code) => resolve(code)));
      proxy.child.kill('SIGTERM');
      await proxy.waitForLog((l) => l.msg === 'shutting down: draining associations in flight');
      assert.equal(proxy.logs.find((l) => l.msg === 'shutting down: draining associations in flight')!.active, 2, 'both routes counted');
      for (const port of ports) await refusing(port, 5000);
      // Still forwarding on both routes, then released: the process exits 0 once both are done.
      await exchange(a);
      await exchange(b);
      await release(a);
      assert.equal(proxy.child.exitCode, null, 'still draining route two');
      await release(b);
      assert.equal(await withTimeout(exited, 10_000, 'the proxy to exit'), 0);
    } finally {
      await Promise.all([up1.close(), up2.close()]);
    }
  });

  test('a route that cannot listen: one line naming it, exit status 1', async () => {
    const blocker = await FakeScp.listen();
    try {
      const r = await runProxy(['--route', '127.0.0.1:0=127.0.0.1:9,id=ok', '--route', `127.0.0.1:${blocker.port}=127.0.0.1:9,id=taken`]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `dicom-pdu-proxy: --route "127.0.0.1:${blocker.port}=127.0.0.1:9,id=taken" (listen 127.0.0.1:${blocker.port}): EADDRINUSE\n`);
    } finally {
      await blocker.close();
    }
  });
});

/** Run the proxy to its exit (bounded): its exit code and stderr. */
function runProxy(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 15_000 }, (err, _stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: err ? (err.code as number) : 0, stderr });
    });
  });
}

/** Resolve once 127.0.0.1:port refuses connections (the listener is closed); reject after `timeoutMs`. */
async function refusing(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    if (result === 'ECONNREFUSED') return;
    if (Date.now() > deadline) throw new Error(`port ${port} still ${result} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
