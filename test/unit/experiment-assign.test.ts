// Arms and their assignment (--max-pdu A,B,..., --assign, --assign-seed): labels, permuted blocks balanced
// per calling AE title after every 2 x arms associations (also when the guard withdraws arms), round robin,
// uniform draws, and runs reproducible from their seed.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { armCsvLabel, armMetricLabel, makeArms, sameArms, splitArmList } from '../../src/experiment/arms.js';
import type { Arm } from '../../src/experiment/arms.js';
import { Assigner, BLOCK_REPEATS } from '../../src/experiment/assigner.js';
import type { AssignMode } from '../../src/experiment/assigner.js';
import { DeviceTable, deviceOf } from '../../src/experiment/devices.js';
import { ExperimentGeneration } from '../../src/experiment/generation.js';
import type { ExperimentRoute } from '../../src/experiment/generation.js';

/** Arms told 1 KB, 2 KB, ... (values do not matter to the assignment). */
const armsOf = (n: number): Arm[] =>
  makeArms(
    Array.from({ length: n }, (_, i) => `${i + 1}KB`),
    Array.from({ length: n }, (_, i) => (i + 1) * 1024),
  );

describe('arms', () => {
  test('labels are the sizes as written; a repeat gets #2, #3', () => {
    const arms = makeArms(['16KB', '1MB', '16KB', '65536', '16KB'], [16384, 1048576, 16384, 65536, 16384]);
    assert.deepEqual(arms, [
      { index: 0, label: '16KB', maxPdu: 16384 },
      { index: 1, label: '1MB', maxPdu: 1048576 },
      { index: 2, label: '16KB#2', maxPdu: 16384 },
      { index: 3, label: '65536', maxPdu: 65536 },
      { index: 4, label: '16KB#3', maxPdu: 16384 },
    ]);
  });

  test('16KB and 16384 are different labels, so two arms, not a repeat', () => {
    assert.deepEqual(
      makeArms(['16KB', '16384'], [16384, 16384]).map((a) => a.label),
      ['16KB', '16384'],
    );
  });

  test('lists: commas (flags, environment) or slashes (a --route value), blanks trimmed', () => {
    assert.deepEqual(splitArmList('16KB,64KB,128KB'), ['16KB', '64KB', '128KB']);
    assert.deepEqual(splitArmList('16KB/64KB/128KB'), ['16KB', '64KB', '128KB']);
    assert.deepEqual(splitArmList(' 16KB , 1MB'), ['16KB', '1MB']);
    assert.deepEqual(splitArmList('16KB'), ['16KB']);
  });

  test('labels in records: the label, or "" (CSV) and "none" (metrics) without an arm', () => {
    const [arm] = makeArms(['1MB'], [1048576]);
    assert.equal(armCsvLabel(arm), '1MB');
    assert.equal(armMetricLabel(arm), '1MB');
    assert.equal(armCsvLabel(undefined), '');
    assert.equal(armMetricLabel(undefined), 'none');
  });

  test('sameArms: labels and values in order', () => {
    assert.ok(sameArms(armsOf(3), armsOf(3)));
    assert.ok(!sameArms(armsOf(3), armsOf(2)));
    assert.ok(!sameArms(makeArms(['1KB', '2KB'], [1024, 2048]), makeArms(['2KB', '1KB'], [2048, 1024])));
  });
});

/** Count each arm's associations per device. */
function tally(counts: Map<string, number[]>, device: string, arm: Arm, arms: number): number[] {
  let c = counts.get(device);
  if (!c) counts.set(device, (c = new Array<number>(arms).fill(0)));
  c[arm.index]!++;
  return c;
}

