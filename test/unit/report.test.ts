// The report's content from small fixtures (test/fixtures/report/): every figure below is computed by hand
// in the comments, from results.csv (three settings, 8 images each, one failure at 20MB), a chunk CSV and
// its messages CSV (both with an extra `route` column, as another change appends: read by name).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { prepareLogs, reportModel, renderReport, resultRows } from '../../src/report/build.js';
import { escapeHtml } from '../../src/report/html.js';
import { findings, pduUse, resultRow, settingsFromMessages, settingsFromResults, shownParts, splitOf } from '../../src/report/model.js';
import { sweepSpec } from '../../src/report/charts.js';
import { RESULTS_CSV_COLUMNS } from '../../src/bench/results.js';
import { detectKind } from '../../src/analysis/csv.js';
import type { CsvRow } from '../../src/analysis/csv.js';
import { aggregateChunks, sentPdus } from '../../src/analysis/chunks.js';
import { withEngine } from '../../src/analysis/engine.js';
import type { Engine } from '../../src/analysis/engine.js';
import { openLogs } from '../../src/analysis/logs.js';
import { groupMessages } from '../../src/analysis/messages.js';
import { MESSAGES_CSV_COLUMNS } from '../../src/record/messages-csv.js';
import { stats, StatsUsageError } from '../../src/cli/stats.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'report');
const RESULTS = path.join(FIXTURES, 'results.csv');
const CHUNKS = path.join(FIXTURES, 'chunks-20MB-2MB.csv');
const MESSAGES = path.join(FIXTURES, 'messages-20MB-2MB.csv');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'report-unit-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The engine over these files (views made, chunk rows aggregated). */
function over<T>(files: readonly string[], work: (engine: Engine, sources: Awaited<ReturnType<typeof openLogs>>) => Promise<T>): Promise<T> {
  return withEngine(async (engine) => {
    const sources = await openLogs(engine, files);
    await prepareLogs(engine, sources);
    return work(engine, sources);
  });
}

/** A messages CSV of these rows (the other columns empty). */
let written = 0;
function messagesCsv(rows: ReadonlyArray<Partial<Record<string, string>>>, columns: readonly string[] = MESSAGES_CSV_COLUMNS): string {
  const file = path.join(tmp, `messages-${++written}.csv`);
  writeFileSync(file, [columns.join(','), ...rows.map((r) => columns.map((c) => r[c] ?? '').join(','))].join('\n') + '\n');
  return file;
}

const row = (values: Record<string, string>): CsvRow => ({
  pdu_bytes: '16384',
  image_bytes: '2097600',
  parallel: '4',
  images: '2',
  mean_s: '1',
  min_s: '1',
  max_s: '1',
  failures: '0',
  mode: 'proxy',
  scu: 'dcmjs',
  ...values,
});

test("bench's results.csv is told by its header, also with columns added after the contract's", () => {
  assert.equal(detectKind([...RESULTS_CSV_COLUMNS]), 'results');
  assert.equal(detectKind([...RESULTS_CSV_COLUMNS, 'latency_ms', 'bandwidth']), 'results');
});

