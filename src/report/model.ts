// The report's content, computed from the CSV files (pure: no I/O). One model for `bench` and
// `stats --html`: the settings and their table rows, the time split, what the SCU really sent per setting,
// one association's PDUs, and the "what this shows" sentences computed from all of it.

import { ALPHA, verdictsPerSeries } from '../analysis/inference.js';
import { formatSize } from '../values/size.js';
import { linkLabel } from '../values/shaping.js';
import { num, RESULTS_CSV_COLUMNS, RESULTS_CSV_SETTINGS } from '../analysis/csv.js';
import type { CsvRow } from '../analysis/csv.js';
import type { SentPdus, TimelinePdu } from '../analysis/chunks.js';
import { NO_ROUTE } from '../analysis/messages.js';
import type { MessageGroups } from '../analysis/messages.js';
import { MB } from '../analysis/summary.js';
import type { ResultRow } from '../analysis/table.js';
import type { RunInfo } from './run-info.js';
import { fidelity } from '../analysis/fidelity.js';
import type { Fidelity } from '../analysis/fidelity.js';
import type { Experiment } from '../analysis/experiment.js';

/** One setting of the experiment: a point of the sweep chart, a row of the table. */
export interface ReportSetting {
  /** Unique label: the group, plus the series when there are several ("16KB", "16KB · 2MB image"). */
  label: string;
  /** The x-axis group: the max PDU ("16KB") or the messages CSV group. */
  group: string;
  /** The series (image size, SCU, mode...); "" when there is one. */
  series: string;
  row: ResultRow;
}

/** What the SCU really sent in one chunk CSV, against what it was allowed. */
export interface PduUse {
  /** The setting's label, or the file name. */
  source: string;
  /** The Maximum Length the proxy announced to the SCU (bytes; 0 = no limit); undefined when unknown. */
  allowed: number | undefined;
  /** Largest / most frequent P-DATA-TF length field received from the SCU (toward the SCP). */
  sentMax: number;
  sentCommon: number;
  /** P-DATA-TF PDUs from the SCU, and associations, in the file. */
  pdata: number;
  associations: number;
  /** Every association sent its data set(s) in a single P-DATA-TF: the data, not the SCU, set the size. */
  wholeDataSets: boolean;
}

export interface Timeline {
  source: string;
  assoc: string;
  allowed: number | undefined;
  /** The association's PDUs, both directions, in file order. */
  rows: TimelinePdu[];
}

export interface ReportModel {
  title: string;
  /** "image" (bench: timed by the senders) or "message" (from messages CSVs). */
  unit: 'image' | 'message';
  generatedAt: string;
  info: RunInfo | undefined;
  /** What the settings section shows, as label/value pairs. */
  facts: Array<[string, string]>;
  sources: string[];
  /** Title of the x axis / first column (max PDU, or the --by column). */
  groupTitle: string;
  settings: ReportSetting[];
  pduUse: PduUse[];
  timeline: Timeline | undefined;
  /** bench --both: each setting through the proxy against native (or direct); undefined otherwise. */
  fidelity?: Fidelity | undefined;
  /** stats --html on messages CSVs with more than one arm: the experiment's table and forest plot. */
  experiment?: Experiment;
}

/**
 * Proxy against native/direct rows of results.csv: a setting is the max PDU, plus the image size and the
 * link when they vary (never the mode).
 */
export function fidelityOfResults(results: readonly CsvRow[]): Fidelity | undefined {
  const varies = (key: (r: CsvRow) => string): boolean => new Set(results.map(key)).size > 1;
  const image = varies((r) => r.image_bytes ?? '');
  const link = varies(linkOfRow);
  return fidelity(
    results.map((r) => {
      const pdu = num(r.pdu_bytes);
      const setting = [pdu === undefined ? (r.pdu_bytes ?? '') : formatSize(pdu), image ? `${r.image_bytes} B` : '', link ? linkOfRow(r) : ''].filter(Boolean).join(' ');
      const row = resultRow(setting, r);
      return { setting, mode: r.mode ?? '', seconds: row.seconds, proxyBusyMs: row.proxyBusyMs };
    }),
  );
}

