// Descriptive statistics used by `stats` and `bench`. Percentiles are nearest-rank (PS: the value at rank
// ceil(p/100 * n) of the sorted sample), so every figure in a table is one of the measured values and can
// be checked by hand.

export interface Summary {
  n: number;
  mean: number;
  min: number;
  max: number;
  p50: number;
  p95: number;
  /** Sample variance (n - 1 denominator): what the confidence interval and Welch's test need. Absent when
   * n < 2, or when the summary was read from a file that does not keep it. */
  variance?: number;
}

/** Nearest-rank percentile of an ascending sample (n >= 1). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of an empty sample');
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

/** Summary of a sample; undefined for an empty one. */
export function summarize(values: readonly number[]): Summary | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const n = sorted.length;
  const mean = sorted.reduce((s, v) => s + v, 0) / n;
  const summary: Summary = { n, mean, min: sorted[0]!, max: sorted[n - 1]!, p50: percentile(sorted, 50), p95: percentile(sorted, 95) };
  // Two passes (the mean first): exact for values far from zero, unlike the sum of squares.
  if (n >= 2) summary.variance = sorted.reduce((s, v) => s + (v - mean) * (v - mean), 0) / (n - 1);
  return summary;
}

/** Mean of the defined values; undefined when there are none. */
export function meanOf(values: ReadonlyArray<number | undefined>): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined);
  if (defined.length === 0) return undefined;
  return defined.reduce((s, v) => s + v, 0) / defined.length;
}

/** Throughput unit: MB = 2^20 bytes, the same 1024-based MB as the PDU and image sizes (16MB = 16777216). */
export const MB = 1024 * 1024;

/** MB/s of `bytes` moved in `seconds` (sum of per-message durations: the rate one transfer sees). */
export function mbPerSecond(bytes: number, seconds: number): number | undefined {
  return seconds > 0 ? bytes / MB / seconds : undefined;
}
