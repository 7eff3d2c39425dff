// `stats` on fixed CSV fixtures: every figure below was computed by hand from
// test/fixtures/stats/messages.csv and chunks.csv (see the comments).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stats, StatsUsageError } from '../../src/cli/stats.js';
import { percentile, summarize } from '../../src/analysis/summary.js';
import { detectKind, MESSAGES_CSV_COLUMNS } from '../../src/analysis/csv.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'stats');
const MESSAGES = path.join(FIXTURES, 'messages.csv');
const CHUNKS = path.join(FIXTURES, 'chunks.csv');

/** Lines of a table as arrays of cells (cells are separated by two or more spaces). */
function cells(text: string): string[][] {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => l.trim().split(/\s{2,}/));
}

test('nearest-rank percentiles and summary', () => {
  assert.equal(percentile([1, 2, 3, 6], 50), 2);
  assert.equal(percentile([1, 2, 3, 6], 95), 6);
  assert.equal(percentile([5], 95), 5);
  // Sample variance: (4 + 1 + 0 + 9) / 3.
  assert.deepEqual(summarize([3, 1, 2, 6]), { n: 4, mean: 3, min: 1, max: 6, p50: 2, p95: 6, variance: 14 / 3 });
  assert.deepEqual(summarize([5]), { n: 1, mean: 5, min: 5, max: 5, p50: 5, p95: 5 }, 'one value: no variance');
  assert.equal(summarize([]), undefined);
});

test('the messages CSV header of the contract is detected; the chunk CSV too', () => {
  assert.equal(detectKind([...MESSAGES_CSV_COLUMNS]), 'messages');
  const chunkHeader = readFileSync(CHUNKS, 'utf8').split('\n')[0]!.split(',');
  assert.equal(detectKind(chunkHeader), 'chunks');
  assert.equal(detectKind(['a', 'b']), undefined);
  // The fixture is a file from before the route column (and the experiment's after it): still a messages CSV.
  assert.deepEqual(readFileSync(MESSAGES, 'utf8').split('\n')[0]!.split(','), MESSAGES_CSV_COLUMNS.slice(0, MESSAGES_CSV_COLUMNS.indexOf('route')));
});

test('stats on a messages CSV prints exact, hand-checked numbers per max_pdu', async () => {
  const { text } = await stats([MESSAGES], {});
  const rows = cells(text).slice(1); // first line: the caption
  assert.deepEqual(rows[0], [
    'max_pdu',
    'n',
    'failed',
    'mean s',
    'ci95 low s',
    'ci95 high s',
    'min s',
    'max s',
    'p50 s',
    'p95 s',
    'MB/s',
    'scu_idle ms',
    'upstream_blocked ms',
    'scp_response ms',
    'proxy_busy ms',
    'vs fastest',
  ]);
  // 16KB: durations 1, 2, 3, 6 s; 4 x 1 MiB in 12 s = 0.333 MB/s; idle (10+20+30+40)/4; blocked 100/4; scp 5.
  // Interval: variance 14/3, s/√n = 1.0801, t(0.975, 3) = 3.1824 -> 3 ± 3.437 (scipy: -0.4374, 6.4374).
  // Against 1MB, the fastest: Welch t = 1.964, df = 3.71, p = 0.1265 (scipy ttest_ind, equal_var=False).
  assert.deepEqual(rows[1], ['16KB', '4', '0', '3.000', '-0.437', '6.437', '1.000', '6.000', '2.000', '6.000', '0.33', '25.0', '25.0', '5.0', '-', 'within noise p=0.127']);
  // 1MB: 4 requests, a700 and one without a response are failures; times from the 3 answered:
  // 0.5, 1.5, 0.25 s -> mean 0.75, p50 (rank 2) 0.5, p95 (rank 3) 1.5; 3 x 2 MiB in 2.25 s = 2.67 MB/s.
  // Interval: variance 0.4375, s/√n = 0.3819, t(0.975, 2) = 4.3027 -> 0.75 ± 1.643 (scipy: -0.8931, 2.3931).
  assert.deepEqual(rows[2], ['1MB', '4', '2', '0.750', '-0.893', '2.393', '0.250', '1.500', '0.500', '1.500', '2.67', '2.0', '0.0', '20.0', '-', 'fastest']);
  assert.equal(rows.length, 3);
  assert.match(text, /^8 messages from 1 messages CSV file\(s\), by max_pdu/);
});

