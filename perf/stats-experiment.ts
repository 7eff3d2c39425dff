// npm run bench:stats-experiment — wall and CPU time of `dicom-pdu-proxy stats` on an experiment's
// messages CSV (issue 25: 2 M message rows in <= 10 s). It writes its input first (test/helpers/
// experiment-data.ts: 3 arms, 3 devices, 2 to 12 C-STOREs of mixed sizes per association, a known effect),
// then runs, interleaved per round: `stats` (the experiment's table and the usual one), `stats --by
// calling_aet` (per device) and `stats --by calling_aet --html` (the report with its forest plot).
// Medians of the rounds. On a shared machine the figures say little: take them on a quiet one.
//
// Options: --rows N (default 2000000), --rounds N (default 3), --dir DIR (where the input is kept between
// runs; default $TMPDIR/dpp-bench-stats-experiment).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeExperimentCsv } from '../test/helpers/experiment-data.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
function arg(flag: string, fallback: string): string {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}
const rows = Number(arg('--rows', '2000000'));
const rounds = Number(arg('--rounds', '3'));
const dir = arg('--dir', path.join(os.tmpdir(), 'dpp-bench-stats-experiment'));
const GOAL_S = 10;
/** 2 to 12 messages per association: 7 on average. */
const MESSAGES_PER_ASSOCIATION = 7;

interface Run {
  seconds: number;
  cpuSeconds: number;
}

/** CPU seconds of this process's ended children (cutime + cstime of /proc/self/stat, in 1/100 s ticks). */
function childrenCpu(): number {
  const fields = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

/** Wall time of a child and its CPU time (all threads: user + system). */
async function timed(args: string[]): Promise<Run> {
  const cpu0 = childrenCpu();
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${args.join(' ')}: exit ${code}: ${stderr.trim()}`);
  return { seconds, cpuSeconds: childrenCpu() - cpu0 };
}

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

async function main(): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const input = path.join(dir, `messages-experiment-${rows}.csv`);
  if (!fs.existsSync(input)) {
    const t0 = performance.now();
    const written = await writeExperimentCsv(`${input}.tmp`, {
      associations: Math.ceil(rows / MESSAGES_PER_ASSOCIATION),
      arms: [
        { label: '16KB', maxPdu: 16384, ratio: 1 },
        { label: '64KB', maxPdu: 65536, ratio: 1.1 },
        { label: '128KB', maxPdu: 131072, ratio: 1.15 },
      ],
      seed: 1,
    });
    fs.renameSync(`${input}.tmp`, input);
    console.log(`input: ${written.rows} message rows, ${written.associations} associations, written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  console.log(`${input} (${(fs.statSync(input).size / 1e6).toFixed(0)} MB); ${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(1)}`);
  const cli = path.join(REPO, 'bin', 'dicom-pdu-proxy.js');
  const html = path.join(dir, 'report.html');
  const kinds: Array<[string, string[]]> = [
    ['stats (experiment table)', [cli, 'stats', input]],
    ['stats --by calling_aet', [cli, 'stats', input, '--by', 'calling_aet']],
    ['stats --by calling_aet --html', [cli, 'stats', input, '--by', 'calling_aet', '--html', html]],
  ];
  const results = new Map<string, Run[]>(kinds.map(([k]) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    for (const [name, args] of kinds) {
      const run = await timed(args);
      results.get(name)!.push(run);
      console.log(`round ${r + 1}: ${name}: ${run.seconds.toFixed(2)} s (CPU ${run.cpuSeconds.toFixed(2)} s); load average ${os.loadavg()[0]!.toFixed(1)}`);
    }
  }
  console.log(`\nmedians of ${rounds} rounds, ${rows.toLocaleString('en-US')} message rows (a shared machine makes these slower: see the load average)`);
  for (const [name] of kinds) {
    const runs = results.get(name)!;
    const s = median(runs.map((x) => x.seconds));
    console.log(
      `${name.padEnd(32)} ${s.toFixed(2).padStart(7)} s  CPU ${median(runs.map((x) => x.cpuSeconds))
        .toFixed(2)
        .padStart(6)} s  goal <= ${GOAL_S} s: ${s <= GOAL_S ? 'met' : 'MISSED'}`,
    );
  }
  fs.rmSync(html, { force: true });
}

await main();
