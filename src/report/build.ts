// report.html from CSV files: the model from files already read (pure), and the I/O around it (read the
// files and run.json, render the charts, write the page). Used by `bench` (its output directory) and by
// `stats --html` (the files given), so both write the same report.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ci95 } from '../analysis/inference.js';
import { formatSize } from '../values/size.js';
import { renderSvg } from '../analysis/chart.js';
import { num, readCsvFile } from '../analysis/csv.js';
import type { CsvFile } from '../analysis/csv.js';
import { readable, sweepSpec, splitSpec, timelineSpec } from './charts.js';
import { renderReportHtml } from './html.js';
import { linkOfRow, pduUse, pickAssociation, settingsFromMessages, settingsFromResults } from './model.js';
import type { PduUse, ReportModel, Timeline } from './model.js';
import { parseRunInfo, RUN_JSON } from './run-info.js';
import type { MachineInfo, RunInfo } from './run-info.js';

export const REPORT_HTML = 'report.html';

const distinct = (values: Iterable<string | undefined>): string[] => [...new Set([...values].filter((v): v is string => v !== undefined && v !== ''))];
const sizes = (values: Iterable<string | undefined>): string =>
  distinct(values)
    .map((v) => num(v))
    .filter((n): n is number => n !== undefined)
    .sort((a, b) => a - b)
    .map((n) => (n === 0 ? 'no limit' : formatSize(n)))
    .join(', ');

function machineText(m: MachineInfo): string {
  return `${m.hostname}: ${m.cpus} × ${m.cpuModel}, ${(m.memoryBytes / 1024 ** 3).toFixed(1)} GB RAM, ${m.os}, Node ${m.node}`;
}

function durationText(from: string, to: string): string {
  const s = (Date.parse(to) - Date.parse(from)) / 1000;
  if (!Number.isFinite(s)) return '';
  return s < 90 ? ` (${Math.round(s)} s)` : ` (${Math.floor(s / 60)} min ${Math.round(s % 60)} s)`;
}

/** The emulated links of the results (bench --latency/--bandwidth), when any row was shaped. */
function linkFact(files: readonly CsvFile[]): Array<[string, string]> {
  const results = files.filter((f) => f.kind === 'results').flatMap((f) => f.rows);
  const links = distinct(results.map(linkOfRow));
  if (links.length === 0 || (links.length === 1 && links[0] === 'unshaped')) return [];
  return [['link (each way)', `${links.join(', ')}: added by the proxy; a capped link shows as upstream blocked`]];
}

/** The settings section: from run.json when there is one, else what the CSV files say. */
function facts(files: readonly CsvFile[], info: RunInfo | undefined): Array<[string, string]> {
  if (info) {
    const senders = `${info.scu.parallel} × ${info.scu.label ?? (info.scu.kind === 'dcmtk' ? 'DCMTK storescu' : 'dcmjs-dimse Client')} in parallel`;
    const withSize: Array<[string, string]> = [];
    if (info.scu.withSize) withSize.push(['the SCU with a swept size', info.scu.withSize]);
    if (info.scp.withSize) withSize.push(['the SCP with a swept size', info.scp.withSize]);
    return [
      ['date', `${info.startedAt} – ${info.finishedAt}${durationText(info.startedAt, info.finishedAt)}`],
      ['SCU (senders)', `${senders}, calling AE title ${info.scu.callingAet}`],
      ['SCP', `${info.scp.target}, called AE title ${info.scp.calledAet}`],
      ...withSize,
      ['images', `${info.images.map((i) => `${i.label} (${i.bytes.toLocaleString('en-US')} bytes of data set)`).join(', ')}; ${info.scu.count} per setting`],
      ['max PDU sweep', info.pdus.map((p) => (p === 0 ? 'no limit' : formatSize(p))).join(', ')],
      ...linkFact(files),
      ['mode', info.modes.map((m) => (m === 'proxy' ? 'through the proxy' : 'direct (no proxy)')).join(' and ')],
      ['proxy options', info.proxyOptions],
      ['machine', machineText(info.machine)],
      ['tool', info.tool],
    ];
  }
  const out: Array<[string, string]> = [];
  const results = files.filter((f) => f.kind === 'results').flatMap((f) => f.rows);
  const messages = files.filter((f) => f.kind === 'messages').flatMap((f) => f.rows);
  const started = distinct(messages.map((r) => r.started_at)).sort();
  if (started.length > 0) out.push(['date', `${started[0]} – ${started[started.length - 1]} (first and last request in the messages CSVs)`]);
  if (results.length > 0) {
    out.push(['SCU (senders)', `${distinct(results.map((r) => r.parallel)).join(', ')} in parallel (${distinct(results.map((r) => r.scu)).join(', ')})`]);
    out.push(['image data sets', `${sizes(results.map((r) => r.image_bytes))}`]);
    out.push(['max PDU sweep', sizes(results.map((r) => r.pdu_bytes))]);
    out.push(...linkFact(files));
    out.push(['mode', distinct(results.map((r) => r.mode)).join(', ')]);
  } else if (messages.length > 0) {
    out.push(['max PDU told the SCU', sizes(messages.map((r) => r.max_pdu))]);
    out.push(['max PDU of the SCP', sizes(messages.map((r) => r.scp_max_pdu))]);
    out.push(['requests', distinct(messages.map((r) => r.command)).join(', ')]);
  }
  out.push(['AE titles, peers, machine', `not recorded in these CSV files (bench writes them to ${RUN_JSON}, next to results.csv)`]);
  return out;
}

