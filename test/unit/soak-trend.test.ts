// The soak's growth verdict (test/soak/trend.ts): the least-squares line and its slope interval against a
// worked example, and the decisions it makes on made-up runs: flat noise, a leak, a warm-up, one spike.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { binMeans, fitLine, judgeGrowth, judgeRss, quantile } from '../soak/trend.js';
import type { IdleProbe, Point } from '../soak/trend.js';

/** Deterministic noise in [-1, 1). */
function noise(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return (x / 2 ** 32) * 2 - 1;
  };
}

/** A 30-minute run sampled every 2 s: `f(t)` plus noise of ±`amplitude`. */
function run(f: (t: number) => number, amplitude: number, seed = 1): Point[] {
  const r = noise(seed);
  return Array.from({ length: 900 }, (_, i) => ({ t: 2 * i, v: f(2 * i) + amplitude * r() }));
}

describe('fitLine', () => {
  test('a worked example: x 1..5, y 2 4 5 4 5', () => {
    // slope = Sxy/Sxx = 6/10 = 0.6, intercept 4 - 0.6·3 = 2.2; residuals -0.8 0.6 1 -0.6 -0.2, SSE 2.4;
    // se = sqrt(2.4/3/10) = 0.28284; t(0.975, 3) = 3.182446; half-width 0.900137.
    const fit = fitLine([2, 4, 5, 4, 5].map((v, i) => ({ t: i + 1, v })))!;
    assert.ok(Math.abs(fit.slope - 0.6) < 1e-12);
    assert.ok(Math.abs(fit.intercept - 2.2) < 1e-12);
    assert.ok(Math.abs(fit.low - (0.6 - 0.900137)) < 1e-5, `low ${fit.low}`);
    assert.ok(Math.abs(fit.high - (0.6 + 0.900137)) < 1e-5, `high ${fit.high}`);
  });

  test('an exact line has a zero-width interval; under 3 points or one time, no fit', () => {
    const fit = fitLine([0, 1, 2, 3].map((t) => ({ t, v: 5 - 2 * t })))!;
    assert.equal(fit.slope, -2);
    assert.ok(Math.abs(fit.high - fit.low) < 1e-12);
    assert.equal(
      fitLine([
        { t: 0, v: 1 },
        { t: 1, v: 2 },
      ]),
      undefined,
    );
    assert.equal(
      fitLine([
        { t: 3, v: 1 },
        { t: 3, v: 2 },
        { t: 3, v: 5 },
      ]),
      undefined,
    );
  });
});

test('binMeans: means per bin at the mean time of its points; empty bins left out', () => {
  assert.deepEqual(
    binMeans(
      [
        { t: 0, v: 1 },
        { t: 10, v: 3 },
        { t: 31, v: 10 },
        { t: 95, v: 4 },
      ],
      30,
    ),
    [
      { t: 5, v: 2 },
      { t: 31, v: 10 },
      { t: 95, v: 4 },
    ],
  );
});

describe('judgeGrowth on a 30-minute run (MiB, tolerance 0.5 MiB/min)', () => {
  const judge = (points: Point[]) => judgeGrowth(points, { tolerancePerMinute: 0.5 });

  test('flat with noise of ±10 MiB: flat, and the interval holds 0', () => {
    const t = judge(run(() => 100, 10));
    assert.equal(t.verdict, 'flat');
    assert.ok(t.includesZero, `[${t.lowPerMinute}, ${t.highPerMinute}]`);
    assert.equal(t.bins, 30, 'the second half in 30-s bins');
  });

  test('a leak of 2 MiB/min under the same noise: growth, the slope found within its interval', () => {
    const t = judge(run((s) => 100 + (2 * s) / 60, 10));
    assert.equal(t.verdict, 'growth');
    assert.ok(t.lowPerMinute <= 2 && 2 <= t.highPerMinute, `[${t.lowPerMinute}, ${t.highPerMinute}]`);
  });

  test('a leak under the tolerance (0.2 MiB/min) is not called growth, though it is not 0', () => {
    const t = judge(run((s) => 100 + (0.2 * s) / 60, 1));
    assert.equal(t.verdict, 'flat');
    assert.ok(!t.includesZero);
  });

  test('a warm-up (50 MiB over the first 10 minutes, then flat) is left out: flat', () => {
    const t = judge(run((s) => 100 + Math.min(s, 600) / 12, 5));
    assert.equal(t.verdict, 'flat');
  });

  test('one sample 60 MiB high near the end does not make growth', () => {
    const points = run(() => 100, 5);
    points[890]!.v += 60;
    assert.equal(judge(points).verdict, 'flat');
  });

  test('too few samples to judge', () => {
    assert.equal(judge(run(() => 1, 0).slice(0, 40)).verdict, 'too-few-samples');
  });
});

test('quantile interpolates between order statistics', () => {
  assert.equal(quantile([5, 1, 3], 0.5), 3);
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(quantile([10, 20], 0.99), 19.9);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});

describe('judgeRss: a leak or pages malloc keeps free', () => {
  const judge = (points: Point[]) => judgeGrowth(points, { tolerancePerMinute: 0.5 });
  // A step: RSS 120 MiB, then 130 MiB from minute 20 on (a new high-water mark left pages behind).
  const stepped = judge(run((s) => (s < 1200 ? 120 : 130), 1));
  const leaking = judge(run((s) => 100 + (2 * s) / 60, 1));
  const flat = judge(run(() => 120, 1));
  // Idle probes at minute 13.5 and 30.
  const probe = (t: number, rssMiB: number, inUseMiB: number | undefined): IdleProbe => ({ t, rssMiB, inUseMiB });

  test('preconditions: the step and the leak are growth by their slope, the flat run is not', () => {
    assert.equal(stepped.verdict, 'growth');
    assert.equal(leaking.verdict, 'growth');
    assert.equal(flat.verdict, 'flat');
  });

  test('RSS up 10 MiB, memory in use the same: retained, in use +0/min', () => {
    const j = judgeRss(stepped, probe(810, 120, 30), probe(1800, 130, 30));
    assert.equal(j.verdict, 'retained');
    assert.ok(Math.abs(j.inUsePerMinute!) < 1e-9);
  });

  test('RSS up 33 MiB in 16.5 min, in use too: growth (2 MiB/min in use)', () => {
    const j = judgeRss(leaking, probe(810, 127, 30), probe(1800, 160, 63));
    assert.equal(j.verdict, 'growth');
    assert.ok(Math.abs(j.inUsePerMinute! - 2) < 1e-9, String(j.inUsePerMinute));
  });

  test('in use grows by more than the tolerance while RSS is flat (free chunks used up): growth', () => {
    const j = judgeRss(flat, probe(810, 120, 30), probe(1800, 120, 50));
    assert.equal(j.verdict, 'growth');
    assert.match(j.why, /living off free chunks/);
  });

  test('in use grows by less than the tolerance: RSS decides (flat stays flat)', () => {
    assert.equal(judgeRss(flat, probe(810, 120, 30), probe(1800, 121, 31)).verdict, 'flat');
  });

  test('without malloc figures (no gdb, no probe) the slope alone decides', () => {
    assert.equal(judgeRss(stepped, probe(810, 120, undefined), probe(1800, 130, undefined)).verdict, 'growth');
    assert.equal(judgeRss(stepped, undefined, undefined).verdict, 'growth');
    assert.equal(judgeRss(flat, undefined, undefined).verdict, 'flat');
  });
});