// ---- settings from results.csv (bench) ----

/** results.csv columns that are measurements, not settings: never a series. */
const MEASURES: ReadonlySet<string> = new Set(RESULTS_CSV_COLUMNS.filter((c) => !RESULTS_CSV_SETTINGS.has(c)));
/** Setting columns that make a series when they vary, in this order. */
const SERIES_COLUMNS = ['image_bytes', 'scu', 'parallel', 'mode'];
/** bench --latency/--bandwidth columns: together they name one emulated link ("20ms 100Mbit"). */
const LINK_COLUMNS = ['latency_ms', 'jitter_ms', 'bandwidth_bps'];
/** The series part standing for LINK_COLUMNS. */
const LINK = 'link';

/** The emulated link of a results.csv row, as bench labels it ("20ms 100Mbit", "5±2ms", "unshaped"). */
export function linkOfRow(r: CsvRow): string {
  const latency = { ms: num(r.latency_ms) ?? 0, jitterMs: num(r.jitter_ms) ?? 0 };
  return linkLabel({ latency, bandwidth: (num(r.bandwidth_bps) ?? 0) / 8 });
}

function imageLabel(bytes: string, info: RunInfo | undefined): string {
  const n = num(bytes);
  const named = info?.images?.find((i) => i.bytes === n);
  if (named) return `${named.label} image`;
  return n === undefined ? `image ${bytes}` : `${(n / MB).toFixed(n < MB ? 2 : 1)}MB image`;
}

function seriesPart(column: string, r: CsvRow, info: RunInfo | undefined): string {
  const value = r[column] ?? '';
  if (column === LINK) return linkOfRow(r);
  if (column === 'image_bytes') return imageLabel(value, info);
  if (column === 'parallel') return `${value} sender${value === '1' ? '' : 's'}`;
  if (column === 'mode' || column === 'scu') return value;
  return `${column} ${value}`;
}

/**
 * A ResultRow from one results.csv row (columns read by name; extra columns ignored). The variance comes
 * from sd_s; files written before it have none, so their rows get no interval and no test.
 */
export function resultRow(label: string, r: CsvRow): ResultRow {
  const images = num(r.images) ?? 0;
  const failures = num(r.failures) ?? 0;
  const [mean, min, max, p50, p95, sd] = [r.mean_s, r.min_s, r.max_s, r.p50_s, r.p95_s, r.sd_s].map(num);
  const n = Math.max(images - failures, 1);
  return {
    label,
    count: images,
    failures,
    seconds:
      mean === undefined || min === undefined || max === undefined
        ? undefined
        : { n, mean, min, max, p50: p50 ?? mean, p95: p95 ?? max, ...(sd !== undefined && n >= 2 ? { variance: sd * sd } : {}) },
    mbPerS: num(r.mb_per_s),
    scuIdleMs: num(r.scu_idle_ms),
    upstreamBlockedMs: num(r.upstream_blocked_ms),
    scpResponseMs: num(r.scp_response_ms),
    proxyBusyMs: num(r.proxy_busy_ms),
    setupMs: setupPerImage(r),
  };
}

/**
 * The senders' association set-up per image, inside each image's time: connect_ms + associate_ms with one
 * association per image (the built-in SCU's default). With --association per-sender an image's time starts
 * at its request's first byte, so the set-up is in no image's time: undefined, as without both columns.
 */
function setupPerImage(r: CsvRow): number | undefined {
  const [connect, associate] = [r.connect_ms, r.associate_ms].map(num);
  if (connect === undefined || associate === undefined || r.association === 'per-sender') return undefined;
  return connect + associate;
}

/**
 * The settings of results.csv rows, in file order. The group is the max PDU; the series is made of the
 * setting columns that vary (image size, SCU, senders, mode), and of any other column (one added later,
 * e.g. a latency) only when it is needed to tell two rows of the same group and series apart.
 */
