// A CSV file on a full disk (/dev/full: every write fails with ENOSPC) must cost rows, never associations:
// DCMTK echoscu and storescu through the real proxy with --csv and --messages-csv on /dev/full and
// --metrics on. The relaying goes on (the image arrives bit-identical), each recorder says so in one error
// line, the dropped rows are counted in the metrics and in the log when the proxy stops, and the exit is clean.
// The same for the capture (--pcap /dev/full): bytes it could not keep are counted instead of rows. A real
// file system that fills and frees again: test/integration/recorder-disk-fills.test.ts.

import assert from 'node:assert/strict';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { dcmtkErrors, echoscu, startStorescp, storescu } from '../helpers/dcmtk.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import { killAll } from '../helpers/procs.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';

const FULL = '/dev/full';
let tmp = '';
let image: TestDicomInfo;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'disk-full-'));
  image = await writeTestDicom(path.join(tmp, 'image.dcm'), { pixelBytes: 1024 * 1024, seed: 191 });
});

after(async () => {
  await stopAllProxies();
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** recorder_rows_dropped_total{file="<file>"} from the metrics endpoint. */
async function droppedMetric(url: string, file: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const m = new RegExp(`^dicom_pdu_proxy_recorder_rows_dropped_total\\{file="${file}"\\} (\\d+)$`, 'm').exec(text);
  assert.ok(m, `a recorder_rows_dropped_total sample for ${file} in:\n${text.slice(0, 2000)}`);
  return Number(m[1]);
}

describe('CSV recorders on a full disk', { timeout: 60_000 }, () => {
  test('--csv and --messages-csv on /dev/full: echoscu and storescu still succeed; one error line each; dropped rows in metrics and log', async (t) => {
    const scp = await startStorescp({ outDir: tmp, extraArgs: ['--filename-extension', '.stored'] });
    t.after(() => scp.stop());
    // Two names for the full device: the proxy refuses one file for both logs.
    const chunksCsv = path.join(tmp, 'chunks.csv');
    await symlink(FULL, chunksCsv);
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--csv', chunksCsv, '--messages-csv', FULL, '--metrics', '127.0.0.1:0', '--log-level', 'info']);
    await proxy.waitForLog((l) => l.msg === 'metrics listening');

    const echo1 = await echoscu({ port: proxy.port, calledAet: scp.aet, debug: false });
    assert.equal(echo1.code, 0, `C-ECHO through the proxy: ${echo1.stderr.slice(-2000)}\nproxy: ${proxy.stderr}`);
    const store = await storescu({ port: proxy.port, calledAet: scp.aet, files: [image.path!], debug: false });
    assert.equal(store.code, 0, `C-STORE through the proxy: ${store.stderr.slice(-2000)}\nproxy: ${proxy.stderr}`);
    assert.deepEqual(dcmtkErrors(store), []);
    const echo2 = await echoscu({ port: proxy.port, calledAet: scp.aet, debug: false });
    assert.equal(echo2.code, 0, `a second C-ECHO: ${echo2.stderr.slice(-2000)}\nproxy: ${proxy.stderr}`);
    const received = scp.receivedFiles().filter((f) => f.endsWith('.stored'));
    assert.equal(received.length, 1);
    assert.ok(datasetBytes(received[0]!).equals(datasetBytes(image.path!)), 'the image arrived bit-identical');
    assert.equal(proxy.child.exitCode, null, 'the proxy is still running');

    const closed = await Promise.all([1, 2, 3].map((n) => proxy.waitForLog((l) => l.msg === 'association closed' && l.assoc === n)));
    for (const l of closed) assert.equal(l.outcome, 'released');
    // The rows of three messages (and of every PDU) were dropped and counted, as a scrape shows once the
    // last batch was due (batches wait at most 200 ms): two scrapes 300 ms apart agree.
    const deadline = Date.now() + 10_000;
    let messages = -1;
    let chunks = -1;
    while (Date.now() < deadline) {
      const now = [await droppedMetric(proxy.metricsUrl, 'messages_csv'), await droppedMetric(proxy.metricsUrl, 'csv')];
      if (now[0] === messages && now[1] === chunks) break;
      [messages, chunks] = now as [number, number];
      await sleep(300);
    }
    assert.equal(messages, 3, 'C-ECHO, C-STORE, C-ECHO: three message rows dropped');
    assert.ok(chunks >= 18, `every PDU row dropped (${chunks}; three associations of at least 6 PDUs)`);

    assert.equal(await proxy.stop(), 0, 'a clean exit');
    for (const recorder of ['--csv', '--messages-csv']) {
      const errors = proxy.logs.filter((l) => l.recorder === recorder && l.level >= 50);
      assert.equal(errors.length, 1, `one error line for ${recorder}: ${JSON.stringify(errors)}`);
      assert.match(errors[0]!.msg, /recorder cannot write/);
      assert.equal(errors[0]!.err, 'ENOSPC');
      const last = proxy.logs.find((l) => l.recorder === recorder && l.msg === 'recorder closed: rows were dropped');
      assert.ok(last, `a closing line with the count for ${recorder}`);
      assert.equal(last.droppedRows, recorder === '--csv' ? chunks : messages);
    }
    assert.equal(proxy.stderr, '', 'nothing on stderr');
  });

  test('--pcap on /dev/full: storescu still succeeds; one error line; every byte counted as dropped at the stop', async (t) => {
    const scp = await startStorescp({ outDir: tmp, extraArgs: ['--filename-extension', '.pcapfull'] });
    t.after(() => scp.stop());
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--pcap', FULL, '--metrics', '127.0.0.1:0', '--log-level', 'info']);
    await proxy.waitForLog((l) => l.msg === 'metrics listening');
    const store = await storescu({ port: proxy.port, calledAet: scp.aet, files: [image.path!], debug: false });
    assert.equal(store.code, 0, `C-STORE through the proxy: ${store.stderr.slice(-2000)}\nproxy: ${proxy.stderr}`);
    const echo = await echoscu({ port: proxy.port, calledAet: scp.aet, debug: false });
    assert.equal(echo.code, 0, `a C-ECHO after the failure: ${echo.stderr.slice(-2000)}\nproxy: ${proxy.stderr}`);
    const received = scp.receivedFiles().filter((f) => f.endsWith('.pcapfull'));
    assert.equal(received.length, 1);
    assert.ok(datasetBytes(received[0]!).equals(datasetBytes(image.path!)), 'the image arrived bit-identical');
    const closed = await Promise.all([1, 2].map((n) => proxy.waitForLog((l) => l.msg === 'association closed' && l.assoc === n)));
    const text = await (await fetch(proxy.metricsUrl)).text();
    assert.match(text, /^dicom_pdu_proxy_capture_bytes_dropped_total \d+$/m, 'a capture_bytes_dropped_total sample');

    assert.equal(await proxy.stop(), 0, 'a clean exit');
    const errors = proxy.logs.filter((l) => l.recorder === '--pcap' && l.level >= 50);
    assert.equal(errors.length, 1, `one error line: ${JSON.stringify(errors)}`);
    assert.equal(errors[0]!.err, 'ENOSPC');
    // The writes are retried (held in the capture's buffers) until the stop gives up on them: then every
    // byte relayed on both legs is counted as dropped, none twice.
    type Link = { bytesIn: number; bytesOut: number };
    const relayed = closed.reduce((n, l) => n + ['toScp', 'toScu'].reduce((m, k) => m + (l[k] as Link).bytesIn + (l[k] as Link).bytesOut, 0), 0);
    const last = proxy.logs.find((l) => l.recorder === '--pcap' && l.msg === 'pcap: bytes dropped from the capture');
    assert.equal(last?.droppedBytes, relayed, `a closing line with every byte relayed: ${JSON.stringify(last)}`);
    assert.equal(proxy.stderr, '', 'nothing on stderr');
  });
});
