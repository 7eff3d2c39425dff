// Summaries of a chunk CSV (--csv, one row per PDU): per association and direction, PDUs and bytes, the
// P-DATA-TF size distribution and the violations the proxy repaired.

import type { Engine } from './engine.js';
import { renderColumns } from './table.js';
import { PDU_HEADER_LENGTH } from '../pdu/constants.js';

/** How many of the most frequent P-DATA-TF lengths are listed. */
const COMMON_LENGTHS = 3;

export interface DirectionSummary {
  assoc: string;
  /** The chunk CSV's route column ('' in files written before it). */
  route: string;
  direction: string;
  pdus: number;
  /** Bytes on the wire (length field + 6, every PDU type). */
  bytes: number;
  pdata: number;
  /** P-DATA-TF length field: min, p50 (nearest rank), max; undefined without P-DATA-TF. */
  minLength: number | undefined;
  p50Length: number | undefined;
  maxLength: number | undefined;
  /** The most frequent P-DATA-TF lengths with their counts, most frequent first (ties: larger first). */
  common: Array<{ length: number; count: number }>;
  violations: number;
}

/**
 * The chunk rows aggregated once per file, route, association, direction, PDU type, kind and length (a few
 * rows per association, whatever the number of PDUs): the tables, the report's PDU sizes and its choice of
 * association are computed from this table, the input is read once.
 */
export const CHUNK_LENGTHS = 'chunk_lengths';

export async function aggregateChunks(engine: Engine): Promise<void> {
  await engine.run(
    `CREATE OR REPLACE TEMP TABLE ${CHUNK_LENGTHS} AS
     SELECT file, coalesce(route, '') AS route, assoc, direction, type, kind, length, count(*) AS n, count(*) FILTER (WHERE violation = 1) AS violations
     FROM chunks GROUP BY ALL`,
  );
}

interface SummaryRow {
  file: string;
  route: string;
  assoc: number;
  direction: string;
  pdus: number;
  bytes: number;
  pdata: number;
  min_len: number | null;
  p50_len: number | null;
  max_len: number | null;
  common: Array<{ length: number; count: number }> | null;
  violations: number;
}

/** Per chunk file (as the view's `file` says): its direction summaries, by association then direction. Needs aggregateChunks. */
export async function summarizeChunks(engine: Engine): Promise<Map<string, DirectionSummary[]>> {
  const rows = await engine.all<SummaryRow>(`
WITH h AS (SELECT file, route, assoc, direction, type = 'P-DATA-TF' AS pdata, length, sum(n) AS n, sum(violations) AS v FROM ${CHUNK_LENGTHS} GROUP BY ALL),
cum AS (
  SELECT file, route, assoc, direction, length,
    sum(n) OVER (PARTITION BY file, route, assoc, direction ORDER BY length ROWS UNBOUNDED PRECEDING) AS upto,
    sum(n) OVER (PARTITION BY file, route, assoc, direction) AS total
  FROM h WHERE pdata
),
p50 AS (SELECT file, route, assoc, direction, min(length) FILTER (WHERE upto >= greatest(1, ceil(0.5::DOUBLE * total))) AS p50_len FROM cum GROUP BY ALL)
SELECT h.file, h.route, h.assoc, h.direction, sum(n) AS pdus, sum((length + ${PDU_HEADER_LENGTH}) * n) AS bytes,
  coalesce(sum(n) FILTER (WHERE pdata), 0) AS pdata,
  min(length) FILTER (WHERE pdata) AS min_len, any_value(p50.p50_len) AS p50_len, max(length) FILTER (WHERE pdata) AS max_len,
  list({'length': length, 'count': n} ORDER BY n DESC, length DESC) FILTER (WHERE pdata) AS common,
  sum(v) AS violations
FROM h LEFT JOIN p50 USING (file, route, assoc, direction)
GROUP BY h.file, h.route, h.assoc, h.direction
ORDER BY h.file, h.assoc, h.direction, h.route`);
  const out = new Map<string, DirectionSummary[]>();
  for (const r of rows) {
    const list = out.get(r.file) ?? [];
    list.push({
      assoc: String(r.assoc),
      route: r.route,
      direction: r.direction,
      pdus: r.pdus,
      bytes: r.bytes,
      pdata: r.pdata,
      minLength: r.min_len ?? undefined,
      p50Length: r.p50_len ?? undefined,
      maxLength: r.max_len ?? undefined,
      common: (r.common ?? []).slice(0, COMMON_LENGTHS),
      violations: r.violations,
    });
    out.set(r.file, list);
  }
  return out;
}

