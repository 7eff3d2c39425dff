// `dicom-pdu-proxy stats FILE...`: the experiment's table from messages CSVs (or bench's results.csv),
// per-association summaries from chunk CSVs, SVG charts, with --html the report page of src/report/,
// --sql QUERY over the logs, and --to-parquet DIR. The computing is the engine's (src/analysis/engine.ts,
// loaded here on use): the logs are read by it, only aggregates and one association's PDUs come back.

import { mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeToString } from 'fast-csv';
import { experimentSpec, renderSvg, timelineSpec } from '../analysis/chart.js';
import { filesWithAssociation, renderChunkTable, summarizeChunks, timelinePdus } from '../analysis/chunks.js';
import { EngineError, withEngine } from '../analysis/engine.js';
import type { Engine } from '../analysis/engine.js';
import { inputError, LogInputError, openLogs, sourceSelect } from '../analysis/logs.js';
import type { LogSource } from '../analysis/logs.js';
import { groupMessages } from '../analysis/messages.js';
import { analyseExperiment, ExperimentInputError } from '../analysis/experiment.js';
import { MAX_SEED } from '../experiment/random.js';
import { renderExperimentTable } from '../analysis/experiment-table.js';
import { renderColumns, renderResultTable } from '../analysis/table.js';
import { findRunInfo, prepareLogs, renderReport, reportModel, resultRows } from '../report/build.js';
import { settingsFromResults } from '../report/model.js';

export const SQL_FORMATS = ['table', 'csv', 'json'] as const;
export type SqlFormat = (typeof SQL_FORMATS)[number];

export interface StatsOptions {
  /** Messages CSV column to group by (default max_pdu). */
  by?: string;
  /** Write a chart here: the experiment's chart, or with `timeline` the association's timeline. */
  svg?: string;
  /** Association id whose PDUs are drawn (needs a chunk CSV and `svg`). */
  timeline?: string;
  /** Write the self-contained HTML report here (the one bench writes as report.html). */
  html?: string;
  /** Run this query over the views chunks, messages and results instead of printing the tables. */
  sql?: string;
  /** How --sql prints its result (default table). */
  format?: string;
  /** Write each CSV input as Parquet into this directory instead of printing the tables. */
  toParquet?: string;
  /** The experiment's reference arm (default: the first arm). */
  baseline?: string;
  /** The seed of the experiment's bootstrap (default DEFAULT_SEED): a whole number, or its text (--seed). */
  seed?: number | string;
}

export const DEFAULT_GROUP_BY = 'max_pdu';

/** What the interval and "vs fastest" columns are, under each table's caption. */
const STATISTICS_NOTE = "ci95 = Student's t 95% interval of the mean; vs fastest = Welch's t-test against the fastest row (slower: p < 0.05)";

/** A bad argument or input file: one line for the user, exit status 2. */
export class StatsUsageError extends Error {}

export interface StatsOutput {
  text: string;
  svgWritten?: string;
  htmlWritten?: string;
}

function checkOptions(paths: readonly string[], o: StatsOptions): void {
  if (paths.length === 0) throw new StatsUsageError('stats: give at least one CSV file');
  if (o.timeline !== undefined && !o.svg) throw new StatsUsageError('--timeline needs --svg FILE');
  if (o.format !== undefined && o.sql === undefined) throw new StatsUsageError('--format needs --sql QUERY');
  if (o.format !== undefined && !(SQL_FORMATS as readonly string[]).includes(o.format)) {
    throw new StatsUsageError(`--format: ${JSON.stringify(o.format)} is not one of ${SQL_FORMATS.join(', ')}`);
  }
  const alone = (['sql', 'toParquet'] as const).filter((k) => o[k] !== undefined);
  const others = (['by', 'svg', 'html', 'baseline', 'seed'] as const).filter((k) => o[k] !== undefined);
  const flag = (k: string): string => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  if (alone.length > 1 || (alone.length === 1 && others.length > 0)) {
    throw new StatsUsageError(`${flag(alone[0]!)} replaces the tables and charts: it cannot be combined with ${[...alone.slice(1), ...others].map(flag).join(', ')}`);
  }
}

export async function stats(paths: readonly string[], options: StatsOptions): Promise<StatsOutput> {
  checkOptions(paths, options);
  try {
    return await withEngine((engine) => statsWith(engine, paths, options));
  } catch (err) {
    if (err instanceof LogInputError || err instanceof EngineError || err instanceof ExperimentInputError) throw new StatsUsageError(err.message);
    throw err;
  }
}