test('settings of results.csv: columns by name, a series only for what varies', async () => {
  const rows = await over([RESULTS], async (engine, sources) => (await resultRows(engine, sources)).get(RESULTS)!);
  const settings = settingsFromResults(rows);
  // latency_ms is the same in every row: no series.
  assert.deepEqual(
    settings.map((s) => [s.label, s.group, s.series]),
    [
      ['16KB', '16KB', ''],
      ['1MB', '1MB', ''],
      ['20MB', '20MB', ''],
    ],
  );
  assert.deepEqual(settings[2]!.row.seconds, { n: 7, mean: 1.2, min: 0.6, max: 2.5, p50: 1.1, p95: 2.5 });
  assert.equal(settings[2]!.row.failures, 1);
  // 20MB: 1200 ms - (100 + 400 + 600) = 100 ms for the rest.
  assert.deepEqual(splitOf(settings[2]!.row), { 'association set-up': 0, 'SCU idle': 100, 'upstream blocked': 400, 'SCP response': 600, 'proxy busy': 0, 'bytes in flight': 100 });

  // With proxy_busy_ms (results.csv from now on): its own bar, and bytes in flight is what remains; the
  // five parts sum to the mean (1200 ms).
  const busy = resultRow('20MB', { ...rows[2]!, proxy_busy_ms: '60.000' });
  const split = splitOf(busy)!;
  assert.deepEqual(split, { 'association set-up': 0, 'SCU idle': 100, 'upstream blocked': 400, 'SCP response': 600, 'proxy busy': 60, 'bytes in flight': 40 });
  assert.equal(
    Object.values(split).reduce((x, y) => x + y, 0),
    busy.seconds!.mean * 1000,
  );
  // A bound larger than what remains: bytes in flight is 0, never negative.
  assert.equal(splitOf(resultRow('20MB', { ...rows[2]!, proxy_busy_ms: '250' }))!['bytes in flight'], 0);

  // With the senders' connect_ms and associate_ms (bench): the association's set-up is a part of its own.
  // One association per image: 2 + 18 = 20 ms per image; bytes in flight 1200 - 20 - 1100 - 60 = 20.
  const perImage = resultRow('20MB', { ...rows[2]!, proxy_busy_ms: '60', connect_ms: '2.000', associate_ms: '18.000', association: 'per-image' });
  assert.deepEqual(splitOf(perImage), { 'association set-up': 20, 'SCU idle': 100, 'upstream blocked': 400, 'SCP response': 600, 'proxy busy': 60, 'bytes in flight': 20 });
  // One association per sender: an image's time starts at its request's first byte, the set-up is in none.
  const perSender = resultRow('20MB', { ...rows[2]!, connect_ms: '2.000', associate_ms: '18.000', association: 'per-sender' });
  assert.equal(perSender.setupMs, undefined);
  // Files from before these columns: no set-up part shown; with them, shown first.
  const withSetup = settingsFromResults([{ ...rows[2]!, connect_ms: '1', associate_ms: '1' }]);
  assert.deepEqual(shownParts(settings), ['SCU idle', 'upstream blocked', 'SCP response', 'bytes in flight']);
  assert.deepEqual(shownParts(withSetup), ['association set-up', 'SCU idle', 'upstream blocked', 'SCP response', 'bytes in flight']);

  // Two image sizes: one series each, named from run.json when it knows them.
  const two = [row({ image_bytes: '1000' }), row({ image_bytes: '2097600' })];
  assert.deepEqual(
    settingsFromResults(two).map((s) => s.series),
    ['0.00MB image', '2.0MB image'],
  );
  const info = { images: [{ label: '2MB', bytes: 2097600 }] } as never;
  assert.deepEqual(
    settingsFromResults(two, info).map((s) => s.label),
    ['16KB · 0.00MB image', '16KB · 2MB image'],
  );
  // bench --latency/--bandwidth: the three link columns make one series, labelled as bench labels the link.
  const link = (latency: string, jitter: string, bps: string): Record<string, string> => ({ latency_ms: latency, jitter_ms: jitter, bandwidth_bps: bps });
  const swept = [
    row(link('0', '0', '100000000')),
    row(link('20', '0', '100000000')),
    row({ pdu_bytes: '1048576', ...link('0', '0', '100000000') }),
    row({ pdu_bytes: '1048576', ...link('20', '5', '100000000') }),
  ];
  assert.deepEqual(
    settingsFromResults(swept).map((s) => s.label),
    ['16KB · 0ms 100Mbit', '16KB · 20ms 100Mbit', '1MB · 0ms 100Mbit', '1MB · 20±5ms 100Mbit'],
  );
  // One link for every row: no series; a link that varies is a series even without a clash (like an image size).
  assert.deepEqual(
    settingsFromResults([row(link('20', '0', '0')), row({ pdu_bytes: '1048576', ...link('20', '0', '0') })]).map((s) => s.label),
    ['16KB', '1MB'],
  );
  assert.deepEqual(
    settingsFromResults([row(link('0', '0', '0')), row({ pdu_bytes: '1048576', ...link('50', '0', '0') })]).map((s) => s.label),
    ['16KB · unshaped', '1MB · 50ms'],
  );
  // A column the report does not know joins the series only when needed to tell rows apart.
  const other = [row({ knob: 'a' }), row({ knob: 'b' }), row({ pdu_bytes: '1048576', knob: 'a' })];
  assert.deepEqual(
    settingsFromResults(other).map((s) => s.label),
    ['16KB · knob a', '16KB · knob b', '1MB · knob a'],
  );
  assert.deepEqual(
    settingsFromResults([row({ knob: 'a' }), row({ pdu_bytes: '1048576', knob: 'b' })]).map((s) => s.label),
    ['16KB', '1MB'],
  );
  // --both: the mode is the series.
  assert.deepEqual(
    settingsFromResults([row({}), row({ mode: 'direct', scu_idle_ms: '' })]).map((s) => s.series),
    ['proxy', 'direct'],
  );
});