export function settingsFromResults(rows: readonly CsvRow[], info?: RunInfo): ReportSetting[] {
  const value = (r: CsvRow, c: string): string => (c === LINK ? linkOfRow(r) : (r[c] ?? ''));
  const varies = (c: string): boolean => new Set(rows.map((r) => value(r, c))).size > 1;
  const columns = [...SERIES_COLUMNS, LINK].filter(varies);
  const keyOf = (r: CsvRow, cols: readonly string[]): string => [r.pdu_bytes, ...cols.map((c) => value(r, c))].join('\u0000');
  const clash = (cols: readonly string[]): boolean => new Set(rows.map((r) => keyOf(r, cols))).size < rows.length;
  if (clash(columns)) {
    const extra = Object.keys(rows[0] ?? {}).filter((c) => !MEASURES.has(c) && !SERIES_COLUMNS.includes(c) && !LINK_COLUMNS.includes(c) && varies(c));
    for (const c of extra) {
      columns.push(c);
      if (!clash(columns)) break;
    }
  }
  return rows.map((r) => {
    const pdu = num(r.pdu_bytes);
    const group = pdu === undefined ? (r.pdu_bytes ?? '?') : pdu === 0 ? 'no limit' : formatSize(pdu);
    const series = columns.map((c) => seriesPart(c, r, info)).join(' · ');
    const label = series ? `${group} · ${series}` : group;
    return { label, group, series, row: resultRow(label, r) };
  });
}

/**
 * The settings from the messages grouped by `by` (stats without a results.csv). Groups of several routes
 * (proxy --route) are per route too, as `stats` shows them: the route is then the series.
 */
export function settingsFromMessages(groups: MessageGroups): ReportSetting[] {
  if (groups.perRoute) {
    return groups.rows.map((row) => {
      const series = `route ${row.route ?? NO_ROUTE}`;
      const label = `${row.label} · ${series}`;
      return { label, group: row.label, series, row: { ...row, label } };
    });
  }
  return groups.rows.map((row) => ({ label: row.label, group: row.label, series: '', row }));
}

// ---- what the SCU sent ----

/** What the SCU sent in one chunk file against what it was allowed; undefined without any P-DATA-TF from it. */
export function pduUse(source: string, sent: SentPdus | undefined, allowed: number | undefined): PduUse | undefined {
  if (!sent || sent.pdata === 0) return undefined;
  return {
    source,
    allowed,
    sentMax: sent.sentMax,
    sentCommon: sent.sentCommon,
    pdata: sent.pdata,
    associations: sent.associations,
    wholeDataSets: sent.wholeDataSets,
  };
}

// ---- the time split ----

export const SPLIT_PARTS = ['association set-up', 'SCU idle', 'upstream blocked', 'SCP response', 'proxy busy', 'bytes in flight'] as const;
export type SplitPart = (typeof SPLIT_PARTS)[number];
/** The part that is not measured: the mean time less the four measured by the proxy. */
export const REMAINDER: SplitPart = 'bytes in flight';

/**
 * Mean ms per image of each part: the four measured by the proxy (proxy busy is an upper bound of its own
 * share), and what remains of the mean time, bytes in flight (kernel buffers, the network, the peers'
 * reading and writing; for bench also what the sender does around it: connect, negotiate, encode), never
 * below 0. Files written before proxy_busy_ms have proxy busy 0 and its time in bytes in flight (see
 * busyMeasured). Undefined when the row has no split (direct mode, no messages CSV).
 */
export function splitOf(row: ResultRow): Record<SplitPart, number> | undefined {
  const { scuIdleMs: idle, upstreamBlockedMs: blocked, scpResponseMs: scp, seconds } = row;
  if (idle === undefined || blocked === undefined || scp === undefined || seconds === undefined) return undefined;
  const busy = row.proxyBusyMs ?? 0;
  const setup = row.setupMs ?? 0;
  const inFlight = Math.max(0, seconds.mean * 1000 - setup - idle - blocked - scp - busy);
  return { 'association set-up': setup, 'SCU idle': idle, 'upstream blocked': blocked, 'SCP response': scp, 'proxy busy': busy, 'bytes in flight': inFlight };
}

/** The parts shown: proxy busy when some file had it, association set-up when some row was measured by bench's senders. */
export function shownParts(settings: readonly ReportSetting[]): SplitPart[] {
  const setup = settings.some((s) => s.row.setupMs !== undefined && splitOf(s.row) !== undefined);
  return SPLIT_PARTS.filter((p) => (p !== 'proxy busy' || busyMeasured(settings)) && (p !== 'association set-up' || setup));
}