function seedOf(value: number | string): number {
  const text = String(value).trim();
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n <= MAX_SEED)) throw new StatsUsageError(`--seed: ${JSON.stringify(String(value))} is not a whole number from 0 to ${MAX_SEED}`);
  return n;
}

async function statsWith(engine: Engine, paths: readonly string[], options: StatsOptions): Promise<StatsOutput> {
  const sources = await openLogs(engine, paths);
  if (options.toParquet !== undefined) return { text: await toParquet(engine, sources, options.toParquet) };
  const messages = sources.filter((f) => f.kind === 'messages');
  const chunks = sources.filter((f) => f.kind === 'chunks');
  const results = sources.filter((f) => f.kind === 'results');
  if (options.sql !== undefined) {
    await prepareLogs(engine, sources.length > 0 ? sources : []);
    return { text: await runSql(engine, sources, options.sql, (options.format ?? 'table') as SqlFormat) };
  }
  if (options.html !== undefined && messages.length === 0 && results.length === 0) {
    throw new StatsUsageError("--html needs a messages CSV (--messages-csv) or bench's results.csv");
  }
  const seed = options.seed === undefined ? undefined : seedOf(options.seed);
  if (options.by !== undefined && messages.length === 0) throw new StatsUsageError('--by needs a messages CSV (--messages-csv)');
  for (const f of messages) {
    if (options.by !== undefined && !f.columns.includes(options.by)) {
      throw new StatsUsageError(`--by: ${JSON.stringify(options.by)} is not a column of ${f.path} (${f.columns.join(', ')})`);
    }
  }
  await prepareLogs(engine, sources);
  // An experiment: rows of more than one arm (files written before arms have no arm column).
  const experiment = messages.some((f) => f.columns.includes('arm'))
    ? await analyseExperiment(engine, { by: options.by, baseline: options.baseline, seed }).catch((err: unknown) => Promise.reject(inputError(err, sources)))
    : undefined;
  if ((options.baseline !== undefined || options.seed !== undefined) && !experiment) {
    throw new StatsUsageError(`--${options.baseline !== undefined ? 'baseline' : 'seed'} needs a messages CSV whose rows hold more than one arm (--max-pdu A,B)`);
  }
  // With arms, the usual table is per arm unless --by says otherwise (then the experiment is per --by too);
  // files without arms read with others show as "(empty)" there.
  const by = options.by ?? (experiment ? 'arm' : DEFAULT_GROUP_BY);

  const parts: string[] = [];
  let svgWritten: string | undefined;
  let htmlWritten: string | undefined;
  try {
    if (experiment) parts.push(renderExperimentTable(experiment), '\n');
    // Rows from several routes (the route column) are grouped per route first.
    const groups = messages.length > 0 ? await groupMessages(engine, { by, perRoute: true }) : undefined;
    if (groups) {
      const n = groups.rows.reduce((s, r) => s + r.count, 0);
      parts.push(
        `${n} messages from ${messages.length} messages CSV file(s), by ${groups.perRoute ? `route and ${by}` : by}; seconds per message, MB = 2^20 bytes, split = mean ms per message; ${STATISTICS_NOTE}${groups.perRoute ? ' of its route' : ''}\n`,
      );
      parts.push(renderResultTable(groups.rows, by));
    }
    const resultsByFile = await resultRows(engine, sources);
    for (const f of results) {
      const rows = resultsByFile.get(f.path) ?? [];
      const settings = settingsFromResults(rows);
      const series = new Set(settings.map((s) => s.series)).size > 1;
      parts.push(
        `${parts.length > 0 ? '\n' : ''}${f.path}: ${rows.length} settings of a bench run; seconds per image as measured by the senders; ` +
          `${STATISTICS_NOTE}${series ? ' of its series' : ''} (none without sd_s: files of older versions)\n`,
      );
      parts.push(
        renderResultTable(
          settings.map((s) => s.row),
          'setting',
          (_, i) => settings[i]!.series,
        ),
      );
    }
    const summaries = chunks.length > 0 ? await summarizeChunks(engine) : new Map();
    for (const f of chunks) {
      const s = summaries.get(f.path) ?? [];
      const pdus = s.reduce((sum: number, d: { pdus: number }) => sum + d.pdus, 0);
      parts.push(`${parts.length > 0 ? '\n' : ''}${f.path}: ${pdus} PDUs (bytes on the wire = length + 6; lengths are the PDU-length field)\n`);
      parts.push(renderChunkTable(s));
    }

    if (options.svg) {
      let svg: string;
      if (options.timeline !== undefined) {
        const holding = await filesWithAssociation(engine, options.timeline);
        const source = chunks.find((f) => holding.has(f.path));
        if (!source) throw new StatsUsageError(`--timeline: association ${options.timeline} is in no chunk CSV given`);
        svg = await renderSvg(timelineSpec({ assoc: options.timeline, rows: await timelinePdus(engine, source.path, options.timeline) }));
      } else {
        if (!groups) throw new StatsUsageError('--svg needs a messages CSV (or --timeline ASSOC with a chunk CSV)');
        const series = groups.perRoute
          ? [...new Set(groups.rows.map((r) => r.route!))].map((route) => ({ series: `route ${route}`, rows: groups.rows.filter((r) => r.route === route) }))
          : [{ series: 'messages', rows: groups.rows }];
        svg = await renderSvg(experimentSpec(series, by, `time per message by ${by}`));
      }
      await writeFile(options.svg, svg);
      svgWritten = options.svg;
    }
    if (options.html !== undefined) {
      const model = await reportModel(engine, sources, { info: findRunInfo(sources), by, experiment, groups });
      await writeFile(options.html, await renderReport(model));
      htmlWritten = options.html;
    }
  } catch (err) {
    throw inputError(err, sources);
  }
  return { text: parts.join(''), svgWritten, htmlWritten };
}

