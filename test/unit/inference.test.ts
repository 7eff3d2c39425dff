// The t distribution, the confidence interval and Welch's test against independently computed values.
// Reference values: printed t tables (3 decimals), and scipy 1.17.1 (scipy.stats.t, scipy.special.betainc,
// scipy.stats.ttest_ind(equal_var=False), ttest_ind_from_stats), run once by hand to write these numbers
// down; nothing here runs Python.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lnGamma, regularizedIncompleteBeta, tCdf, tQuantile, tTwoSided } from '../../src/analysis/student-t.js';
import { ALPHA, ci95, compareWithFastest, confidenceInterval, formatP, sampleSummary, verdictsPerSeries, welch } from '../../src/analysis/inference.js';

/** |actual - expected| <= rel · |expected| (or <= rel when expected is 0). */
function close(actual: number, expected: number, rel: number, what: string): void {
  const tolerance = rel * Math.max(Math.abs(expected), expected === 0 ? 1 : 0);
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} is not ${expected} (±${tolerance})`);
}

test('t quantiles match a printed table (two-sided 95%: t at 0.975)', () => {
  // df: 1, 2, 3, 4, 5, 10, 30, 100 -> 12.706, 4.303, 3.182, 2.776, 2.571, 2.228, 2.042, 1.984
  const table: Array<[number, number]> = [
    [1, 12.706],
    [2, 4.303],
    [3, 3.182],
    [4, 2.776],
    [5, 2.571],
    [10, 2.228],
    [30, 2.042],
    [100, 1.984],
  ];
  for (const [df, t] of table) assert.equal(tQuantile(0.975, df).toFixed(3), t.toFixed(3), `df ${df}`);
});

test('t quantiles match scipy.stats.t.ppf, fractional degrees of freedom and far tails included', () => {
  const cases: Array<[number, number, number]> = [
    [0.975, 1, 12.706204736174694],
    [0.975, 5, 2.5705818356363146],
    [0.975, 1000, 1.9623390808264083],
    [0.975, 2.5, 3.5746548420036817],
    [0.975, 7.3, 2.345066736547703],
    [0.975, 13.543477365668014, 2.151589144596684],
    [0.025, 4, -2.7764451051977943],
    [0.9995, 3, 12.923978636687961],
    [1e-6, 2, -707.1057205259339],
    [0.999999, 50, 5.376673401732294],
  ];
  for (const [p, df, t] of cases) close(tQuantile(p, df), t, 1e-10, `ppf(${p}, ${df})`);
  assert.equal(tQuantile(0.5, 4), 0);
  assert.throws(() => tQuantile(0, 4), RangeError);
  assert.throws(() => tQuantile(1, 4), RangeError);
  assert.throws(() => tQuantile(0.9, 0), RangeError);
});

test('t CDF and two-sided tail match scipy.stats.t.cdf / sf', () => {
  const cdf: Array<[number, number, number]> = [
    [0, 3, 0.5],
    [1, 1, 0.75],
    [2, 5, 0.9490302605850708],
    [-2, 5, 0.050969739414929174],
    [3.5, 12.4, 0.9979088445549512],
    [10, 2, 0.9950737714883372],
    [-40, 30, 6.863022597203209e-28],
    [1.96, 1e6, 0.9750019662073651],
  ];
  for (const [t, df, p] of cdf) close(tCdf(t, df), p, 1e-9, `cdf(${t}, ${df})`);
  // sf(t) = P(T > t); the two-sided tail is twice it, kept exact far out (no 1 - cdf cancellation).
  const sf: Array<[number, number, number]> = [
    [10, 2, 0.004926228511662845],
    [40, 30, 6.863022597203209e-28],
    [8, 100, 1.1364324038640347e-12],
  ];
  for (const [t, df, p] of sf) close(tTwoSided(t, df), 2 * p, 1e-9, `2·sf(${t}, ${df})`);
  assert.equal(tTwoSided(Infinity, 3), 0);
  assert.equal(tTwoSided(0, 3), 1);
});

test('regularized incomplete beta and ln Γ match scipy.special', () => {
  const beta: Array<[number, number, number, number]> = [
    [0.5, 0.5, 0.3, 0.36901011956554536],
    [2, 3, 0.4, 0.5248],
    [10, 0.5, 0.9, 0.15164090963470994],
    [0.5, 10, 0.01, 0.3420718248432154],
    [50, 50, 0.55, 0.8413478010629014],
    [1, 1, 0.7, 0.7],
    [5e5, 0.5, 0.999998, 0.15729910327878688],
  ];
  for (const [a, b, x, v] of beta) close(regularizedIncompleteBeta(a, b, x), v, 1e-8, `I(${x}; ${a}, ${b})`);
  assert.equal(regularizedIncompleteBeta(2, 3, 0), 0);
  assert.equal(regularizedIncompleteBeta(2, 3, 1), 1);
  assert.throws(() => regularizedIncompleteBeta(0, 1, 0.5), RangeError);
  assert.throws(() => regularizedIncompleteBeta(1, 1, 1.5), RangeError);
  const gamma: Array<[number, number]> = [
    [0.5, 0.5723649429247],
    [10.5, 13.940625219403763],
    [100, 359.1342053695754],
    [1e6, 12815504.569147611],
  ];
  for (const [x, v] of gamma) close(lnGamma(x), v, 1e-12, `lnGamma(${x})`);
  assert.ok(Math.abs(lnGamma(1)) < 1e-14 && Math.abs(lnGamma(2)) < 1e-14);
});

// Two samples of seconds per image, and scipy's figures for them.
const A = [0.512, 0.498, 0.53, 0.505, 0.521, 0.509, 0.517, 0.495];
const B = [0.541, 0.552, 0.529, 0.56, 0.548, 0.537, 0.555, 0.546, 0.55];
const C = [1.2, 1.35, 0.98, 1.6, 1.1];
const D = [1.25, 1.05, 1.4, 1.3, 1.15, 1.22];

test('the 95% interval of a mean: mean ± t(0.975, n-1)·s/√n, from the sample or from its summary', () => {
  const cases: Array<[number[], number, number, number, number]> = [
    // values, mean, variance (ddof=1), low, high
    [A, 0.510875, 0.0001375535714285717, 0.5010698762030251, 0.5206801237969748],
    [B, 0.5464444444444445, 9.077777777777795e-5, 0.5391207772514276, 0.5537681116374614],
    [C, 1.246, 0.05758000000000002, 0.9480523809227738, 1.543947619077226],
    [D, 1.2283333333333333, 0.014616666666666661, 1.1014571865521137, 1.355209480114553],
  ];
  for (const [values, mean, variance, low, high] of cases) {
    const s = sampleSummary(values);
    assert.equal(s.n, values.length);
    close(s.mean, mean, 1e-12, 'mean');
    close(s.variance!, variance, 1e-9, 'variance');
    for (const interval of [ci95(values), ci95({ n: values.length, mean, variance })]) {
      close(interval!.low, low, 1e-10, 'low');
      close(interval!.high, high, 1e-10, 'high');
      close(interval!.halfWidth, high - mean, 1e-8, 'half width');
    }
  }
  // A wider level, a wider interval.
  assert.ok(confidenceInterval(A, 0.99)!.halfWidth > ci95(A)!.halfWidth);
});

test('interval edge cases: n = 1 and unknown variance give none, zero variance a point', () => {
  assert.equal(ci95([0.5]), undefined);
  assert.equal(ci95([]), undefined);
  assert.equal(ci95({ n: 10, mean: 1 }), undefined);
  assert.equal(ci95({ n: 10, mean: 1, variance: NaN }), undefined);
  assert.deepEqual(ci95([0.25, 0.25, 0.25]), { low: 0.25, high: 0.25, halfWidth: 0 });
  assert.deepEqual(sampleSummary([2]), { n: 1, mean: 2 });
  assert.throws(() => confidenceInterval(A, 1), RangeError);
});

test("Welch's test matches scipy ttest_ind(equal_var=False): t, Welch–Satterthwaite df, p", () => {
  // A against B: clearly different (p ≈ 1e-5).
  const ab = welch(A, B)!;
  close(ab.t, -6.810045198187259, 1e-10, 't');
  close(ab.df, 13.543477365668014, 1e-10, 'df');
  close(ab.p, 1.0054756397860354e-5, 1e-8, 'p');
  close(ab.difference, 0.510875 - 0.5464444444444445, 1e-10, 'difference');
  assert.ok(ab.p < ALPHA);
  // C against D: overlapping, no evidence of a difference.
  const cd = welch(C, D)!;
  close(cd.t, 0.1495666105174931, 1e-10, 't');
  close(cd.df, 5.668402743420181, 1e-10, 'df');
  close(cd.p, 0.8862851470929053, 1e-9, 'p');
  assert.ok(cd.p > ALPHA);
  // From summaries only (ttest_ind_from_stats(10, 2, 15, 11.5, 3, 12, equal_var=False)).
  const s = welch({ n: 15, mean: 10, variance: 4 }, { n: 12, mean: 11.5, variance: 9 })!;
  close(s.t, -1.4876541110413941, 1e-12, 't');
  close(s.df, 18.38651094141051, 1e-12, 'df');
  close(s.p, 0.15379180087921077, 1e-9, 'p');
  // One variance zero: df = n - 1 of the other (ttest_ind_from_stats(1, 0, 5, 1.2, 0.1, 6)).
  const z = welch({ n: 5, mean: 1, variance: 0 }, { n: 6, mean: 1.2, variance: 0.01 })!;
  close(z.t, -4.898979485566355, 1e-12, 't');
  close(z.df, 5, 1e-12, 'df');
  close(z.p, 0.0044784323104621266, 1e-9, 'p');
});

test("Welch's test edge cases: swapped sides, identical groups, no spread, too few values", () => {
  const ba = welch(B, A)!;
  const ab = welch(A, B)!;
  assert.equal(ba.p, ab.p);
  assert.equal(ba.t, -ab.t);
  const same = welch(A, [...A])!;
  assert.equal(same.t, 0);
  assert.equal(same.p, 1);
  assert.deepEqual(welch([1, 1, 1], [1, 1]), { difference: 0, t: 0, df: 3, p: 1 });
  assert.deepEqual(welch([1, 1, 1], [2, 2]), { difference: -1, t: -Infinity, df: 3, p: 0 });
  assert.equal(welch([1], A), undefined);
  assert.equal(welch(A, { n: 5, mean: 1 }), undefined);
});

test('compareWithFastest: the lowest mean, and which others differ from it at p < 0.05', () => {
  const groups = [
    { name: 'slow', values: B },
    { name: 'fast', values: A },
    { name: 'like fast', values: A.map((v, i) => v + (i % 2 === 0 ? 0.004 : -0.002)) },
    { name: 'one', values: [0.9] },
    { name: 'none', values: [] as number[] },
  ];
  const c = compareWithFastest(groups, (g) => (g.values.length > 0 ? sampleSummary(g.values) : undefined))!;
  assert.equal(c.fastest.name, 'fast');
  assert.deepEqual(
    c.others.map((o) => [o.item.name, o.differs]),
    [
      ['slow', true],
      ['like fast', false],
      ['one', undefined],
    ],
  );
  assert.equal(
    compareWithFastest([], () => undefined),
    undefined,
  );
});

test('verdictsPerSeries: each series against its own fastest; a series with nothing to test has no fastest', () => {
  const items = [
    { series: 'small', values: B },
    { series: 'large', values: C },
    { series: 'small', values: A },
    { series: 'large', values: D },
    { series: 'alone', values: A },
    { series: 'one each', values: [1] },
    { series: 'one each', values: [2] },
    { series: 'small', values: [] as number[] },
  ];
  const verdicts = verdictsPerSeries(
    items,
    (x) => x.series,
    (x) => (x.values.length > 0 ? sampleSummary(x.values) : undefined),
  );
  assert.deepEqual(
    verdicts.map((v) => v?.kind),
    ['slower', 'within-noise', 'fastest', 'fastest', 'untested', 'untested', 'untested', undefined],
  );
  // B against A, C against D: the p-values of the Welch test above.
  close(verdicts[0]!.kind === 'slower' ? verdicts[0]!.test.p : NaN, 1.0054756397860354e-5, 1e-8, 'p');
  close(verdicts[1]!.kind === 'within-noise' ? verdicts[1]!.test.p : NaN, 0.8862851470929053, 1e-9, 'p');
  assert.deepEqual([formatP(0.0004), formatP(0.0123), formatP(0.5)], ['<0.001', '0.012', '0.500']);
});
