// bench's settings: the experiment's defaults, --quick, and one clear line (exit 2) for every bad value.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchOptions, linkArgs, linkSettings } from '../../src/bench/options.js';
import { linkLabel } from '../../src/values/shaping.js';
import { RESULTS_CSV_COLUMNS, resultsCsvRow } from '../../src/bench/results.js';
import { ConfigError } from '../../src/values/errors.js';
import { main } from '../../src/cli/main.js';

const KB = 1024;
const MB = 1024 * KB;

test('defaults are the experiment: six sizes, 16MB images, 4 senders, 100 images, through the proxy', () => {
  const o = benchOptions({}, '/w');
  assert.deepEqual(o.pdus, [16 * KB, 100 * KB, 500 * KB, MB, 10 * MB, 20 * MB]);
  assert.deepEqual(o.imageSizes, [16 * MB]);
  assert.equal(o.parallel, 4);
  assert.equal(o.count, 100);
  assert.deepEqual(o.modes, ['proxy']);
  assert.equal(o.scu, 'builtin');
  assert.equal(o.scp, 'builtin');
  assert.equal(o.association, 'per-image');
  assert.equal(o.upstream, undefined);
  assert.equal(o.calledAet, 'ANY-SCP');
  assert.match(o.out, /^\/w\/results\/\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d$/);
});

test('--quick: the same sizes, fewer and smaller images; explicit values still win', () => {
  const q = benchOptions({ quick: true });
  assert.deepEqual(q.pdus, benchOptions({}).pdus);
  assert.deepEqual([q.imageSizes, q.count], [[2 * MB], 8]);
  const q2 = benchOptions({ quick: true, count: '3', imageSize: '64KB,1MB' });
  assert.deepEqual([q2.imageSizes, q2.count], [[64 * KB, MB], 3]);
});

test('modes, upstream and AE titles', () => {
  assert.deepEqual(benchOptions({ direct: true }).modes, ['direct']);
  assert.deepEqual(benchOptions({ both: true }).modes, ['proxy', 'direct']);
  const u = benchOptions({ upstream: 'pacs:104', calledAet: 'PACS', callingAet: 'MOD1' });
  assert.deepEqual(u.upstream, { host: 'pacs', port: 104 });
  assert.deepEqual([u.calledAet, u.callingAet], ['PACS', 'MOD1']);
});