/** Some setting with a split has proxy_busy_ms (files written before it have none). */
export function busyMeasured(settings: readonly ReportSetting[]): boolean {
  return settings.some((s) => s.row.proxyBusyMs !== undefined && splitOf(s.row) !== undefined);
}

// ---- what this shows ----

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const secs = (s: number): string => `${s.toFixed(s < 10 ? 3 : 1)} s`;
const msText = (v: number): string => `${v < 10 ? v.toFixed(1) : int(v)} ms`;
const bytesText = (n: number): string => `${int(n)} bytes`;

const pText = (p: number): string => (p < 0.001 ? 'p < 0.001' : `p = ${p.toFixed(3)}`);

/**
 * Which settings are slower than the fastest of their series beyond noise (Welch's t-test, p < ALPHA) and
 * which are not; none when no setting could be tested (fewer than two timed values, or no variance).
 */
export function significance(timed: readonly ReportSetting[], unit: 'image' | 'message'): string[] {
  const verdicts = verdictsPerSeries(
    timed,
    (s) => s.series,
    (s) => s.row.seconds,
  );
  if (!verdicts.some((v) => v?.kind === 'slower' || v?.kind === 'within-noise')) return [];
  const out: string[] = [];
  const several = new Set(timed.map((s) => s.series)).size > 1;
  for (const series of new Set(timed.map((s) => s.series))) {
    const members = timed.flatMap((s, i) => (s.series === series && verdicts[i] ? [{ s, v: verdicts[i]! }] : []));
    const fastest = members.find((m) => m.v.kind === 'fastest')?.s;
    if (!fastest) continue;
    const name = (s: ReportSetting): string => (several ? s.group : s.label);
    const sentence = (text: string): string => (several ? `${series}: ${text}` : text[0]!.toUpperCase() + text.slice(1));
    const slower: string[] = [];
    const noise: Array<[string, number]> = [];
    const untested: string[] = [];
    for (const { s, v } of members) {
      if (v.kind === 'slower') slower.push(`${name(s)} (+${Math.round((s.row.seconds!.mean / fastest.row.seconds!.mean - 1) * 100)}%, ${pText(v.test.p)})`);
      else if (v.kind === 'within-noise') noise.push([name(s), v.test.p]);
      else if (v.kind === 'untested') untested.push(name(s));
    }
    if (slower.length > 0) {
      out.push(sentence(`slower than the fastest, ${name(fastest)}, beyond noise (Welch's t-test, p < ${ALPHA}): ${slower.join(', ')}.`));
      if (noise.length > 0) out.push(sentence(`within noise of ${name(fastest)} (p ≥ ${ALPHA}): ${noise.map(([n, p]) => `${n} (${pText(p)})`).join(', ')}.`));
    } else if (noise.length > 0) {
      const ps = noise.map(([n, p]) => `${n}: ${pText(p)}`).join(', ');
      out.push(
        sentence(
          `no setting is slower than the fastest, ${name(fastest)}, beyond noise (Welch's t-test, p ≥ ${ALPHA}; ${ps}): the differences may be noise; more ${unit}s would tell.`,
        ),
      );
    }
    if (untested.length > 0) out.push(sentence(`too few ${unit}s to test against ${name(fastest)}: ${untested.join(', ')}.`));
  }
  return out;
}