test('settings of messages CSVs: grouped by --by, and per route when the rows hold several routes (proxy --route)', async () => {
  const message = (route: string | undefined, maxPdu: string, durationMs: string): Partial<Record<string, string>> => ({
    assoc: '1',
    message_id: '1',
    command: 'C-STORE-RQ',
    bytes: '1048576',
    max_pdu: maxPdu,
    duration_ms: durationMs,
    status: '0000',
    ...(route === undefined ? {} : { route }),
  });
  const settings = (rows: ReadonlyArray<Partial<Record<string, string>>>, columns?: readonly string[]) =>
    over([messagesCsv(rows, columns)], async (engine) => settingsFromMessages(await groupMessages(engine, { by: 'max_pdu', perRoute: true })));
  // One route (or files from before the route column): no series.
  assert.deepEqual(
    (await settings([message('default', '16384', '10'), message('default', '1048576', '20')])).map((s) => s.label),
    ['16KB', '1MB'],
  );
  assert.deepEqual(
    (
      await settings(
        [message(undefined, '16384', '10')],
        MESSAGES_CSV_COLUMNS.filter((c) => c !== 'route'),
      )
    ).map((s) => s.label),
    ['16KB'],
  );
  // Two routes: routes in ascending order, then max_pdu; the route is the series, the group stays the max PDU.
  const two = await settings([message('pacs', '16384', '10'), message('archive', '16384', '30'), message('pacs', '16384', '20')]);
  assert.deepEqual(
    two.map((s) => [s.label, s.group, s.series, s.row.count]),
    [
      ['16KB · route archive', '16KB', 'route archive', 1],
      ['16KB · route pacs', '16KB', 'route pacs', 2],
    ],
  );
  assert.equal(two[1]!.row.seconds?.mean, 0.015, 'pacs: (10 + 20) / 2 ms');
});

test('stats --html split from messages CSVs: proxy_busy_ms is a part of its own, bytes in flight what the five leave', async () => {
  const message = (durationMs: string, busyMs: string): Partial<Record<string, string>> => ({
    assoc: '1',
    message_id: '1',
    command: 'C-STORE-RQ',
    bytes: '1048576',
    max_pdu: '16384',
    duration_ms: durationMs,
    scu_idle_ms: '1.000',
    upstream_blocked_ms: '2.000',
    scp_response_ms: '3.000',
    proxy_busy_ms: busyMs,
    status: '0000',
  });
  const [setting] = await over([messagesCsv([message('10.000', '2.000'), message('20.000', '4.000')])], async (engine) =>
    settingsFromMessages(await groupMessages(engine, { by: 'max_pdu', perRoute: false })),
  );
  // Mean 15 ms: idle 1, blocked 2, SCP 3, busy (2 + 4) / 2 = 3, bytes in flight 15 - 9 = 6.
  assert.deepEqual(splitOf(setting!.row), { 'association set-up': 0, 'SCU idle': 1, 'upstream blocked': 2, 'SCP response': 3, 'proxy busy': 3, 'bytes in flight': 6 });
});

