// The experiment's table from the messages view (one row per DIMSE request), computed by the engine:
// per group, the count, the failures, the times of the answered requests (mean, min, max, nearest-rank
// p50/p95, sample variance), MB/s and the mean time split. Only the groups come back, never the rows.

import { formatSize } from '../values/size.js';
import { num } from './csv.js';
import type { Engine } from './engine.js';
import { columnText } from './logs.js';
import { mbPerSecond } from './summary.js';
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

/** Rows of older files (no route column) are shown under this route. */
export const NO_ROUTE = '-';

export interface MessagesQuery {
  /** The column to group by (default max_pdu). */
  by: string;
  /** Group per route first, when the rows hold more than one route (not when `by` is route itself). */
  perRoute: boolean;
  /** Only these rows: a SQL condition over the messages view, written by the caller's code (never by a user). */
  where?: string;
}

interface GroupRow {
  g_route: string;
  g_key: string;
  n: number;
  failures: number;
  timed: number;
  mean: number | null;
  min: number | null;
  max: number | null;
  variance: number | null;
  p50: number | null;
  p95: number | null;
  bytes: number | null;
  seconds: number | null;
  idle: number | null;
  blocked: number | null;
  scp: number | null;
  busy: number | null;
}

/** Nearest rank p (0..1) of `n` values, as `percentile` in summary.ts computes it (doubles, ceil, at least 1). */
const rank = (p: number): string => `greatest(1, ceil(${p}::DOUBLE * timed))`;

function groupSql(by: string, routes: boolean, where: string | undefined): string {
  const key = `coalesce(${columnText('messages', by)}, '')`;
  return `
WITH m AS (
  SELECT ${routes ? "coalesce(route, '')" : "''"} AS g_route, ${key} AS g_key, status, duration_ms / 1000 AS s, bytes,
         scu_idle_ms, upstream_blocked_ms, scp_response_ms, proxy_busy_ms, status IS NOT NULL AND duration_ms IS NOT NULL AS answered
  FROM messages ${where ? `WHERE ${where}` : ''}
),
ranked AS (
  SELECT g_route, g_key, s, row_number() OVER (PARTITION BY g_route, g_key ORDER BY s) AS r, count(*) OVER (PARTITION BY g_route, g_key) AS timed
  FROM m WHERE answered
),
p AS (
  SELECT g_route, g_key, min(s) FILTER (WHERE r = ${rank(0.5)}) AS p50, min(s) FILTER (WHERE r = ${rank(0.95)}) AS p95
  FROM ranked GROUP BY g_route, g_key
)
SELECT a.*, p.p50, p.p95 FROM (
  SELECT g_route, g_key, count(*) AS n,
    count(*) FILTER (WHERE lower(coalesce(status, '')) <> '${STATUS_SUCCESS}') AS failures,
    count(*) FILTER (WHERE answered) AS timed,
    avg(s) FILTER (WHERE answered) AS mean, min(s) FILTER (WHERE answered) AS min, max(s) FILTER (WHERE answered) AS max,
    var_samp(s) FILTER (WHERE answered) AS variance,
    sum(bytes) FILTER (WHERE answered) AS bytes, sum(s) FILTER (WHERE answered) AS seconds,
    avg(scu_idle_ms) FILTER (WHERE answered) AS idle, avg(upstream_blocked_ms) FILTER (WHERE answered) AS blocked,
    avg(scp_response_ms) FILTER (WHERE answered) AS scp, avg(proxy_busy_ms) FILTER (WHERE answered) AS busy
  FROM m GROUP BY g_route, g_key
) a LEFT JOIN p USING (g_route, g_key)`;
}

const opt = (v: number | null): number | undefined => (v === null ? undefined : v);

function resultRow(label: string, g: GroupRow): ResultRow {
  return {
    label,
    count: g.n,
    failures: g.failures,
    seconds:
      g.timed === 0 ? undefined : { n: g.timed, mean: g.mean!, min: g.min!, max: g.max!, p50: g.p50!, p95: g.p95!, ...(g.variance === null ? {} : { variance: g.variance }) },
    mbPerS: mbPerSecond(g.bytes ?? 0, g.seconds ?? 0),
    scuIdleMs: opt(g.idle),
    upstreamBlockedMs: opt(g.blocked),
    scpResponseMs: opt(g.scp),
    proxyBusyMs: opt(g.busy),
  };
}

/** Keys in ascending order: numeric when every key is a number, else by text. */
export function sortKeys(keys: readonly string[]): string[] {
  const numeric = keys.every((k) => num(k) !== undefined);
  return [...keys].sort(numeric ? (a, b) => num(a)! - num(b)! : (a, b) => a.localeCompare(b));
}

export interface MessageGroups {
  /** The table's rows: per route (then `route` is set) or not. */
  rows: ResultRow[];
  /** The rows were grouped per route (more than one route, `by` is not route). */
  perRoute: boolean;
}

/**
 * One table row per distinct value of `by`, in ascending order (numeric when every key is a number);
 * with rows of several routes, per route first (routes in the same order), then by `by`.
 */
export async function groupMessages(engine: Engine, query: MessagesQuery): Promise<MessageGroups> {
  const where = query.where;
  let perRoute = false;
  if (query.perRoute && query.by !== 'route') {
    const [r] = await engine.all<{ routes: number }>(`SELECT count(DISTINCT coalesce(route, '')) AS routes FROM messages ${where ? `WHERE ${where}` : ''}`);
    perRoute = (r?.routes ?? 0) > 1;
  }
  const groups = await engine.all<GroupRow>(groupSql(query.by, perRoute, where));
  const byRoute = new Map<string, Map<string, GroupRow>>();
  for (const g of groups) {
    const m = byRoute.get(g.g_route) ?? new Map<string, GroupRow>();
    m.set(g.g_key, g);
    byRoute.set(g.g_route, m);
  }
  const rows: ResultRow[] = [];
  for (const route of sortKeys([...byRoute.keys()])) {
    const keys = byRoute.get(route)!;
    for (const key of sortKeys([...keys.keys()])) {
      const row = resultRow(groupLabel(query.by, key), keys.get(key)!);
      rows.push(perRoute ? { ...row, route: route === '' ? NO_ROUTE : route } : row);
    }
  }
  return { rows, perRoute };
}
