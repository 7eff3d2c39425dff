// stats for an experiment (issue 25 item 5): the size-adjusted effect of each arm, its bootstrap interval
// over associations, the verdicts, the share check, and older files without the arm columns. The data are
// synthetic (test/helpers/experiment-data.ts) with a known effect and mixed sizes.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { addMessage, ArmUnits, armVerdict, bootstrapRatios, emptySums, fitArms, ratioOf } from '../../src/analysis/arm-effect.js';
import type { Sums } from '../../src/analysis/arm-effect.js';
import { chiSquareTail, equalSharesTest } from '../../src/analysis/chi-square.js';
import { withEngine } from '../../src/analysis/engine.js';
import { analyseExperiment } from '../../src/analysis/experiment.js';
import type { ArmRow, Experiment, ExperimentOptions } from '../../src/analysis/experiment.js';
import { createViews, openLogs } from '../../src/analysis/logs.js';
import { stats, StatsUsageError } from '../../src/cli/stats.js';
import { seededRandom } from '../../src/experiment/random.js';
import { writeExperimentCsv } from '../helpers/experiment-data.js';
import type { ExperimentSpec } from '../helpers/experiment-data.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'experiment-unit-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let files = 0;
async function csv(spec: ExperimentSpec): Promise<string> {
  const file = path.join(tmp, `messages-${++files}.csv`);
  await writeExperimentCsv(file, spec);
  return file;
}

async function experimentOf(file: string, o: ExperimentOptions = {}): Promise<Experiment | undefined> {
  return withEngine(async (engine) => {
    await createViews(engine, await openLogs(engine, [file]));
    return analyseExperiment(engine, o);
  });
}

const arm = (e: Experiment, label: string, stratum?: string): ArmRow => {
  const r = e.rows.find((x) => x.arm === label && x.stratum === stratum);
  assert.ok(r, `row ${label} ${stratum ?? ''}`);
  return r;
};

const AB = (ratio: number): ExperimentSpec['arms'] => [
  { label: '16KB', maxPdu: 16384, ratio: 1 },
  { label: '64KB', maxPdu: 65536, ratio },
];

/** Sums of messages given as [bytes, ms] pairs. */
const sums = (messages: ReadonlyArray<readonly [number, number]>): Sums => messages.reduce((s, [b, ms]) => addMessage(s, b, ms), emptySums());

test('the fit: one intercept per arm, a common slope; exact on noiseless data', () => {
  // duration = 2 · bytes^0.8 in arm 0, 1.25 times as long in arm 1: arm 1's throughput ratio is 0.8.
  const sizes = [1e5, 1e6, 4e6, 3e7];
  const a = sums(sizes.map((b) => [b, 2 * b ** 0.8]));
  const b = sums(sizes.slice(1).map((x) => [x, 2.5 * x ** 0.8]));
  const fit = fitArms([a, b]);
  assert.ok(Math.abs(fit.slope - 0.8) < 1e-9, `slope ${fit.slope}`);
  assert.ok(Math.abs(ratioOf(fit, 1, 0) - 0.8) < 1e-9);
  assert.ok(fit.residualSd.every((sd) => sd < 1e-6));
  // One size only: no slope, the ratio is that of the geometric means.
  const same = fitArms([sums([[1e6, 10]]), sums([[1e6, 20]])]);
  assert.equal(same.slope, 0);
  assert.ok(Math.abs(ratioOf(same, 1, 0) - 0.5) < 1e-12);
});

test('chi-square tail against scipy (chi2.sf) and the equal-shares test', () => {
  // scipy.stats.chi2.sf(3.841458820694124, 1) = 0.05; chi2.sf(10, 3) = 0.018566135463043; sf(x, 2) = exp(-x/2).
  assert.ok(Math.abs(chiSquareTail(3.841458820694124, 1) - 0.05) < 1e-12);
  assert.ok(Math.abs(chiSquareTail(10, 3) - 0.018566135463043) < 1e-12);
  assert.ok(Math.abs(chiSquareTail(0.5, 2) - Math.exp(-0.25)) < 1e-14);
  // df 4: sf(x) = exp(-x/2) (1 + x/2), far in the tail too.
  const tail = Math.exp(-50) * 51;
  assert.ok(Math.abs(chiSquareTail(100, 4) - tail) / tail < 1e-10);
  // 60 against 40: (10² + 10²) / 50 = 4, df 1.
  const t = equalSharesTest([60, 40])!;
  assert.equal(t.statistic, 4);
  assert.equal(t.df, 1);
  assert.ok(Math.abs(t.p - 0.0455002638963584) < 1e-12);
  assert.equal(equalSharesTest([5]), undefined);
});