test('what the SCU sent, from a chunk CSV with an extra route column', async () => {
  const sent = await over([CHUNKS], async (engine) => (await sentPdus(engine)).get(CHUNKS));
  // P-DATA-TF toward the SCP: 74, 16384, 16384, 100 (assoc 1) and 16384 (assoc 2).
  // Association 1 sent its data set in three PDUs: the size was the SCU's choice, not the data's.
  assert.deepEqual(pduUse('x', sent, 20971520), { source: 'x', allowed: 20971520, sentMax: 16384, sentCommon: 16384, pdata: 5, associations: 2, wholeDataSets: false });
  // Association 2 alone: its data set in one PDU.
  const only = (where: string) =>
    over([CHUNKS], async (engine) => {
      await engine.run(`CREATE OR REPLACE TEMP TABLE all_chunks AS SELECT * FROM chunks`);
      await engine.run(`CREATE OR REPLACE VIEW chunks AS SELECT * FROM all_chunks WHERE ${where}`);
      await aggregateChunks(engine);
      return (await sentPdus(engine)).get(CHUNKS);
    });
  assert.equal(pduUse('x', await only('assoc = 2'), 20971520)?.wholeDataSets, true);
  assert.equal(pduUse('x', await only("direction = 'to_scu'"), 1), undefined);
});

test('"what this shows": every sentence computed from the fixtures', async () => {
  const model = await over([RESULTS, MESSAGES, CHUNKS], (engine, sources) => reportModel(engine, sources));
  assert.equal(model.unit, 'image');
  // No run.json here: the allowed maximum comes from the chunk CSV's sibling messages CSV (max_pdu).
  assert.deepEqual(
    model.pduUse.map((u) => [u.source, u.allowed]),
    [['chunks-20MB-2MB.csv', 20971520]],
  );
  assert.equal(model.timeline?.assoc, '1');
  assert.equal(model.timeline?.rows.length, 9);
  assert.deepEqual(findings(model.settings, model.pduUse, model.unit), [
    'Fastest: 1MB (mean 0.800 s per image).',
    // 1.2 / 0.8 = 1.5
    'Slowest: 20MB, 50% slower (mean 1.200 s).',
    // Highest min 0.6 s <= lowest max 1.5 s.
    'The min–max ranges of all settings overlap: these differences may be noise; more images would tell.',
    // Weighted by timed images (8, 8, 7): SCU idle 100*23 = 2300; upstream blocked 800+800+2800 = 4400;
    // SCP response 4800+4000+4200 = 13000; bytes in flight 200*8 + 100*8 + 100*7 = 3100; of 22800:
    // 57.0%, 19.3%, 13.6%, 10.1%. No proxy_busy_ms in this results.csv: no proxy busy part named.
    'Time went to: SCP response (57%), upstream blocked (19%), bytes in flight (14%), SCU idle (10%).',
    // 1MB -> 20MB: idle +0, blocked +300, SCP +100, rest +0.
    'From the fastest to the slowest setting, upstream blocked grew the most: 100 ms → 400 ms per image.',
    'The SCU sent PDUs of at most 16,384 bytes although it was allowed 20,971,520 (chunks-20MB-2MB.csv).',
    '1 of 24 images were NOT acknowledged with Success.',
  ]);
  // A sender that fills its PDUs, and a single setting: no "slowest", no comparison.
  const full = { source: '1MB', allowed: 1048576, sentMax: 1048576, sentCommon: 1048576, pdata: 3, associations: 1, wholeDataSets: false };
  assert.deepEqual(findings(model.settings.slice(1, 2), [full], 'image'), [
    'Fastest: 1MB (mean 0.800 s per image).',
    // 1MB alone: 100 + 100 + 500 + 100 = 800.
    'Time went to: SCP response (63%), SCU idle (13%), upstream blocked (13%), bytes in flight (13%).',
    'The SCU filled its PDUs up to the allowed size at every setting (largest: 1,048,576 bytes).',
  ]);
  // With proxy_busy_ms: 1MB's 100 ms of bytes in flight are 80 ms proxy busy and 20 ms in flight.
  const withBusy = settingsFromResults([
    { ...row({ pdu_bytes: '1048576', mean_s: '0.8', scu_idle_ms: '100', upstream_blocked_ms: '100', scp_response_ms: '500' }), proxy_busy_ms: '80' },
  ]);
  assert.deepEqual(findings(withBusy, [], 'image').slice(1), ['Time went to: SCP response (63%), SCU idle (13%), upstream blocked (13%), proxy busy (10%), bytes in flight (3%).']);
  assert.deepEqual(findings([], [], 'message'), []);
  // Data sets smaller than the limit: one PDU each, and no claim that the SCU held back.
  const whole = (source: string, allowed: number) => ({ source, allowed, sentMax: 2097542, sentCommon: 2097542, pdata: 8, associations: 8, wholeDataSets: true });
  assert.deepEqual(findings([], [full, whole('10MB', 10485760), whole('20MB', 20971520)], 'image'), [
    'At 10MB, 20MB every data set went in one PDU (at most 2,097,542 bytes): these settings allow more than a data set needs, so larger limits change nothing on the wire.',
  ]);
  // Ranges that do not all overlap: 1MB (0.4-1.5 s) and a setting at 1.6-2.0 s.
  const apart = settingsFromResults([row({ pdu_bytes: '1048576', mean_s: '0.8', min_s: '0.4', max_s: '1.5' }), row({ mean_s: '1.8', min_s: '1.6', max_s: '2.0' })]);
  assert.deepEqual(findings(apart, [], 'image').slice(0, 3), ['Fastest: 1MB (mean 0.800 s per image).', 'Slowest: 16KB, 125% slower (mean 1.800 s).']);
});

