// report.html from the logs: the model from the engine's views (aggregates only, and the PDUs of the one
// association drawn), and the I/O around it (run.json, render the charts, write the page). Used by `bench`
// (its output directory) and by `stats --html` (the files given), so both write the same report.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ci95 } from '../analysis/inference.js';
import { formatSize } from '../values/size.js';
import { renderSvg, timelineSpec } from '../analysis/chart.js';
import { aggregateChunks, pickAssociation, sentPdus, timelinePdus } from '../analysis/chunks.js';
import { num } from '../analysis/csv.js';
import type { CsvRow } from '../analysis/csv.js';
import { withEngine } from '../analysis/engine.js';
import type { Engine } from '../analysis/engine.js';
import { createViews, inputError, openLogs } from '../analysis/logs.js';
import type { LogSource } from '../analysis/logs.js';
import type { Experiment } from '../analysis/experiment.js';
import { groupMessages } from '../analysis/messages.js';
import type { MessageGroups } from '../analysis/messages.js';
import { forestSpec, readable, sweepSpec, splitSpec } from './charts.js';
import { renderReportHtml } from './html.js';
import { fidelityOfResults, linkOfRow, pduUse, settingsFromMessages, settingsFromResults } from './model.js';
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
function linkFact(results: readonly CsvRow[]): Array<[string, string]> {
  const links = distinct(results.map(linkOfRow));
  if (links.length === 0 || (links.length === 1 && links[0] === 'unshaped')) return [];
  return [['link (each way)', `${links.join(', ')}: added by the proxy; a capped link shows as upstream blocked`]];
}

/** What the messages say about the run (aggregates of the messages view). */
interface MessageFacts {
  /** First and last started_at, as the proxy writes it. */
  first: string | undefined;
  last: string | undefined;
  maxPdus: number[];
  scpMaxPdus: number[];
  /** Commands in the order they first appear. */
  commands: string[];
}

async function messageFacts(engine: Engine): Promise<MessageFacts> {
  const fmt = `'%Y-%m-%dT%H:%M:%S.%gZ'`;
  const [r] = await engine.all<{ first: string | null; last: string | null; max_pdus: number[] | null; scp_max_pdus: number[] | null }>(
    `SELECT strftime(min(started_at), ${fmt}) AS first, strftime(max(started_at), ${fmt}) AS last,
            list(DISTINCT max_pdu) FILTER (WHERE max_pdu IS NOT NULL) AS max_pdus, list(DISTINCT scp_max_pdu) FILTER (WHERE scp_max_pdu IS NOT NULL) AS scp_max_pdus
     FROM messages`,
  );
  const commands = await engine.all<{ command: string }>(
    `SELECT command FROM (SELECT command, row_number() OVER () AS i FROM messages) WHERE command IS NOT NULL GROUP BY command ORDER BY min(i)`,
  );
  return { first: r?.first ?? undefined, last: r?.last ?? undefined, maxPdus: r?.max_pdus ?? [], scpMaxPdus: r?.scp_max_pdus ?? [], commands: commands.map((c) => c.command) };
}

/** "; as the proxy logged it: SCU leg TLSv1.3 TLS_AES_256_GCM_SHA384, SCP leg …" (bench --tls), or nothing. */
function legsText(info: RunInfo): string {
  const seen = new Set<string>();
  for (const s of info.settings) {
    for (const [leg, t] of [
      ['SCU', s.tls?.scu],
      ['SCP', s.tls?.scp],
    ] as const)
      if (t) seen.add(`${leg} leg ${t.version ?? '?'} ${t.cipher}`);
  }
  return seen.size > 0 ? `; as the proxy logged it: ${[...seen].join(', ')}` : '';
}

