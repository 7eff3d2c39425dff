// npm run check:experiment — the A/A and A/B goals of issue 25, end to end through the real proxy.
//
// Each run: the built-in SCP with a known cost per P-DATA-TF (--pdata-delay), the proxy with two arms
// (--assign block, --assign-seed = the run's seed) writing its messages CSV, and four devices in parallel
// (two DCMTK storescu, two built-in SCUs, each its own calling AE title) sending associations of 2 to 5
// images of mixed sizes (256 KB to 2 MB of pixel data). Then `stats`' analysis of the CSV, all devices
// together (one effect per run) and per device.
//
// - A/A: 20 runs with two arms told the same size (--max-pdu 16KB,16KB). Goal: `faster` or `slower` in at
//   most 1 of 20.
// - A/B: 20 runs with 16KB against 20KB. The SCP spends --pdata-delay per PDU, so a data set costs its
//   PDU count times the delay: 20KB takes 1.25 times fewer PDUs, and the effect this implies is computed
//   per run (the same regression over PDUs × delay + the run's median remainder). Goals: the effect found
//   (`faster`) in at least 19 of 20, the interval holding the computed effect in at least 18.
//
// It prints one line per run and a summary, and writes runs.csv to --out. A benchmark, not a test: it takes
// minutes, and a loaded machine adds noise (the timers, the senders) but no bias between arms.
//
// Options: --runs N (default 20 of each), --only aa|ab, --delay MS (default 3), --associations N (per
// device and run, default 16), --seed N (the first run's seed, default 1), --out DIR (default
// $TMPDIR/dpp-experiment-check).

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ArmRow, Experiment } from '../src/analysis/experiment.js';
import { imagePool, runExperiment } from '../test/helpers/experiment-run.js';
import type { Device, RunOutcome } from '../test/helpers/experiment-run.js';
import { killAll } from '../test/helpers/procs.js';

function arg(flag: string, fallback: string): string {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}
const runs = Number(arg('--runs', '20'));
const only = arg('--only', '');
const delayMs = Number(arg('--delay', '3'));
const associations = Number(arg('--associations', '16'));
const firstSeed = Number(arg('--seed', '1'));
const out = arg('--out', path.join(os.tmpdir(), 'dpp-experiment-check'));

const DEVICES: Device[] = [
  { aet: 'CT_DCMTK', scu: 'dcmtk' },
  { aet: 'MR_DCMTK', scu: 'dcmtk' },
  { aet: 'US_BUILTIN', scu: 'builtin' },
  { aet: 'DX_BUILTIN', scu: 'builtin' },
];
const KINDS = [
  { name: 'A/A', key: 'aa', arms: '16KB,16KB' },
  { name: 'A/B', key: 'ab', arms: '16KB,20KB' },
] as const;

const compared = (e: Experiment): ArmRow[] => e.rows.filter((r) => !r.reference);
const fmt = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(3));

interface Line {
  kind: string;
  seed: number;
  o: RunOutcome;
}

async function main(): Promise<void> {
  mkdirSync(out, { recursive: true });
  const images = await imagePool(path.join(out, 'images'), 12, 256 * 1024, 2 * 1024 * 1024);
  const lines: Line[] = [];
  const csv: string[] = ['kind,seed,effect,low,high,verdict,computed,holds,associations,messages,devices_faster_or_slower,scp_data_pdus,predicted_data_pdus,failures'];
  for (const kind of KINDS.filter((k) => only === '' || k.key === only)) {
    for (let i = 0; i < runs; i++) {
      const seed = firstSeed + i;
      const dir = path.join(out, `${kind.key}-${seed}`);
      rmSync(dir, { recursive: true, force: true });
      const t0 = performance.now();
      const o = await runExperiment({ arms: kind.arms, seed, delayMs, devices: DEVICES, associationsPerDevice: associations, imagesPerAssociation: [2, 5], images, dir });
      const r = compared(o.pooled)[0]!;
      const holds = r.low !== undefined && r.high !== undefined && r.low <= o.computed && o.computed <= r.high;
      const deviceCalls = compared(o.perDevice).filter((x) => x.verdict === 'faster' || x.verdict === 'slower').length;
      lines.push({ kind: kind.name, seed, o });
      csv.push(
        [
          kind.name,
          seed,
          fmt(r.ratio),
          fmt(r.low),
          fmt(r.high),
          r.verdict,
          fmt(o.computed),
          holds,
          o.pooled.associations,
          o.pooled.messages,
          deviceCalls,
          o.scpDataPdus,
          o.predictedDataPdus,
          o.failures.length,
        ].join(','),
      );
      console.log(
        `${kind.name} seed ${seed}: effect ${fmt(r.ratio)} [${fmt(r.low)}, ${fmt(r.high)}] ${r.verdict}; computed ${fmt(o.computed)} (${holds ? 'held' : 'NOT held'}); ` +
          `${o.pooled.associations} associations, ${o.pooled.messages} messages; per device faster/slower: ${deviceCalls} of ${compared(o.perDevice).length}; ` +
          `data PDUs ${o.scpDataPdus} (predicted ${o.predictedDataPdus}); ${o.failures.length} failures; ${((performance.now() - t0) / 1000).toFixed(0)} s; load ${os.loadavg()[0]!.toFixed(1)}`,
      );
      for (const f of o.failures.slice(0, 3)) console.log(`  failure: ${f}`);
    }
  }
  writeFileSync(path.join(out, 'runs.csv'), csv.join('\n') + '\n');
  console.log(`\nsummary (${path.join(out, 'runs.csv')}; the machine may be shared: see the load above)`);
  const aa = lines.filter((l) => l.kind === 'A/A');
  const ab = lines.filter((l) => l.kind === 'A/B');
  const calls = (l: Line): boolean => ['faster', 'slower'].includes(compared(l.o.pooled)[0]!.verdict ?? '');
  if (aa.length > 0) {
    const n = aa.filter(calls).length;
    const perDevice = aa.reduce((s, l) => s + compared(l.o.perDevice).filter((x) => x.verdict === 'faster' || x.verdict === 'slower').length, 0);
    const lines = aa.reduce((s, l) => s + compared(l.o.perDevice).length, 0);
    console.log(`A/A: faster or slower in ${n} of ${aa.length} runs (goal: at most 1 of 20); per device ${perDevice} of ${lines} lines`);
  }
  if (ab.length > 0) {
    const found = ab.filter((l) => compared(l.o.pooled)[0]!.verdict === 'faster').length;
    const held = ab.filter((l) => {
      const r = compared(l.o.pooled)[0]!;
      return r.low !== undefined && r.high !== undefined && r.low <= l.o.computed && l.o.computed <= r.high;
    }).length;
    console.log(
      `A/B: effect found (faster) in ${found} of ${ab.length} runs (goal: at least 19 of 20); interval holds the computed effect in ${held} of ${ab.length} (goal: at least 18 of 20)`,
    );
  }
  const counted = lines.reduce((s, l) => s + l.o.scpDataPdus, 0);
  const predicted = lines.reduce((s, l) => s + l.o.predictedDataPdus, 0);
  console.log(
    `data PDUs counted by the SCP ${counted}, predicted from the bytes and the arms ${predicted} (${(((counted - predicted) / predicted) * 100).toFixed(2)}%: the computed effect assumes the predicted ones)`,
  );
}

try {
  await main();
} finally {
  await killAll();
}