// Rows of a results.csv with the spread columns (sd_s; the interval columns are not read back: the
// interval is recomputed from n, mean and sd). Figures below from scipy.stats (ttest_ind_from_stats,
// equal_var=False; t.ppf), written down once.
const spread = (pdu: string, mean: string, sd: string, images = '8', extra: Record<string, string> = {}): CsvRow =>
  row({ pdu_bytes: pdu, images, mean_s: mean, min_s: mean, max_s: mean, sd_s: sd, ...extra });
/** The rows of the fixture's results.csv, written before sd_s. */
const oldResults = (): Promise<CsvRow[]> => over([RESULTS], async (engine, sources) => (await resultRows(engine, sources)).get(RESULTS)!);
/** The fixture's model with other settings: the page around a given table. */
const pageOf = async (settings: ReturnType<typeof settingsFromResults>): Promise<string> =>
  renderReport({ ...(await over([RESULTS], (engine, sources) => reportModel(engine, sources))), settings, unit: 'image' });

test('"what this shows" with the spread: Welch\'s t-test against the fastest names what differs beyond noise', () => {
  const settings = settingsFromResults([
    spread('16384', '1.000', '0.050'),
    spread('1048576', '0.800', '0.050'),
    spread('20971520', '0.810', '0.060'),
    // One image: no spread, nothing to test.
    spread('67108864', '0.900', '', '1'),
  ]);
  assert.deepEqual(settings[1]!.row.seconds?.variance, 0.05 * 0.05);
  assert.equal(settings[3]!.row.seconds?.variance, undefined);
  assert.deepEqual(findings(settings, [], 'image'), [
    'Fastest: 1MB (mean 0.800 s per image).',
    'Slowest: 16KB, 25% slower (mean 1.000 s).',
    // 16KB against 1MB: t = 8.0, p = 1.4e-6; 20MB: t = 0.362, p = 0.7228.
    "Slower than the fastest, 1MB, beyond noise (Welch's t-test, p < 0.05): 16KB (+25%, p < 0.001).",
    'Within noise of 1MB (p ≥ 0.05): 20MB (p = 0.723).',
    'Too few images to test against 1MB: 64MB.',
  ]);
  // Nothing beyond noise: said so, with the p-values.
  assert.deepEqual(findings(settings.slice(1, 3), [], 'image').slice(2), [
    "No setting is slower than the fastest, 1MB, beyond noise (Welch's t-test, p ≥ 0.05; 20MB: p = 0.723): the differences may be noise; more images would tell.",
  ]);
  // Two image sizes: each compared within its own series (16MB image: 4.2 against 4.0 s, sd 0.5: p = 0.4371).
  const two = settingsFromResults([
    spread('16384', '1.000', '0.050', '8', { image_bytes: '2097600' }),
    spread('1048576', '0.800', '0.050', '8', { image_bytes: '2097600' }),
    spread('16384', '4.000', '0.500', '8', { image_bytes: '16777600' }),
    spread('1048576', '4.200', '0.500', '8', { image_bytes: '16777600' }),
  ]);
  assert.deepEqual(findings(two, [], 'image').slice(2), [
    "2.0MB image: slower than the fastest, 1MB, beyond noise (Welch's t-test, p < 0.05): 16KB (+25%, p < 0.001).",
    "16.0MB image: no setting is slower than the fastest, 16KB, beyond noise (Welch's t-test, p ≥ 0.05; 1MB: p = 0.437): the differences may be noise; more images would tell.",
  ]);
});

