// Longer fuzzing run against the built proxy: `npm run fuzz -- [SECONDS] [FIRST_SEED]` (default 60 s, seed 1).
// Rounds of 200 random/mutated streams (test/helpers/fuzz.ts), each followed by a health check, a file
// descriptor check and an RSS reading. Exits 1 on the first crash, stuck connection, leak or failed check,
// printing the seeds to replay (FUZZ_SEED=N npm run test:integration, or this script with FIRST_SEED).

import { errorLogLines, healthCheck, runStreams, startFuzzTarget } from '../test/helpers/fuzz.js';
import { eventually, fdCount, rssBytes } from '../test/helpers/proc-stats.js';

const seconds = Number(process.argv[2] ?? 60);
const firstSeed = Number(process.argv[3] ?? 1);
if (!Number.isFinite(seconds) || seconds <= 0 || !Number.isInteger(firstSeed)) {
  process.stderr.write('usage: npm run fuzz -- [SECONDS] [FIRST_SEED]\n');
  process.exit(2);
}
const ROUND = 200;
const MiB = 1024 * 1024;

const { proxy, pid, baselineFds, baselineRss, stop } = await startFuzzTarget();
let failure: string | undefined;
let streams = 0;
let bytes = 0;
let peakRss = 0;
const started = Date.now();
try {
  let seed = firstSeed;
  while (Date.now() - started < seconds * 1000 && !failure) {
    const results = await runStreams(proxy.port, seed, ROUND, 8, 5000);
    streams += results.length;
    bytes += results.reduce((n, r) => n + r.bytes, 0);
    const stuck = results.filter((r) => !r.closed);
    if (stuck.length > 0) failure = `connections not closed by the proxy, seeds ${stuck.map((r) => r.seed).join(', ')}`;
    else if (proxy.child.exitCode !== null) failure = `the proxy exited (${proxy.child.exitCode}) in seeds ${seed}..${seed + ROUND - 1}: ${proxy.stderr}`;
    else {
      await healthCheck(proxy.port).catch((err: Error) => (failure = `health check after seeds ${seed}..${seed + ROUND - 1}: ${err.message}`));
      await eventually(
        () => fdCount(pid) === baselineFds,
        10_000,
        () => `fds ${fdCount(pid)} vs ${baselineFds}`,
      ).catch((err: Error) => (failure ??= err.message));
    }
    const rss = rssBytes(pid);
    peakRss = Math.max(peakRss, rss);
    if (rss - baselineRss > 128 * MiB) failure ??= `RSS grew to ${(rss / MiB).toFixed(1)} MiB from ${(baselineRss / MiB).toFixed(1)} MiB`;
    const bad = errorLogLines(proxy.logs);
    if (bad.length > 0) failure ??= `error log lines: ${JSON.stringify(bad.slice(0, 3))}`;
    proxy.logs.length = 0; // checked: keep the runner's own memory flat on long runs
    seed += ROUND;
    process.stdout.write(
      `${((Date.now() - started) / 1000).toFixed(0)} s: ${streams} streams, ${(bytes / MiB).toFixed(1)} MiB sent, RSS ${(rss / MiB).toFixed(1)} MiB (baseline ${(baselineRss / MiB).toFixed(1)}), fds ${fdCount(pid)}\n`,
    );
  }
} finally {
  await stop();
}
if (failure) {
  process.stderr.write(`fuzz: FAILED: ${failure}\n`);
  process.exit(1);
}
process.stdout.write(`fuzz: ${streams} streams in ${((Date.now() - started) / 1000).toFixed(0)} s, no crash, no leak; peak RSS ${(peakRss / MiB).toFixed(1)} MiB\n`);