/** The settings section: from run.json when there is one, else what the logs say. */
function facts(results: readonly CsvRow[], messages: MessageFacts | undefined, info: RunInfo | undefined): Array<[string, string]> {
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
      ...linkFact(results),
      [
        'mode',
        info.modes.map((m) => (m === 'proxy' ? 'through the proxy' : m === 'native' ? 'native (the SCP started with each size, no proxy)' : 'direct (no proxy)')).join(' and '),
      ],
      ['proxy options', info.proxyOptions],
      ...(info.tls ? ([['TLS', `${info.tls}${legsText(info)}`]] as Array<[string, string]>) : []),
      ['machine', machineText(info.machine)],
      ['tool', info.tool],
    ];
  }
  const out: Array<[string, string]> = [];
  if (messages?.first !== undefined) out.push(['date', `${messages.first} – ${messages.last} (first and last request in the messages CSVs)`]);
  if (results.length > 0) {
    out.push(['SCU (senders)', `${distinct(results.map((r) => r.parallel)).join(', ')} in parallel (${distinct(results.map((r) => r.scu)).join(', ')})`]);
    out.push(['image data sets', `${sizes(results.map((r) => r.image_bytes))}`]);
    out.push(['max PDU sweep', sizes(results.map((r) => r.pdu_bytes))]);
    out.push(...linkFact(results));
    out.push(['mode', distinct(results.map((r) => r.mode)).join(', ')]);
  } else if (messages) {
    out.push(['max PDU told the SCU', sizes(messages.maxPdus.map(String))]);
    out.push(['max PDU of the SCP', sizes(messages.scpMaxPdus.map(String))]);
    out.push(['requests', messages.commands.join(', ')]);
  }
  out.push(['AE titles, peers, machine', `not recorded in these CSV files (bench writes them to ${RUN_JSON}, next to results.csv)`]);
  return out;
}

/** The Maximum Length announced to the SCU in a chunk CSV's setting: from run.json, else from its messages CSV. */
async function allowedFor(engine: Engine, file: string, sources: readonly LogSource[], info: RunInfo | undefined): Promise<{ source: string; allowed: number | undefined }> {
  const base = path.basename(file);
  const setting = info?.settings.find((s) => s.chunksCsv === base);
  if (setting) return { source: setting.label, allowed: setting.pdu };
  const sibling = path.join(path.dirname(file), base.replace(/^chunks/, 'messages'));
  const messages = sources.find((s) => s.kind === 'messages' && path.resolve(s.path) === path.resolve(sibling));
  if (!messages) return { source: base, allowed: undefined };
  const [r] = await engine.all<{ allowed: number | null }>(`SELECT max(max_pdu) AS allowed FROM messages WHERE file = ?`, [messages.path]);
  return { source: base, allowed: r?.allowed ?? undefined };
}

export interface ModelOptions {
  info?: RunInfo;
  /** Messages CSV column to group by when there is no results.csv (default max_pdu). */
  by?: string;
  now?: Date;
  /** How the files are named in the report (default: their paths). */
  displayName?: (path: string) => string;
  /** The experiment's table (stats on messages CSVs with arms). */
  experiment?: Experiment;
  /** The messages grouped by `by` already (stats computed them for its table): not computed again. */
  groups?: MessageGroups;
}

/** results.csv rows as text, in the order of the files and of their rows (the columns read by name). */
export async function resultRows(engine: Engine, sources: readonly LogSource[]): Promise<Map<string, CsvRow[]>> {
  const out = new Map<string, CsvRow[]>();
  const files = sources.filter((s) => s.kind === 'results');
  if (files.length === 0) return out;
  const rows = await engine.all<Record<string, unknown>>(`SELECT * FROM results`);
  for (const f of files) out.set(f.path, []);
  for (const r of rows) {
    const row: CsvRow = {};
    for (const [k, v] of Object.entries(r)) if (k !== 'file' && v !== null && v !== undefined) row[k] = String(v);
    out.get(String(r.file))?.push(row);
  }
  return out;
}

/**
 * The report's model from the logs (results.csv, messages and chunk CSVs, any mix), given as views of the
 * engine (createViews, aggregateChunks).
 */
