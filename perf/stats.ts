// npm run bench:stats — wall time and peak RSS of `dicom-pdu-proxy stats` on large proxy logs it writes
// first (perf/stats-data.ts: a chunk CSV of 2 million rows and its messages CSV; --big: 20 million rows,
// about 1.6 GB). Each round runs, interleaved: the reference (one streaming pass of Node's readline over
// the chunk CSV, summing bytes per association: the least any reader of the file must do), `stats` on
// both files (the tables), and `stats --html` (the report). Medians of the rounds, and their ratio to
// the reference. Goals: 2 M rows <= 2 s and <= 300 MB; 20 M rows <= 15 s and <= 1 GB.
//
// Options: --rows N (default 2000000), --big (20000000 rows), --rounds N (default 3), --dir DIR (where the
// inputs are kept between runs; default $TMPDIR/dpp-bench-stats), --no-html.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSyntheticLogs } from './stats-data.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const has = (flag: string): boolean => process.argv.includes(flag);
function arg(flag: string, fallback: string): string {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const rows = has('--big') ? 20_000_000 : Number(arg('--rows', '2000000'));
const rounds = Number(arg('--rounds', '3'));
const dir = arg('--dir', path.join(os.tmpdir(), 'dpp-bench-stats'));
const goal = rows >= 20_000_000 ? { s: 15, mb: 1024 } : rows >= 2_000_000 ? { s: 2, mb: 300 } : undefined;

/** Peak RSS of a child node process: a preloaded module writes process.resourceUsage().maxRSS at exit. */
const PRELOAD = path.join(os.tmpdir(), `dpp-bench-stats-rss-${process.pid}.mjs`);
fs.writeFileSync(
  PRELOAD,
  `import fs from 'node:fs';\nprocess.on('exit', () => { if (process.env.DPP_RSS_FILE) { const u = process.resourceUsage(); fs.writeFileSync(process.env.DPP_RSS_FILE, [u.maxRSS, u.userCPUTime + u.systemCPUTime].join(' ')); } });\n`,
);

interface Run {
  seconds: number;
  /** CPU time of the process, all threads (user + system): steadier than wall time on a shared machine. */
  cpuSeconds: number;
  peakMiB: number;
}

async function timed(args: string[]): Promise<Run> {
  const rssFile = path.join(os.tmpdir(), `dpp-bench-stats-rss-${process.pid}.txt`);
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', PRELOAD, ...args], { cwd: REPO, env: { ...process.env, DPP_RSS_FILE: rssFile }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`${args.join(' ')}: exit ${code}: ${stderr.trim()}`);
  const [maxRssKiB, cpuUs] = fs.readFileSync(rssFile, 'utf8').split(' ').map(Number);
  fs.rmSync(rssFile, { force: true });
  return { seconds, cpuSeconds: cpuUs! / 1e6, peakMiB: maxRssKiB! / 1024 };
}

/** The reference: one pass over the chunk CSV with readline, bytes summed per association (as a script would). */
const REFERENCE = `
import fs from 'node:fs';
const bytes = new Map();
let header = true;
for await (const line of readline.createInterface({ input: fs.createReadStream(process.argv[1]) })) {
  if (header) { header = false; continue; }
  const f = line.split(',');
  bytes.set(f[0], (bytes.get(f[0]) ?? 0) + Number(f[4]) + 6);
}
console.log(bytes.size);
`;

const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

async function main(): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const chunks = path.join(dir, `chunks-${rows}.csv`);
  const messages = path.join(dir, `messages-${rows}.csv`);
  if (!fs.existsSync(chunks) || !fs.existsSync(messages)) {
    const t0 = performance.now();
    const written = await writeSyntheticLogs(`${chunks}.tmp`, `${messages}.tmp`, { chunkRows: rows, routes: ['ct', 'mr'] });
    fs.renameSync(`${messages}.tmp`, messages);
    fs.renameSync(`${chunks}.tmp`, chunks);
    console.log(`inputs: ${written.chunkRows} chunk rows, ${written.messages} messages written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const mb = (f: string): string => `${(fs.statSync(f).size / 1e6).toFixed(0)} MB`;
  console.log(`${chunks} (${mb(chunks)}), ${messages} (${mb(messages)}); ${os.cpus().length} cores, load average ${os.loadavg()[0]!.toFixed(1)}`);

  const html = path.join(dir, 'report.html');
  const cli = path.join(REPO, 'bin', 'dicom-pdu-proxy.js');
  const kinds: Array<[string, string[]]> = [
    ['reference (readline, one pass)', ['--input-type=module', '-e', REFERENCE, chunks]],
    ['stats (tables)', [cli, 'stats', chunks, messages]],
    ...(has('--no-html') ? [] : ([['stats --html (report)', [cli, 'stats', chunks, messages, '--html', html]]] as Array<[string, string[]]>)),
  ];
  const results = new Map<string, Run[]>(kinds.map(([k]) => [k, []]));
  for (let r = 0; r < rounds; r++) {
    for (const [name, args] of kinds) {
      const run = await timed(args);
      results.get(name)!.push(run);
      console.log(
        `round ${r + 1}: ${name}: ${run.seconds.toFixed(2)} s (CPU ${run.cpuSeconds.toFixed(2)} s), peak RSS ${run.peakMiB.toFixed(0)} MiB; load average ${os.loadavg()[0]!.toFixed(1)}`,
      );
    }
  }
  const ref = median(results.get(kinds[0]![0])!.map((x) => x.seconds));
  console.log(`\nmedians of ${rounds} rounds, ${rows.toLocaleString('en-US')} chunk rows (the machine may be shared: see the load average above)`);
  for (const [name] of kinds) {
    const runs = results.get(name)!;
    const s = median(runs.map((x) => x.seconds));
    const cpu = median(runs.map((x) => x.cpuSeconds));
    const peak = median(runs.map((x) => x.peakMiB));
    const verdict =
      goal && name.startsWith('stats (')
        ? `  goal <= ${goal.s} s, <= ${goal.mb} MB: ${s <= goal.s ? 'met' : 'MISSED'} (time), ${peak * 1.048576 <= goal.mb ? 'met' : 'MISSED'} (memory)`
        : '';
    console.log(
      `${name.padEnd(32)} ${s.toFixed(2).padStart(7)} s  ${(s / ref).toFixed(2).padStart(6)}x reference  CPU ${cpu.toFixed(2).padStart(6)} s  peak RSS ${peak.toFixed(0).padStart(5)} MiB${verdict}`,
    );
  }
  fs.rmSync(PRELOAD, { force: true });
  fs.rmSync(html, { force: true });
}

await main();
