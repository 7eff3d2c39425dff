// The soak's verdict on growth, from its samples: a least-squares line over the second half of the run,
// with a confidence interval on its slope, decides; one sample never does.
//
// Samples taken every few seconds are strongly autocorrelated (a garbage collection, a 64 MB store in
// flight), which makes an interval computed from them too narrow. So the samples are first averaged over
// bins (30 s by default) and the line is fitted to the bin means: fewer points, much less correlated.
// Growth is declared when the whole interval lies above a tolerance: the metric rises, surely, and faster
// than that tolerance allows. "Indistinguishable from zero" is an interval that holds 0.

import { tQuantile } from '../../src/analysis/student-t.js';

export interface Point {
  /** Seconds since the start of the run. */
  t: number;
  v: number;
}

export interface LineFit {
  /** Per second. */
  slope: number;
  intercept: number;
  /** Confidence interval of the slope, per second. */
  low: number;
  high: number;
  n: number;
}

/** Ordinary least squares y = intercept + slope·t, with a `level` (two-sided) t interval on the slope; undefined under 3 points or with no spread in t. */
export function fitLine(points: readonly Point[], level = 0.95): LineFit | undefined {
  const n = points.length;
  if (n < 3) return undefined;
  const meanT = points.reduce((a, p) => a + p.t, 0) / n;
  const meanV = points.reduce((a, p) => a + p.v, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const p of points) {
    sxx += (p.t - meanT) ** 2;
    sxy += (p.t - meanT) * (p.v - meanV);
  }
  if (sxx === 0) return undefined;
  const slope = sxy / sxx;
  const intercept = meanV - slope * meanT;
  let sse = 0;
  for (const p of points) sse += (p.v - intercept - slope * p.t) ** 2;
  const se = Math.sqrt(sse / (n - 2) / sxx);
  const half = tQuantile(1 - (1 - level) / 2, n - 2) * se;
  return { slope, intercept, low: slope - half, high: slope + half, n };
}

/** Means of the points in consecutive bins of `seconds`, each at its points' mean time; empty bins are left out. */
export function binMeans(points: readonly Point[], seconds: number): Point[] {
  const bins = new Map<number, Point[]>();
  for (const p of points) {
    const k = Math.floor(p.t / seconds);
    const bin = bins.get(k);
    if (bin) bin.push(p);
    else bins.set(k, [p]);
  }
  return [...bins.keys()]
    .sort((a, b) => a - b)
    .map((k) => {
      const bin = bins.get(k)!;
      return { t: bin.reduce((a, p) => a + p.t, 0) / bin.length, v: bin.reduce((a, p) => a + p.v, 0) / bin.length };
    });
}

export interface TrendOptions {
  /** Growth the metric is allowed, in its unit per minute. */
  tolerancePerMinute: number;
  /** The fit uses the samples from this fraction of the run on (default 0.5: the second half). */
  from?: number;
  /** Bin width in seconds (default 30). */
  binSeconds?: number;
  level?: number;
}

export type Verdict = 'growth' | 'flat' | 'too-few-samples';

export interface Trend {
  /** Per minute, with its interval. */
  slopePerMinute: number;
  lowPerMinute: number;
  highPerMinute: number;
  tolerancePerMinute: number;
  /** The interval holds 0: no growth or shrinking that the samples can tell from noise. */
  includesZero: boolean;
  bins: number;
  /** Where the fitted line starts and ends (for the plot), in the metric's unit. */
  line: { t0: number; v0: number; t1: number; v1: number } | undefined;
  verdict: Verdict;
}