test('the sweep chart draws the 95% interval where the file keeps the spread, and none for an old file', async () => {
  const layers = (settings: ReturnType<typeof settingsFromResults>) => {
    const spec = sweepSpec(settings, 'max PDU', 't') as unknown as { data: { values: Array<Record<string, unknown>> }; layer: Array<{ encoding: { y: { field: string } } }> };
    return { fields: spec.layer.map((l) => l.encoding.y.field), values: spec.data.values };
  };
  const withSpread = layers(settingsFromResults([spread('16384', '1.000', '0.050'), spread('1048576', '0.800', '0.050'), spread('67108864', '0.900', '', '1')]));
  assert.deepEqual(withSpread.fields, ['min', 'ci_low', 'mean']);
  // 1MB: 0.8 ± t(0.975, 7) · 0.05/√8 = 0.8 ± 0.0418 (scipy: 0.758199, 0.841801); 64MB: one image, no interval.
  const ci = withSpread.values.map((v) => [v.group, (v.ci_low as number | undefined)?.toFixed(6), (v.ci_high as number | undefined)?.toFixed(6)]);
  assert.deepEqual(ci[1], ['1MB', '0.758199', '0.841801']);
  assert.deepEqual(ci[2], ['64MB', undefined, undefined]);
  // A results.csv from before sd_s: mean and min-max only.
  const old = layers(settingsFromResults(await oldResults()));
  assert.deepEqual(old.fields, ['min', 'mean']);
  assert.ok(old.values.every((v) => !('ci_low' in v)));
  // Both render.
  for (const settings of [settingsFromResults([spread('16384', '1.000', '0.050'), spread('1048576', '0.800', '0.050')]), settingsFromResults(await oldResults())]) {
    const html = await pageOf(settings);
    assert.match(html, /<figure id="sweep-chart"><svg /);
  }
});

