// Whether a difference between two settings is real: Student's t confidence interval of a mean, and
// Welch's unequal-variances t-test with Welch–Satterthwaite degrees of freedom. Pure functions over
// summaries (n, mean, sample variance), so an aggregate computed elsewhere (a database, a CSV column)
// works as well as the sample itself; every function also takes the sample as an array of numbers.

import { tQuantile, tTwoSided } from './student-t.js';

/** What the tests need of a sample. `variance` is the sample variance (n - 1 denominator). */
export interface SampleSummary {
  n: number;
  mean: number;
  /** Undefined when unknown, or when n < 2 (one value has no spread). */
  variance?: number;
}

/** A sample's summary, or the sample itself. */
export type Sample = SampleSummary | readonly number[];

/** The significance level of every "differs beyond noise" in the tables and the report. */
export const ALPHA = 0.05;

/** n, mean and sample variance of the values (two passes: exact for values far from zero). */
export function sampleSummary(values: readonly number[]): SampleSummary {
  const n = values.length;
  if (n === 0) return { n: 0, mean: NaN };
  const mean = values.reduce((s, v) => s + v, 0) / n;
  if (n < 2) return { n, mean };
  const squares = values.reduce((s, v) => s + (v - mean) * (v - mean), 0);
  return { n, mean, variance: squares / (n - 1) };
}

const summaryOf = (s: Sample): SampleSummary => (Array.isArray(s) ? sampleSummary(s as readonly number[]) : (s as SampleSummary));

/** A sample whose variance the tests can use: n >= 2 and a finite variance >= 0. */
function usable(s: SampleSummary): s is Required<SampleSummary> {
  return s.n >= 2 && Number.isFinite(s.mean) && s.variance !== undefined && Number.isFinite(s.variance) && s.variance >= 0;
}

export interface Interval {
  low: number;
  high: number;
  /** high - mean = mean - low. */
  halfWidth: number;
}

/**
 * Student's t interval of the mean at `level` (e.g. 0.95): mean ± t(1-(1-level)/2, n-1) · s/√n.
 * Undefined for n < 2 or an unknown variance; a zero variance gives low = high = mean.
 */
export function confidenceInterval(sample: Sample, level: number): Interval | undefined {
  if (!(level > 0 && level < 1)) throw new RangeError(`confidence level must be in (0, 1), got ${level}`);
  const s = summaryOf(sample);
  if (!usable(s)) return undefined;
  const halfWidth = s.variance === 0 ? 0 : tQuantile(1 - (1 - level) / 2, s.n - 1) * Math.sqrt(s.variance / s.n);
  return { low: s.mean - halfWidth, high: s.mean + halfWidth, halfWidth };
}

/** The 95% t interval of the mean. */
export function ci95(sample: Sample): Interval | undefined {
  return confidenceInterval(sample, 0.95);
}

export interface WelchResult {
  /** mean(a) - mean(b). */
  difference: number;
  t: number;
  /** Welch–Satterthwaite degrees of freedom (fractional). */
  df: number;
  /** Two-sided p-value. */
  p: number;
}

/**
 * Welch's t-test of mean(a) = mean(b), two-sided. Undefined when either sample has n < 2 or no variance.
 * Both variances zero: p = 1 when the means are equal, 0 when they differ (t = ±Infinity), df = n_a + n_b - 2.
 */
export function welch(a: Sample, b: Sample): WelchResult | undefined {
  const x = summaryOf(a);
  const y = summaryOf(b);
  if (!usable(x) || !usable(y)) return undefined;
  const difference = x.mean - y.mean;
  const vx = x.variance / x.n;
  const vy = y.variance / y.n;
  const se2 = vx + vy;
  if (se2 === 0) {
    const df = x.n + y.n - 2;
    if (difference === 0) return { difference, t: 0, df, p: 1 };
    return { difference, t: difference > 0 ? Infinity : -Infinity, df, p: 0 };
  }
  const t = difference / Math.sqrt(se2);
  const df = (se2 * se2) / ((vx * vx) / (x.n - 1) + (vy * vy) / (y.n - 1));
  return { difference, t, df, p: tTwoSided(t, df) };
}

export interface FastestComparison<T> {
  /** The item with the lowest mean. */
  fastest: T;
  /** Every other item, in the order given, with Welch's test against the fastest. */
  others: Array<{
    item: T;
    /** Undefined when either side has fewer than two values (or no variance): nothing can be said. */
    test: WelchResult | undefined;
    /** p < ALPHA; undefined with the test. */
    differs: boolean | undefined;
  }>;
}

/**
 * The item with the lowest mean, and Welch's test of every other item against it. Items without a
 * summary are left out; undefined when none has one. The fastest is picked from the same data, and no
 * correction is made for testing several items: read a p just under 0.05 as weak evidence.
 */
export function compareWithFastest<T>(items: readonly T[], summary: (item: T) => SampleSummary | undefined): FastestComparison<T> | undefined {
  const timed = items.flatMap((item) => {
    const s = summary(item);
    return s !== undefined && s.n > 0 && Number.isFinite(s.mean) ? [{ item, s }] : [];
  });
  if (timed.length === 0) return undefined;
  const fastest = timed.reduce((a, b) => (b.s.mean < a.s.mean ? b : a));
  return {
    fastest: fastest.item,
    others: timed
      .filter((x) => x !== fastest)
      .map(({ item, s }) => {
        const test = welch(s, fastest.s);
        return { item, test, differs: test === undefined ? undefined : test.p < ALPHA };
      }),
  };
}

/** Where an item stands against the fastest item of its series. */
export type Verdict =
  | { kind: 'fastest' }
  /** Slower beyond noise (p < ALPHA), or not distinguishable from the fastest (p >= ALPHA). */
  | { kind: 'slower' | 'within-noise'; test: WelchResult }
  /** Fewer than two values (or no variance) on either side: nothing can be said. */
  | { kind: 'untested' };

/**
 * compareWithFastest within each series (e.g. one image size, one route): a verdict per item, in the
 * order given; undefined for items without a summary. A series where no item could be tested against
 * its fastest (one item, or no variances) has no fastest either: every item in it is 'untested'.
 */
export function verdictsPerSeries<T>(
  items: readonly T[],
  seriesOf: (item: T, index: number) => string,
  summary: (item: T) => SampleSummary | undefined,
): Array<Verdict | undefined> {
  const out = new Array<Verdict | undefined>(items.length).fill(undefined);
  const indexes = new Map<string, number[]>();
  items.forEach((item, i) => {
    const key = seriesOf(item, i);
    indexes.set(key, [...(indexes.get(key) ?? []), i]);
  });
  for (const members of indexes.values()) {
    const c = compareWithFastest(members, (i) => summary(items[i]!));
    if (!c) continue;
    const tested = c.others.some((o) => o.test !== undefined);
    out[c.fastest] = tested ? { kind: 'fastest' } : { kind: 'untested' };
    for (const o of c.others) out[o.item] = o.test === undefined ? { kind: 'untested' } : { kind: o.differs ? 'slower' : 'within-noise', test: o.test };
  }
  return out;
}

/** A p-value as the tables print it: three decimals, "<0.001" below. */
export function formatP(p: number): string {
  return p < 0.001 ? '<0.001' : p.toFixed(3);
}
