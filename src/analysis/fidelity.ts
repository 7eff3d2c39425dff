// How closely the proxy reproduces the original method: each setting measured natively (the SCP itself
// announces the size, restarted per setting) and through the proxy (the proxy announces it). Per setting
// the two means, their 95% intervals and the ratio proxy/native with an approximate interval; and whether
// the settings rank the same both ways. A ranking is only claimed where the data can tell: a pair of
// settings whose intervals are apart (in either mode) must be in the same order in both modes; pairs whose
// intervals overlap in both modes are within noise and say nothing. Beside them, the proxy mean less the
// proxy's own share (its proxy_busy_ms mean, an upper bound of that share) and its ratio to native: what
// the proxy's method would show if the proxy cost nothing, at most. Pure functions over summaries.

import { ci95 } from './inference.js';
import type { Interval, SampleSummary } from './inference.js';
import { renderColumns } from './table.js';

export interface FidelityInput {
  /** The setting without its mode (e.g. "16KB", or "16KB 2MB" with several images). */
  setting: string;
  /** 'native' (--scp-command) or 'direct' (the embedded SCP) count as native. */
  mode: string;
  seconds: SampleSummary | undefined;
  /** Proxy rows: the mean proxy_busy_ms per image from the proxy's messages CSV; undefined when unknown. */
  proxyBusyMs?: number | undefined;
}

export interface FidelityRow {
  setting: string;
  native: SampleSummary;
  proxy: SampleSummary;
  nativeCi: Interval | undefined;
  proxyCi: Interval | undefined;
  /** proxy mean / native mean. */
  ratio: number;
  /** Delta-method 95% interval of the ratio from the two intervals' relative half-widths (approximate; low >= 0). */
  ratioCi: { low: number; high: number } | undefined;
  /** The proxy mean less its proxy_busy_ms mean, in seconds (never below 0); undefined without proxy_busy_ms. */
  proxyLessBusy: number | undefined;
  /** proxyLessBusy / native mean. */
  lessBusyRatio: number | undefined;
}

export interface RankingPair {
  a: string;
  b: string;
  /** Intervals apart in this mode. */
  apartNative: boolean;
  apartProxy: boolean;
  /** mean(a) < mean(b) in this mode. */
  aFasterNative: boolean;
  aFasterProxy: boolean;
}

export interface Fidelity {
  rows: FidelityRow[];
  /** Pairs whose intervals are apart in at least one mode. */
  decided: RankingPair[];
  /** Of those, the pairs whose means are in opposite order in the two modes. */
  reversed: RankingPair[];
}

const isNative = (mode: string): boolean => mode === 'native' || mode === 'direct';

function apart(x: Interval | undefined, y: Interval | undefined): boolean {
  return x !== undefined && y !== undefined && (x.high < y.low || y.high < x.low);
}