describe('--assign block', () => {
  test('after every 2 x arms associations of a device its arms are equal, whatever the interleaving (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.nat(), fc.array(fc.constantFrom('CT01', 'MR01', 'US01'), { maxLength: 120 }), (n, seed, order) => {
        const assigner = new Assigner(armsOf(n), 'block', seed);
        const counts = new Map<string, number[]>();
        const seen = new Map<string, number>();
        for (const device of order) {
          const c = tally(counts, device, assigner.next(device), n);
          const k = (seen.get(device) ?? 0) + 1;
          seen.set(device, k);
          // Never more than one block apart; equal at every block's end.
          assert.ok(Math.max(...c) - Math.min(...c) <= BLOCK_REPEATS);
          if (k % (BLOCK_REPEATS * n) === 0) assert.deepEqual(new Set(c), new Set([k / n]), `${device} after ${k}: ${c.join(', ')}`);
        }
      }),
    );
  });

  test('the issue goal: 2 arms, 3 AE titles, after every 4 associations of a device its arms are equal', () => {
    const assigner = new Assigner(makeArms(['16KB', '1MB'], [16384, 1048576]), 'block', 2026);
    const counts = new Map<string, number[]>();
    const devices = ['CT01', 'MR01', 'US01'];
    for (let i = 0; i < 300; i++) {
      // An irregular interleaving: CT01 sends most.
      const device = devices[[0, 0, 1, 0, 2, 1, 0][i % 7]!]!;
      const c = tally(counts, device, assigner.next(device), 2);
      if ((c[0]! + c[1]!) % 4 === 0) assert.equal(c[0], c[1], `${device}: ${c.join(', ')}`);
    }
  });

  test('blocks are shuffled: not every device, nor every block, gets the same order', () => {
    const assigner = new Assigner(armsOf(2), 'block', 1);
    const orders = new Set<string>();
    for (let d = 0; d < 20; d++) {
      for (let b = 0; b < 3; b++) orders.add(Array.from({ length: 4 }, () => assigner.next(`D${d}`).index).join(''));
    }
    // 6 orders of {0,0,1,1} exist; 60 blocks show more than one.
    assert.ok(orders.size > 1, [...orders].join(' '));
  });

  test('withdrawn arms are left out; the arms in play stay equal at every block end (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 5 }), fc.nat(), fc.array(fc.tuple(fc.constantFrom('CT01', 'MR01'), fc.nat(99)), { maxLength: 150 }), (n, seed, steps) => {
        const arms = armsOf(n);
        const assigner = new Assigner(arms, 'block', seed);
        const inPlay = new Map<string, number[]>();
        const counts = new Map<string, number[]>();
        for (const [device, roll] of steps) {
          let play = inPlay.get(device) ?? arms.map((a) => a.index);
          // Now and then the guard withdraws one of the device's arms (never the last).
          if (roll < 8 && play.length > 1) play = play.filter((i) => i !== play[roll % play.length]);
          inPlay.set(device, play);
          const arm = assigner.next(device, play);
          assert.ok(play.includes(arm.index), `arm ${arm.index} is not in play (${play.join(',')})`);
          const c = tally(counts, device, arm, n);
          const inPlayCounts = play.map((i) => c[i]!);
          const total = inPlayCounts.reduce((s, x) => s + x, 0);
          // Every block, the one cut short by a withdrawal included, gives each arm in play BLOCK_REPEATS.
          if (total % (BLOCK_REPEATS * play.length) === 0) assert.equal(new Set(inPlayCounts).size, 1, `${device}: ${inPlayCounts.join(', ')}`);
        }
      }),
    );
  });

  test('one arm: always that arm', () => {
    const assigner = new Assigner(armsOf(1), 'block', 0);
    for (let i = 0; i < 10; i++) assert.equal(assigner.next('X').index, 0);
  });
});

describe('--assign rotate', () => {
  test('round robin per device from a seeded first arm; withdrawn arms skipped', () => {
    const assigner = new Assigner(armsOf(3), 'rotate', 5);
    const first = assigner.next('CT01').index;
    const seq = [first, ...Array.from({ length: 5 }, () => assigner.next('CT01').index)];
    assert.deepEqual(
      seq,
      [0, 1, 2, 0, 1, 2].map((i) => (i + first) % 3),
    );
    // Arm 1 withdrawn: 0, 2, 0, 2, ...
    const after = Array.from({ length: 4 }, () => assigner.next('CT01', [0, 2]).index);
    assert.deepEqual(new Set(after), new Set([0, 2]));
    for (let i = 1; i < after.length; i++) assert.notEqual(after[i], after[i - 1]);
  });

  test('each device has its own rotation', () => {
    const assigner = new Assigner(armsOf(2), 'rotate', 9);
    const a = [assigner.next('A').index, assigner.next('B').index, assigner.next('A').index, assigner.next('B').index];
    assert.notEqual(a[0], a[2]);
    assert.notEqual(a[1], a[3]);
  });
});

describe('--assign random', () => {
  test('draws only arms in play, about evenly (fixed seed: 3,000 draws, each arm 900..1100)', () => {
    const assigner = new Assigner(armsOf(3), 'random', 77);
    const c = [0, 0, 0];
    for (let i = 0; i < 3000; i++) c[assigner.next('CT01').index]!++;
    for (const x of c) assert.ok(x > 900 && x < 1100, c.join(', '));
    for (let i = 0; i < 50; i++) assert.notEqual(assigner.next('CT01', [0, 2]).index, 1);
  });
});

describe('--assign-seed: reproducible runs', () => {
  for (const mode of ['block', 'rotate', 'random'] as AssignMode[]) {
    test(`${mode}: a device's arms depend on the seed and its own associations, not on the other devices' traffic (property)`, () => {
      fc.assert(
        fc.property(fc.nat(), fc.array(fc.constantFrom('A', 'B', 'C'), { maxLength: 60 }), (seed, order) => {
          const arms = armsOf(3);
          const mixed = new Assigner(arms, mode, seed);
          const got = new Map<string, number[]>();
          for (const d of order) got.set(d, [...(got.get(d) ?? []), mixed.next(d).index]);
          for (const [device, seq] of got) {
            const alone = new Assigner(arms, mode, seed);
            assert.deepEqual(
              seq.map(() => alone.next(device).index),
              seq,
            );
          }
        }),
      );
    });
  }

  test('another seed, another sequence', () => {
    const seq = (seed: number) => {
      const a = new Assigner(armsOf(2), 'block', seed);
      return Array.from({ length: 40 }, () => a.next('CT01').index).join('');
    };
    assert.equal(seq(1), seq(1));
    assert.notEqual(seq(1), seq(2));
  });
});