test('the verdicts: thresholds and the ±5% margin', () => {
  assert.equal(armVerdict({ low: 1.08, high: 1.2 }, 30, 30), 'faster');
  assert.equal(armVerdict({ low: 0.7, high: 0.9 }, 30, 30), 'slower');
  assert.equal(armVerdict({ low: 0.97, high: 1.04 }, 30, 30), 'no practical difference');
  // Above 1 but within the margin: no practical difference, not faster.
  assert.equal(armVerdict({ low: 1.01, high: 1.04 }, 30, 30), 'no practical difference');
  // Across 1 and beyond the margin: the data cannot tell.
  assert.equal(armVerdict({ low: 0.9, high: 1.1 }, 30, 30), 'not enough data');
  // Fewer than 10 timed associations on either side.
  assert.equal(armVerdict({ low: 1.5, high: 1.6 }, 9, 30), 'not enough data');
  assert.equal(armVerdict({ low: 1.5, high: 1.6 }, 30, 9), 'not enough data');
  assert.equal(armVerdict(undefined, 30, 30), 'not enough data');
});

test('the bootstrap is seeded: same seed, same interval; another seed, another', () => {
  const generator = seededRandom(3);
  const random = (): number => generator.next() / 2 ** 32;
  const unit = (arm: number): Sums => sums([[1e6 * (1 + random()), (arm ? 8 : 10) * Math.exp(0.2 * (random() - 0.5))]]);
  const arms = [new ArmUnits(Array.from({ length: 30 }, () => unit(0))), new ArmUnits(Array.from({ length: 30 }, () => unit(1)))];
  const run = (seed: number) => bootstrapRatios(arms, 0, { replicates: 400, level: 0.95, random: seededRandom(seed) })[1]!;
  assert.deepEqual(run(1), run(1));
  assert.notDeepEqual(run(1), run(2));
  assert.equal(bootstrapRatios(arms, 0, { replicates: 10, level: 0.95, random: seededRandom(1) })[0], undefined, 'none for the reference');
});

test('a known effect with mixed sizes is recovered, its interval covers it, the verdict is right', async () => {
  // 64KB is 20% faster at equal size; 64KB is also given smaller images: seconds per message flatter it more.
  const file = await csv({ associations: 400, arms: AB(1.2), sizes: (k) => (k === 0 ? [1e6, 64e6] : [256e3, 16e6]), seed: 11 });
  const e = (await experimentOf(file))!;
  assert.deepEqual(e.arms, ['16KB', '64KB']);
  assert.equal(e.baseline, '16KB');
  const b = arm(e, '64KB');
  assert.ok(Math.abs(b.ratio! - 1.2) < 0.06, `ratio ${b.ratio}`);
  assert.ok(b.low! < 1.2 && 1.2 < b.high!, `interval ${b.low}-${b.high}`);
  assert.equal(b.verdict, 'faster');
  assert.equal(arm(e, '16KB').reference, true);
  // The other way round: the reference is 64KB, 16KB is slower by 1/1.2.
  const r = (await experimentOf(file, { baseline: '64KB' }))!;
  const s = arm(r, '16KB');
  assert.ok(s.low! < 1 / 1.2 && 1 / 1.2 < s.high!);
  assert.equal(s.verdict, 'slower');
});

test('per device (--by calling_aet): each device its own effect', async () => {
  const ratios: Record<string, number> = { CT1: 1.3, MR1: 1, US1: 0.8 };
  const file = await csv({ associations: 600, arms: [AB(1)[0]!, { label: '64KB', maxPdu: 65536, ratio: (d) => ratios[d]! }], seed: 5, sdAssoc: 0.05, sdMessage: 0.08 });
  const e = (await experimentOf(file, { by: 'calling_aet' }))!;
  assert.deepEqual(
    e.rows.map((r) => `${r.stratum} ${r.arm}`),
    ['CT1 16KB', 'CT1 64KB', 'MR1 16KB', 'MR1 64KB', 'US1 16KB', 'US1 64KB'],
  );
  for (const [device, truth] of Object.entries(ratios)) {
    const r = arm(e, '64KB', device);
    assert.ok(r.low! < truth && truth < r.high!, `${device}: ${r.low}-${r.high} holds ${truth}`);
  }
  assert.equal(arm(e, '64KB', 'CT1').verdict, 'faster');
  assert.equal(arm(e, '64KB', 'MR1').verdict, 'no practical difference');
  assert.equal(arm(e, '64KB', 'US1').verdict, 'slower');
});