test('stats --by assoc and --by command regroup the same rows', async () => {
  const byAssoc = cells((await stats([MESSAGES], { by: 'assoc' })).text).slice(2);
  // assoc 1: 1 s and 2 s; 2 MiB in 3 s = 0.67 MB/s. Interval 1.5 ± t(0.975, 1) · 0.5 = 1.5 ± 12.706 · 0.5.
  // Against assoc 3 (0.5, 1.5, 0.25 s: the fastest): Welch p = 0.3485 (scipy).
  assert.deepEqual(byAssoc[0], ['1', '2', '0', '1.500', '-4.853', '7.853', '1.000', '2.000', '1.000', '2.000', '0.67', '15.0', '0.0', '5.0', '-', 'within noise p=0.349']);
  assert.deepEqual(
    byAssoc.map((r) => [r[0], r[r.length - 1]]),
    [
      ['1', 'within noise p=0.349'],
      ['2', 'within noise p=0.225'],
      ['3', 'fastest'],
    ],
  );
  const byCommand = cells((await stats([MESSAGES], { by: 'command' })).text).slice(2);
  assert.equal(byCommand.length, 1);
  assert.deepEqual(byCommand[0]!.slice(0, 3), ['C-STORE-RQ', '8', '2']);
});

test('stats: a group slower than the fastest beyond noise is named, in the table and on the --html page', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dpp-stats-welch-'));
  try {
    // The fixture's first row as a template: max_pdu (column 7) and duration_ms (column 13) replaced.
    const [header, template] = readFileSync(MESSAGES, 'utf8').split('\n');
    const message = (maxPdu: number, ms: number): string =>
      template!
        .split(',')
        .map((v, i) => (i === 6 ? String(maxPdu) : i === 12 ? ms.toFixed(3) : v))
        .join(',');
    const file = path.join(dir, 'messages.csv');
    // 16KB: 1.0, 1.1, 0.9, 1.0 s; 1MB: 2.0, 2.1, 1.9, 2.0 s. Both: variance 0.02/3, interval ± 3.1824·0.0408.
    // Welch: t = 17.32, df = 6, p = 2.4e-6 (scipy ttest_ind, equal_var=False).
    const lines = [...[1000, 1100, 900, 1000].map((ms) => message(16384, ms)), ...[2000, 2100, 1900, 2000].map((ms) => message(1048576, ms))];
    writeFileSync(file, [header, ...lines].join('\n') + '\n');
    const html = path.join(dir, 'report.html');
    const { text } = await stats([file], { html });
    const rows = cells(text).slice(2);
    assert.deepEqual(
      rows.map((r) => [r[0], r[3], r[4], r[5], r[15]]),
      [
        ['16KB', '1.000', '0.870', '1.130', 'fastest'],
        ['1MB', '2.000', '1.870', '2.130', 'slower p=<0.001'],
      ],
    );
    assert.match(text, /vs fastest = Welch's t-test against the fastest row \(slower: p < 0\.05\)/);
    const page = readFileSync(html, 'utf8');
    assert.match(page, /Slower than the fastest, 16KB, beyond noise \(Welch&#39;s t-test, p &lt; 0\.05\): 1MB \(\+100%, p &lt; 0\.001\)\./);
    assert.match(
      page,
      /<th scope="row">16KB<span class="row-note">fastest<\/span><\/th><td class="num">4<\/td><td class="num">0<\/td><td class="num">1\.000 s<\/td><td class="num">±0\.130 s<\/td>/,
    );
    assert.match(page, /<th scope="row">1MB<span class="row-note strong">slower \(p\u00a0&lt;\u00a00\.001\)<\/span><\/th>/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stats: proxy_busy_ms is averaged per group; a file written before the column reads as empty (-), beside a new one', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dpp-stats-busy-'));
  try {
    // A current file: the fixture's first two rows with the columns added since (route ... generation
    // empty: one route with the old file's rows) and proxy_busy_ms 10 and 30 ms, at a max PDU the old
    // fixture does not have (64KB).
    const [, ...oldRows] = readFileSync(MESSAGES, 'utf8').trimEnd().split('\n');
    const padding = MESSAGES_CSV_COLUMNS.length - MESSAGES_CSV_COLUMNS.indexOf('route') - 1;
    const current = (row: string, busy: string): string => {
      const v = row.split(',');
      v[6] = '65536';
      return [...v, ...Array<string>(padding).fill(''), busy].join(',');
    };
    const file = path.join(dir, 'new.csv');
    writeFileSync(file, [MESSAGES_CSV_COLUMNS.join(','), current(oldRows[0]!, '10.000'), current(oldRows[1]!, '30.000')].join('\n') + '\n');
    const rows = cells((await stats([MESSAGES, file], {})).text).slice(2);
    const busyColumn = 14;
    assert.deepEqual(
      rows.map((r) => [r[0], r[busyColumn]]),
      [
        ['16KB', '-'],
        ['64KB', '20.0'],
        ['1MB', '-'],
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stats on a chunk CSV prints PDUs, bytes, length distribution and violations per association', async () => {
  const { text } = await stats([CHUNKS], {});
  const rows = cells(text).slice(1);
  assert.deepEqual(rows[0], ['assoc', 'direction', 'PDUs', 'bytes', 'P-DATA-TF', 'min len', 'p50 len', 'max len', 'most common lengths', 'violations repaired']);
  // to_scp: 200+74+16384+16384+20000+100+4 = 53146, + 7 headers of 6 = 53188; lengths 74 100 16384 16384 20000.
  assert.deepEqual(rows[1], ['1', 'to_scp', '7', '53188', '5', '74', '16384', '20000', '16384x2 20000x1 100x1', '1']);
  // to_scu: 180 + 84 + 4 + 3 x 6 = 286.
  assert.deepEqual(rows[2], ['1', 'to_scu', '3', '286', '1', '84', '84', '84', '84x1', '0']);
  assert.deepEqual(rows[3], ['2', 'to_scp', '1', '206', '0', '-', '-', '-', '-', '0']);
  assert.deepEqual(rows[4], ['2', 'to_scu', '1', '10', '0', '-', '-', '-', '-', '0']);
});

/** Well-formed XML: every tag closed in order, one root <svg>. Enough for the SVG vega writes. */
function assertWellFormedSvg(svg: string): void {
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const stack: string[] = [];
  const body = svg.replace(/<!\[CDATA\[[\s\S]*?\]\]>/g, '').replace(/<!--[\s\S]*?-->/g, '');
  for (const m of body.matchAll(/<(\/?)([A-Za-z][\w:-]*)((?:[^>"']|"[^"]*"|'[^']*')*?)(\/?)>/g)) {
    const [, close, name, , selfClose] = m;
    if (selfClose) continue;
    if (close) assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    else stack.push(name!);
  }
  assert.deepEqual(stack, []);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
}

test('--svg renders the experiment chart; --timeline draws one association', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stats-svg-'));
  try {
    const chart = path.join(dir, 'chart.svg');
    await stats([MESSAGES], { svg: chart });
    const svg = readFileSync(chart, 'utf8');
    assertWellFormedSvg(svg);
    assert.match(svg, />16KB</);
    assert.match(svg, />1MB</);
    const timeline = path.join(dir, 'timeline.svg');
    await stats([CHUNKS], { svg: timeline, timeline: '1' });
    const tsvg = readFileSync(timeline, 'utf8');
    assertWellFormedSvg(tsvg);
    assert.match(tsvg, /to_scp/);
    assert.match(tsvg, /to_scu/);
    // 10 PDUs of association 1 are drawn as symbols, and no more.
    assert.equal((tsvg.match(/<path [^>]*aria-roledescription="point"/g) ?? []).length, 10);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input: one clear message', async () => {
  await assert.rejects(stats([], {}), StatsUsageError);
  await assert.rejects(stats(['/nonexistent/x.csv'], {}), /nonexistent\/x\.csv: ENOENT/);
  await assert.rejects(stats([MESSAGES], { by: 'nope' }), /--by: "nope" is not a column/);
  await assert.rejects(stats([CHUNKS], { by: 'command' }), /--by needs a messages CSV/);
  await assert.rejects(stats([CHUNKS], { svg: '/tmp/x.svg', timeline: '99' }), /association 99 is in no chunk CSV/);
  await assert.rejects(stats([MESSAGES], { timeline: '1' }), /--timeline needs --svg/);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stats-bad-'));
  try {
    const bad = path.join(dir, 'bad.csv');
    (await import('node:fs')).writeFileSync(bad, 'a,b,c\n1,2,3\n');
    await assert.rejects(stats([bad], {}), /not a messages CSV \(--messages-csv\) nor a chunk CSV/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('files with the route column (several routes): grouped per route, then by max_pdu; chunk rows name their route', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dpp-stats-routes-'));
  try {
    // The fixture's rows with the new column, every other row on route "ct" (so each route has 2 per max_pdu).
    const [header, ...lines] = readFileSync(MESSAGES, 'utf8').trimEnd().split('\n');
    const routed = path.join(dir, 'messages.csv');
    writeFileSync(routed, [`${header},route`, ...lines.map((l, i) => `${l},${i % 2 === 0 ? 'ct' : 'default'}`)].join('\n') + '\n');
    const { text } = await stats([routed], {});
    const table = cells(text);
    assert.match(table[0]![0]!, /^8 messages from 1 messages CSV file\(s\), by route and max_pdu;/);
    assert.deepEqual(table[1]!.slice(0, 4), ['route', 'max_pdu', 'n', 'failed']);
    assert.deepEqual(
      table.slice(2).map((r) => [r[0], r[1], r[2]]),
      [
        ['ct', '16KB', '2'],
        ['ct', '1MB', '2'],
        ['default', '16KB', '2'],
        ['default', '1MB', '2'],
      ],
    );
    // One route only: the table is as before (no route column).
    const single = path.join(dir, 'single.csv');
    writeFileSync(single, [`${header},route`, ...lines.map((l) => `${l},default`)].join('\n') + '\n');
    assert.equal((await stats([single], {})).text, (await stats([MESSAGES], {})).text);
    // An old file (no route column) read with a new one: its rows are route "-".
    assert.deepEqual(
      cells((await stats([MESSAGES, single], {})).text)
        .slice(2)
        .map((r) => [r[0], r[1], r[2]]),
      [
        ['-', '16KB', '4'],
        ['-', '1MB', '4'],
        ['default', '16KB', '4'],
        ['default', '1MB', '4'],
      ],
    );

    const [chunkHeader, ...chunkLines] = readFileSync(CHUNKS, 'utf8').trimEnd().split('\n');
    const chunks = path.join(dir, 'chunks.csv');
    writeFileSync(chunks, [`${chunkHeader},route`, ...chunkLines.map((l) => `${l},${l.startsWith('1,') ? 'ct' : 'default'}`)].join('\n') + '\n');
    const rows = cells((await stats([chunks], {})).text).slice(1);
    assert.deepEqual(rows[0]!.slice(0, 3), ['route', 'assoc', 'direction']);
    assert.deepEqual(
      rows.slice(1).map((r) => r.slice(0, 4)),
      [
        ['ct', '1', 'to_scp', '7'],
        ['ct', '1', 'to_scu', '3'],
        ['default', '2', 'to_scp', '1'],
        ['default', '2', 'to_scu', '1'],
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a table of 200,000 rows renders (no spread of every cell into Math.max: the call stack would overflow)', async () => {
  const { renderColumns } = await import('../../src/analysis/table.js');
  const text = renderColumns(
    ['assoc', 'PDUs'],
    Array.from({ length: 200_000 }, (_, i) => [String(i), '7']),
  );
  assert.equal(text.split('\n').length, 200_002);
  assert.match(text, /^199999  {4}7$/m);
});
