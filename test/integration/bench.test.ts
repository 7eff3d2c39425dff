// `dicom-pdu-proxy bench` end to end: the real CLI with its own child processes (proxy, embedded SCP, SCU
// workers), against the embedded SCP, DCMTK storescp (--upstream), with DCMTK storescu as the sender, and
// against an SCP that refuses some stores (failure accounting). The report.html of the --quick run is
// opened in a real browser (headless Chromium), and `stats --html` rebuilds it from the run's files.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readCsvFile } from '../../src/analysis/csv.js';
import type { CsvRow } from '../../src/analysis/csv.js';
import { startStorescp } from '../helpers/dcmtk.js';
import { writeTestDicom } from '../helpers/dicom-file.js';
import { killAll, runToExit, spawnPeer } from '../helpers/procs.js';
import type { RunResult } from '../helpers/procs.js';
import { BIN, REPO_ROOT } from '../helpers/proxy.js';
import { readResults, runBench } from '../helpers/bench.js';
import { chromiumMissing, distinctColours, openFile } from '../helpers/browser.js';

let tmp = '';
/** The --quick run's output directory, once it has succeeded: its report is checked in the browser. */
let quickOut: string | undefined;
const KB = 1024;
const MB = 1024 * 1024;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'bench-test-'));
});

after(async () => {
  await killAll();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function bench(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return runBench(args, tmp, timeoutMs);
}

/** Largest P-DATA-TF length the proxy received from the SCU, and sent toward the SCP, in a chunk CSV. */
async function toScpLengths(file: string): Promise<{ received: number; sent: number; pdata: number }> {
  const { rows } = await readCsvFile(file);
  const pdata = rows.filter((r) => r.direction === 'to_scp' && r.type === 'P-DATA-TF');
  return {
    received: Math.max(...pdata.map((r) => Number(r.length))),
    sent: Math.max(...pdata.map((r) => Number(r.out_max_length))),
    pdata: pdata.length,
  };
}

function assertTimes(row: CsvRow): void {
  const [min, p50, mean, p95, max] = [row.min_s, row.p50_s, row.mean_s, row.p95_s, row.max_s].map(Number);
  assert.ok(min! > 0, `min_s ${row.min_s}`);
  assert.ok(min! <= p50! && p50! <= p95! && p95! <= max!, JSON.stringify(row));
  assert.ok(min! <= mean! && mean! <= max!, JSON.stringify(row));
  assert.ok(Number(row.mb_per_s) > 0);
  // The spread: a standard deviation, and a 95% interval around the mean (t: symmetric about it).
  const [sd, low, high] = [row.sd_s, row.ci95_low_s, row.ci95_high_s].map(Number);
  assert.ok(sd! >= 0 && low! <= mean! && mean! <= high!, JSON.stringify(row));
  assert.ok(Math.abs(mean! - low! - (high! - mean!)) <= 2e-6, `interval centred on the mean: ${JSON.stringify(row)}`);
}

describe('bench', () => {
  test('--quick: the six sizes through the proxy to the embedded SCP; results.csv, chunk CSVs, chart', async () => {
    const out = path.join(tmp, 'quick');
    const r = await bench(['--quick', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /estimated total about/);
    const rows = await readResults(out);
    const sizes = [16 * KB, 100 * KB, 500 * KB, 1 * MB, 10 * MB, 20 * MB];
    assert.deepEqual(
      rows.map((x) => Number(x.pdu_bytes)),
      sizes,
    );
    for (const row of rows) {
      assert.equal(row.images, '8');
      assert.equal(row.parallel, '4');
      assert.equal(row.failures, '0');
      assert.equal(row.mode, 'proxy');
      assert.equal(row.scu, 'builtin');
      assert.equal(row.scp, 'builtin');
      assert.equal(row.association, 'per-image');
      assert.ok(Number(row.connect_ms) > 0 && Number(row.associate_ms) > 0, `connect ${row.connect_ms}, associate ${row.associate_ms}`);
      assert.ok(Number(row.image_bytes) > 2 * MB && Number(row.image_bytes) < 2 * MB + 1024, row.image_bytes);
      assertTimes(row);
      // The time split comes from the proxy's messages CSV: every column filled, none negative.
      for (const column of ['scu_idle_ms', 'upstream_blocked_ms', 'scp_response_ms', 'proxy_busy_ms']) {
        assert.notEqual(row[column], '', `${column} filled`);
        assert.ok(Number(row[column]) >= 0, `${column} ${row[column]}`);
      }
      assert.ok(Number(row.scp_response_ms) > 0, 'the SCP took some time to answer');
      // The proxy's own time per image is within the image's time (ms against s).
      assert.ok(Number(row.proxy_busy_ms) <= Number(row.mean_s) * 1000, `proxy_busy_ms ${row.proxy_busy_ms}, mean_s ${row.mean_s}`);
    }
    // The table: one row per setting.
    for (const label of ['16KB', '100KB', '500KB', '1MB', '10MB', '20MB']) assert.match(r.stdout, new RegExp(`^${label}\\s+8\\s+0\\s`, 'm'));
    // What the sender really did at each setting: PDUs of exactly the AC's value, or the whole data set in
    // one PDV (PDU-length 6 + its bytes) when that is smaller; the proxy passed them on unchanged.
    for (const size of sizes) {
      const { received, sent } = await toScpLengths(path.join(out, `chunks-${size >= MB ? `${size / MB}MB` : `${size / KB}KB`}-2MB.csv`));
      assert.equal(received, Math.min(size, 6 + Number(rows[0]!.image_bytes)), `${size}: received ${received}`);
      assert.equal(sent, received);
    }
    const svg = await readFile(path.join(out, 'chart.svg'), 'utf8');
    assert.match(svg, /^<svg /);
    assert.ok(svg.trimEnd().endsWith('</svg>'));
    assert.match(svg, />500KB</);
    assert.ok(existsSync(path.join(out, 'report.html')), 'report.html written');
    assert.ok(r.stderr.includes(`bench: report: ${path.join(out, 'report.html')}`), r.stderr);
    quickOut = out;
  });

  test('report.html of --quick in headless Chromium: no console error, no request leaving the file, tables and charts there, not blank', async () => {
    const missing = chromiumMissing();
    assert.equal(missing, undefined, missing);
    assert.ok(quickOut, 'needs the --quick run above');
    const rows = await readResults(quickOut);
    const file = path.join(quickOut, 'report.html');
    const opened = await openFile(file, tmp, { width: 1280, height: 800 });
    try {
      const { page } = opened;
      assert.deepEqual(opened.errors, [], 'console errors');
      assert.deepEqual(opened.requests, [opened.url], 'the page fetched nothing but itself');

      // The table: one row per setting, numbers right-aligned with their units.
      // Evaluated in the page (a string: this project's TypeScript has no DOM types).
      const table = (await page.evaluate(`[...document.querySelectorAll('#results-table tbody tr')].map((tr) =>
        [...tr.children].map((c) => ({ text: c.innerText.trim(), align: getComputedStyle(c).textAlign })))`)) as Array<Array<{ text: string; align: string }>>;
      // The label, and under it the verdict of Welch's test against the fastest setting.
      const labels = table.map((r) => r[0]!.text.split('\n'));
      assert.deepEqual(
        labels.map((l) => l[0]),
        ['16KB', '100KB', '500KB', '1MB', '10MB', '20MB'],
      );
      for (const [i, r] of table.entries()) {
        assert.match(labels[i]!.slice(1).join(' '), /^(fastest|slower \(p\u00a0[<=]\u00a0\d\.\d{3}\)|within noise \(p\u00a0=\u00a0\d\.\d{3}\))$/);
        assert.equal(r[1]!.text, '8');
        assert.equal(r[3]!.text, `${Number(rows[i]!.mean_s).toFixed(3)} s`, 'mean as in results.csv, with its unit');
        // mean ± half the interval of results.csv (its ends are rounded to the microsecond).
        const half = (Number(rows[i]!.ci95_high_s) - Number(rows[i]!.ci95_low_s)) / 2;
        assert.ok(Math.abs(Number(/^±(\d+\.\d{3}) s$/.exec(r[4]!.text)?.[1]) - half) <= 0.0006, `95% CI ${r[4]!.text}, results.csv ±${half}`);
        assert.match(r[9]!.text, /^\d+\.\d\d MB\/s$/);
        assert.match(r[10]!.text, /^\d+\.\d ms$/);
        for (const cell of r.slice(1)) assert.equal(cell.align, 'right', `${cell.text} right-aligned`);
      }
      // The charts: inline SVGs that were laid out (non-empty boxes), with the settings on the sweep's axis.
      for (const id of ['sweep-chart', 'split-chart', 'timeline-chart']) {
        const box = await page.locator(`#${id} svg`).boundingBox();
        assert.ok(box && box.width > 200 && box.height > 100, `${id}: ${JSON.stringify(box)}`);
      }
      const sweepText = await page.locator('#sweep-chart svg').textContent();
      for (const label of ['16KB', '500KB', '20MB']) assert.ok(sweepText!.includes(label), `${label} on the sweep chart`);
      assert.ok((await page.locator('#split-chart svg rect, #split-chart svg path').count()) > 6, 'bars in the split chart');
      // Readable at a laptop's width: nothing wider than the window.
      assert.equal(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth'), true, 'no horizontal scrolling at 1280 px');

      // The settings, and "what this shows" with the run's own numbers.
      const settings = await page.locator('#settings').innerText();
      for (const text of [
        'PDU-BENCH',
        'ANY-SCP',
        '4 × built-in SCU',
        'exactly the size the AC gives',
        'streams every PDU',
        '2MB',
        '16KB, 100KB, 500KB, 1MB, 10MB, 20MB',
        'Node v2',
      ])
        assert.ok(settings.includes(text), `settings: ${text}`);
      const shows = await page.locator('#what-this-shows').innerText();
      const fastest = rows.reduce((a, b) => (Number(b.mean_s) < Number(a.mean_s) ? b : a));
      const label = labels[rows.indexOf(fastest)]![0]!;
      assert.ok(shows.includes(`Fastest: ${label} (mean ${Number(fastest.mean_s).toFixed(3)} s per image)`), shows);
      assert.match(shows, /Time went to: .*\(\d+%\)/);
      assert.match(shows, /Slowest: \S+, \d+% slower/);
      // Welch's test of every setting against the fastest: each named as slower or within noise.
      assert.match(shows, /(Slower than the fastest|No setting is slower than the fastest), \S+, beyond noise \(Welch's t-test/);
      for (const other of labels.map((l) => l[0]!).filter((l) => l !== label)) {
        assert.match(shows, new RegExp(`[ ,;]${other}(: | \\((\\+\\d+%, )?)p [<=] \\d\\.\\d{3}`), `${other} tested against ${label}: ${shows}`);
      }
      const pduRows = await page.locator('#pdu-table tbody tr').count();
      assert.equal(pduRows, 6);

      const shot = path.join(tmp, 'report.png');
      const png = await page.screenshot({ path: shot, fullPage: true });
      assert.ok(distinctColours(png) > 100, `a screenshot with ${distinctColours(png)} colours is blank`);
      assert.deepEqual(opened.errors, [], 'console errors');
    } finally {
      await opened.close();
    }
  });

  test("stats --html rebuilds the same report from the --quick run's files", async () => {
    assert.ok(quickOut, 'needs the --quick run above');
    const files = (await readdir(quickOut)).filter((f) => f.endsWith('.csv')).map((f) => path.join(quickOut!, f));
    const html = path.join(tmp, 'stats-report.html');
    const r = await runToExit(process.execPath, [BIN, 'stats', ...files, '--html', html], { timeoutMs: 60_000, cwd: tmp, name: 'stats' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /report written to /);
    const table = (text: string): string => /<table id="results-table">[\s\S]*?<\/table>/.exec(text)?.[0] ?? '';
    const section = (text: string, id: string): string => new RegExp(`<section id="${id}">[\\s\\S]*?</section>`).exec(text)?.[0] ?? '';
    const fromBench = await readFile(path.join(quickOut, 'report.html'), 'utf8');
    const fromStats = await readFile(html, 'utf8');
    assert.notEqual(table(fromBench), '');
    assert.equal(table(fromStats), table(fromBench));
    // run.json next to results.csv gives the same settings; the PDU table differs only in naming files.
    assert.equal(section(fromStats, 'settings'), section(fromBench, 'settings'));
  });

  test('--both: the same settings through the proxy and direct (the SCP announces each size itself)', async () => {
    const out = path.join(tmp, 'both');
    const r = await bench(['--both', '--pdu', '16KB,1MB', '--count', '2', '--parallel', '1', '--image-size', '1MB', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const rows = await readResults(out);
    assert.deepEqual(
      rows.map((x) => `${x.mode} ${x.pdu_bytes} ${x.failures}`),
      ['proxy 16384 0', 'proxy 1048576 0', 'direct 16384 0', 'direct 1048576 0'],
    );
    for (const row of rows) assertTimes(row);
    for (const row of rows.filter((x) => x.mode === 'direct')) assert.equal(row.scp_response_ms, '');
    const files = (await readdir(out)).sort();
    assert.deepEqual(
      files.filter((f) => f.startsWith('chunks-')),
      ['chunks-16KB-1MB.csv', 'chunks-1MB-1MB.csv'],
    );
    assert.match(r.stdout, /^16KB direct\s+2\s+0\s/m);
  });

  test('--latency/--bandwidth lists: each link swept with each size, the proxy shapes it, results.csv says which', async () => {
    const out = path.join(tmp, 'shaped');
    const r = await bench(['--pdu', '16KB', '--latency', '0,50', '--bandwidth', '20Mbit', '--count', '2', '--parallel', '1', '--image-size', '1MB', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const rows = await readResults(out);
    assert.deepEqual(
      rows.map((x) => `${x.pdu_bytes} ${x.latency_ms} ${x.jitter_ms} ${x.bandwidth_bps} ${x.failures}`),
      ['16384 0 0 20000000 0', '16384 50 0 20000000 0'],
    );
    // A 1 MiB image is 0.42 s of wire at 20 Mbit/s; with 50 ms each way, the RQ/AC and the data/RSP round
    // trips add at least 4 x 50 ms more. (Lower bounds only: a busy machine can only be slower.)
    assert.ok(Number(rows[0]!.min_s) >= 0.42, `unshaped latency, 20 Mbit/s: ${rows[0]!.min_s} s`);
    assert.ok(Number(rows[1]!.min_s) >= 0.42 + 0.2, `50 ms, 20 Mbit/s: ${rows[1]!.min_s} s`);
    const files = (await readdir(out)).sort();
    assert.deepEqual(
      files.filter((f) => f.startsWith('chunks-')),
      ['chunks-16KB-1MB-0ms-20Mbit.csv', 'chunks-16KB-1MB-50ms-20Mbit.csv'],
    );
    assert.match(r.stdout, /^16KB 50ms 20Mbit\s+2\s+0\s/m);
    // The proxy of the 50 ms setting held every PDU toward the SCP at least 50 ms.
    const { rows: chunks } = await readCsvFile(path.join(out, 'chunks-16KB-1MB-50ms-20Mbit.csv'));
    const held = chunks.filter((c) => c.direction === 'to_scp' && c.forwarded_us !== '').map((c) => Number(c.forwarded_us) - Number(c.last_byte_us));
    assert.ok(held.length > 0 && Math.min(...held) >= 50_000, `held at least 50 ms: min ${Math.min(...held)} µs`);
    assert.ok(existsSync(path.join(out, 'chart.svg')));
  });

  test('--image FILE...: real files sent round-robin; image_bytes is their mean dataset size', async () => {
    const a = await writeTestDicom(path.join(tmp, 'a.dcm'), { pixelBytes: 100_000, seed: 21 });
    const b = await writeTestDicom(path.join(tmp, 'b.dcm'), { pixelBytes: 300_000, seed: 22 });
    const out = path.join(tmp, 'files');
    const storeDir = path.join(tmp, 'files-store');
    const r = await bench(['--image', a.path!, b.path!, '--pdu', '16KB', '--count', '4', '--parallel', '2', '--store-dir', storeDir, '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const rows = await readResults(out);
    assert.equal(rows[0]!.image_bytes, String(Math.round((a.datasetLength + b.datasetLength) / 2)));
    assert.equal(rows[0]!.failures, '0');
    assert.ok(existsSync(path.join(out, 'chunks-16KB-2files.csv')));
    // 4 warm-up (2 per sender) + 4 images, each with its own SOP Instance UID, kept by the embedded SCP.
    assert.equal((await readdir(storeDir)).filter((f) => f.endsWith('.dcm')).length, 8);
  });

  test('--upstream DCMTK storescp: the proxy re-fragments every swept size down to its real 16KB', async () => {
    const scpDir = path.join(tmp, 'storescp');
    await rm(scpDir, { recursive: true, force: true });
    await (await import('node:fs/promises')).mkdir(scpDir);
    const storescp = await startStorescp({ outDir: scpDir, logLevel: 'quiet' });
    try {
      const out = path.join(tmp, 'upstream');
      const r = await bench([
        '--upstream',
        `127.0.0.1:${storescp.port}`,
        '--called-aet',
        storescp.aet,
        '--calling-aet',
        'BENCHTEST',
        '--pdu',
        '16KB,1MB',
        '--count',
        '4',
        '--parallel',
        '2',
        '--image-size',
        '512KB',
        '--out',
        out,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const rows = await readResults(out);
      assert.deepEqual(
        rows.map((x) => x.failures),
        ['0', '0'],
      );
      // 4 warm-up images (2 per sender) + 2 x 4: every one stored, each with its own SOP Instance UID.
      assert.equal(storescp.receivedFiles().length, 12);
      const big = await toScpLengths(path.join(out, 'chunks-1MB-512KB.csv'));
      assert.ok(big.received > 16 * KB, `SCU sent ${big.received}`);
      assert.equal(big.sent, 16 * KB);
    } finally {
      await storescp.stop();
    }
  });

  test('--scu dcmtk: storescu sends, capped at 128KB PDUs whatever the AC says, and the output says so', async () => {
    const out = path.join(tmp, 'dcmtk');
    const r = await bench(['--scu', 'dcmtk', '--pdu', '16KB,1MB', '--count', '4', '--parallel', '2', '--image-size', '1MB', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /storescu never sends PDUs over 128KB/);
    const rows = await readResults(out);
    assert.deepEqual(
      rows.map((x) => `${x.scu} ${x.failures}`),
      ['dcmtk 0', 'dcmtk 0'],
    );
    for (const row of rows) assertTimes(row);
    assert.equal((await toScpLengths(path.join(out, 'chunks-16KB-1MB.csv'))).received, 16 * KB - 6);
    assert.equal((await toScpLengths(path.join(out, 'chunks-1MB-1MB.csv'))).received, 128 * KB - 6);
  });

  test('every swept size is really sent: the largest P-DATA-TF toward the SCP is min(setting, whole message), 16KB..64MB', async () => {
    const out = path.join(tmp, 'sizes');
    const sizes = [16 * KB, 100 * KB, 500 * KB, 1 * MB, 10 * MB, 20 * MB, 64 * MB];
    const r = await bench(['--pdu', '16KB,100KB,500KB,1MB,10MB,20MB,64MB', '--image-size', '24MB', '--count', '1', '--parallel', '1', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const rows = await readResults(out);
    const whole = 6 + Number(rows[0]!.image_bytes);
    for (const size of sizes) {
      const { received, sent } = await toScpLengths(path.join(out, `chunks-${size >= MB ? `${size / MB}MB` : `${size / KB}KB`}-24MB.csv`));
      assert.equal(received, Math.min(size, whole), `${size}: largest P-DATA-TF ${received}`);
      assert.equal(sent, received, `${size}: passed on unchanged`);
    }
  });

  test('--association per-sender: one association per sender; its connect and negotiation times reported apart', async () => {
    const out = path.join(tmp, 'per-sender');
    const r = await bench(['--association', 'per-sender', '--pdu', '1MB', '--count', '4', '--parallel', '2', '--image-size', '1MB', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    const [row] = await readResults(out);
    assert.equal(`${row!.association} ${row!.scu} ${row!.failures}`, 'per-sender builtin 0');
    assert.ok(Number(row!.connect_ms) > 0 && Number(row!.associate_ms) > 0);
    // 2 associations for 4 images (the messages CSV numbers associations), not 4.
    const { rows } = await readCsvFile(path.join(out, 'messages-1MB-1MB.csv'));
    assert.equal(new Set(rows.map((m) => m.assoc)).size, 2);
    assert.equal(rows.filter((m) => m.command === 'C-STORE-RQ').length, 4);
  });

  test("--scu dcmjs --scp dcmjs: today's peers, the 4 MiB cap noted and visible in the chunk CSV", async () => {
    const out = path.join(tmp, 'dcmjs');
    const r = await bench(['--scu', 'dcmjs', '--scp', 'dcmjs', '--pdu', '16KB,10MB', '--count', '2', '--parallel', '1', '--image-size', '6MB', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /dcmjs-dimse Client never sends PDUs over 4 MiB/);
    const rows = await readResults(out);
    assert.deepEqual(
      rows.map((x) => `${x.scu} ${x.scp} ${x.association} ${x.connect_ms} ${x.failures}`),
      ['dcmjs dcmjs per-image  0', 'dcmjs dcmjs per-image  0'],
    );
    assert.equal((await toScpLengths(path.join(out, 'chunks-16KB-6MB.csv'))).received, 16 * KB);
    assert.equal((await toScpLengths(path.join(out, 'chunks-10MB-6MB.csv'))).received, 4 * MB);
  });

  test('failures: an SCP refusing every 3rd store makes bench count them, report them and exit 1', async () => {
    const scp = spawnPeer(
      process.execPath,
      ['--import', 'tsx', path.join(REPO_ROOT, 'src', 'bench', 'scp-process.ts'), '--port', '0', '--max-pdu', String(MB), '--fail-every', '3'],
      { name: 'failing scp', cwd: REPO_ROOT },
    );
    try {
      const port = Number((await scp.waitForOutput(/^listening (\d+)$/m, 15_000))[1]);
      const out = path.join(tmp, 'failing');
      // Stores 1-4 are the warm-up (2 per sender; store 3 is refused there: a warning, not counted);
      // then 6 images = stores 5..10, of which 6 and 9 are refused.
      const r = await bench(['--upstream', `127.0.0.1:${port}`, '--pdu', '16KB', '--count', '6', '--parallel', '2', '--image-size', '64KB', '--out', out]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /warning: 1 warm-up image\(s\) not acknowledged with Success: 1 x status a700/);
      assert.match(r.stderr, /2 of 6 images were NOT acknowledged with Success: 2 x status a700/);
      assert.match(r.stdout, /^16KB\s+6\s+2\s/m);
      const rows = await readResults(out);
      assert.equal(rows[0]!.failures, '2');
      assert.equal(rows[0]!.images, '6');
    } finally {
      await scp.kill();
    }
  });

  test('an SCP that is not there: the images are failures with the reason, exit 1', async () => {
    const { freePort } = await import('../helpers/ports.js');
    const port = await freePort();
    const r = await bench(['--upstream', `127.0.0.1:${port}`, '--pdu', '16KB', '--count', '2', '--parallel', '1', '--image-size', '64KB', '--out', path.join(tmp, 'nothere')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /warm-up images could not be sent: 2 x network error: .*ECONNREFUSED/);
  });
});
