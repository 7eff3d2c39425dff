// The ready queries of docs/STATS.md run as written, through `stats --sql`, over the test suite's logs (a
// real bench run, the hand-made fixtures): each one must run and find rows, so the page stays true.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stats } from '../../src/stats/command.js';

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
  assert.ok(at16k.some((l) => /^16KB-256KB,16384,\d+,\d+$/.test(l)), text);
  assert.ok(lines.every((l, i) => i === 0 || Number(l.split(',')[1]) > 0));
});
