// The experiment's table: one row per group (per max PDU by default), shared by `stats` and `bench`.

import { ci95, formatP, verdictsPerSeries } from './inference.js';
import type { Verdict } from './inference.js';
import type { Summary } from './summary.js';

/** One row of the experiment's table. Times in seconds, the split in milliseconds (means per message). */
export interface ResultRow {
  label: string;
  /** The route (messages CSV `route` column) when the rows are grouped per route too. */
  route?: string;
  /** Messages (images) in the group, failed ones included. */
  count: number;
  /** Not acknowledged with status Success (0000): error status, or no final response at all. */
  failures: number;
  /** Over the messages that got a final response; undefined when none did. */
  seconds: Summary | undefined;
  mbPerS: number | undefined;
  scuIdleMs: number | undefined;
  upstreamBlockedMs: number | undefined;
  scpResponseMs: number | undefined;
  /** The proxy's own time (proxy_busy_ms, an upper bound); undefined in files written before it. */
  proxyBusyMs: number | undefined;
  /**
   * bench only: the association's set-up inside each image's time, as the senders measured it (results.csv
   * connect_ms + associate_ms with one association per image: TCP connect and the A-ASSOCIATE-RQ/AC round
   * trip); undefined elsewhere (messages CSVs know nothing before a message's first byte).
   */
  setupMs?: number | undefined;
}

const fixed = (v: number | undefined, digits: number): string => (v === undefined ? '-' : v.toFixed(digits));

/** Plain text, two spaces apart: numbers right-aligned, words (and the first column) left-aligned. */
export function renderColumns(header: readonly string[], body: ReadonlyArray<readonly string[]>): string {
  // A loop, not Math.max(...cells): a table of 100,000 rows would overflow the call stack with spread arguments.
  const widths = header.map((h, i) => body.reduce((w, r) => Math.max(w, (r[i] ?? '').length), h.length));
  const numeric = header.map((_, i) => i > 0 && body.every((r) => /^(-|[-\d.]+)$/.test(r[i] ?? '-')));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...body.map(line)].join('\n') + '\n';
}

export const RESULT_HEADER = [
  '',
  'n',
  'failed',
  'mean s',
  'ci95 low s',
  'ci95 high s',
  'min s',
  'max s',
  'p50 s',
  'p95 s',
  'MB/s',
  'scu_idle ms',
  'upstream_blocked ms',
  'scp_response ms',
  'proxy_busy ms',
  'vs fastest',
] as const;

/** Rows are compared within their route (messages CSVs of several routes) unless told their series. */
const routeSeries = (r: ResultRow): string => r.route ?? '';

/** Each row's verdict against the fastest row of its series (Welch's t-test on the seconds, p < 0.05). */
export function rowVerdicts(rows: readonly ResultRow[], seriesOf: (row: ResultRow, index: number) => string = routeSeries): Array<Verdict | undefined> {
  return verdictsPerSeries(rows, seriesOf, (r) => r.seconds);
}

/** No-break space: "(p = 0.003)" stays on one line when a cell wraps. */
const NBSP = '\u00a0';

/**
 * A verdict in a table cell: "fastest", "slower p=0.003", "within noise p=0.412", "-" when untested; with
 * `prose` (the HTML page) "slower (p = 0.003)", "slower (p < 0.001)" and "–", the parenthesis unbreakable.
 */
export function verdictText(v: Verdict | undefined, prose = false): string {
  if (v === undefined || v.kind === 'untested') return prose ? '–' : '-';
  if (v.kind === 'fastest') return 'fastest';
  const word = v.kind === 'slower' ? 'slower' : 'within noise';
  if (!prose) return `${word} p=${formatP(v.test.p)}`;
  const p = v.test.p < 0.001 ? ['p', '<', '0.001'] : ['p', '=', formatP(v.test.p)];
  return `${word} (${p.join(NBSP)})`;
}

/**
 * The table as text; `title` names the first column (e.g. max_pdu). MB = 2^20 bytes. The 95% interval is
 * Student's t; "vs fastest" is Welch's t-test against the fastest row of the same series (default: route).
 */
export function renderResultTable(rows: readonly ResultRow[], title: string, seriesOf?: (row: ResultRow, index: number) => string): string {
  const routed = rows.some((r) => r.route !== undefined);
  const header = [...(routed ? ['route'] : []), title, ...RESULT_HEADER.slice(1)];
  const verdicts = rowVerdicts(rows, seriesOf);
  const body = rows.map((r, i) => [
    ...(routed ? [r.route ?? ''] : []),
    r.label,
    String(r.count),
    String(r.failures),
    fixed(r.seconds?.mean, 3),
    fixed(r.seconds && ci95(r.seconds)?.low, 3),
    fixed(r.seconds && ci95(r.seconds)?.high, 3),
    fixed(r.seconds?.min, 3),
    fixed(r.seconds?.max, 3),
    fixed(r.seconds?.p50, 3),
    fixed(r.seconds?.p95, 3),
    fixed(r.mbPerS, 2),
    fixed(r.scuIdleMs, 1),
    fixed(r.upstreamBlockedMs, 1),
    fixed(r.scpResponseMs, 1),
    fixed(r.proxyBusyMs, 1),
    verdictText(verdicts[i]),
  ]);
  return renderColumns(header, body);
}