test('the interval covers the truth in most of 12 seeded data sets (95% nominal)', async () => {
  let covered = 0;
  const truth = 1.1;
  await withEngine(async (engine) => {
    for (let seed = 1; seed <= 12; seed++) {
      const file = await csv({ associations: 120, arms: AB(truth), seed: 100 + seed });
      await createViews(engine, await openLogs(engine, [file]));
      const r = arm((await analyseExperiment(engine, { replicates: 500 }))!, '64KB');
      if (r.low! < truth && truth < r.high!) covered++;
    }
  });
  // With a true 95% coverage, 10 or more of 12 happen with probability 0.98.
  assert.ok(covered >= 10, `covered ${covered} of 12`);
});

test('not enough data: the threshold, and an A/A interval too wide to say', async () => {
  const few = await csv({ associations: 16, arms: AB(1.5), seed: 3 });
  const e = (await experimentOf(few))!;
  assert.ok(arm(e, '64KB').timedAssociations < 10);
  assert.equal(arm(e, '64KB').verdict, 'not enough data');
  const { text } = await stats([few], {});
  assert.match(text, /not enough data = fewer than 10 timed associations in the arm or the reference/);
});

test('A/A: two arms told the same size make no practical difference', async () => {
  const file = await csv({ associations: 1600, arms: [AB(1)[0]!, { label: '16KB#2', maxPdu: 16384, ratio: 1 }], seed: 21, sdAssoc: 0.05, sdMessage: 0.1 });
  const e = (await experimentOf(file))!;
  assert.deepEqual(e.arms, ['16KB', '16KB#2']);
  const r = arm(e, '16KB#2');
  assert.equal(r.verdict, 'no practical difference', `${r.low}-${r.high}`);
});