test('every bad value is a ConfigError naming the flag', () => {
  const bad: Array<[Parameters<typeof benchOptions>[0], RegExp]> = [
    [{ pdu: '16KB,,1MB' }, /^--pdu: .* not a comma-separated list/],
    [{ pdu: 'big' }, /^--pdu: "big" is not a size/],
    [{ pdu: '16385' }, /^--pdu: 16385 bytes is not an even Maximum Length/],
    [{ imageSize: '3' }, /^--image-size: 3 bytes is not an even/],
    [{ parallel: '0' }, /^--parallel: "0" is not a whole number in 1\.\.64/],
    [{ count: '1.5' }, /^--count: "1\.5" is not a whole number/],
    [{ scu: 'pynetdicom' }, /^--scu: "pynetdicom" is not builtin, dcmjs or dcmtk/],
    [{ scp: 'dcmtk' }, /^--scp: "dcmtk" is not builtin or dcmjs/],
    [{ scp: 'dcmjs', upstream: 'pacs:104' }, /^--scp chooses the embedded SCP/],
    [{ association: 'pooled' }, /^--association: "pooled" is not per-image or per-sender/],
    [{ association: 'per-sender', scu: 'dcmjs' }, /^--association per-sender is for --scu builtin/],
    [{ upstream: 'pacs' }, /^--upstream: "pacs" is not HOST:PORT/],
    [{ direct: true, both: true }, /^--direct and --both exclude each other/],
    [{ direct: true, upstream: 'pacs:104' }, /^--direct\/--both need the embedded SCP/],
    [{ calledAet: 'A\\B' }, /^--called-aet: .* is not an AE title/],
    [{ callingAet: 'X'.repeat(17) }, /^--calling-aet: .* is not an AE title/],
    [{ image: ['/nonexistent.dcm'] }, /^--image: \/nonexistent\.dcm: no such file/],
    [{ image: ['/x.dcm'], imageSize: '1MB' }, /^--image and --image-size exclude each other/],
  ];
  for (const [flags, message] of bad)
    assert.throws(
      () => benchOptions(flags),
      (e: Error) => e instanceof ConfigError && message.test(e.message),
      JSON.stringify(flags),
    );
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-opt-'));
  try {
    const notDicom = path.join(dir, 'x.txt');
    writeFileSync(notDicom, 'hello');
    assert.throws(() => benchOptions({ image: [notDicom] }), /is not a DICOM Part 10 file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the CLI: a bad bench flag is one line on stderr and exit status 2', async () => {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => (lines.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    assert.equal(await main(['node', 'cli', 'bench', '--count', 'many']), 2);
    assert.equal(await main(['node', 'cli', 'bench', '--nope']), 2);
  } finally {
    process.stderr.write = write;
  }
  assert.deepEqual(lines, ['dicom-pdu-proxy: --count: "many" is not a whole number in 1..1000000\n', "dicom-pdu-proxy: unknown option '--nope'\n"]);
});

test('results.csv rows follow the header', () => {
  const row = resultsCsvRow({
    row: {
      label: '16KB',
      count: 4,
      failures: 1,
      seconds: { n: 3, mean: 2, min: 1, max: 3, p50: 2, p95: 3 },
      mbPerS: 8,
      scuIdleMs: undefined,
      upstreamBlockedMs: undefined,
      scpResponseMs: 1.5,
      proxyBusyMs: 12.3456,
    },
    mode: 'proxy',
    pdu: 16384,
    imageBytes: 16777600,
    parallel: 4,
    scu: 'dcmjs',
    link: { latency: { ms: 20, jitterMs: 5 }, bandwidth: 100e6 / 8 },
    scp: 'builtin',
    association: 'per-image',
  });
  assert.equal(row.length, RESULTS_CSV_COLUMNS.length);
  // No variance given: no standard deviation, no interval (the three columns before proxy_busy_ms, the last).
  assert.deepEqual(row, [
    '16384',
    '16777600',
    '4',
    '4',
    '2.000000',
    '1.000000',
    '3.000000',
    '2.000000',
    '3.000000',
    '8.000',
    '',
    '',
    '1.500',
    '1',
    'proxy',
    'dcmjs',
    '20',
    '5',
    '100000000',
    '',
    '',
    'builtin',
    'per-image',
    '',
    '',
    '',
    '12.346',
  ]);
  assert.equal(RESULTS_CSV_COLUMNS.at(-1), 'proxy_busy_ms', 'appended last');
  const builtin = resultsCsvRow({
    ...{
      row: {
        label: '1MB',
        count: 1,
        failures: 0,
        seconds: undefined,
        mbPerS: undefined,
        scuIdleMs: undefined,
        upstreamBlockedMs: undefined,
        scpResponseMs: undefined,
        proxyBusyMs: undefined,
      },
    },
    mode: 'direct',
    pdu: 1,
    imageBytes: 2,
    parallel: 1,
    scu: 'builtin',
    link: { latency: { ms: 0, jitterMs: 0 }, bandwidth: 0 },
    connectMs: 0.25,
    associateMs: 1.5,
    scp: 'builtin',
    association: 'per-sender',
  });
  assert.deepEqual(builtin.slice(-8, -4), ['0.250', '1.500', 'builtin', 'per-sender']);
  assert.equal(builtin.at(-1), '', 'no proxy_busy_ms without the split');
});

test('results.csv: the standard deviation and the 95% interval of the mean, before proxy_busy_ms', () => {
  const setting = (seconds: { n: number; mean: number; min: number; max: number; p50: number; p95: number; variance?: number }) =>
    resultsCsvRow({
      row: {
        label: '16KB',
        count: seconds.n,
        failures: 0,
        seconds,
        mbPerS: 1,
        scuIdleMs: undefined,
        upstreamBlockedMs: undefined,
        scpResponseMs: undefined,
        proxyBusyMs: undefined,
      },
      mode: 'direct',
      pdu: 16384,
      imageBytes: 1000,
      parallel: 1,
      scu: 'dcmtk',
      link: { latency: { ms: 0, jitterMs: 0 }, bandwidth: 0 },
      scp: 'builtin',
      association: 'per-image',
    }).slice(-4, -1);
  // 1, 2, 3 s: variance 1; 2 ± t(0.975, 2) / √3 = 2 ± 2.484138 (scipy.stats.t.ppf).
  assert.deepEqual(setting({ n: 3, mean: 2, min: 1, max: 3, p50: 2, p95: 3, variance: 1 }), ['1.000000', '-0.484138', '4.484138']);
  // Every image took the same time: the interval is the mean itself.
  assert.deepEqual(setting({ n: 5, mean: 0.25, min: 0.25, max: 0.25, p50: 0.25, p95: 0.25, variance: 0 }), ['0.000000', '0.250000', '0.250000']);
  // One image: no spread, no interval.
  assert.deepEqual(setting({ n: 1, mean: 0.25, min: 0.25, max: 0.25, p50: 0.25, p95: 0.25 }), ['', '', '']);
});

test('results.csv: the shaping columns are appended after the existing ones, which keep their order', () => {
  assert.deepEqual(RESULTS_CSV_COLUMNS.slice(0, 16), [
    'pdu_bytes',
    'image_bytes',
    'parallel',
    'images',
    'mean_s',
    'min_s',
    'max_s',
    'p50_s',
    'p95_s',
    'mb_per_s',
    'scu_idle_ms',
    'upstream_blocked_ms',
    'scp_response_ms',
    'failures',
    'mode',
    'scu',
  ]);
  assert.deepEqual(RESULTS_CSV_COLUMNS.slice(16, 19), ['latency_ms', 'jitter_ms', 'bandwidth_bps']);
  assert.deepEqual(RESULTS_CSV_COLUMNS.slice(19, 23), ['connect_ms', 'associate_ms', 'scp', 'association']);
  // Then the spread of the seconds per image and its interval; then the proxy's own time (issue 29).
  assert.deepEqual(RESULTS_CSV_COLUMNS.slice(23), ['sd_s', 'ci95_low_s', 'ci95_high_s', 'proxy_busy_ms']);
});

test('--latency and --bandwidth lists: every combination, the proxy flags and labels of each link', () => {
  const plain = benchOptions({});
  assert.deepEqual(linkSettings(plain), [{ latency: { ms: 0, jitterMs: 0 }, bandwidth: 0 }]);
  const o = benchOptions({ latency: '0,20:5', bandwidth: '100Mbit, 1Gbit' });
  const links = linkSettings(o);
  assert.deepEqual(links.map(linkLabel), ['0ms 100Mbit', '0ms 1Gbit', '20±5ms 100Mbit', '20±5ms 1Gbit']);
  assert.deepEqual(links.map(linkArgs), [
    ['--bandwidth', '100Mbit'],
    ['--bandwidth', '1Gbit'],
    ['--latency', '20:5', '--bandwidth', '100Mbit'],
    ['--latency', '20:5', '--bandwidth', '1Gbit'],
  ]);
  assert.deepEqual(linkArgs({ latency: { ms: 0, jitterMs: 0 }, bandwidth: 0 }), []);
  assert.equal(linkLabel({ latency: { ms: 0, jitterMs: 0 }, bandwidth: 0 }), 'unshaped');
  for (const [flags, message] of [
    [{ latency: '20,,40' }, /^--latency: "20,,40" is not a comma-separated list/],
    [{ latency: 'soon' }, /^--latency: "soon" is not a latency/],
    [{ bandwidth: '100' }, /^--bandwidth: "100" has no unit/],
    [{ latency: '20', direct: true }, /^--latency: links are shaped by the proxy/],
    [{ bandwidth: '1Gbit', both: true }, /^--bandwidth: links are shaped by the proxy/],
  ] as const) {
    assert.throws(
      () => benchOptions(flags),
      (e: Error) => e instanceof ConfigError && message.test(e.message),
      JSON.stringify(flags),
    );
  }
  // Zero shaping is no shaping: allowed with --direct.
  assert.deepEqual(benchOptions({ latency: '0', bandwidth: '0', direct: true }).modes, ['direct']);
});

test("a setting's row: times from the senders, failures by status, the split from the proxy's messages CSV", async () => {
  const { settingRow } = await import('../../src/bench/run.js');
  const { fileURLToPath } = await import('node:url');
  const fixture = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'stats', 'messages.csv');
  const outcomes = [
    { ms: 1000, status: '0000', bytes: MB },
    { ms: 3000, status: '0000', bytes: MB },
    { ms: 2000, status: 'a700', bytes: MB },
    { error: 'network error: ECONNRESET', bytes: MB },
  ];
  const row = await settingRow('16KB', outcomes, fixture);
  assert.equal(row.count, 4);
  assert.equal(row.failures, 2);
  // Sample variance of 1, 3, 2 s: (1 + 1 + 0) / 2.
  assert.deepEqual(row.seconds, { n: 3, mean: 2, min: 1, max: 3, p50: 2, p95: 3, variance: 1 });
  assert.equal(row.mbPerS, 3 / 6); // 3 MiB answered in 6 s
  // Means over the 7 answered C-STORE rows of the fixture: idle (10+20+30+40+1+2+3)/7, blocked 100/7,
  // scp (5+5+5+5+10+20+30)/7.
  assert.ok(Math.abs(row.scuIdleMs! - 106 / 7) < 1e-9);
  assert.ok(Math.abs(row.upstreamBlockedMs! - 100 / 7) < 1e-9);
  assert.ok(Math.abs(row.scpResponseMs! - 80 / 7) < 1e-9);
  const without = await settingRow('16KB', outcomes, undefined);
  assert.equal(without.scpResponseMs, undefined);
});
