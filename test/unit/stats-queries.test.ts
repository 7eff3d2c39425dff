// The ready queries of docs/STATS.md run as written, through `stats --sql`, over the test suite's logs (a
// real bench run, the hand-made fixtures): each one must return what it says it does, computed here from the
// fixture files' rows by other means (plain TypeScript over the CSV rows), so the page stays true.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stats } from '../../src/cli/stats.js';
import { readCsvRows } from '../helpers/csv.js';
import type { CsvRow } from '../helpers/csv.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURES = path.join(REPO, 'test', 'fixtures', 'stats');
const queries = [...readFileSync(path.join(REPO, 'docs', 'STATS.md'), 'utf8').matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!);
const LOGS = [path.join(FIXTURES, 'bench-run', '*.csv'), path.join(FIXTURES, 'chunks.csv'), path.join(FIXTURES, 'messages.csv')];
/** The files LOGS names, by kind, as the `file` column gives them. */
const BENCH = ['16KB-256KB', '1MB-256KB'];
const CHUNK_FILES = [...BENCH.map((s) => path.join(FIXTURES, 'bench-run', `chunks-${s}.csv`)), path.join(FIXTURES, 'chunks.csv')];
const MESSAGE_FILES = [...BENCH.map((s) => path.join(FIXTURES, 'bench-run', `messages-${s}.csv`)), path.join(FIXTURES, 'messages.csv')];

type Row = Record<string, unknown>;

async function run(n: number): Promise<Row[]> {
  const { text } = await stats(LOGS, { sql: queries[n]!, format: 'json' });
  return JSON.parse(text) as Row[];
}

async function rowsOf(files: readonly string[]): Promise<Array<CsvRow & { file: string }>> {
  return (await Promise.all(files.map(async (file) => (await readCsvRows(file)).map((r) => ({ ...r, file }))))).flat();
}

/** Group `rows` by `key`, in first-seen order. */
function groupBy<T>(rows: readonly T[], key: (r: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const r of rows) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
  return groups;
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);
const bySetting = (a: Row, b: Row): number => String(a.setting).localeCompare(String(b.setting)) || Number(a.from_bytes) - Number(b.from_bytes);

test('five ready queries in docs/STATS.md, in the order these tests expect', () => {
  assert.equal(queries.length, 5, `${queries.length} queries found`);
  assert.match(queries[0]!, /FROM chunks/);
  assert.match(queries[1]!, /FROM messages/);
  assert.match(queries[3]!, /violation = 1/);
});

test('the histogram: P-DATA-TF from the SCU per bench setting, in power-of-two buckets of their length', async () => {
  const pdata = (await rowsOf(CHUNK_FILES)).filter((r) => r.type === 'P-DATA-TF' && r.direction === 'to_scp');
  const groups = groupBy(pdata, (r) => {
    const setting = /chunks-([^/]+)\.csv$/.exec(r.file)?.[1] ?? '';
    return `${setting}\t${2 ** Math.floor(Math.log2(Number(r.length)))}`;
  });
  const expected = [...groups].map(([k, rs]) => {
    const [setting, from] = k.split('\t');
    return { setting, from_bytes: Number(from), pdus: rs.length, bytes: sum(rs.map((r) => Number(r.length))) };
  });
  const got = await run(0);
  assert.deepEqual(got, [...expected].sort(bySetting));
  // What the bench run shows: at 16KB its data sets went in full PDUs of 16384 bytes, at 1MB in PDUs of 256 KiB and more.
  assert.ok(got.some((r) => r.setting === '16KB-256KB' && r.from_bytes === 16384 && Number(r.pdus) >= 16));
  assert.ok(got.some((r) => r.setting === '1MB-256KB' && r.from_bytes === 262144));
});

