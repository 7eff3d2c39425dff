// `dicom-pdu-proxy bench --tls` end to end: the real CLI, a tiny sweep through the re-encrypting proxy and
// direct (TLS end to end), with the throwaway certificates bench makes itself. Every image must be
// acknowledged; the proxy must have run TLS on both legs (its log, as run.json keeps it) and still seen the
// clear PDUs (its chunk CSV).

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { readCsvFile } from '../../src/analysis/csv.js';
import { killAll, runToExit } from '../helpers/procs.js';
import { BIN } from '../helpers/proxy.js';
import { readResults } from '../helpers/bench.js';

let tmp = '';

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'bench-tls-test-'));
});

after(async () => {
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('bench --tls --both: through the TLS -> TLS proxy and TLS direct, every image acknowledged, TLS on both legs', async () => {
  const out = path.join(tmp, 'run');
  const r = await runToExit(process.execPath, [BIN, 'bench', '--tls', '--both', '--pdu', '16KB,1MB', '--image-size', '256KB', '--count', '4', '--parallel', '2', '--out', out], {
    timeoutMs: 60_000,
    cwd: tmp,
    name: 'bench',
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /TLS on every leg \(the proxy re-encrypts/);

  const rows = await readResults(out);
  assert.deepEqual(rows.map((x) => [x.pdu_bytes, x.mode]).sort(), [
    ['1048576', 'direct'],
    ['1048576', 'proxy'],
    ['16384', 'direct'],
    ['16384', 'proxy'],
  ]);
  for (const row of rows) {
    assert.equal(row.images, '4', JSON.stringify(row));
    assert.equal(row.failures, '0', JSON.stringify(row));
    assert.ok(Number(row.mean_s) > 0, JSON.stringify(row));
  }

  const info = JSON.parse(await readFile(path.join(out, 'run.json'), 'utf8')) as {
    tls?: string;
    proxyOptions: string;
    settings: Array<{ mode: string; chunksCsv?: string; tls?: { scu?: { version: string }; scp?: { version: string } } }>;
  };
  assert.match(info.tls ?? '', /every leg over TLS/);
  assert.match(info.proxyOptions, /--tls-cert .* --upstream-tls /);
  const proxied = info.settings.filter((s) => s.mode === 'proxy');
  assert.equal(proxied.length, 2);
  for (const s of proxied) {
    assert.match(s.tls?.scu?.version ?? '', /^TLSv1\.[23]$/, JSON.stringify(s));
    assert.match(s.tls?.scp?.version ?? '', /^TLSv1\.[23]$/, JSON.stringify(s));
    // The proxy saw clear PDUs (its chunk CSV has the P-DATA-TF toward the SCP).
    const { rows: chunks } = await readCsvFile(path.join(out, s.chunksCsv!));
    const pdata = chunks.filter((c) => c.direction === 'to_scp' && c.type === 'P-DATA-TF');
    assert.ok(pdata.length > 0, s.chunksCsv);
  }
  // The sender was told 16KB in the AC the proxy rewrote, over TLS: it sent P-DATA-TF of exactly 16384.
  const { rows: small } = await readCsvFile(path.join(out, proxied.find((s) => s.chunksCsv!.startsWith('chunks-16KB'))!.chunksCsv!));
  const lengths = small.filter((c) => c.direction === 'to_scp' && c.type === 'P-DATA-TF').map((c) => Number(c.length));
  assert.equal(Math.max(...lengths), 16384);
  const report = await readFile(path.join(out, 'report.html'), 'utf8');
  assert.match(report, /<dt>TLS<\/dt><dd>[^<]*SCU leg TLSv1\.[23] [^<]*SCP leg TLSv1\.[23]/);
});
