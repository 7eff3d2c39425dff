// `stats` as a user runs it (the built CLI, a process each): patterns, --sql in three formats, --to-parquet
// and the same tables from the Parquet files, one line and exit status 2 for each bad input, one line when
// the optional engine is not installed; and the proxy itself never maps DuckDB's native library.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { withEngine } from '../../src/analysis/engine.js';
import { ProxyProcess, REPO_ROOT, BIN, stopAllProxies } from '../helpers/proxy.js';
import { runToExit } from '../helpers/procs.js';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'stats');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-stats-engine-'));
after(async () => {
  await stopAllProxies();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const stats = (args: readonly string[], bin = BIN) => runToExit(process.execPath, [bin, 'stats', ...args], { timeoutMs: 60_000, cwd: REPO_ROOT, name: 'stats' });

/** Exit status 2 and exactly one line on stderr, matching `pattern`. */
async function failsWith(args: readonly string[], pattern: RegExp): Promise<void> {
  const r = await stats(args);
  assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, pattern);
}

test('a pattern is expanded; --sql prints a table, CSV or JSON over the views', async () => {
  const sql = 'SELECT file, count(*) AS n, sum(bytes) AS bytes FROM messages GROUP BY file ORDER BY file';
  const table = await stats([`${FIXTURES}/messages*.csv`, '--sql', sql]);
  assert.equal(table.code, 0, table.stderr);
  // messages.csv and messages-routes.csv: 8 rows each, 4 x 1 MiB + 4 x 2 MiB.
  assert.deepEqual(
    table.stdout
      .trimEnd()
      .split('\n')
      .map((l) => l.trim().split(/\s{2,}/)),
    [
      ['file', 'n', 'bytes'],
      [`${FIXTURES}/messages-routes.csv`, '8', '12582912'],
      [`${FIXTURES}/messages.csv`, '8', '12582912'],
    ],
  );
  const csv = await stats([`${FIXTURES}/chunks.csv`, '--sql', "SELECT direction, count(*) AS n FROM chunks WHERE type = 'P-DATA-TF' GROUP BY ALL ORDER BY ALL", '--format', 'csv']);
  assert.equal(csv.stdout, 'direction,n\nto_scp,5\nto_scu,1\n');
  const json = await stats([`${FIXTURES}/messages.csv`, '--sql', 'SELECT assoc, status, started_at FROM messages WHERE message_id = 4', '--format', 'json']);
  assert.deepEqual(JSON.parse(json.stdout), [{ assoc: 3, status: null, started_at: '2026-01-01T10:01:02.500Z' }]);
});

test('--to-parquet writes typed Parquet files that give the same tables', async () => {
  const dir = path.join(tmp, 'parquet');
  const files = ['messages.csv', 'chunks.csv', 'bench-run/results.csv'].map((f) => path.join(FIXTURES, f));
  const r = await stats([...files, '--to-parquet', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /chunks\.csv -> .*chunks\.parquet: 12 rows \(chunks\)/);
  for (const f of ['messages', 'chunks', 'results'])
    assert.equal(
      fs
        .readFileSync(path.join(dir, `${f}.parquet`))
        .subarray(0, 4)
        .toString(),
      'PAR1',
    );
  const fromCsv = await stats(files);
  const fromParquet = await stats(['messages', 'chunks', 'results'].map((f) => path.join(dir, `${f}.parquet`)));
  // The same tables; only the file names in the captions differ.
  const names = (text: string) => text.replace(/^\S+\.(csv|parquet): /gm, 'FILE: ');
  assert.equal(names(fromParquet.stdout), names(fromCsv.stdout));
  const types = await stats([
    path.join(dir, 'messages.parquet'),
    '--sql',
    "SELECT column_type FROM (DESCRIBE messages) WHERE column_name IN ('started_at', 'duration_ms', 'max_pdu') ORDER BY column_name",
    '--format',
    'csv',
  ]);
  assert.equal(types.stdout, 'column_type\nDOUBLE\nBIGINT\nTIMESTAMP\n');
});

test('bad input: one line naming the file (and the line), exit status 2', async () => {
  const chunkLines = fs.readFileSync(path.join(FIXTURES, 'chunks.csv'), 'utf8').trimEnd().split('\n');
  const write = (name: string, lines: readonly string[]): string => {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, lines.join('\n') + '\n');
    return f;
  };
  const badValue = write('bad-value.csv', [...chunkLines.slice(0, 4), chunkLines[4]!.replace(/P-DATA-TF,\d+/, 'P-DATA-TF,12x'), ...chunkLines.slice(5)]);
  await failsWith([badValue], /bad-value\.csv: line 5: corrupt row: .*column "length".*"12x"/);
  const short = write('short.csv', [...chunkLines.slice(0, 3), '1,to_scp,9', ...chunkLines.slice(3)]);
  await failsWith([short], /short\.csv: line 4: corrupt row: Expected Number of Columns: 15 Found: 3/);
  const header = chunkLines[0]!.split(',');
  const noLength = write(
    'no-length.csv',
    chunkLines.map((l) =>
      l
        .split(',')
        .filter((_, i) => header[i] !== 'length')
        .join(','),
    ),
  );
  await failsWith([noLength], /no-length\.csv: a chunk CSV \(--csv\) without the column length$/);
  await failsWith([path.join(tmp, 'nothing-here.csv')], /nothing-here\.csv: ENOENT$/);
  await failsWith([tmp], /: EISDIR$/);
  await failsWith([`${tmp}/*.nothing`], /\*\.nothing: no file matches$/);
  await failsWith([path.join(FIXTURES, 'messages.csv'), '--sql', 'SELECT nope FROM messages'], /^dicom-pdu-proxy: --sql: Binder Error: .*nope/);
  await failsWith([path.join(FIXTURES, 'messages.csv'), '--sql', 'SELECT 1', '--by', 'assoc'], /--sql replaces the tables and charts: it cannot be combined with --by/);
});

test('without the optional engine installed: stats says so in one line; the proxy CLI runs', async () => {
  // A copy of the package whose node_modules has everything but @duckdb.
  const root = path.join(tmp, 'no-engine');
  fs.mkdirSync(path.join(root, 'node_modules'), { recursive: true });
  for (const entry of ['bin', 'dist', 'config', 'package.json']) fs.symlinkSync(path.join(REPO_ROOT, entry), path.join(root, entry));
  for (const entry of fs.readdirSync(path.join(REPO_ROOT, 'node_modules'))) {
    if (entry !== '@duckdb') fs.symlinkSync(path.join(REPO_ROOT, 'node_modules', entry), path.join(root, 'node_modules', entry));
  }
  // dist/ is a symlink: Node resolves the real path, which finds the real node_modules. Copy dist instead.
  fs.unlinkSync(path.join(root, 'dist'));
  fs.cpSync(path.join(REPO_ROOT, 'dist'), path.join(root, 'dist'), { recursive: true });
  fs.unlinkSync(path.join(root, 'bin'));
  fs.cpSync(path.join(REPO_ROOT, 'bin'), path.join(root, 'bin'), { recursive: true });
  const bin = path.join(root, 'bin', 'dicom-pdu-proxy.js');
  const r = await stats([path.join(FIXTURES, 'messages.csv')], bin);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /@duckdb\/node-api is not installed .*npm install @duckdb\/node-api/);
  const version = await runToExit(process.execPath, [bin, '--version'], { timeoutMs: 30_000, name: 'version' });
  assert.equal(version.code, 0, version.stderr);
});

test("the proxy never loads DuckDB: its native library is not in the proxy's memory map", async () => {
  const mapped = (pid: number | 'self') => /duckdb/i.test(fs.readFileSync(`/proc/${pid}/maps`, 'utf8'));
  // The check can fail: this process maps the library once it opened an engine.
  await withEngine(async (engine) => assert.deepEqual(await engine.all('SELECT 1 AS one'), [{ one: 1 }]));
  assert.ok(mapped('self'), 'an open engine shows in /proc/self/maps');
  const proxy = await ProxyProcess.start(['--upstream', '127.0.0.1:9', '--csv', path.join(tmp, 'c.csv'), '--messages-csv', path.join(tmp, 'm.csv')]);
  assert.equal(mapped(proxy.child.pid!), false, 'the proxy maps no DuckDB library');
});