/** A value of a query's result as text: '' for NULL in CSV, '-' in a table; lists and structs as JSON. */
function cellText(v: unknown, nullText: string): string {
  if (v === null || v === undefined) return nullText;
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object') return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? Number(x) : x));
  return String(v);
}

async function runSql(engine: Engine, sources: readonly LogSource[], sql: string, format: SqlFormat): Promise<string> {
  let result: { columns: string[]; rows: unknown[][] };
  try {
    result = await engine.query(sql);
  } catch (err) {
    const e = inputError(err, sources);
    throw new StatsUsageError(e instanceof LogInputError && !(err instanceof EngineError && /CSV Error/.test(err.detail)) ? `--sql: ${e.message}` : e.message);
  }
  const { columns, rows } = result;
  if (format === 'json') {
    const objects = rows.map((r) => JSON.stringify(Object.fromEntries(columns.map((c, i) => [c, r[i] instanceof Date ? (r[i] as Date).toISOString() : r[i]]))));
    return objects.length === 0 ? '[]\n' : `[\n${objects.join(',\n')}\n]\n`;
  }
  if (format === 'csv') return (await writeToString([columns, ...rows.map((r) => r.map((v) => cellText(v, '')))])) + '\n';
  return renderColumns(
    columns,
    rows.map((r) => r.map((v) => cellText(v, '-'))),
  );
}

async function toParquet(engine: Engine, sources: readonly LogSource[], dir: string): Promise<string> {
  const targets = new Map<string, LogSource>();
  for (const s of sources) {
    if (s.format !== 'csv') throw new StatsUsageError(`--to-parquet: ${s.path} is Parquet already`);
    const out = path.join(dir, `${path.basename(s.path).replace(/\.csv$/i, '')}.parquet`);
    const clash = targets.get(out);
    if (clash) throw new StatsUsageError(`--to-parquet: ${clash.path} and ${s.path} would both be written to ${out}`);
    targets.set(out, s);
  }
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new StatsUsageError(`--to-parquet: ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const lines: string[] = [];
  for (const [out, s] of targets) {
    try {
      await engine.run(`COPY (SELECT * EXCLUDE (file) FROM (${sourceSelect(s)})) TO '${out.replace(/'/g, "''")}' (FORMAT parquet, COMPRESSION zstd)`);
    } catch (err) {
      throw inputError(err, [s]);
    }
    const [{ n }] = (await engine.all<{ n: number }>(`SELECT count(*) AS n FROM read_parquet(?)`, [out])) as [{ n: number }];
    lines.push(`${s.path} -> ${out}: ${n} rows (${s.kind})`);
  }
  return lines.join('\n') + '\n';
}