describe('a reload with the same experiment', () => {
  test('the blocks carry over: balance holds across the switch', () => {
    const before = new Assigner(armsOf(2), 'block', 3);
    const c = [0, 0];
    for (let i = 0; i < 3; i++) c[before.next('CT01').index]!++;
    const after = new Assigner(armsOf(2), 'block', 3);
    assert.ok(after.continueFrom(before));
    c[after.next('CT01').index]!++;
    assert.deepEqual(c, [2, 2]);
  });

  test('other arms, mode or seed: a fresh start', () => {
    const before = new Assigner(armsOf(2), 'block', 3);
    assert.ok(!new Assigner(armsOf(3), 'block', 3).continueFrom(before));
    assert.ok(!new Assigner(armsOf(2), 'rotate', 3).continueFrom(before));
    assert.ok(!new Assigner(armsOf(2), 'block', 4).continueFrom(before));
  });
});

describe('devices', () => {
  test('a device is its calling AE title without padding', () => {
    assert.equal(deviceOf('CT01            '), 'CT01');
    assert.equal(deviceOf(' CT01'), 'CT01');
  });

  test('at most MAX devices remembered; the least recently used is forgotten', () => {
    let created = 0;
    const table = new DeviceTable(() => ++created, 3);
    table.get('A');
    table.get('B');
    table.get('C');
    table.get('A'); // A used again: B is now the oldest
    table.get('D');
    assert.equal(table.size, 3);
    assert.equal(table.peek('B'), undefined);
    assert.equal(table.peek('A'), 1);
    assert.equal(table.get('B'), 5, 'B starts afresh');
  });
});

describe('a generation of experiments (start, reload)', () => {
  const route = (id: string, labels: string[], extra: Partial<ExperimentRoute> = {}): ExperimentRoute => ({
    id,
    arms: makeArms(
      labels,
      labels.map((l) => parseInt(l, 10) * 1024),
    ),
    assign: 'block',
    guard: true,
    ...extra,
  });
  let draws = 0;
  const randomSeed = (): number => 1000 + ++draws;

  test('one experiment per route; the seed given, or one drawn; described for the log line', () => {
    draws = 0;
    const g = new ExperimentGeneration([route('ct', ['16KB', '64KB'], { assignSeed: 5 }), route('mr', ['1MB', '2MB'])], randomSeed);
    assert.equal(g.experiments.length, 2);
    assert.deepEqual(
      g.descriptions.map((d) => [d.route, d.arms, d.seed, d.seedGiven, d.carriedOver]),
      [
        ['ct', ['16KB', '64KB'], 5, true, false],
        ['mr', ['1MB', '2MB'], 1001, false, false],
      ],
    );
  });

  test('a reload that leaves a route alone carries on its blocks and drawn seed; a changed route starts afresh', () => {
    draws = 0;
    const first = new ExperimentGeneration([route('ct', ['16KB', '64KB']), route('mr', ['1MB', '2MB'])], randomSeed);
    const ct = first.experiments[0]!;
    const c = new Map<string, number>([
      ['16KB', 0],
      ['64KB', 0],
    ]);
    for (let i = 0; i < 3; i++) {
      const label = ct.assign('CT01')!.label;
      c.set(label, c.get(label)! + 1);
    }
    const second = new ExperimentGeneration([route('ct', ['16KB', '64KB']), route('mr', ['1MB', '4MB'])], randomSeed, first);
    assert.deepEqual(
      second.descriptions.map((d) => [d.route, d.seed, d.carriedOver]),
      [
        ['ct', 1001, true],
        ['mr', 1003, false],
      ],
    );
    // The block begun before the reload is finished after it: 2 and 2.
    const label = second.experiments[0]!.assign('CT01')!.label;
    c.set(label, c.get(label)! + 1);
    assert.deepEqual([...c.values()], [2, 2]);
  });

  test('another --assign or --assign-seed is another experiment', () => {
    draws = 0;
    const first = new ExperimentGeneration([route('ct', ['16KB', '64KB'], { assignSeed: 1 })], randomSeed);
    assert.equal(new ExperimentGeneration([route('ct', ['16KB', '64KB'], { assignSeed: 2 })], randomSeed, first).descriptions[0]!.carriedOver, false);
    assert.equal(new ExperimentGeneration([route('ct', ['16KB', '64KB'], { assignSeed: 1, assign: 'rotate' })], randomSeed, first).descriptions[0]!.carriedOver, false);
    assert.equal(new ExperimentGeneration([route('ct', ['16KB', '64KB'], { assignSeed: 1 })], randomSeed, first).descriptions[0]!.carriedOver, true);
  });
});
