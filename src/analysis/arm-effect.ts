// The effect of an experiment's arm on throughput, adjusted for data-set size: the least-squares fit of
//   ln(duration) = α_arm + β · ln(bytes)
// over the timed messages (one intercept per arm, one common slope), and a percentile bootstrap that
// resamples associations within each arm (the messages of one association share its connection, its
// device and its moment: they are not independent). The effect of arm k against the reference arm r is
// the ratio of throughput at equal size, exp(α_r − α_k): 1.10 = 10% faster than the reference.
//
// Everything here runs on sufficient statistics per unit (an association, or a group of them: see
// src/analysis/experiment.ts): n, Σx, Σx², Σy, Σxy, Σy² with x = ln(bytes), y = ln(duration). The fit of
// a set of units is a function of their sums, so one bootstrap replicate costs one pass over the units,
// never over the messages.

import type { Random } from '../experiment/random.js';

/** Sums of one unit's timed messages (x = ln bytes, y = ln duration). */
export interface Sums {
  n: number;
  sx: number;
  sxx: number;
  sy: number;
  sxy: number;
  syy: number;
}

export const emptySums = (): Sums => ({ n: 0, sx: 0, sxx: 0, sy: 0, sxy: 0, syy: 0 });

/** Add one message (its data-set bytes and duration) to `s` (what the engine sums per association). */
export function addMessage(s: Sums, bytes: number, durationMs: number): Sums {
  const x = Math.log(bytes);
  const y = Math.log(durationMs);
  s.n++;
  s.sx += x;
  s.sxx += x * x;
  s.sy += y;
  s.sxy += x * y;
  s.syy += y * y;
  return s;
}

/** The units of each arm, as columns (one Float64Array per sum, one entry per unit). */
export class ArmUnits {
  readonly n: Float64Array;
  readonly sx: Float64Array;
  readonly sxx: Float64Array;
  readonly sy: Float64Array;
  readonly sxy: Float64Array;
  readonly syy: Float64Array;
  constructor(units: readonly Sums[]) {
    const col = (f: (s: Sums) => number): Float64Array => Float64Array.from(units, f);
    this.n = col((s) => s.n);
    this.sx = col((s) => s.sx);
    this.sxx = col((s) => s.sxx);
    this.sy = col((s) => s.sy);
    this.sxy = col((s) => s.sxy);
    this.syy = col((s) => s.syy);
  }
  get length(): number {
    return this.n.length;
  }
  /** The sums of all units. */
  total(): Sums {
    const t = emptySums();
    for (let i = 0; i < this.length; i++) add(t, this, i);
    return t;
  }
  /** The sums of `this.length` units drawn with replacement. */
  resample(random: Random): Sums {
    const t = emptySums();
    const m = this.length;
    for (let j = 0; j < m; j++) add(t, this, random.int(m));
    return t;
  }
}

function add(t: Sums, u: ArmUnits, i: number): void {
  t.n += u.n[i]!;
  t.sx += u.sx[i]!;
  t.sxx += u.sxx[i]!;
  t.sy += u.sy[i]!;
  t.sxy += u.sxy[i]!;
  t.syy += u.syy[i]!;
}

export interface Fit {
  /** β: the common slope of ln(duration) on ln(bytes); 0 when the sizes do not vary within the arms. */
  slope: number;
  /** α per arm (NaN for an arm without timed messages). */
  intercepts: number[];
  /** The standard deviation of the residuals per arm (NaN with fewer than two messages). */
  residualSd: number[];
}

/** Below this share of the spread of ln(bytes), the sizes are taken as equal (the slope is not identified). */
const NO_SIZE_SPREAD = 1e-9;

