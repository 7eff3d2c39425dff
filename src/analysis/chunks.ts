// Summaries of a chunk CSV (--csv, one row per PDU): per association and direction, PDUs and bytes, the
// P-DATA-TF size distribution and the violations the proxy repaired.

import { num } from './csv.js';
import type { CsvRow } from './csv.js';
import { renderColumns } from './table.js';
import { summarize } from './summary.js';
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

export function summarizeChunks(rows: readonly CsvRow[]): DirectionSummary[] {
  const groups = new Map<string, CsvRow[]>();
  for (const r of rows) {
    const key = `${r.route ?? ''}\u0000${r.assoc}\u0000${r.direction}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(r);
  }
  const out: DirectionSummary[] = [];
  for (const g of groups.values()) {
    const lengths = g.filter((r) => r.type === 'P-DATA-TF').map((r) => num(r.length) ?? 0);
    const counts = new Map<number, number>();
    for (const l of lengths) counts.set(l, (counts.get(l) ?? 0) + 1);
    const s = summarize(lengths);
    out.push({
      assoc: g[0]!.assoc!,
      route: g[0]!.route ?? '',
      direction: g[0]!.direction!,
      pdus: g.length,
      bytes: g.reduce((sum, r) => sum + (num(r.length) ?? 0) + PDU_HEADER_LENGTH, 0),
      pdata: lengths.length,
      minLength: s?.min,
      p50Length: s?.p50,
      maxLength: s?.max,
      common: [...counts]
        .map(([length, count]) => ({ length, count }))
        .sort((a, b) => b.count - a.count || b.length - a.length)
        .slice(0, COMMON_LENGTHS),
      violations: g.filter((r) => r.violation === '1').length,
    });
  }
  const assocOrder = (a: string): number => num(a) ?? Number.MAX_SAFE_INTEGER;
  return out.sort((a, b) => assocOrder(a.assoc) - assocOrder(b.assoc) || a.assoc.localeCompare(b.assoc) || a.direction.localeCompare(b.direction));
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