test('the results table: the interval, and under each label the verdict against the fastest; "–" and none without a spread', async () => {
  const settings = settingsFromResults([
    spread('16384', '1.000', '0.050'),
    spread('1048576', '0.800', '0.050'),
    spread('20971520', '0.810', '0.060'),
    spread('67108864', '0.900', '', '1'),
  ]);
  const html = await pageOf(settings);
  const table = /<table id="results-table">[\s\S]*?<\/table>/.exec(html)![0];
  assert.match(table, /<th scope="col" class="num">95% CI<\/th>/);
  /** The verdict under a row's label, and the row's cells. */
  const rowOf = (label: string): { note: string | undefined; cells: string[] } => {
    const m = new RegExp(`<tr><th scope="row">${label}(?:<span class="row-note[^"]*">(.*?)</span>)?</th>(.*?)</tr>`).exec(table)!;
    return { note: m[1], cells: [...m[2]!.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((c) => c[1]!) };
  };
  // mean, then the half width of the interval: 1MB 0.8 ± 0.0418, 20MB 0.81 ± 0.0502 (scipy: 0.759839, 0.860161).
  assert.deepEqual(rowOf('1MB').cells.slice(2, 4), ['0.800 s', '±0.042 s']);
  assert.deepEqual(rowOf('20MB').cells.slice(2, 4), ['0.810 s', '±0.050 s']);
  assert.deepEqual(
    ['1MB', '20MB', '16KB', '64MB'].map((l) => rowOf(l).note),
    ['fastest', 'within noise (p\u00a0=\u00a00.723)', 'slower (p\u00a0&lt;\u00a00.001)', undefined],
  );
  assert.match(table, /<span class="row-note strong">slower/);
  assert.equal(rowOf('64MB').cells[3], '–');
  // From an old results.csv: no interval, no verdict, no crash.
  const old = await renderReport(await over([RESULTS], (engine, sources) => reportModel(engine, sources)));
  const oldBody = /<table id="results-table">[\s\S]*?<tbody>([\s\S]*?)<\/tbody>/.exec(old)![1]!;
  assert.doesNotMatch(oldBody, /row-note|±/);
  assert.match(old, /The min–max ranges of all settings overlap/);
});

test('the page: self-contained (no script, nothing to fetch), tables with units, the charts inline', async () => {
  const model = await over([RESULTS, MESSAGES, CHUNKS], (engine, sources) => reportModel(engine, sources, { now: new Date('2026-01-02T03:04:05Z') }));
  const html = await renderReport(model);
  assert.doesNotMatch(html, /<script|<link|<img|<iframe|\ssrc=|\shref=|@import|url\(/i);
  // The only URLs are SVG namespace names, which are never fetched.
  assert.deepEqual([...new Set(html.match(/https?:\/\/[^"'\s)]+/g))].sort(), ['http://www.w3.org/1999/xlink', 'http://www.w3.org/2000/svg']);
  for (const id of ['settings', 'what-this-shows', 'results-table', 'sweep-chart', 'split-chart', 'pdu-table', 'timeline-chart']) assert.match(html, new RegExp(`id="${id}"`), id);
  assert.equal((html.match(/<svg /g) ?? []).length, 3);
  assert.match(html, /<td class="num">0\.800 s<\/td>/);
  assert.match(html, /<td class="num">2\.50 MB\/s<\/td>/);
  assert.match(html, /<td class="num">20,971,520 B<\/td>/);
  assert.match(html, /Report generated 2026-01-02T03:04:05Z/);
  assert.match(html, /not recorded in these CSV files/);
  assert.equal(escapeHtml(`<a href="x">&'`), '&lt;a href=&quot;x&quot;&gt;&amp;&#39;');
});

test('stats --html: from results.csv, or from messages CSVs alone; a chunk CSV alone is not enough', async () => {
  const out = path.join(tmp, 'r.html');
  const r = await stats([RESULTS, CHUNKS, MESSAGES], { html: out });
  assert.equal(r.htmlWritten, out);
  assert.match(r.text, /^setting\s+n\s+failed/m);
  const html = readFileSync(out, 'utf8');
  assert.match(html, /Fastest: 1MB \(mean 0\.800 s per image\)/);
  assert.equal((html.match(/<tr><th scope="row">/g) ?? []).length, 3 + 1); // results table + PDU table

  // Messages only (test/fixtures/stats): per message, grouped by max_pdu.
  const m = path.join(tmp, 'm.html');
  await stats([path.join(FIXTURES, '..', 'stats', 'messages.csv')], { html: m });
  const mh = readFileSync(m, 'utf8');
  assert.match(mh, /Fastest: 1MB \(mean 0\.750 s per message\)/);
  assert.match(mh, /Slowest: 16KB, 300% slower \(mean 3\.000 s\)/);
  await assert.rejects(stats([CHUNKS], { html: m }), StatsUsageError);
});