/** Settings measured both ways, in the order they first appear; undefined when there are none. */
export function fidelity(inputs: readonly FidelityInput[]): Fidelity | undefined {
  const order: string[] = [];
  const by = new Map<string, { native?: SampleSummary; proxy?: SampleSummary; busyMs?: number | undefined }>();
  for (const x of inputs) {
    if (!x.seconds || x.seconds.n === 0) continue;
    const side = isNative(x.mode) ? 'native' : x.mode === 'proxy' ? 'proxy' : undefined;
    if (!side) continue;
    if (!by.has(x.setting)) {
      by.set(x.setting, {});
      order.push(x.setting);
    }
    const entry = by.get(x.setting)!;
    entry[side] = x.seconds;
    if (side === 'proxy') entry.busyMs = x.proxyBusyMs;
  }
  const rows: FidelityRow[] = [];
  for (const setting of order) {
    const { native, proxy, busyMs } = by.get(setting)!;
    if (!native || !proxy) continue;
    const nativeCi = ci95(native);
    const proxyCi = ci95(proxy);
    const ratio = proxy.mean / native.mean;
    let ratioCi: FidelityRow['ratioCi'];
    if (nativeCi && proxyCi && native.mean > 0 && proxy.mean > 0) {
      const rel = Math.hypot(proxyCi.halfWidth / proxy.mean, nativeCi.halfWidth / native.mean);
      // A ratio of positive times is positive: a wide interval is cut at 0.
      ratioCi = { low: Math.max(0, ratio * (1 - rel)), high: ratio * (1 + rel) };
    }
    const proxyLessBusy = busyMs === undefined ? undefined : Math.max(0, proxy.mean - busyMs / 1000);
    const lessBusyRatio = proxyLessBusy === undefined ? undefined : proxyLessBusy / native.mean;
    rows.push({ setting, native, proxy, nativeCi, proxyCi, ratio, ratioCi, proxyLessBusy, lessBusyRatio });
  }
  if (rows.length === 0) return undefined;
  const decided: RankingPair[] = [];
  for (let i = 0; i < rows.length; i++) {
    for (let j = i + 1; j < rows.length; j++) {
      const a = rows[i]!;
      const b = rows[j]!;
      const pair: RankingPair = {
        a: a.setting,
        b: b.setting,
        apartNative: apart(a.nativeCi, b.nativeCi),
        apartProxy: apart(a.proxyCi, b.proxyCi),
        aFasterNative: a.native.mean < b.native.mean,
        aFasterProxy: a.proxy.mean < b.proxy.mean,
      };
      if (pair.apartNative || pair.apartProxy) decided.push(pair);
    }
  }
  return { rows, decided, reversed: decided.filter((p) => p.aFasterNative !== p.aFasterProxy) };
}

const s3 = (v: number): string => v.toFixed(3);
const ci = (i: Interval | undefined): string => (i ? `[${s3(i.low)}, ${s3(i.high)}]` : '-');

/** One line: is the ranking the same both ways, and on how many pairs is that claim based. */
export function rankingVerdict(f: Fidelity): string {
  if (f.decided.length === 0) return 'ranking: no two settings are apart beyond their 95% intervals in either mode: nothing to compare (more --count)';
  if (f.reversed.length === 0) {
    return `ranking: the same both ways (${f.decided.length} pair${f.decided.length === 1 ? '' : 's'} of settings apart beyond their 95% intervals, all in the same order)`;
  }
  const which = f.reversed
    .map(
      (p) =>
        `${p.a} ${p.aFasterNative ? '<' : '>'} ${p.b} natively but ${p.aFasterProxy ? '<' : '>'} through the proxy${p.apartNative && p.apartProxy ? ' (apart both ways)' : ''}`,
    )
    .join('; ');
  return `ranking: NOT the same: ${which} (of ${f.decided.length} pairs apart beyond their intervals)`;
}

/**
 * The text table: per setting native and proxy means with intervals, and the ratio; then the proxy mean less
 * the proxy's share and its ratio to native ('-' without proxy_busy_ms); then the ranking line.
 */
export function renderFidelityTable(f: Fidelity): string {
  const header = ['max_pdu', 'native_s', 'native_ci95', 'proxy_s', 'proxy_ci95', 'proxy/native', 'ratio_ci95', 'proxy-busy_s', '(proxy-busy)/native'];
  const body = f.rows.map((r) => [
    r.setting,
    s3(r.native.mean),
    ci(r.nativeCi),
    s3(r.proxy.mean),
    ci(r.proxyCi),
    r.ratio.toFixed(3),
    r.ratioCi ? `[${r.ratioCi.low.toFixed(2)}, ${r.ratioCi.high.toFixed(2)}]` : '-',
    r.proxyLessBusy === undefined ? '-' : s3(r.proxyLessBusy),
    r.lessBusyRatio === undefined ? '-' : r.lessBusyRatio.toFixed(3),
  ]);
  return `${renderColumns(header, body)}${rankingVerdict(f)}\n`;
}
