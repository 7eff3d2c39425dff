// results.csv: one row per setting. The first columns are a contract (add, never rename), then the
// time split from the proxy's messages CSV (empty in --direct, or when the proxy has no --messages-csv),
// the failures, which mode and sender produced the row, and the link shaping of the proxy
// (latency_ms, jitter_ms, bandwidth_bps in bits per second; 0 = none / not limited), then the built-in
// sender's connect and negotiation times (mean per association, ms; empty for the other senders), which
// embedded SCP answered (builtin, dcmjs; upstream for --upstream) and the sender's association mode, and
// the spread of the seconds per image: the sample standard deviation and Student's t 95% interval of
// the mean (empty with fewer than two acknowledged images), and last the proxy's own time per C-STORE
// (proxy_busy_ms, mean of the messages CSV column; empty like the rest of the split).

import { ci95 } from '../analysis/inference.js';
import type { ResultRow } from '../analysis/table.js';
import type { AssociationMode, BenchMode, ScpKind, ScuKind } from './options.js';
import type { LinkSetting } from '../values/shaping.js';

/** The header (one definition, below bench and the report that reads it: src/analysis/csv.ts). */
export { RESULTS_CSV_COLUMNS } from '../analysis/csv.js';

export interface SettingResult {
  row: ResultRow;
  mode: BenchMode;
  pdu: number;
  /** Dataset bytes of one image (mean over the files when several). */
  imageBytes: number;
  parallel: number;
  scu: ScuKind;
  /** The proxy's link shaping for this row (--latency, --bandwidth); zeros when unshaped. */
  link: LinkSetting;
  /** Means per association (ms) as the built-in sender measured them; undefined for the other senders. */
  connectMs?: number | undefined;
  associateMs?: number | undefined;
  /** The embedded SCP, `upstream` (--upstream) or `command` (--scp-command). */
  scp: ScpKind | 'upstream' | 'command';
  /** per-image or per-sender (what storescu does). */
  association: AssociationMode;
}

const f = (v: number | undefined, digits: number): string => (v === undefined ? '' : v.toFixed(digits));

export function resultsCsvRow(r: SettingResult): string[] {
  const s = r.row.seconds;
  const ci = s && ci95(s);
  return [
    String(r.pdu),
    String(r.imageBytes),
    String(r.parallel),
    String(r.row.count),
    f(s?.mean, 6),
    f(s?.min, 6),
    f(s?.max, 6),
    f(s?.p50, 6),
    f(s?.p95, 6),
    f(r.row.mbPerS, 3),
    f(r.row.scuIdleMs, 3),
    f(r.row.upstreamBlockedMs, 3),
    f(r.row.scpResponseMs, 3),
    String(r.row.failures),
    r.mode,
    r.scu,
    String(r.link.latency.ms),
    String(r.link.latency.jitterMs),
    String(Math.round(r.link.bandwidth * 8)),
    f(r.connectMs, 3),
    f(r.associateMs, 3),
    r.scp,
    r.association,
    f(s?.variance === undefined ? undefined : Math.sqrt(s.variance), 6),
    f(ci?.low, 6),
    f(ci?.high, 6),
    f(r.row.proxyBusyMs, 3),
  ];
}