test('the share check: unequal shares give one warning line; permuted blocks none', async () => {
  const skewed = await csv({ associations: 300, arms: AB(1), weights: [3, 1], seed: 8 });
  const { text } = await stats([skewed], {});
  const warnings = text.split('\n').filter((l) => l.startsWith('warning:'));
  assert.equal(warnings.length, 1, text);
  assert.match(warnings[0]!, /associations per arm 16KB \d+, 64KB \d+ are not the equal shares intended \(chi-square [\d.]+, df 1, p < 0\.001/);
  const balanced = await csv({ associations: 300, arms: AB(1), seed: 8 });
  assert.doesNotMatch((await stats([balanced], {})).text, /^warning:/m);
  // Per device, each device is checked: one device with one arm only.
  const e = (await experimentOf(skewed, { by: 'calling_aet' }))!;
  assert.equal(e.shares.length, 3);
});

test('an older file without the arm columns prints what it printed before', async () => {
  const older = await csv({ associations: 40, arms: AB(1.2), seed: 2, older: true });
  const { text } = await stats([older], {});
  assert.doesNotMatch(text, /experiment/);
  assert.match(text.split('\n')[0]!, /^\d+ messages from 1 messages CSV file\(s\), by max_pdu;/);
  // One arm only: no experiment either.
  const one = await csv({ associations: 20, arms: [AB(1)[0]!], seed: 2 });
  assert.doesNotMatch((await stats([one], {})).text, /^experiment/);
  await assert.rejects(
    stats([one], { baseline: '16KB' }),
    (err: Error) => err instanceof StatsUsageError && /--baseline needs a messages CSV whose rows hold more than one arm/.test(err.message),
  );
  // An older file read with a newer one: its rows have no arm and stay out of the experiment.
  const newer = await csv({ associations: 60, arms: AB(1.2), seed: 4 });
  const both = await stats([older, newer], {});
  assert.match(both.text, /^experiment: 2 arms \(16KB, 64KB\)/);
  assert.match(both.text, /\n\(empty\) /, 'the usual table per arm shows the older rows as (empty)');
});

test('stats prints the table; bad --baseline and --seed are one line each', async () => {
  const file = await csv({ associations: 200, arms: [...AB(1.2), { label: '128KB', maxPdu: 131072, ratio: 1.25 }], seed: 9 });
  const { text } = await stats([file], { seed: 4 });
  const lines = text.split('\n');
  assert.match(lines[0]!, /^experiment: 3 arms \(16KB, 64KB, 128KB\), reference 16KB \(the first arm: smallest max PDU; --baseline ARM for another\);/);
  assert.deepEqual(lines[1]!.split(/\s{2,}/), ['arm', 'assocs', 'messages', 'MB', 'median MB/s', 'share', 'resid sd', 'effect', 'ci95 low', 'ci95 high', 'verdict']);
  assert.match(lines[2]!, /^16KB\s.*\sreference\s+-\s+-\s+-$/);
  assert.match(lines[3]!, /^64KB\s.*\s1\.\d{3}\s+1\.\d{3}\s+1\.\d{3}\s+faster$/);
  assert.match(text, /1000 replicates resampling associations within each arm \(--seed 4\)/);
  assert.equal((await stats([file], { seed: 4 })).text, text, 'reproducible');
  await assert.rejects(stats([file], { baseline: '32KB' }), /--baseline: "32KB" is not an arm of these files \(16KB, 64KB, 128KB\)/);
  await assert.rejects(stats([file], { seed: '-1' }), /--seed: "-1" is not a whole number from 0 to 4294967295/);
  await assert.rejects(stats([file], { seed: 'x' }), StatsUsageError);
});

test('beyond the cap, associations resampled in groups give about the same interval', async () => {
  const file = await csv({ associations: 1200, arms: AB(1.1), messages: [1, 3], seed: 13 });
  const whole = arm((await experimentOf(file))!, '64KB');
  const grouped = arm((await experimentOf(file, { maxUnitsPerArm: 100 }))!, '64KB');
  assert.ok(Math.abs(whole.ratio! / grouped.ratio! - 1) < 1e-12, 'the fit does not depend on the groups');
  const width = (r: ArmRow): number => Math.log(r.high!) - Math.log(r.low!);
  assert.ok(width(grouped) / width(whole) > 0.75 && width(grouped) / width(whole) < 1.33, `${width(grouped)} vs ${width(whole)}`);
});

test('failed messages are counted but not timed', async () => {
  const file = await csv({ associations: 60, arms: AB(1.2), failEvery: 5, seed: 6 });
  const e = (await experimentOf(file))!;
  const r = arm(e, '64KB');
  assert.ok(r.timedMessages < r.messages);
  assert.equal(
    e.timedMessages,
    e.rows.reduce((n, x) => n + x.timedMessages, 0),
  );
});

test('the report: the experiment table, the forest plot (a line per device and arm, 1, the ±5% band), the warning', async () => {
  const file = await csv({ associations: 240, arms: [...AB(1.2), { label: '16KB#2', maxPdu: 16384, ratio: 1 }], weights: [4, 1, 1], seed: 17 });
  const html = path.join(tmp, 'report.html');
  await stats([file], { html, by: 'calling_aet' });
  const page = (await import('node:fs')).readFileSync(html, 'utf8');
  const section = /<section id="experiment">[\s\S]*?<\/section>/.exec(page)?.[0];
  assert.ok(section, 'an experiment section');
  assert.match(section, /<table id="experiment-table">/);
  // 3 devices x 3 arms.
  assert.equal((/<table id="experiment-table">[\s\S]*?<\/table>/.exec(section)![0].match(/<tr>/g) ?? []).length, 1 + 9);
  assert.match(section, /<figure id="forest-chart"><svg /);
  assert.match(section, /role="alert">warning: calling_aet /);
  const svg = /<figure id="forest-chart">([\s\S]*?)<figcaption>/.exec(section)![1]!;
  // One label per device and compared arm (the reference is 1 by definition), and the axis names the band.
  for (const device of ['CT1', 'MR1', 'US1']) for (const label of ['16KB#2', '64KB']) assert.ok(svg.includes(`${device} · ${label}`), `${device} · ${label}`);
  assert.ok(!svg.includes('CT1 · 16KB<'), 'no line for the reference');
  assert.match(svg, /band: ±5%/);
});
