// The ready queries of docs/STATS.md run as written, through `stats --sql`, over the test suite's logs (a
// real bench run, the hand-made fixtures): each one must run and find rows, so the page stays true.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stats } from '../../src/cli/stats.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURES = path.join(REPO, 'test', 'fixtures', 'stats');
const queries = [...readFileSync(path.join(REPO, 'docs', 'STATS.md'), 'utf8').matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!);
const LOGS = [path.join(FIXTURES, 'bench-run', '*.csv'), path.join(FIXTURES, 'chunks.csv'), path.join(FIXTURES, 'messages.csv')];

test('every ready query of docs/STATS.md runs and finds rows', async () => {
  assert.ok(queries.length >= 5, `${queries.length} queries found`);
  for (const sql of queries) {
    const { text } = await stats(LOGS, { sql, format: 'json' });
    const rows = JSON.parse(text) as unknown[];
    assert.ok(rows.length > 0, `no rows:\n${sql}`);
  }
});

test('the histogram query: P-DATA-TF from the SCU per bench setting, in power-of-two buckets', async () => {
  const { text } = await stats(LOGS, { sql: queries[0]!, format: 'csv' });
  const lines = text.trimEnd().split('\n');
  assert.equal(lines[0], 'setting,from_bytes,pdus,bytes');
  // The bench run at 16KB: its data sets went in full PDUs of 16384 bytes (and a smaller last one).
  const at16k = lines.filter((l) => l.startsWith('16KB-256KB,'));
  assert.ok(
    at16k.some((l) => /^16KB-256KB,16384,\d+,\d+$/.test(l)),
    text,
  );
  assert.ok(lines.every((l, i) => i === 0 || Number(l.split(',')[1]) > 0));
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
