// Fuzzing the running proxy: a few hundred random and mutated streams through a running proxy (the framer alone is
// fuzzed in test/unit/pdu-framer.test.ts). Zero crashes, every connection closed within a bound, file
// descriptors back to the baseline, memory bounded, and a well-formed association still served afterwards.
// Longer runs: `npm run fuzz -- SECONDS` (scripts/fuzz.ts). FUZZ_SEED=N replays from seed N.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { errorLogLines, healthCheck, runStreams, startFuzzTarget } from '../helpers/fuzz.js';
import { eventually, fdCount, rssBytes } from '../helpers/proc-stats.js';
import { stopAllProxies } from '../helpers/proxy.js';

after(stopAllProxies);

const STREAMS = 300;
const FIRST_SEED = Number(process.env.FUZZ_SEED ?? 1);

test(`${STREAMS} random and mutated streams through the proxy: no crash, all closed, nothing leaked`, async (t) => {
  const { proxy, pid, baselineFds, baselineRss, stop } = await startFuzzTarget();
  try {
    const results = await runStreams(proxy.port, FIRST_SEED, STREAMS, 8, 5000);
    const stuck = results.filter((r) => !r.closed);
    assert.deepEqual(
      stuck.map((r) => `${r.seed}:${r.kind}`),
      [],
      'every connection closed after the client FIN',
    );
    assert.equal(proxy.child.exitCode, null, `the proxy is alive; stderr: ${proxy.stderr}`);
    await healthCheck(proxy.port);
    await eventually(
      () => fdCount(pid) === baselineFds,
      10_000,
      () => `fd count ${fdCount(pid)} back to ${baselineFds}`,
    );
    const rss = rssBytes(pid);
    assert.ok(rss - baselineRss < 64 * 1024 * 1024, `RSS ${rss} vs baseline ${baselineRss}`);
    assert.deepEqual(errorLogLines(proxy.logs), []);
    assert.equal(proxy.stderr, '');
    // What the streams reached: negotiated associations and each protocol error code.
    const codes = new Map<string, number>();
    for (const l of proxy.logs) if (l.code) codes.set(String(l.code), (codes.get(String(l.code)) ?? 0) + 1);
    const negotiated = proxy.logs.filter((l) => l.msg === 'association negotiated').length;
    t.diagnostic(`negotiated ${negotiated}; ${[...codes].map(([c, n]) => `${c} ${n}`).join(', ')}; RSS ${rss} (baseline ${baselineRss})`);
    assert.ok(negotiated > STREAMS / 10, 'the mutations reach established associations, not only the first bytes');
  } finally {
    await stop();
  }
});