export async function reportModel(engine: Engine, sources: readonly LogSource[], o: ModelOptions = {}): Promise<ReportModel> {
  const info = o.info;
  const results = [...(await resultRows(engine, sources)).values()].flat();
  const hasMessages = sources.some((s) => s.kind === 'messages');
  const by = o.by ?? 'max_pdu';
  const fromResults = sources.some((s) => s.kind === 'results');
  const settings = fromResults ? settingsFromResults(results, info) : settingsFromMessages(o.groups ?? (await groupMessages(engine, { by, perRoute: true })));

  const chunkFiles = sources.filter((s) => s.kind === 'chunks').map((s) => s.path);
  const sent = chunkFiles.length > 0 ? await sentPdus(engine) : new Map();
  const uses: Array<{ use: PduUse; file: string }> = [];
  for (const file of chunkFiles) {
    const { source, allowed } = await allowedFor(engine, file, sources, info);
    const use = pduUse(source, sent.get(file), allowed);
    if (use) uses.push({ use, file });
  }
  // The timeline: one association of the setting that allowed the most (its PDUs tell the most).
  let timeline: Timeline | undefined;
  const pick = [...uses].sort((a, b) => (b.use.allowed === 0 ? Infinity : (b.use.allowed ?? -1)) - (a.use.allowed === 0 ? Infinity : (a.use.allowed ?? -1)))[0];
  if (pick) {
    const assoc = await pickAssociation(engine, pick.file);
    if (assoc !== undefined) timeline = { source: pick.use.source, assoc, allowed: pick.use.allowed, rows: await timelinePdus(engine, pick.file, assoc) };
  }
  const now = o.now ?? new Date();
  return {
    title: info ? `Max PDU benchmark of ${info.startedAt.slice(0, 10)}` : 'dicom-pdu-proxy statistics',
    unit: fromResults ? 'image' : 'message',
    generatedAt: now.toISOString().replace(/\.\d+Z$/, 'Z'),
    info,
    facts: facts(results, hasMessages ? await messageFacts(engine) : undefined, info),
    sources: sources.map((s) => (o.displayName ?? ((p: string) => p))(s.path)),
    groupTitle: fromResults ? 'max PDU' : by,
    settings,
    // Smallest allowed first, like the table; unknown ones last, in the order given.
    pduUse: uses.map((u) => u.use).sort((a, b) => (a.allowed === undefined ? Infinity : a.allowed || Infinity) - (b.allowed === undefined ? Infinity : b.allowed || Infinity)),
    timeline,
    fidelity: fromResults ? fidelityOfResults(results) : undefined,
    ...(o.experiment ? { experiment: o.experiment } : {}),
  };
}

/** The page: charts rendered to SVG and inlined. */
export async function renderReport(model: ReportModel): Promise<string> {
  const timed = model.settings.some((s) => s.row.seconds !== undefined);
  const withCi = model.settings.some((s) => s.row.seconds !== undefined && ci95(s.row.seconds) !== undefined);
  const split = splitSpec(model.settings, model.unit);
  const [sweep, splitSvg, timeline, forest] = await Promise.all([
    timed ? renderSvg(readable(sweepSpec(model.settings, model.groupTitle, `seconds per ${model.unit}: mean, ${withCi ? '95% CI, ' : ''}min–max`))) : undefined,
    split ? renderSvg(readable(split)) : undefined,
    model.timeline ? renderSvg(readable(timelineSpec(model.timeline))) : undefined,
    model.experiment ? renderSvg(readable(forestSpec(model.experiment))) : undefined,
  ]);
  return renderReportHtml(model, { sweep, split: splitSvg, timeline, forest });
}

/** run.json next to a results.csv (or in the directory of the first file); undefined when absent or unreadable. */
export function findRunInfo(sources: readonly LogSource[]): RunInfo | undefined {
  const anchor = sources.find((s) => s.kind === 'results') ?? sources[0];
  if (!anchor) return undefined;
  const file = path.join(path.dirname(anchor.path), RUN_JSON);
  return existsSync(file) ? parseRunInfo(readFileSync(file, 'utf8')) : undefined;
}

/** Views over the sources, and the chunk rows aggregated once: what reportModel and the stats tables read. */
export async function prepareLogs(engine: Engine, sources: readonly LogSource[]): Promise<void> {
  await createViews(engine, sources);
  if (sources.some((s) => s.kind === 'chunks')) {
    try {
      await aggregateChunks(engine);
    } catch (err) {
      throw inputError(err, sources);
    }
  }
}

/** bench: report.html in its output directory, from results.csv, run.json and the CSV files it lists. */
export async function writeBenchReport(dir: string): Promise<string> {
  const info = parseRunInfo(readFileSync(path.join(dir, RUN_JSON), 'utf8'));
  const names = ['results.csv', ...(info?.settings ?? []).flatMap((s) => [s.messagesCsv, s.chunksCsv])].filter(
    // A messages CSV the proxy never wrote to (or left empty) is no input.
    (n): n is string => n !== undefined && existsSync(path.join(dir, n)) && statSync(path.join(dir, n)).size > 0,
  );
  const html = await withEngine(async (engine) => {
    const sources = await openLogs(
      engine,
      names.map((n) => path.join(dir, n)),
    );
    await prepareLogs(engine, sources);
    let model: ReportModel;
    try {
      model = await reportModel(engine, sources, { info, displayName: (p) => path.basename(p) });
    } catch (err) {
      throw inputError(err, sources);
    }
    return renderReport(model);
  });
  const out = path.join(dir, REPORT_HTML);
  await writeFile(out, html);
  return out;
}
