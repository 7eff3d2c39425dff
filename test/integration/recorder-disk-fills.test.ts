// The recorders on a real file system that fills up and frees again (a small tmpfs the test mounts): the
// chunk CSV, the messages CSV and the capture all on it, DCMTK storescu and echoscu through the proxy
// before, during and after the disk is full. The relaying never stops; after the stop DuckDB (stats) reads
// every CSV (no broken row), tshark reads the capture without a malformed or cut-short packet, and what the
// files hold plus what the proxy counted as dropped is exactly what was relayed: rows per PDU and per
// message, capture bytes per byte relayed on each leg. The same for the CSVs with --workers 2 (the capture
// is refused with workers), whose processes append to one file. Skipped, saying why, where a tmpfs cannot
// be mounted.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { stats } from '../../src/cli/stats.js';
import { dcmtkErrors, echoscu, startStorescp, storescu } from '../helpers/dcmtk.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { writeTestDicom } from '../helpers/dicom-file.js';
import { killAll } from '../helpers/procs.js';
import type { LogLine } from '../helpers/proxy.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import { mountSmallFs, skipWithReason } from '../helpers/small-fs.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
let tmp = '';
let image: TestDicomInfo;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'disk-fills-'));
  image = await writeTestDicom(path.join(tmp, 'image.dcm'), { pixelBytes: 512 * 1024, seed: 261 });
});

after(async () => {
  await stopAllProxies();
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** Rows DuckDB reads from `file` (a broken row makes stats refuse the file: this throws). */
async function rowCount(file: string, table: 'chunks' | 'messages'): Promise<number> {
  const { text } = await stats([file], { sql: `SELECT count(*)::INTEGER AS n FROM ${table}`, format: 'json' });
  return (JSON.parse(text) as Array<{ n: number }>)[0]!.n;
}

/** Rows each recorder dropped, summed over the processes that said so when they closed. */
function droppedRows(logs: readonly LogLine[], recorder: string): number {
  return logs.filter((l) => l.recorder === recorder && l.msg === 'recorder closed: rows were dropped').reduce((n, l) => n + (l.droppedRows as number), 0);
}

type Link = { bytesIn: number; pdusIn: number; bytesOut: number };

/** Storescu and echoscu through `proxy`, `times` of each, `parallel` at once. */
async function traffic(proxy: ProxyProcess, aet: string, parallel: number): Promise<void> {
  const runs = await Promise.all(
    Array.from({ length: parallel }, (_, i) => [
      storescu({ port: proxy.port, calledAet: aet, aet: `SCU${i}`, files: [image.path!], debug: false }),
      echoscu({ port: proxy.port, calledAet: aet, debug: false }),
    ]).flat(),
  );
  for (const r of runs) {
    assert.equal(r.code, 0, `${r.stderr.slice(-1500)}\nproxy: ${proxy.stderr}`);
    assert.deepEqual(dcmtkErrors(r), []);
  }
}

for (const workers of [1, 2]) {
  describe(`recorders on a disk that fills and frees again, --workers ${workers}`, { timeout: 120_000 }, () => {
    test(`both CSVs${workers === 1 ? ' and --pcap' : ''}: the relaying goes on, every file reads whole afterwards, rows and bytes in the files + dropped = relayed`, async (t) => {
      const fsys = mountSmallFs(12 * MiB);
      if (typeof fsys === 'string') return skipWithReason(t, fsys);
      t.after(() => fsys.unmount());
      const scp = await startStorescp({ outDir: tmp, extraArgs: ['--ignore'] });
      t.after(() => scp.stop());
      const csv = path.join(fsys.dir, 'chunks.csv');
      const messagesCsv = path.join(fsys.dir, 'messages.csv');
      const pcap = path.join(fsys.dir, 'capture.pcapng');
      const proxy = await ProxyProcess.start([
        '--upstream',
        `127.0.0.1:${scp.port}`,
        '--workers',
        String(workers),
        '--csv',
        csv,
        '--messages-csv',
        messagesCsv,
        ...(workers === 1 ? ['--pcap', pcap] : []),
        '--log-level',
        'info',
      ]);
      t.after(() => proxy.stop());
      const parallel = 2 * workers;

      await traffic(proxy, scp.aet, parallel);
      await sleep(500); // the rows are written (batches wait at most 200 ms)
      fsys.fill();
      await traffic(proxy, scp.aet, parallel); // every write now fails, or is cut short
      await sleep(500);
      fsys.free();
      await sleep(2500); // a retry (every second) finds room again
      await traffic(proxy, scp.aet, parallel);
      const associations = 3 * 2 * parallel;
      const closed = (): LogLine[] => proxy.logs.filter((l) => l.msg === 'association closed');
      for (let i = 0; i < 100 && closed().length < associations; i++) await sleep(100);
      assert.equal(closed().length, associations);
      assert.equal(await proxy.stop(), 0, `a clean exit: ${proxy.stderr}`);
      assert.equal(proxy.stderr, '', 'nothing on stderr');

      const failed = proxy.logs.filter((l) => l.level >= 50 && typeof l.recorder === 'string');
      assert.ok(failed.length >= 1, 'the outage was logged');
      assert.ok(
        failed.every((l) => l.err === 'ENOSPC'),
        JSON.stringify(failed),
      );
      const pdus = closed().reduce((n, l) => n + (l.toScp as Link).pdusIn + (l.toScu as Link).pdusIn, 0);
      const chunkRows = await rowCount(csv, 'chunks');
      assert.equal(chunkRows + droppedRows(proxy.logs, '--csv'), pdus, `chunk CSV: ${chunkRows} rows + dropped = ${pdus} PDUs relayed`);
      const messageRows = await rowCount(messagesCsv, 'messages');
      assert.equal(messageRows + droppedRows(proxy.logs, '--messages-csv'), associations, `messages CSV: ${messageRows} rows + dropped = one per association`);
      assert.ok(messageRows >= (2 * associations) / 3, `rows written before and after the outage (${messageRows})`);
      // Rows after the outage made it: the last association's rows are in the files.
      if (workers === 1) {
        const { stdout: problems } = await run('tshark', ['-r', pcap, '-Y', '_ws.malformed || _ws.expert.severity >= error'], { maxBuffer: 64 * MiB });
        assert.equal(problems, '', 'tshark finds nothing malformed');
        const { stdout } = await run('tshark', ['-r', pcap, '-T', 'fields', '-e', 'tcp.len'], { maxBuffer: 64 * MiB });
        const captured = stdout
          .split('\n')
          .filter(Boolean)
          .reduce((n, v) => n + Number(v), 0);
        const dropped = proxy.logs.find((l) => l.msg === 'pcap: bytes dropped from the capture')?.droppedBytes ?? 0;
        const relayed = closed().reduce((n, l) => n + ['toScp', 'toScu'].reduce((m, k) => m + (l[k] as Link).bytesIn + (l[k] as Link).bytesOut, 0), 0);
        assert.equal(captured + (dropped as number), relayed, `capture: ${captured} bytes + ${String(dropped)} dropped = ${relayed} relayed on both legs`);
        assert.ok(captured > relayed / 2, 'the capture resumed after the outage');
      }
    });
  });
}
