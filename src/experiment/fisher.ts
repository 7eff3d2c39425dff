// Fisher's exact test, one-sided, on a 2x2 table of association outcomes:
//
//                 failed   ok
//     arm         a        b
//     reference   c        d
//
// p = P(X >= a) where X, the failures of the arm, is hypergeometric given the table's margins (the failures
// a + c shared among a + b and c + d associations): the chance of the arm failing at least this much more
// than the reference if both failed alike. Same value as R's fisher.test(alternative = "greater") and SciPy's
// fisher_exact(alternative='greater') on [[a, b], [c, d]].

/** ln(n!) for n = 0..length-1, grown on demand (sums of logs: exact to a few ulps for the sizes here). */
let logFactorials = new Float64Array([0, 0]);

function logFactorial(n: number): number {
  if (n >= logFactorials.length) {
    const grown = new Float64Array(Math.max(n + 1, logFactorials.length * 2));
    grown.set(logFactorials);
    for (let i = logFactorials.length; i < grown.length; i++) grown[i] = grown[i - 1]! + Math.log(i);
    logFactorials = grown;
  }
  return logFactorials[n]!;
}

/** ln C(n, k). */
function logChoose(n: number, k: number): number {
  return logFactorial(n) - logFactorial(k) - logFactorial(n - k);
}

/**
 * One-sided p-value that the first row's share in the first column is greater than the second row's
 * (a, b, c, d: counts, whole numbers >= 0). 1 when a is as low as the margins allow (a = 0, an empty row).
 */
export function fisherExactGreater(a: number, b: number, c: number, d: number): number {
  for (const n of [a, b, c, d]) if (!Number.isInteger(n) || n < 0) throw new RangeError(`fisherExactGreater: ${n} is not a count`);
  const row1 = a + b;
  const row2 = c + d;
  const col1 = a + c;
  const total = row1 + row2;
  const least = Math.max(0, col1 - row2);
  const most = Math.min(row1, col1);
  if (a <= least) return 1;
  const logDenominator = logChoose(total, col1);
  const pmf = (k: number): number => Math.exp(logChoose(row1, k) + logChoose(row2, col1 - k) - logDenominator);
  // P(X = k+1) / P(X = k): each term from its neighbour, no logarithms in the loop.
  const up = (k: number): number => ((row1 - k) * (col1 - k)) / ((k + 1) * (row2 - col1 + k + 1));
  // Sum the tail that lies beyond the mean, starting from its largest term, so the terms only shrink: a
  // term too small for a double then is too small to matter (summing up from a tail term that underflowed
  // to 0 would give p = 0 where p is near 1).
  if (a > (row1 * col1) / total) {
    let term = pmf(a);
    let p = term;
    for (let k = a; k < most && term > 0; k++) {
      term *= up(k);
      p += term;
    }
    return Math.min(1, p);
  }
  let term = pmf(a - 1);
  let below = term;
  for (let k = a - 1; k > least && term > 0; k--) {
    term /= up(k - 1);
    below += term;
  }
  return Math.min(1, Math.max(0, 1 - below));
}
