// `dicom-pdu-proxy stats FILE...`: the experiment's table from messages CSVs (or bench's results.csv),
// per-association summaries from chunk CSVs, SVG charts, and with --html the report page of src/report/.

import { writeFile } from 'node:fs/promises';
import { CsvInputError, readCsvFile } from '../analysis/csv.js';
import type { CsvFile } from '../analysis/csv.js';
import { experimentSpec, renderSvg, timelineSpec } from '../analysis/chart.js';
import { renderChunkTable, summarizeChunks } from '../analysis/chunks.js';
import { groupMessages, groupMessagesPerRoute } from '../analysis/messages.js';
import { renderResultTable } from '../analysis/table.js';
import { settingsFromResults } from '../report/model.js';

export interface StatsOptions {
  /** Messages CSV column to group by (default max_pdu). */
  by?: string;
  /** Write a chart here: the experiment's chart, or with `timeline` the association's timeline. */
  svg?: string;
  /** Association id whose PDUs are drawn (needs a chunk CSV and `svg`). */
  timeline?: string;
  /** Write the self-contained HTML report here (the one bench writes as report.html). */
  html?: string;
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

export async function stats(paths: readonly string[], options: StatsOptions): Promise<StatsOutput> {
  if (paths.length === 0) throw new StatsUsageError('stats: give at least one CSV file');
  if (options.timeline !== undefined && !options.svg) throw new StatsUsageError('--timeline needs --svg FILE');
  let files: CsvFile[];
  try {
    files = await Promise.all(paths.map((p) => readCsvFile(p)));
  } catch (err) {
    if (err instanceof CsvInputError) throw new StatsUsageError(err.message);
    throw err;
  }
  const messages = files.filter((f) => f.kind === 'messages');
  const chunks = files.filter((f) => f.kind === 'chunks');
  const results = files.filter((f) => f.kind === 'results');
  if (options.html !== undefined && messages.length === 0 && results.length === 0) {
    throw new StatsUsageError("--html needs a messages CSV (--messages-csv) or bench's results.csv");
  }
  const by = options.by ?? DEFAULT_GROUP_BY;
  if (options.by !== undefined && messages.length === 0) throw new StatsUsageError('--by needs a messages CSV (--messages-csv)');
  for (const f of messages) {
    if (!f.columns.includes(by)) throw new StatsUsageError(`--by: ${JSON.stringify(by)} is not a column of ${f.path} (${f.columns.join(', ')})`);
  }

  const parts: string[] = [];
  const messageRows = messages.flatMap((f) => f.rows);
  // Rows from several routes (the route column) are grouped per route first.
  const perRoute = groupMessagesPerRoute(messageRows, by);
  const rows = perRoute ?? groupMessages(messageRows, by);
  if (messages.length > 0) {
    const n = rows.reduce((s, r) => s + r.count, 0);
    parts.push(`${n} messages from ${messages.length} messages CSV file(s), by ${perRoute ? `route and ${by}` : by}; seconds per message, MB = 2^20 bytes, split = mean ms per message; ${STATISTICS_NOTE}${perRoute ? ' of its route' : ''}\n`);
    parts.push(renderResultTable(rows, by));
  }
  for (const f of results) {
    const settings = settingsFromResults(f.rows);
    const series = new Set(settings.map((s) => s.series)).size > 1;
    parts.push(
      `${parts.length > 0 ? '\n' : ''}${f.path}: ${f.rows.length} settings of a bench run; seconds per image as measured by the senders; ` +
        `${STATISTICS_NOTE}${series ? ' of its series' : ''} (none without sd_s: files of older versions)\n`,
    );
    parts.push(renderResultTable(settings.map((s) => s.row), 'setting', (_, i) => settings[i]!.series));
  }
  for (const f of chunks) {
    parts.push(`${parts.length > 0 ? '\n' : ''}${f.path}: ${f.rows.length} PDUs (bytes on the wire = length + 6; lengths are the PDU-length field)\n`);
    parts.push(renderChunkTable(summarizeChunks(f.rows)));
  }

  let svgWritten: string | undefined;
  if (options.svg) {
    let svg: string;
    if (options.timeline !== undefined) {
      const source = chunks.find((f) => f.rows.some((r) => r.assoc === options.timeline));
      if (!source) throw new StatsUsageError(`--timeline: association ${options.timeline} is in no chunk CSV given`);
      svg = await renderSvg(timelineSpec(source.rows, options.timeline));
    } else {
      if (messages.length === 0) throw new StatsUsageError('--svg needs a messages CSV (or --timeline ASSOC with a chunk CSV)');
      const series = perRoute
        ? [...new Set(perRoute.map((r) => r.route!))].map((route) => ({ series: `route ${route}`, rows: perRoute.filter((r) => r.route === route) }))
        : [{ series: 'messages', rows }];
      svg = await renderSvg(experimentSpec(series, by, `time per message by ${by}`));
    }
    await writeFile(options.svg, svg);
    svgWritten = options.svg;
  }
  let htmlWritten: string | undefined;
  if (options.html !== undefined) {
    // Loaded on use, like the charts.
    const { findRunInfo, renderReport, reportModel } = await import('../report/build.js');
    const model = reportModel(files, { info: findRunInfo(files), by });
    await writeFile(options.html, await renderReport(model));
    htmlWritten = options.html;
  }
  return { text: parts.join(''), svgWritten, htmlWritten };
}