/** The least-squares fit with one intercept per arm and a common slope (the pooled within-arm slope). */
export function fitArms(arms: readonly Sums[]): Fit {
  let ssx = 0;
  let sxy = 0;
  let sxx = 0;
  for (const a of arms) {
    if (a.n === 0) continue;
    ssx += a.sxx - (a.sx * a.sx) / a.n;
    sxy += a.sxy - (a.sx * a.sy) / a.n;
    sxx += a.sxx;
  }
  const slope = ssx > NO_SIZE_SPREAD * sxx ? sxy / ssx : 0;
  const intercepts = arms.map((a) => (a.n === 0 ? NaN : (a.sy - slope * a.sx) / a.n));
  const residualSd = arms.map((a, k) => {
    if (a.n < 2) return NaN;
    const alpha = intercepts[k]!;
    // Σ(y − α − βx)², expanded over the sums.
    const rss = a.syy + a.n * alpha * alpha + slope * slope * a.sxx - 2 * alpha * a.sy - 2 * slope * a.sxy + 2 * alpha * slope * a.sx;
    return Math.sqrt(Math.max(0, rss) / (a.n - 1));
  });
  return { slope, intercepts, residualSd };
}

/** The throughput ratio of arm k against the reference arm r at equal size: exp(α_r − α_k). */
export function ratioOf(fit: Fit, k: number, reference: number): number {
  return Math.exp(fit.intercepts[reference]! - fit.intercepts[k]!);
}

/** Linear interpolation between order statistics (type 7, as R's default and numpy's): q in [0, 1]. */
export function quantileSorted(sorted: Float64Array | readonly number[], q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const h = (n - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

export interface BootstrapInterval {
  low: number;
  high: number;
}

/**
 * Percentile bootstrap intervals (`level`, e.g. 0.95) of every arm's ratio against the reference:
 * `replicates` times, each arm's units are drawn with replacement (as many as it has), the model refitted
 * and the ratios kept. Undefined for the reference and for arms with fewer than two units (their ratio
 * would not vary), and when the reference has fewer than two.
 */
export function bootstrapRatios(arms: readonly ArmUnits[], reference: number, o: { replicates: number; level: number; random: Random }): Array<BootstrapInterval | undefined> {
  const usable = arms.map((a) => a.length >= 2);
  if (!usable[reference]) return arms.map(() => undefined);
  const draws = arms.map((_, k) => (usable[k] && k !== reference ? new Float64Array(o.replicates) : undefined));
  const totals = arms.map((a) => a.total());
  for (let r = 0; r < o.replicates; r++) {
    // Arms with fewer than two units take part with all of them (their ratios are not reported).
    const sums = arms.map((a, k) => (usable[k] ? a.resample(o.random) : totals[k]!));
    const fit = fitArms(sums);
    draws.forEach((d, k) => {
      if (d) d[r] = ratioOf(fit, k, reference);
    });
  }
  const tail = (1 - o.level) / 2;
  return draws.map((d) => {
    if (!d) return undefined;
    d.sort();
    return { low: quantileSorted(d, tail), high: quantileSorted(d, 1 - tail) };
  });
}

export type ArmVerdict = 'faster' | 'slower' | 'no practical difference' | 'not enough data';

/** An effect whose interval lies within 1 ± this is no practical difference. */
export const PRACTICAL_MARGIN = 0.05;
/** Fewer timed associations than this in the arm or the reference: not enough data. */
export const MIN_ASSOCIATIONS = 10;

/**
 * The verdict on one arm against the reference: `not enough data` below MIN_ASSOCIATIONS timed
 * associations on either side, or when the interval spans 1 and reaches beyond the ±5% margin; `no
 * practical difference` when the interval lies within 1 ± 5% (even if it excludes 1); else `faster`
 * (interval above 1) or `slower` (below).
 */
export function armVerdict(interval: BootstrapInterval | undefined, associations: number, referenceAssociations: number): ArmVerdict {
  if (!interval || associations < MIN_ASSOCIATIONS || referenceAssociations < MIN_ASSOCIATIONS) return 'not enough data';
  if (interval.low >= 1 - PRACTICAL_MARGIN && interval.high <= 1 + PRACTICAL_MARGIN) return 'no practical difference';
  if (interval.low > 1) return 'faster';
  if (interval.high < 1) return 'slower';
  return 'not enough data';
}