/** What the SCU sent in one chunk file: P-DATA-TF toward the SCP. */
export interface SentPdus {
  /** Largest and most frequent (ties: the larger) length field. */
  sentMax: number;
  sentCommon: number;
  pdata: number;
  /** Associations in the file (any direction, any PDU). */
  associations: number;
  /** Every association that sent data set bytes sent them in one P-DATA-TF (and at least one did). */
  wholeDataSets: boolean;
}

/** Per chunk file. Needs aggregateChunks. */
export async function sentPdus(engine: Engine): Promise<Map<string, SentPdus>> {
  const rows = await engine.all<{ file: string; sent_max: number | null; sent_common: number | null; pdata: number; associations: number; with_data: number; whole: number }>(`
WITH toward AS (SELECT file, assoc, kind, length, n FROM ${CHUNK_LENGTHS} WHERE direction = 'to_scp' AND type = 'P-DATA-TF'),
lengths AS (SELECT file, length, sum(n) AS n FROM toward GROUP BY file, length),
sent AS (SELECT file, max(length) AS sent_max, arg_max(length, n * 4294967296 + length) AS sent_common, sum(n) AS pdata FROM lengths GROUP BY file),
data AS (SELECT file, count(*) AS with_data, count(*) FILTER (WHERE n = 1) AS whole FROM (SELECT file, assoc, sum(n) AS n FROM toward WHERE kind IN ('dataset', 'mixed') GROUP BY file, assoc) GROUP BY file),
assocs AS (SELECT file, count(DISTINCT assoc) AS associations FROM ${CHUNK_LENGTHS} GROUP BY file)
SELECT assocs.file, sent_max, sent_common, coalesce(pdata, 0) AS pdata, associations, coalesce(with_data, 0) AS with_data, coalesce(whole, 0) AS whole
FROM assocs LEFT JOIN sent USING (file) LEFT JOIN data USING (file)`);
  return new Map(
    rows.map((r) => [
      r.file,
      { sentMax: r.sent_max ?? 0, sentCommon: r.sent_common ?? 0, pdata: r.pdata, associations: r.associations, wholeDataSets: r.with_data > 0 && r.whole === r.with_data },
    ]),
  );
}

/** The first association of a chunk file (in file order) that carried a data set from the SCU, else its first association. */
export async function pickAssociation(engine: Engine, file: string): Promise<string | undefined> {
  const [withData] = await engine.all<{ assoc: number }>(`SELECT assoc FROM chunks WHERE file = ? AND direction = 'to_scp' AND type = 'P-DATA-TF' AND kind = 'dataset' LIMIT 1`, [
    file,
  ]);
  const [first] = withData ? [withData] : await engine.all<{ assoc: number }>(`SELECT assoc FROM chunks WHERE file = ? LIMIT 1`, [file]);
  return first === undefined ? undefined : String(first.assoc);
}

/** One PDU of a timeline: what the charts draw. */
export interface TimelinePdu {
  direction: string;
  type: string;
  length: number;
  lastByteUs: number;
}

/** The chunk files (of the given ones, in that order) holding association `assoc`. Needs aggregateChunks. */
export async function filesWithAssociation(engine: Engine, assoc: string): Promise<Set<string>> {
  const rows = await engine.all<{ file: string }>(`SELECT DISTINCT file FROM ${CHUNK_LENGTHS} WHERE CAST(assoc AS VARCHAR) = ?`, [assoc]);
  return new Set(rows.map((r) => r.file));
}

/** The PDUs of one association of one chunk file, in file order: the only rows ever brought into memory. */
export async function timelinePdus(engine: Engine, file: string, assoc: string): Promise<TimelinePdu[]> {
  return engine.all<TimelinePdu>(`SELECT direction, type, length, last_byte_us AS "lastByteUs" FROM chunks WHERE file = ? AND CAST(assoc AS VARCHAR) = ?`, [file, assoc]);
}

export function renderChunkTable(summaries: readonly DirectionSummary[]): string {
  const opt = (v: number | undefined): string => (v === undefined ? '-' : String(v));
  // A route column when the file holds several routes (association ids are unique across them).
  const routed = new Set(summaries.map((s) => s.route)).size > 1;
  const route = (s: DirectionSummary): string[] => (routed ? [s.route || '-'] : []);
  return renderColumns(
    [...(routed ? ['route'] : []), 'assoc', 'direction', 'PDUs', 'bytes', 'P-DATA-TF', 'min len', 'p50 len', 'max len', 'most common lengths', 'violations repaired'],
    summaries.map((s) => [
      ...route(s),
      s.assoc,
      s.direction,
      String(s.pdus),
      String(s.bytes),
      String(s.pdata),
      opt(s.minLength),
      opt(s.p50Length),
      opt(s.maxLength),
      s.common.map((c) => `${c.length}x${c.count}`).join(' ') || '-',
      String(s.violations),
    ]),
  );
}