/** The "what this shows" sentences: each computed from the data, none when there is nothing to say. */
export function findings(settings: readonly ReportSetting[], uses: readonly PduUse[], unit: 'image' | 'message'): string[] {
  const out: string[] = [];
  const timed = settings.filter((s) => s.row.seconds !== undefined);
  const mean = (s: ReportSetting): number => s.row.seconds!.mean;
  let fastest: ReportSetting | undefined;
  let slowest: ReportSetting | undefined;
  if (timed.length > 0) {
    fastest = timed.reduce((a, b) => (mean(b) < mean(a) ? b : a));
    slowest = timed.reduce((a, b) => (mean(b) > mean(a) ? b : a));
    out.push(`Fastest: ${fastest.label} (mean ${secs(mean(fastest))} per ${unit}).`);
    if (timed.length > 1 && slowest !== fastest) {
      const pct = Math.round((mean(slowest) / mean(fastest) - 1) * 100);
      out.push(`Slowest: ${slowest.label}, ${pct}% slower (mean ${secs(mean(slowest))}).`);
      const tests = significance(timed, unit);
      if (tests.length > 0) out.push(...tests);
      else {
        // No variances (a results.csv from before sd_s): only the ranges can be compared. Every min-max
        // range overlaps every other: no setting was always faster than another.
        const lowestMax = Math.min(...timed.map((s) => s.row.seconds!.max));
        const highestMin = Math.max(...timed.map((s) => s.row.seconds!.min));
        if (highestMin <= lowestMax) out.push(`The min–max ranges of all settings overlap: these differences may be noise; more ${unit}s would tell.`);
      }
    }
  }

  // Where the time went: every part weighted by the number of timed images of its setting (proxy busy
  // left out when no file had it: its time is then in bytes in flight; association set-up only from bench).
  const parts = shownParts(settings);
  const totals = new Map<SplitPart, number>(parts.map((p) => [p, 0]));
  for (const s of settings) {
    const split = splitOf(s.row);
    if (!split) continue;
    for (const p of parts) totals.set(p, totals.get(p)! + split[p] * s.row.seconds!.n);
  }
  const sum = [...totals.values()].reduce((a, b) => a + b, 0);
  if (sum > 0) {
    const shares = [...totals].sort((a, b) => b[1] - a[1]).map(([p, v]) => `${p} (${Math.round((v / sum) * 100)}%)`);
    out.push(`Time went to: ${shares.join(', ')}.`);
    const a = fastest && splitOf(fastest.row);
    const b = slowest && slowest !== fastest ? splitOf(slowest.row) : undefined;
    if (a && b) {
      const [part, grew] = parts.map((p) => [p, b[p] - a[p]] as const).reduce((x, y) => (y[1] > x[1] ? y : x));
      if (grew > 0) out.push(`From the fastest to the slowest setting, ${part} grew the most: ${msText(a[part])} → ${msText(b[part])} per ${unit}.`);
    }
  }

  // PDU sizes: what the SCU really sent against what it was allowed.
  const limited = uses.filter((u) => u.allowed !== undefined && u.allowed > 0);
  const capped = limited.filter((u) => u.sentMax < u.allowed! && !u.wholeDataSets).sort((x, y) => y.allowed! - x.allowed!);
  const fitted = limited.filter((u) => u.sentMax < u.allowed! && u.wholeDataSets);
  if (capped.length > 0) {
    const top = capped[0]!;
    const alike = capped
      .slice(1)
      .filter((u) => u.sentMax === top.sentMax)
      .map((u) => u.source);
    out.push(
      `The SCU sent PDUs of at most ${bytesText(top.sentMax)} although it was allowed ${int(top.allowed!)} (${top.source})` +
        (alike.length > 0 ? `; the same at ${alike.join(', ')}.` : '.'),
    );
  }
  if (fitted.length > 0) {
    const largest = Math.max(...fitted.map((u) => u.sentMax));
    out.push(
      `At ${fitted.map((u) => u.source).join(', ')} every data set went in one PDU (at most ${bytesText(largest)}): ` +
        `${fitted.length > 1 ? 'these settings allow' : 'this setting allows'} more than a data set needs, so larger limits change nothing on the wire.`,
    );
  }
  if (capped.length === 0 && fitted.length === 0 && limited.length > 0) {
    out.push(`The SCU filled its PDUs up to the allowed size at every setting (largest: ${bytesText(Math.max(...limited.map((u) => u.sentMax)))}).`);
  }

  const failed = settings.reduce((n, s) => n + s.row.failures, 0);
  if (failed > 0) {
    const all = settings.reduce((n, s) => n + s.row.count, 0);
    out.push(`${int(failed)} of ${int(all)} ${unit}s were NOT acknowledged with Success.`);
  }
  return out;
}