/** The Maximum Length announced to the SCU in a chunk CSV's setting: from run.json, else from its messages CSV. */
function allowedFor(file: CsvFile, files: readonly CsvFile[], info: RunInfo | undefined): { source: string; allowed: number | undefined } {
  const base = path.basename(file.path);
  const setting = info?.settings.find((s) => s.chunksCsv === base);
  if (setting) return { source: setting.label, allowed: setting.pdu };
  const sibling = path.join(path.dirname(file.path), base.replace(/^chunks/, 'messages'));
  const messages = files.find((f) => f.kind === 'messages' && path.resolve(f.path) === path.resolve(sibling));
  const values = (messages?.rows ?? []).map((r) => num(r.max_pdu)).filter((n): n is number => n !== undefined);
  return { source: base, allowed: values.length > 0 ? Math.max(...values) : undefined };
}

export interface ModelOptions {
  info?: RunInfo;
  /** Messages CSV column to group by when there is no results.csv (default max_pdu). */
  by?: string;
  now?: Date;
  /** How the files are named in the report (default: their paths). */
  displayName?: (file: CsvFile) => string;
}

/** The report's model from CSV files (results.csv, messages and chunk CSVs, any mix). */
export function reportModel(files: readonly CsvFile[], o: ModelOptions = {}): ReportModel {
  const info = o.info;
  const results = files.filter((f) => f.kind === 'results');
  const messages = files.filter((f) => f.kind === 'messages');
  const by = o.by ?? 'max_pdu';
  const fromResults = results.length > 0;
  const settings = fromResults ? settingsFromResults(results.flatMap((f) => f.rows), info) : settingsFromMessages(messages.flatMap((f) => f.rows), by);

  const uses: Array<{ use: PduUse; file: CsvFile }> = [];
  for (const f of files.filter((x) => x.kind === 'chunks')) {
    const { source, allowed } = allowedFor(f, files, info);
    const use = pduUse(source, f.rows, allowed);
    if (use) uses.push({ use, file: f });
  }
  // The timeline: one association of the setting that allowed the most (its PDUs tell the most).
  let timeline: Timeline | undefined;
  const pick = [...uses].sort((a, b) => (b.use.allowed === 0 ? Infinity : (b.use.allowed ?? -1)) - (a.use.allowed === 0 ? Infinity : (a.use.allowed ?? -1)))[0];
  if (pick) {
    const assoc = pickAssociation(pick.file.rows);
    if (assoc !== undefined) timeline = { source: pick.use.source, assoc, allowed: pick.use.allowed, rows: pick.file.rows.filter((r) => r.assoc === assoc) };
  }
  const now = o.now ?? new Date();
  return {
    title: info ? `Max PDU benchmark of ${info.startedAt.slice(0, 10)}` : 'dicom-pdu-proxy statistics',
    unit: fromResults ? 'image' : 'message',
    generatedAt: now.toISOString().replace(/\.\d+Z$/, 'Z'),
    info,
    facts: facts(files, info),
    sources: files.map(o.displayName ?? ((f) => f.path)),
    groupTitle: fromResults ? 'max PDU' : by,
    settings,
    // Smallest allowed first, like the table; unknown ones last, in the order given.
    pduUse: uses.map((u) => u.use).sort((a, b) => (a.allowed === undefined ? Infinity : a.allowed || Infinity) - (b.allowed === undefined ? Infinity : b.allowed || Infinity)),
    timeline,
  };
}

/** The page: charts rendered to SVG and inlined. */
export async function renderReport(model: ReportModel): Promise<string> {
  const timed = model.settings.some((s) => s.row.seconds !== undefined);
  const withCi = model.settings.some((s) => s.row.seconds !== undefined && ci95(s.row.seconds) !== undefined);
  const split = splitSpec(model.settings, model.unit);
  const [sweep, splitSvg, timeline] = await Promise.all([
    timed ? renderSvg(readable(sweepSpec(model.settings, model.groupTitle, `seconds per ${model.unit}: mean, ${withCi ? '95% CI, ' : ''}min–max`))) : undefined,
    split ? renderSvg(readable(split)) : undefined,
    model.timeline ? renderSvg(readable(timelineSpec(model.timeline))) : undefined,
  ]);
  return renderReportHtml(model, { sweep, split: splitSvg, timeline });
}

/** run.json next to a results.csv (or in the directory of the first file); undefined when absent or unreadable. */
export function findRunInfo(files: readonly CsvFile[]): RunInfo | undefined {
  const anchor = files.find((f) => f.kind === 'results') ?? files[0];
  if (!anchor) return undefined;
  const file = path.join(path.dirname(anchor.path), RUN_JSON);
  return existsSync(file) ? parseRunInfo(readFileSync(file, 'utf8')) : undefined;
}

/** bench: report.html in its output directory, from results.csv, run.json and the CSV files it lists. */
export async function writeBenchReport(dir: string): Promise<string> {
  const info = parseRunInfo(readFileSync(path.join(dir, RUN_JSON), 'utf8'));
  const names = ['results.csv', ...(info?.settings ?? []).flatMap((s) => [s.messagesCsv, s.chunksCsv])].filter(
    // A messages CSV the proxy never wrote to (or left empty) is no input.
    (n): n is string => n !== undefined && existsSync(path.join(dir, n)) && statSync(path.join(dir, n)).size > 0,
  );
  const files = await Promise.all(names.map((n) => readCsvFile(path.join(dir, n))));
  const html = await renderReport(reportModel(files, { info, displayName: (f) => path.basename(f.path) }));
  const out = path.join(dir, REPORT_HTML);
  await writeFile(out, html);
  return out;
}

