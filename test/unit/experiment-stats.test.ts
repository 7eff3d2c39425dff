// The experiment's numbers: the seeded generator against its published reference vector, and Fisher's
// exact test against values from SciPy 1.17 (scipy.stats.fisher_exact(table, alternative='greater')), which
// agree with R's fisher.test(alternative = "greater"). Relative tolerance 1e-8: the terms come from sums of
// logarithms near 2e6 for the largest tables here, where one unit in the last place is 5e-10.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fisherExactGreater } from '../../src/experiment/fisher.js';
import { seededRandom, shuffle, xoshiro128ss } from '../../src/experiment/random.js';

describe('xoshiro128**', () => {
  test('the reference outputs for the state {1, 2, 3, 4} (Blackman and Vigna; rand_xoshiro tests the same)', () => {
    const r = xoshiro128ss([1, 2, 3, 4]);
    const got = Array.from({ length: 10 }, () => r.next());
    assert.deepEqual(got, [11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849, 3729100597, 4258142804]);
  });

  test('same seed and stream, same numbers; another stream or seed, others', () => {
    const draw = (seed: number, stream: string) => {
      const r = seededRandom(seed, stream);
      return Array.from({ length: 8 }, () => r.next());
    };
    assert.deepEqual(draw(42, 'CT01'), draw(42, 'CT01'));
    assert.notDeepEqual(draw(42, 'CT01'), draw(42, 'CT02'));
    assert.notDeepEqual(draw(42, 'CT01'), draw(43, 'CT01'));
  });

  test('int(n) stays in 0..n-1 and covers it evenly (chi-square over 60,000 draws of a fixed seed)', () => {
    const r = seededRandom(7, 'uniform');
    const n = 6;
    const counts = new Array<number>(n).fill(0);
    for (let i = 0; i < 60_000; i++) {
      const k = r.int(n);
      assert.ok(k >= 0 && k < n && Number.isInteger(k));
      counts[k]!++;
    }
    const expected = 10_000;
    const chi2 = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    // 5 degrees of freedom: P(chi2 > 20.5) = 0.001. The draws are fixed by the seed: this cannot flake.
    assert.ok(chi2 < 20.5, `chi-square ${chi2.toFixed(2)} for ${counts.join(', ')}`);
  });

  test('int(n) rejects what is not a whole number from 1 to 2^32', () => {
    const r = seededRandom(1);
    for (const n of [0, -1, 1.5, 2 ** 32 + 1, Number.NaN]) assert.throws(() => r.int(n), RangeError);
    assert.equal(r.int(1), 0);
  });

  test('shuffle is a permutation', () => {
    fc.assert(
      fc.property(fc.array(fc.integer(), { maxLength: 30 }), fc.nat(), (items, seed) => {
        const out = shuffle([...items], seededRandom(seed));
        assert.deepEqual(
          [...out].sort((a, b) => a - b),
          [...items].sort((a, b) => a - b),
        );
      }),
    );
  });
});

describe("Fisher's exact test, one-sided (greater)", () => {
  // [failed, ok] of the arm, [failed, ok] of the reference: p from SciPy.
  const fixtures: Array<[[number, number], [number, number], number, string]> = [
    [[3, 1], [1, 3], 0.24285714285714283, "Fisher's tea tasting: 17/70"],
    [[4, 0], [0, 4], 0.014285714285714284, '1/C(8,4) = 1/70: four out of four is not below 0.01'],
    [[10, 0], [0, 10], 5.412544112234515e-6, '1/C(20,10)'],
    [[5, 5], [0, 10], 0.016253869969040248, 'half failed against none: C(10,5)/C(20,5), not below 0.01'],
    [[3, 0], [0, 3], 0.05000000000000001, 'three failures against three ok: 1/C(6,3)'],
    [[3, 0], [0, 7], 0.008333333333333333, 'three failures against seven ok: 1/C(10,3), below 0.01'],
    [[2, 0], [0, 2], 0.16666666666666666, '1/C(4,2)'],
    [[6, 4], [1, 9], 0.028637770897832815, 'a real difference, still noise at 0.01'],
    [[1, 999], [0, 1000], 0.5, 'one failure in 1000: a coin toss which arm had it'],
    [[30, 70], [10, 90], 0.0003252053538017104, '30% against 10% over 100 each'],
    [[0, 5], [3, 2], 1, 'no failure at all: 1'],
    [[1, 9], [100, 900], 0.6530548790498041, 'the same rate: not significant'],
    [[50, 950], [100, 900], 0.9999937256384517, 'the arm is better: p near 1'],
    [[12, 3], [2, 13], 0.00033945875359533864, '12/15 against 2/15'],
    [[4, 2], [1, 10], 0.027634130575307045, 'unequal rows'],
    // Exactly 0.5 (one failure among 200,000: P(it is the arm's) = 100000/200000); SciPy gives 0.49999999998853.
    [[1, 99999], [0, 100000], 0.5, 'large counts'],
    [[2, 3000], [0, 3000], 0.2501249791701383, 'large counts, few failures'],
    [[40, 60], [1000, 9000], 4.8985571156241146e-15, 'a tiny p'],
    [[1, 9999], [9999, 1], 1, 'the far lower tail (its terms underflow a double): 1, never 0'],
    [[9999, 1], [1, 9999], 0, 'the far upper tail: 0 (below the smallest double)'],
    [[1, 0], [10000, 0], 1, 'the reference never succeeded: 1'],
  ];
  for (const [[a, b], [c, d], want, why] of fixtures) {
    test(`[[${a}, ${b}], [${c}, ${d}]] p = ${want} (${why})`, () => {
      const got = fisherExactGreater(a, b, c, d);
      assert.ok(Math.abs(got - want) <= 1e-8 * want || Math.abs(got - want) < 1e-300, `got ${got}, want ${want}`);
    });
  }

  test('an empty table or an empty row: 1', () => {
    assert.equal(fisherExactGreater(0, 0, 0, 0), 1);
    assert.equal(fisherExactGreater(0, 0, 3, 4), 1);
    assert.equal(fisherExactGreater(3, 4, 0, 0), 1);
  });

  test('not counts: RangeError', () => {
    assert.throws(() => fisherExactGreater(-1, 0, 0, 0), RangeError);
    assert.throws(() => fisherExactGreater(1.5, 0, 0, 0), RangeError);
  });

  test('a probability, and more failures never make it larger (property)', () => {
    fc.assert(
      fc.property(fc.nat(60), fc.nat(60), fc.nat(60), fc.nat(60), (a, b, c, d) => {
        const p = fisherExactGreater(a, b, c, d);
        assert.ok(p >= 0 && p <= 1, `p = ${p}`);
        // One ok of the arm turned into a failure: the evidence against it can only grow.
        if (b > 0) assert.ok(fisherExactGreater(a + 1, b - 1, c, d) <= p + 1e-12);
      }),
    );
  });
});