/** Judge the trend of `points` (time-ordered) over the tail of the run. */
export function judgeGrowth(points: readonly Point[], o: TrendOptions): Trend {
  const end = points.length ? points[points.length - 1]!.t : 0;
  const start = points.length ? points[0]!.t : 0;
  const cut = start + (end - start) * (o.from ?? 0.5);
  const bins = binMeans(
    points.filter((p) => p.t >= cut),
    o.binSeconds ?? 30,
  );
  const fit = fitLine(bins, o.level ?? 0.95);
  if (!fit) {
    return {
      slopePerMinute: NaN,
      lowPerMinute: NaN,
      highPerMinute: NaN,
      tolerancePerMinute: o.tolerancePerMinute,
      includesZero: true,
      bins: bins.length,
      line: undefined,
      verdict: 'too-few-samples',
    };
  }
  const t0 = bins[0]!.t;
  const t1 = bins[bins.length - 1]!.t;
  return {
    slopePerMinute: fit.slope * 60,
    lowPerMinute: fit.low * 60,
    highPerMinute: fit.high * 60,
    tolerancePerMinute: o.tolerancePerMinute,
    includesZero: fit.low <= 0 && fit.high >= 0,
    bins: bins.length,
    line: { t0, v0: fit.intercept + fit.slope * t0, t1, v1: fit.intercept + fit.slope * t1 },
    verdict: fit.low * 60 > o.tolerancePerMinute ? 'growth' : 'flat',
  };
}

/** The q-quantile (0..1) of `values` by linear interpolation between order statistics; NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

/** The proxy at an idle moment of the soak: load paused, associations done, a full garbage collection run. */
export interface IdleProbe {
  /** Seconds since the start of the run. */
  t: number;
  rssMiB: number;
  /**
   * Memory still in use then: malloc's chunks in use (what its arenas took from the system, less its free
   * chunks, plus mmapped chunks; Buffer backing stores are among them) and the V8 heap's live objects.
   * Undefined when malloc could not be read. What RSS holds beyond it is kept for reuse: free malloc chunks
   * glibc has not handed back, V8 heap pages committed but empty, code.
   */
  inUseMiB: number | undefined;
}

export type RssVerdict = Verdict | 'retained';

export interface RssJudgement {
  verdict: RssVerdict;
  /** Memory in use, per minute from the first idle probe to the second. */
  inUsePerMinute: number | undefined;
  why: string;
}

/**
 * Tell a leak from memory kept for reuse. RSS counts freed chunks that glibc has not handed back (it trims
 * only the top of a heap, and only past its trim threshold) and V8 heap pages the collector keeps, so RSS can
 * creep up in steps while nothing stays in use: each new high-water mark of live buffers leaves pages behind.
 * A leak is memory in use that grows, measured at two idle moments after a full collection.
 *
 * 'growth' when the RSS slope is over tolerance and the memory in use grew over the same tolerance between
 * the probes (or could not be measured); 'retained' when RSS grew but the memory in use did not; 'growth'
 * too when the memory in use grew past the tolerance while RSS looked flat (a leak living off free chunks).
 */
export function judgeRss(trend: Trend, first: IdleProbe | undefined, second: IdleProbe | undefined): RssJudgement {
  const minutes = first && second ? (second.t - first.t) / 60 : 0;
  const inUsePerMinute = first?.inUseMiB !== undefined && second?.inUseMiB !== undefined && minutes > 0 ? (second.inUseMiB - first.inUseMiB) / minutes : undefined;
  const tol = trend.tolerancePerMinute;
  if (trend.verdict === 'too-few-samples') return { verdict: trend.verdict, inUsePerMinute, why: 'too few samples' };
  if (inUsePerMinute === undefined)
    return { verdict: trend.verdict, inUsePerMinute, why: trend.verdict === 'growth' ? 'RSS grows and the memory in use could not be measured' : 'RSS flat' };
  const inUseText = `memory in use ${inUsePerMinute.toPrecision(3)} MiB/min between the idle probes (tolerance ${tol})`;
  if (inUsePerMinute > tol)
    return { verdict: 'growth', inUsePerMinute, why: `${inUseText}: ${trend.verdict === 'growth' ? 'a leak' : 'a leak living off free chunks, not yet in RSS'}` };
  if (trend.verdict === 'growth') return { verdict: 'retained', inUsePerMinute, why: `RSS grows but ${inUseText}: pages kept for reuse, not a leak` };
  return { verdict: 'flat', inUsePerMinute, why: `RSS flat, ${inUseText}` };
}
