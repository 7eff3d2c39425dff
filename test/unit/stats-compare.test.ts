// The engine's figures against the in-memory implementation it replaced: test/fixtures/stats/expected/
// holds what that implementation printed (the stats tables), modelled (the report) and drew (timelines)
// for every CSV of the test suite (hand-made fixtures, a real bench run, synthetic logs), written once
// before it was removed. Table cells must match to the character (columns added since are skipped); report
// numbers to 1e-9 (a sum's order).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { timelineSpec } from '../../src/analysis/chart.js';
import { filesWithAssociation, timelinePdus } from '../../src/analysis/chunks.js';
import { withEngine } from '../../src/analysis/engine.js';
import { openLogs } from '../../src/analysis/logs.js';
import { findRunInfo, prepareLogs, reportModel } from '../../src/report/build.js';
import { stats } from '../../src/cli/stats.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const EXPECTED = path.join(REPO, 'test', 'fixtures', 'stats', 'expected');
interface Case {
  name: string;
  files: string[];
  by?: string;
  timeline?: string;
  report?: boolean;
}
const cases = JSON.parse(readFileSync(path.join(EXPECTED, 'cases.json'), 'utf8')) as Case[];
const expected = (name: string): string => readFileSync(path.join(EXPECTED, name), 'utf8');

/** Equal, numbers within a relative 1e-9 (undefined members dropped, as JSON drops them). */
function assertClose(actual: unknown, wanted: unknown, where: string): void {
  if (typeof wanted === 'number' && typeof actual === 'number') {
    assert.ok(Math.abs(actual - wanted) <= 1e-9 * Math.max(1, Math.abs(wanted)), `${where}: ${actual} != ${wanted}`);
    return;
  }
  if (Array.isArray(wanted)) {
    assert.ok(Array.isArray(actual), `${where}: not an array`);
    assert.equal(actual.length, wanted.length, `${where}: length`);
    wanted.forEach((w, i) => assertClose(actual[i], w, `${where}[${i}]`));
    return;
  }
  if (wanted !== null && typeof wanted === 'object') {
    assert.ok(actual !== null && typeof actual === 'object', `${where}: not an object`);
    const a = actual as Record<string, unknown>;
    for (const k of new Set([...Object.keys(wanted), ...Object.keys(a)])) {
      // Fields added since (e.g. a variance) are not in the old model: compared only where both have them.
      if (!(k in (wanted as object))) continue;
      assertClose(a[k], (wanted as Record<string, unknown>)[k], `${where}.${k}`);
    }
    return;
  }
  assert.deepEqual(actual, wanted, where);
}

/**
 * A `stats` text against the old one, line by line: a caption (one cell) may have been extended; a table's
 * header may have gained columns (the 95% interval, the verdict against the fastest), which the old text
 * does not have and which are skipped in its rows; every cell the old text has must be there, unchanged.
 * Cells are two or more spaces apart.
 */
function assertSameTables(actual: string, wanted: string, where: string): void {
  const cellsOf = (line: string): string[] => line.trim().split(/\s{2,}/);
  const a = actual.split('\n');
  const w = wanted.split('\n');
  assert.equal(a.length, w.length, `${where}: lines\n${actual}`);
  let columns: number[] | undefined;
  w.forEach((line, i) => {
    const at = `${where} line ${i + 1}`;
    const got = a[i]!;
    const want = cellsOf(line);
    if (line.trim() === '') {
      assert.equal(got.trim(), '', at);
      columns = undefined;
    } else if (columns === undefined && want.length === 1) {
      assert.ok(got.startsWith(line), `${at}: ${JSON.stringify(got)} does not start with ${JSON.stringify(line)}`);
    } else if (columns === undefined) {
      // The header: where each old column is now.
      const header = cellsOf(got);
      let from = 0;
      columns = want.map((name) => {
        const k = header.indexOf(name, from);
        assert.ok(k >= 0, `${at}: column ${JSON.stringify(name)} missing from ${JSON.stringify(got)}`);
        from = k + 1;
        return k;
      });
    } else {
      const row = cellsOf(got);
      assert.deepEqual(
        columns.map((k) => row[k]),
        want,
        at,
      );
    }
  });
}

/** The model as the fixtures were written: JSON, with the timeline's PDUs as the chart's values. */
function comparable(model: Awaited<ReturnType<typeof reportModel>>): unknown {
  const t = model.timeline;
  const timeline = t ? { ...t, rows: undefined, values: (timelineSpec(t) as { layer: Array<{ data: { values: unknown } }> }).layer[0]!.data.values } : undefined;
  return JSON.parse(JSON.stringify({ ...model, timeline }));
}

test('the stats tables are those of the in-memory implementation, on every CSV of the test suite', async (t) => {
  assert.ok(cases.length >= 20);
  for (const c of cases) {
    await t.test(c.name, async () => {
      const { text } = await stats(c.files, c.by ? { by: c.by } : {});
      assertSameTables(text, expected(`${c.name}.txt`), c.name);
    });
  }
});

test('the report models and the timelines are those of the in-memory implementation', async (t) => {
  for (const c of cases.filter((x) => x.report || x.timeline)) {
    await t.test(c.name, () =>
      withEngine(async (engine) => {
        const sources = await openLogs(engine, c.files);
        await prepareLogs(engine, sources);
        if (c.timeline) {
          const holding = await filesWithAssociation(engine, c.timeline);
          const file = sources.find((s) => s.kind === 'chunks' && holding.has(s.path))!;
          const spec = timelineSpec({ assoc: c.timeline, rows: await timelinePdus(engine, file.path, c.timeline) }) as { layer: Array<{ data: { values: unknown } }> };
          assertClose(spec.layer[0]!.data.values, JSON.parse(expected(`${c.name}.timeline.json`)), `${c.name} timeline`);
        }
        if (c.report) {
          const model = await reportModel(engine, sources, { info: findRunInfo(sources), by: c.by ?? 'max_pdu', now: new Date('2026-01-01T00:00:00Z') });
          assertClose(comparable(model), JSON.parse(expected(`${c.name}.report.json`)), `${c.name} report`);
        }
      }),
    );
  }
});
