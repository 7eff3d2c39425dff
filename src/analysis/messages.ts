// Aggregating messages CSV rows (one per DIMSE request) into the experiment's table.

import { formatSize } from '../values/size.js';
import { num } from './csv.js';
import type { CsvRow } from './csv.js';
import { mbPerSecond, meanOf, summarize } from './summary.js';
import type { ResultRow } from './table.js';

/** The status of a request acknowledged with Success. */
export const STATUS_SUCCESS = '0000';

/** Columns holding a byte count: their groups are labelled 16KB, 100KB, 1MB. */
const SIZE_COLUMNS = new Set(['max_pdu', 'scp_max_pdu', 'bytes']);

export function groupLabel(column: string, key: string): string {
  const n = num(key);
  if (SIZE_COLUMNS.has(column) && n !== undefined) return formatSize(n);
  return key === '' ? '(empty)' : key;
}

/** Summary row of a set of messages. */
export function messagesRow(label: string, rows: readonly CsvRow[]): ResultRow {
  // Times only from messages that got their final response (status present).
  const answered = rows.filter((r) => (r.status ?? '') !== '' && num(r.duration_ms) !== undefined);
  const seconds = answered.map((r) => num(r.duration_ms)! / 1000);
  const bytes = answered.reduce((s, r) => s + (num(r.bytes) ?? 0), 0);
  const totalSeconds = seconds.reduce((s, v) => s + v, 0);
  return {
    label,
    count: rows.length,
    failures: rows.filter((r) => (r.status ?? '').toLowerCase() !== STATUS_SUCCESS).length,
    seconds: summarize(seconds),
    mbPerS: mbPerSecond(bytes, totalSeconds),
    scuIdleMs: meanOf(answered.map((r) => num(r.scu_idle_ms))),
    upstreamBlockedMs: meanOf(answered.map((r) => num(r.upstream_blocked_ms))),
    scpResponseMs: meanOf(answered.map((r) => num(r.scp_response_ms))),
  };
}

/**
 * One table row per distinct value of `by` (default max_pdu), in ascending order (numeric when every key is
 * a number). Throws when `by` is not a column of the rows.
 */
export function groupMessages(rows: readonly CsvRow[], by: string): ResultRow[] {
  return groupBy(rows, by).map(([k, group]) => messagesRow(groupLabel(by, k), group));
}

/** The route of a row; '' for rows of files written before the route column. */
const routeOf = (row: CsvRow): string => row.route ?? '';

/** Rows of older files (no route column) are shown under this route. */
export const NO_ROUTE = '-';

/**
 * The rows of several routes: grouped per route (routes in ascending order), then by
 * `by` within each route. Undefined when the rows come from one route only (or carry no route at all).
 */
export function groupMessagesPerRoute(rows: readonly CsvRow[], by: string): ResultRow[] | undefined {
  if (by === 'route') return undefined;
  const routes = groupBy(rows, 'route', routeOf);
  if (routes.length < 2) return undefined;
  return routes.flatMap(([route, group]) => groupMessages(group, by).map((r) => ({ ...r, route: route === '' ? NO_ROUTE : route })));
}

/** Rows grouped by the value of a column, groups in ascending order (numeric when every key is a number). */
function groupBy(rows: readonly CsvRow[], by: string, key: (row: CsvRow) => string = (row) => row[by] ?? ''): Array<[string, CsvRow[]]> {
  const groups = new Map<string, CsvRow[]>();
  for (const row of rows) {
    const k = key(row);
    let group = groups.get(k);
    if (!group) groups.set(k, (group = []));
    group.push(row);
  }
  const keys = [...groups.keys()];
  const numeric = keys.every((k) => num(k) !== undefined);
  keys.sort(numeric ? (a, b) => num(a)! - num(b)! : (a, b) => a.localeCompare(b));
  return keys.map((k) => [k, groups.get(k)!]);
}