test('time per association: requests, total and its parts, largest total first', async () => {
  const timed = (await rowsOf(MESSAGE_FILES)).filter((r) => r.duration_ms !== '');
  const expected = [...groupBy(timed, (r) => `${r.file}\t${r.assoc}`).values()].map((rs) => {
    const total = (k: string): number => sum(rs.map((r) => Number(r[k])));
    return {
      file: rs[0]!.file,
      assoc: Number(rs[0]!.assoc),
      requests: rs.length,
      total_ms: total('duration_ms'),
      scu_idle_ms: total('scu_idle_ms'),
      upstream_blocked_ms: total('upstream_blocked_ms'),
      scp_response_ms: total('scp_response_ms'),
      // Files written before proxy_busy_ms (the fixtures): NULL, and bytes in flight without it.
      proxy_busy_ms: rs.some((r) => (r.proxy_busy_ms ?? '') !== '') ? total('proxy_busy_ms') : null,
      in_flight_ms: total('duration_ms') - total('scu_idle_ms') - total('upstream_blocked_ms') - total('scp_response_ms') - sum(rs.map((r) => Number(r.proxy_busy_ms || 0))),
    };
  });
  const got = await run(1);
  assert.equal(got.length, Math.min(20, expected.length));
  assert.ok(expected.length >= 8, `${expected.length} associations with timed messages in the fixtures`);
  for (let i = 1; i < got.length; i++) assert.ok(Number(got[i - 1]!.total_ms) >= Number(got[i]!.total_ms), 'largest total first');
  const key = (r: Row): string => `${String(r.file)}\t${String(r.assoc)}`;
  const want = new Map(expected.map((e) => [key(e), e]));
  for (const r of got) {
    const e = want.get(key(r));
    assert.ok(e, `an association of the fixtures: ${key(r)}`);
    assert.equal(r.requests, e.requests, key(r));
    // Rounded to one decimal by the query.
    assert.equal(r.proxy_busy_ms, e.proxy_busy_ms, `${key(r)} proxy_busy_ms`);
    for (const k of ['total_ms', 'scu_idle_ms', 'upstream_blocked_ms', 'scp_response_ms', 'in_flight_ms'] as const) {
      assert.ok(Math.abs(Number(r[k]) - e[k]) <= 0.05 + 1e-9, `${key(r)} ${k}: ${String(r[k])}, computed ${e[k]}`);
    }
  }
  // The hand-made fixture's figures, as written in it: association 2 took 9 s, 8.82 s of it neither idle, blocked nor the SCP's
  // (the fixture predates proxy_busy_ms).
  assert.deepEqual(got[0], {
    file: path.join(FIXTURES, 'messages.csv'),
    assoc: 2,
    requests: 2,
    total_ms: 9000,
    scu_idle_ms: 70,
    upstream_blocked_ms: 100,
    scp_response_ms: 10,
    proxy_busy_ms: null,
    in_flight_ms: 8820,
  });
});

test('the ten slowest messages, slowest first, each as the fixture files hold it', async () => {
  const all = (await rowsOf(MESSAGE_FILES)).map((r) => ({
    file: r.file,
    assoc: Number(r.assoc),
    message_id: Number(r.message_id),
    command: r.command,
    bytes: Number(r.bytes),
    max_pdu: Number(r.max_pdu),
    duration_ms: r.duration_ms === '' ? null : Number(r.duration_ms),
    status: r.status === '' ? 'none' : r.status,
    started_at: r.started_at,
  }));
  const order = (a: (typeof all)[number], b: (typeof all)[number]): number => (b.duration_ms ?? -Infinity) - (a.duration_ms ?? -Infinity);
  const expected = [...all].sort(order).slice(0, 10);
  const got = await run(2);
  assert.deepEqual(
    got.map((r) => r.duration_ms),
    expected.map((e) => e.duration_ms),
  );
  const key = (r: Row): string => `${String(r.file)}\t${String(r.assoc)}\t${String(r.message_id)}`;
  const want = new Map(all.map((e) => [key(e), e]));
  for (const r of got) assert.deepEqual(r, want.get(key(r)));
});

test('PDUs over the receiver’s maximum (violations), per association and direction', async () => {
  const violations = (await rowsOf(CHUNK_FILES)).filter((r) => r.violation === '1');
  const expected = [...groupBy(violations, (r) => `${r.file}\t${r.route ?? ''}\t${r.assoc}\t${r.direction}`).values()].map((rs) => ({
    file: rs[0]!.file,
    route: rs[0]!.route ?? null,
    assoc: Number(rs[0]!.assoc),
    direction: rs[0]!.direction,
    violations: rs.length,
    largest: Math.max(...rs.map((r) => Number(r.length))),
    cut_to: Math.max(...rs.map((r) => Number(r.out_max_length))),
    pdus_sent: sum(rs.map((r) => Number(r.out_pdus))),
  }));
  assert.ok(expected.length > 0, 'the fixtures hold a violation');
  assert.deepEqual(await run(3), expected);
});

