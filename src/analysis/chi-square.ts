// Pearson's chi-square test of counts against expected shares (did every arm of an experiment get its
// share of the associations?), from the regularized upper incomplete gamma function Q(a, x) (Numerical
// Recipes 3rd ed. 6.2: the series below a + 1, Lentz's continued fraction above).

import { lnGamma } from './student-t.js';

const EPSILON = 1e-15;
const TINY = 1e-300;
const MAX_ITERATIONS = 100_000;

/** P(a, x) by its series (converges fast for x < a + 1). */
function lowerSeries(a: number, x: number): number {
  let sum = 1 / a;
  let term = sum;
  for (let n = 1; n <= MAX_ITERATIONS; n++) {
    term *= x / (a + n);
    sum += term;
    if (Math.abs(term) < Math.abs(sum) * EPSILON) break;
  }
  return sum * Math.exp(-x + a * Math.log(x) - lnGamma(a));
}

/** Q(a, x) by its continued fraction (converges fast for x >= a + 1). */
function upperFraction(a: number, x: number): number {
  let b = x + 1 - a;
  let c = 1 / TINY;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i <= MAX_ITERATIONS; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < TINY) d = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPSILON) break;
  }
  return Math.exp(-x + a * Math.log(x) - lnGamma(a)) * h;
}

/** The regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a), a > 0, x >= 0. */
export function gammaQ(a: number, x: number): number {
  if (!(a > 0) || !(x >= 0)) throw new RangeError(`gammaQ: needs a > 0 and x >= 0, got a=${a}, x=${x}`);
  if (x === 0) return 1;
  return x < a + 1 ? 1 - lowerSeries(a, x) : upperFraction(a, x);
}

/** P(X >= x) for X chi-square with `df` degrees of freedom. */
export function chiSquareTail(x: number, df: number): number {
  return gammaQ(df / 2, x / 2);
}

export interface ChiSquareTest {
  statistic: number;
  df: number;
  p: number;
}

/**
 * Pearson's test of `counts` against equal shares (df = categories - 1); undefined with fewer than two
 * categories or no counts at all.
 */
export function equalSharesTest(counts: readonly number[]): ChiSquareTest | undefined {
  const total = counts.reduce((s, c) => s + c, 0);
  if (counts.length < 2 || total === 0) return undefined;
  const expected = total / counts.length;
  const statistic = counts.reduce((s, c) => s + ((c - expected) * (c - expected)) / expected, 0);
  const df = counts.length - 1;
  return { statistic, df, p: chiSquareTail(statistic, df) };
}