test('requests that did not succeed, by command and status', async () => {
  const failed = (await rowsOf(MESSAGE_FILES)).filter((r) => r.status !== '0000');
  const expected = [...groupBy(failed, (r) => `${r.command}\t${r.status || 'no response'}`)].map(([k, rs]) => {
    const [command, status] = k.split('\t');
    return { command, status, requests: rs.length };
  });
  const got = await run(4);
  assert.deepEqual(
    [...got].sort((a, b) => String(a.status).localeCompare(String(b.status))),
    expected.sort((a, b) => a.status!.localeCompare(b.status!)),
  );
  assert.deepEqual(
    got.map((r) => r.requests),
    got.map((r) => r.requests).sort((a, b) => Number(b) - Number(a)),
    'most first',
  );
  assert.ok(
    got.some((r) => r.status === 'no response'),
    'a request without a response counted',
  );
});

test("docs/SCALE.md's portable SQL gives stats' figures (DuckDB standing in for Trino, over Parquet)", async () => {
  const { withEngine } = await import('../../src/analysis/engine.js');
  const { openLogs } = await import('../../src/analysis/logs.js');
  const { groupMessages } = await import('../../src/analysis/messages.js');
  const { summarizeChunks } = await import('../../src/analysis/chunks.js');
  const { prepareLogs } = await import('../../src/report/build.js');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const os = await import('node:os');
  const scale = [...readFileSync(path.join(REPO, 'docs', 'SCALE.md'), 'utf8').matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const [table, perAssociation] = scale.filter((q) => q.trimStart().startsWith('WITH'));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dpp-scale-'));
  try {
    const csv = ['messages', 'chunks'].map((k) => path.join(FIXTURES, 'synthetic', `${k}.csv`));
    await stats(csv, { toParquet: dir });
    await withEngine(async (engine) => {
      const sources = await openLogs(engine, csv);
      await prepareLogs(engine, sources);
      const groups = (await groupMessages(engine, { by: 'max_pdu', perRoute: true })).rows;
      const summaries = (await summarizeChunks(engine)).get(csv[1]!)!;
      // The tables of SCALE.md, as a Hive catalog would show them: the Parquet files, a host, a day, "$path".
      await engine.run(`ATTACH ':memory:' AS hive`);
      await engine.run('CREATE SCHEMA hive.dpp');
      await engine.run(`CREATE VIEW hive.dpp.messages AS SELECT *, 'h1' AS host, '2026-11-25' AS day FROM read_parquet('${dir}/messages.parquet')`);
      await engine.run(
        `CREATE VIEW hive.dpp.chunks AS SELECT *, 'h1' AS host, '2026-11-25' AS day, filename AS "$path" FROM read_parquet('${dir}/chunks.parquet', filename = true)`,
      );
      const rows = await engine.all<Record<string, number>>(table!.replace(/BETWEEN '[^']*' AND '[^']*'/, "BETWEEN '2026-11-01' AND '2026-11-30'"));
      assert.equal(rows.length, groups.length);
      rows.forEach((r, i) => {
        const g = groups[i]!;
        assert.deepEqual([r.n, r.failed, r.min_s, r.max_s, r.p50_s, r.p95_s], [g.count, g.failures, g.seconds!.min, g.seconds!.max, g.seconds!.p50, g.seconds!.p95]);
        for (const [a, b] of [
          [r.mean_s, g.seconds!.mean],
          [r.variance_s2, g.seconds!.variance],
          [r.mb_per_s, g.mbPerS],
          [r.scu_idle_ms, g.scuIdleMs],
        ] as const) {
          assert.ok(Math.abs(a! - b!) <= 1e-9 * Math.abs(b!), `${a} ${b}`);
        }
      });
      const assocs = await engine.all<Record<string, number | string>>(perAssociation!);
      assert.deepEqual(
        assocs.map((r) => [String(r.assoc), r.direction, r.pdus, r.bytes, r.pdata, r.min_len, r.p50_len, r.max_len, r.violations]),
        summaries.map((s) => [s.assoc, s.direction, s.pdus, s.bytes, s.pdata, s.minLength ?? null, s.p50Length ?? null, s.maxLength ?? null, s.violations]),
      );
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
