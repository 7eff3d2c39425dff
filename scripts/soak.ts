// A soak: `npm run soak -- --minutes N [--out DIR] [--workers W] [--interval S] [--hostile F] [--seed S] [--probes on|off]`.
//
// Runs the built proxy with two routes on 127.0.0.1, one in front of DCMTK storescp (C-ECHO, C-STORE of
// 1 KB ... 64 MB) and one in front of dcmqrscp (C-FIND), and W workers that open associations through it
// for N minutes: the mix of test/soak/load.ts, a share F (default 0.2) of them hostile. Every S seconds
// (default 2) it samples the proxy: resident memory and open descriptors from /proc, heap and event-loop
// delay from its --metrics endpoint. At the end it fits a line to each of RSS, heap and descriptors over
// the second half (test/soak/trend.ts) and fails (exit 1) on growth, on an association lost that was not
// meant to be, on a hostile connection the proxy did not end, or if the proxy died. It writes
// samples.csv, operations.csv, summary.json and soak.svg to --out (default results/soak-<time>).
//
// Idle probes (--probes on, the default): at 45% of the run and after the load, the load pauses until no
// association is open, the proxy (DICOM_PDU_PROXY_MEMORY_PROBE=on) collects its garbage on SIGUSR2, and gdb
// reads what glibc's malloc holds free (test/soak/malloc.ts); after the load it also calls malloc_trim(0).
// RSS minus malloc's free chunks is the memory still in use: RSS that grows while it does not is pages
// malloc keeps for reuse ('retained'), not a leak (judgeRss). The intervals of a probe, which stops the
// proxy for a moment, are left out of the event-loop figures. Without gdb the RSS slope alone decides.
// Loopback only; every wait is bounded; it stops by itself and stops every process it started.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { renderSvg } from '../src/analysis/chart.js';
import { makeBenchPki } from '../src/bench/certs.js';
import { startStorescp, storescu } from '../test/helpers/dcmtk.js';
import { datasetBytes, writeTestDicom } from '../test/helpers/dicom-file.js';
import { errorLogLines } from '../test/helpers/fuzz.js';
import { freePort } from '../test/helpers/ports.js';
import { fdCount, mainHeapRssBytes, rssBytes, smapsRollup } from '../test/helpers/proc-stats.js';
import { killAll, spawnPeer, waitForPort } from '../test/helpers/procs.js';
import { ProxyProcess, REPO_ROOT } from '../test/helpers/proxy.js';
import { STORE_SIZES, nextAction } from '../test/soak/load.js';
import type { Outcome, SoakTargets } from '../test/soak/load.js';
import { soakSpec } from '../test/soak/plot.js';
import { readMalloc } from '../test/soak/malloc.js';
import type { MallocInfo } from '../test/soak/malloc.js';
import { judgeGrowth, judgeRss, quantile } from '../test/soak/trend.js';
import type { IdleProbe, Point, Trend } from '../test/soak/trend.js';

// ---- arguments ---------------------------------------------------------------------------------

function usage(message: string): never {
  process.stderr.write(`soak: ${message}\nusage: npm run soak -- --minutes N [--out DIR] [--workers W] [--interval S] [--hostile F] [--seed S] [--probes on|off]\n`);
  process.exit(2);
}

const opts = { minutes: NaN, out: '', workers: 4, interval: 2, hostile: 0.2, seed: Date.now() % 1_000_000, probes: true };
{
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = (): string => args[++i] ?? usage(`${arg} needs a value`);
    const number = (min: number, max: number): number => {
      const v = Number(value());
      if (!Number.isFinite(v) || v < min || v > max) usage(`${arg} must be a number from ${min} to ${max}, got ${args[i]}`);
      return v;
    };
    if (arg === '--minutes') opts.minutes = number(0.1, 24 * 60);
    else if (arg === '--out') opts.out = value();
    else if (arg === '--workers') opts.workers = Math.round(number(1, 32));
    else if (arg === '--interval') opts.interval = number(0.5, 60);
    else if (arg === '--hostile') opts.hostile = number(0, 1);
    else if (arg === '--seed') opts.seed = Math.round(number(0, 2 ** 31));
    else if (arg === '--probes') {
      const v = value();
      if (v !== 'on' && v !== 'off') usage(`--probes must be on or off, got ${v}`);
      opts.probes = v === 'on';
    } else usage(`unknown argument ${arg}`);
  }
  if (!Number.isFinite(opts.minutes)) usage('--minutes is required');
  opts.out ||= path.join(REPO_ROOT, 'results', `soak-${new Date().toISOString().replace(/[:.]/g, '-')}`);
}

/** Growth allowed per minute over the second half: far below what a leak per association would show. */
const TOLERANCE = { rssMiB: 0.5, heapMiB: 0.25, fds: 0.05 };
const ARTIM_MS = 3000;
/** --drain-timeout of the soak's proxy: the SIGTERM at the end must be over within it + 2 s. */
const DRAIN_MS = 10_000;
const MiB = 1024 * 1024;
const EVENT_LOOP_GOAL_MS = 50;

let seed = opts.seed;
/** mulberry32: reproducible choices for a given --seed (timing still varies). */
function rand(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const log = (text: string): void => void process.stdout.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${text}\n`);

// ---- set-up ------------------------------------------------------------------------------------

await mkdir(opts.out, { recursive: true });
const tmp = await mkdtemp(path.join(os.tmpdir(), 'soak-'));
let proxy: ProxyProcess | undefined;
let stopping = false;
const onSignal = (): void => {
  log('signal: stopping the load early');
  stopping = true;
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

async function cleanup(): Promise<void> {
  await proxy?.stop(15_000, 5000).catch(() => undefined);
  await killAll(3000);
  await rm(tmp, { recursive: true, force: true });
}

let exitCode = 1;
try {
  exitCode = await soak();
} catch (err) {
  log(`FAILED: ${(err as Error).stack ?? String(err)}`);
} finally {
  await cleanup();
}
process.exit(exitCode);

async function soak(): Promise<number> {
  log(
    `${opts.minutes} min, ${opts.workers} workers, ${Math.round(opts.hostile * 100)}% hostile, sampling every ${opts.interval} s, seed ${opts.seed}, idle probes ${opts.probes ? 'on' : 'off'}, out ${opts.out}`,
  );
  if (opts.probes) process.env.DICOM_PDU_PROXY_MEMORY_PROBE = 'on';
  const files = new Map<string, string>();
  for (const [label, bytes] of STORE_SIZES) {
    const info = await writeTestDicom(path.join(tmp, `${label}.dcm`), { pixelBytes: Math.max(2, bytes - 600), seed: bytes });
    files.set(label, info.path!);
  }
  const raw = await writeTestDicom(path.join(tmp, 'raw.dcm'), { pixelBytes: 256 * 1024, seed: 77 });
  const pki = makeBenchPki(tmp);

  // storescp: one process per association (--fork), received data discarded (--ignore).
  const storeDir = path.join(tmp, 'store');
  await mkdir(storeDir);
  const scp = await startStorescp({ outDir: storeDir, logLevel: 'quiet', bitPreserving: false, extraArgs: ['--fork', '--ignore'] });

  // dcmqrscp with three studies, loaded directly (not through the proxy).
  const db = path.join(tmp, 'db');
  await mkdir(db);
  const qrPort = await freePort();
  const config = path.join(tmp, 'dcmqrscp.cfg');
  await writeFile(
    config,
    [
      `NetworkTCPPort  = ${qrPort}`,
      'MaxPDUSize      = 16384',
      'MaxAssociations = 64',
      'HostTable BEGIN',
      'HostTable END',
      'VendorTable BEGIN',
      'VendorTable END',
      'AETable BEGIN',
      `QRSCP  ${db}  RW  (100, 1024mb)  ANY`,
      'AETable END',
      '',
    ].join('\n'),
  );
  spawnPeer('dcmqrscp', ['-c', config], { name: 'dcmqrscp' });
  await waitForPort(qrPort, 10_000);
  for (let i = 0; i < 3; i++) {
    const f = await writeTestDicom(path.join(tmp, `study${i}.dcm`), { pixelBytes: 1024, seed: 500 + i, patientName: `SOAK^PATIENT${i}` });
    const r = await storescu({ port: qrPort, calledAet: 'QRSCP', aet: 'LOADER', files: [f.path!], debug: false });
    if (r.code !== 0) throw new Error(`loading dcmqrscp: ${r.stderr.slice(-500)}`);
  }

  proxy = await ProxyProcess.startRoutes(
    [
      '--route',
      `127.0.0.1:0=127.0.0.1:${scp.port},id=store`,
      '--route',
      `127.0.0.1:0=127.0.0.1:${qrPort},id=qr`,
      // TCP probes hit this one (test/soak/load.ts tcpProbe); at the end, SIGTERM must be over within the drain bound.
      '--route',
      `127.0.0.1:0=127.0.0.1:${scp.port},id=tls,tls-cert=${pki.server.cert},tls-key=${pki.server.key}`,
      '--drain-timeout',
      String(DRAIN_MS),
      '--metrics',
      '127.0.0.1:0',
      '--artim-timeout',
      String(ARTIM_MS),
      '--idle-timeout',
      '30000',
      '--close-timeout',
      '3000',
      '--csv',
      '/dev/null',
      '--messages-csv',
      path.join(opts.out, 'messages.csv'),
    ],
    ['store', 'qr', 'tls'],
  );
  const pid = proxy.child.pid!;
  const targets: SoakTargets = {
    storePort: proxy.routePort('store'),
    qrPort: proxy.routePort('qr'),
    files,
    rawDataset: { bytes: datasetBytes(raw.path!), sopInstanceUid: raw.sopInstanceUid },
    artimMs: ARTIM_MS,
    tlsPort: proxy.routePort('tls'),
  };
  const metricsUrl = proxy.metricsUrl;
  const baselineFds = fdCount(pid);
  log(`proxy pid ${pid}: store route ${targets.storePort} -> storescp ${scp.port}, qr route ${targets.qrPort} -> dcmqrscp ${qrPort}; ${baselineFds} fds at start`);

  // ---- sampling --------------------------------------------------------------------------------
  const started = Date.now();
  const seconds = (): number => (Date.now() - started) / 1000;
  const samples: Array<Record<string, number>> = [];
  const samplesCsv = createWriteStream(path.join(opts.out, 'samples.csv'));
  const COLUMNS = [
    't_s',
    'rss_bytes',
    'fds',
    'heap_used_bytes',
    'external_bytes',
    'eventloop_p50_ms',
    'eventloop_p99_ms',
    'eventloop_max_ms',
    'reference_eventloop_p99_ms',
    'associations_open',
    'associations_total',
    'ops_ok',
    'ops_failed',
    'heap_total_bytes',
    'anon_bytes',
    'private_dirty_bytes',
    'main_heap_rss_bytes',
    'probe',
  ];
  samplesCsv.write(`${COLUMNS.join(',')}\n`);
  const operations = createWriteStream(path.join(opts.out, 'operations.csv'));
  operations.write('t_s,worker,kind,hostile,ok,ms,detail\n');
  const outcomes: Outcome[] = [];
  let probing = false;
  let probeEndedAt = -Infinity;
  let proxyErrors: Array<Record<string, unknown>> = [];

  const scrape = async (): Promise<Map<string, number>> => {
    const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(5000) })).text();
    const out = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const name = line.slice(0, line.search(/[ {]/));
      out.set(name, (out.get(name) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
    }
    return out;
  };
  const sample = async (): Promise<void> => {
    if (proxy!.child.exitCode !== null) return;
    const m = await scrape();
    const t = seconds();
    const rollup = smapsRollup(pid);
    const row: Record<string, number> = {
      t_s: Math.round(t * 10) / 10,
      rss_bytes: rssBytes(pid),
      fds: fdCount(pid),
      heap_used_bytes: m.get('nodejs_heap_size_used_bytes') ?? NaN,
      external_bytes: m.get('nodejs_external_memory_bytes') ?? NaN,
      eventloop_p50_ms: (m.get('nodejs_eventloop_lag_p50_seconds') ?? NaN) * 1000,
      eventloop_p99_ms: (m.get('nodejs_eventloop_lag_p99_seconds') ?? NaN) * 1000,
      eventloop_max_ms: (m.get('nodejs_eventloop_lag_max_seconds') ?? NaN) * 1000,
      reference_eventloop_p99_ms: referenceP99(),
      associations_open: m.get('dicom_pdu_proxy_associations_open') ?? NaN,
      associations_total: m.get('dicom_pdu_proxy_associations_total') ?? NaN,
      ops_ok: outcomes.filter((o) => o.ok).length,
      ops_failed: outcomes.filter((o) => !o.ok).length,
      heap_total_bytes: m.get('nodejs_heap_size_total_bytes') ?? NaN,
      anon_bytes: rollup.anonymous,
      private_dirty_bytes: rollup.privateDirty,
      main_heap_rss_bytes: mainHeapRssBytes(pid),
      // The interval this sample closes overlapped an idle probe (load paused, the proxy stopped by gdb).
      probe: probing || t - probeEndedAt < opts.interval + 1 ? 1 : 0,
    };
    samples.push(row);
    samplesCsv.write(`${COLUMNS.map((c) => (Number.isInteger(row[c]) ? row[c] : Number.isFinite(row[c]) ? row[c]!.toFixed(3) : '')).join(',')}\n`);
    // The runner keeps the proxy's log lines only until they are checked.
    proxyErrors.push(...errorLogLines(proxy!.logs));
    proxy!.logs.length = 0;
  };
  // A reference: an idle node process measuring its own event-loop delay the same way (10 ms resolution,
  // reset every interval). On a shared machine its delay is what the load of the machine alone costs.
  const reference = spawnPeer(
    process.execPath,
    [
      '-e',
      `const h = require('node:perf_hooks').monitorEventLoopDelay({ resolution: 10 }); h.enable();
       setInterval(() => { process.stdout.write(JSON.stringify({ p99: h.percentile(99) / 1e6 }) + '\\n'); h.reset(); }, ${opts.interval * 1000});`,
    ],
    { name: 'eventloop-reference' },
  );
  const referenceP99 = (): number => {
    const lines = reference.stdout.trimEnd().split('\n');
    reference.stdout = lines.at(-1) ?? '';
    try {
      return (JSON.parse(lines.at(-1) ?? '') as { p99: number }).p99;
    } catch {
      return NaN;
    }
  };
  await scrape(); // resets the event-loop histogram: the first interval starts now
  const sampler = setInterval(() => void sample().catch((err: Error) => log(`sample failed: ${err.message}`)), opts.interval * 1000);
  const progress = setInterval(() => {
    const last = samples.at(-1);
    if (last)
      log(
        `${(seconds() / 60).toFixed(1)} min: ${outcomes.length} associations (${outcomes.filter((o) => !o.ok).length} failed), RSS ${(last.rss_bytes! / MiB).toFixed(1)} MiB, heap ${(last.heap_used_bytes! / MiB).toFixed(1)} MiB, fds ${last.fds}, event loop p99 ${last.eventloop_p99_ms!.toFixed(1)} ms`,
      );
  }, 60_000);

  // ---- idle probes -----------------------------------------------------------------------------
  interface ProbeRecord extends IdleProbe {
    label: string;
    /** Seconds the load was paused for it. */
    pausedSeconds: number;
    mainHeapRssMiB: number;
    malloc: MallocInfo | undefined;
    mallocReason: string | undefined;
    /** RSS once malloc_trim(0) handed malloc's free pages back (the probe after the load only). */
    rssAfterTrimMiB: number | undefined;
    /** process.memoryUsage() in the proxy after its full collection, MiB. */
    afterGcMiB: Record<string, number> | undefined;
  }
  let gate: Promise<void> | undefined;
  let inFlight = 0;
  const seenProbeLines = new Set<unknown>();
  const idleProbe = async (label: string, trim: boolean): Promise<ProbeRecord | undefined> => {
    if (!opts.probes || proxy!.child.exitCode !== null) return undefined;
    const t0 = seconds();
    probing = true;
    let open!: () => void;
    gate = new Promise((r) => (open = r));
    try {
      const deadline = Date.now() + 180_000;
      while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      while (((await scrape()).get('dicom_pdu_proxy_associations_open') ?? 0) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
      const line = proxy!.waitForLog((l) => l.msg === 'memory probe' && !seenProbeLines.has(l), 10_000);
      process.kill(pid, 'SIGUSR2');
      const probeLine = await line;
      seenProbeLines.add(probeLine);
      await new Promise((r) => setTimeout(r, 500));
      const rss = rssBytes(pid) / MiB;
      const mainHeapRssMiB = mainHeapRssBytes(pid) / MiB;
      const read = await readMalloc(pid, { trim });
      const rssAfterTrimMiB = trim && read.info ? (await new Promise((r) => setTimeout(r, 200)), rssBytes(pid) / MiB) : undefined;
      const after = (probeLine.probe as { after?: Record<string, number> } | undefined)?.after;
      const heapUsed = after?.heapUsed;
      const record: ProbeRecord = {
        label,
        t: t0,
        pausedSeconds: seconds() - t0,
        rssMiB: rss,
        inUseMiB: read.info && heapUsed !== undefined ? (read.info.systemBytes - read.info.freeBytes + read.info.mmapBytes + heapUsed) / MiB : undefined,
        mainHeapRssMiB,
        malloc: read.info,
        mallocReason: read.reason,
        rssAfterTrimMiB,
        afterGcMiB: after && Object.fromEntries(Object.entries(after).map(([k, v]) => [k, Math.round((v / MiB) * 100) / 100])),
      };
      const mallocText = read.info
        ? `malloc holds ${(read.info.freeBytes / MiB).toFixed(1)} MiB free of ${(read.info.systemBytes / MiB).toFixed(1)} MiB in ${read.info.arenas} arenas (+${(read.info.mmapBytes / MiB).toFixed(1)} MiB mmapped), V8 heap ${((heapUsed ?? NaN) / MiB).toFixed(1)} MiB used of ${((after?.heapTotal ?? NaN) / MiB).toFixed(1)} MiB: in use ${record.inUseMiB?.toFixed(1)} MiB`
        : `malloc not read: ${read.reason}`;
      log(
        `idle probe ${label} at ${(t0 / 60).toFixed(1)} min (load paused ${record.pausedSeconds.toFixed(0)} s): RSS ${rss.toFixed(1)} MiB, [heap] ${mainHeapRssMiB.toFixed(1)} MiB, ${mallocText}${rssAfterTrimMiB !== undefined ? `; after malloc_trim(0) RSS ${rssAfterTrimMiB.toFixed(1)} MiB` : ''}`,
      );
      return record;
    } catch (err) {
      log(`idle probe ${label} failed: ${(err as Error).message}`);
      return undefined;
    } finally {
      probing = false;
      probeEndedAt = seconds();
      gate = undefined;
      open();
    }
  };

  // ---- load ------------------------------------------------------------------------------------
  const endAt = started + opts.minutes * 60_000;
  let midProbe: Promise<ProbeRecord | undefined> | undefined;
  const midTimer = setTimeout(
    () => {
      midProbe = idleProbe('mid', false);
    },
    opts.minutes * 60_000 * 0.45,
  );
  const worker = async (id: number): Promise<void> => {
    while (Date.now() < endAt && !stopping && proxy!.child.exitCode === null) {
      if (gate) {
        await gate;
        continue;
      }
      const action = nextAction(rand, opts.hostile);
      const t0 = Date.now();
      let outcome: Outcome;
      inFlight++;
      try {
        outcome = await action(targets, rand);
      } catch (err) {
        outcome = { kind: action.name || 'action', hostile: false, ok: false, detail: `threw: ${(err as Error).message}` };
      } finally {
        inFlight--;
      }
      outcomes.push(outcome);
      const detail = outcome.detail.replace(/[",\n]/g, ' ');
      operations.write(`${((t0 - started) / 1000).toFixed(1)},${id},${outcome.kind},${outcome.hostile},${outcome.ok},${Date.now() - t0},"${detail}"\n`);
      if (!outcome.ok) log(`worker ${id}: ${outcome.kind} failed: ${outcome.detail}`);
    }
  };
  await Promise.all(Array.from({ length: opts.workers }, (_, i) => worker(i + 1)));
  clearTimeout(midTimer);
  const mid = await midProbe;
  clearInterval(sampler);
  clearInterval(progress);
  await sample().catch(() => undefined);
  const loadSeconds = seconds();
  const proxyAlive = proxy.child.exitCode === null;

  // Once the load has stopped and the proxy's close timers have run, its descriptors return to the start.
  let endFds = NaN;
  if (proxyAlive) {
    const deadline = Date.now() + 15_000;
    do {
      await new Promise((r) => setTimeout(r, 500));
      endFds = fdCount(pid);
    } while (endFds > baselineFds && Date.now() < deadline);
  }
  await new Promise<void>((r) => samplesCsv.end(r));
  await new Promise<void>((r) => operations.end(r));
  const end = proxyAlive ? await idleProbe('end', true) : undefined;
  // The stop: SIGTERM with whatever the probes left, bounded by --drain-timeout + 2 s.
  let stopMs = NaN;
  if (proxyAlive) {
    const t0 = Date.now();
    const exited = new Promise<void>((resolve) => proxy!.child.once('exit', () => resolve()));
    proxy.child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, DRAIN_MS + 10_000))]);
    if (proxy.child.exitCode !== null || proxy.child.signalCode !== null) stopMs = Date.now() - t0;
    log(Number.isFinite(stopMs) ? `SIGTERM: exited in ${stopMs} ms (bound ${DRAIN_MS + 2000} ms)` : 'SIGTERM: still running 10 s after the drain timeout');
  }

  // ---- verdict ---------------------------------------------------------------------------------
  const series = (column: string, scale = 1): Point[] => samples.filter((s) => Number.isFinite(s[column])).map((s) => ({ t: s.t_s!, v: s[column]! / scale }));
  const trends: Record<string, Trend> = {
    rss: judgeGrowth(series('rss_bytes', MiB), { tolerancePerMinute: TOLERANCE.rssMiB }),
    heap: judgeGrowth(series('heap_used_bytes', MiB), { tolerancePerMinute: TOLERANCE.heapMiB }),
    fds: judgeGrowth(series('fds'), { tolerancePerMinute: TOLERANCE.fds }),
  };
  const rssJudgement = judgeRss(trends.rss!, mid, end);
  // Intervals that overlapped an idle probe (the proxy stopped by gdb for a moment) say nothing of the relaying.
  const unprobed = samples.filter((s) => s.probe !== 1);
  const probeIntervals = samples.length - unprobed.length;
  const p99s = unprobed.map((s) => s.eventloop_p99_ms!).filter(Number.isFinite);
  const referenceP99s = series('reference_eventloop_p99_ms').map((p) => p.v);
  const eventLoop = {
    intervals: p99s.length,
    medianP99Ms: quantile(p99s, 0.5),
    /** The idle reference process on the same machine at the same time. */
    referenceMedianP99Ms: quantile(referenceP99s, 0.5),
    referenceMaxP99Ms: Math.max(...referenceP99s),
    /** The largest interval p99: an upper bound on the p99 over the whole run. */
    maxP99Ms: Math.max(...p99s),
    intervalsOverGoal: p99s.filter((v) => v >= EVENT_LOOP_GOAL_MS).length,
    maxMs: Math.max(...unprobed.map((s) => s.eventloop_max_ms!).filter(Number.isFinite)),
    /** Intervals left out: they overlapped an idle probe. */
    probeIntervals,
  };
  const byKind = new Map<string, { ok: number; failed: number }>();
  for (const o of outcomes) {
    const k = byKind.get(o.kind) ?? { ok: 0, failed: 0 };
    if (o.ok) k.ok++;
    else k.failed++;
    byKind.set(o.kind, k);
  }
  const lost = outcomes.filter((o) => !o.ok && !o.hostile).length;
  const hostileNotEnded = outcomes.filter((o) => !o.ok && o.hostile).length;
  const failures: string[] = [];
  if (!proxyAlive) failures.push(`the proxy exited (${proxy.child.exitCode}): ${proxy.stderr.slice(-500)}`);
  for (const [name, trend] of Object.entries(trends)) {
    if (name === 'rss') continue;
    if (trend.verdict === 'growth')
      failures.push(
        `${name} grows: ${trend.slopePerMinute.toPrecision(3)}/min [${trend.lowPerMinute.toPrecision(3)}, ${trend.highPerMinute.toPrecision(3)}] over the tolerance ${trend.tolerancePerMinute}/min`,
      );
    if (trend.verdict === 'too-few-samples') failures.push(`${name}: too few samples in the second half to judge (${trend.bins} bins); run longer`);
  }
  if (rssJudgement.verdict === 'growth') {
    const t = trends.rss!;
    failures.push(
      `rss grows: ${t.slopePerMinute.toPrecision(3)}/min [${t.lowPerMinute.toPrecision(3)}, ${t.highPerMinute.toPrecision(3)}] (tolerance ${t.tolerancePerMinute}/min); ${rssJudgement.why}`,
    );
  }
  if (rssJudgement.verdict === 'too-few-samples') failures.push(`rss: too few samples in the second half to judge (${trends.rss!.bins} bins); run longer`);
  if (lost > 0) failures.push(`${lost} association(s) lost that were not meant to be`);
  if (hostileNotEnded > 0) failures.push(`${hostileNotEnded} hostile connection(s) not ended by the proxy as expected`);
  if (proxyErrors.length > 0) failures.push(`${proxyErrors.length} error log line(s) from the proxy, first: ${JSON.stringify(proxyErrors[0])}`);
  if (proxyAlive && endFds > baselineFds) failures.push(`the proxy holds ${endFds} descriptors after the load, ${baselineFds} at the start`);
  if (proxyAlive && !(stopMs <= DRAIN_MS + 2000))
    failures.push(`SIGTERM at the end: ${Number.isFinite(stopMs) ? `exit after ${stopMs} ms` : 'no exit'}, over --drain-timeout ${DRAIN_MS} ms + 2 s`);

  const summary = {
    minutes: opts.minutes,
    loadSeconds: Math.round(loadSeconds),
    workers: opts.workers,
    hostileShare: opts.hostile,
    seed: opts.seed,
    machine: { cpus: os.cpus().length, loadavg: os.loadavg() },
    stopMs,
    associations: outcomes.length,
    byKind: Object.fromEntries(byKind),
    lost,
    hostileNotEnded,
    fds: { start: baselineFds, end: endFds },
    rssMiB: {
      first: samples[0] ? samples[0].rss_bytes! / MiB : NaN,
      last: samples.at(-1) ? samples.at(-1)!.rss_bytes! / MiB : NaN,
      max: Math.max(...samples.map((s) => s.rss_bytes! / MiB)),
    },
    trends,
    rssJudgement,
    idleProbes: { mid, end },
    eventLoop,
    eventLoopGoalMs: EVENT_LOOP_GOAL_MS,
    proxyErrorLines: proxyErrors.slice(0, 20),
    failures,
  };
  await writeFile(path.join(opts.out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  proxyErrors = [];

  const svg = await renderSvg(
    soakSpec(
      [
        { title: 'resident memory (RSS)', unit: 'MiB', points: series('rss_bytes', MiB), trend: trends.rss },
        { title: 'V8 heap used', unit: 'MiB', points: series('heap_used_bytes', MiB), trend: trends.heap },
        { title: "glibc's main malloc heap ([heap]), resident", unit: 'MiB', points: series('main_heap_rss_bytes', MiB) },
        { title: 'open file descriptors', unit: 'fds', points: series('fds'), trend: trends.fds },
        {
          title: 'event-loop delay p99 per interval (grey: an idle node process on the same machine)',
          unit: 'ms',
          points: series('eventloop_p99_ms'),
          reference: series('reference_eventloop_p99_ms'),
        },
        { title: 'associations open', unit: 'associations', points: series('associations_open') },
      ],
      `soak: ${opts.minutes} min, ${outcomes.length} associations, ${Math.round(opts.hostile * 100)}% hostile, ${opts.workers} workers`,
    ),
  );
  await writeFile(path.join(opts.out, 'soak.svg'), svg);

  const fmt = (t: Trend, unit: string): string =>
    `${t.slopePerMinute.toPrecision(3)} ${unit}/min, 95% CI [${t.lowPerMinute.toPrecision(3)}, ${t.highPerMinute.toPrecision(3)}]${t.includesZero ? ' (holds 0)' : ''}, ${t.bins} bins: ${t.verdict}`;
  log(`${outcomes.length} associations in ${(loadSeconds / 60).toFixed(1)} min: ${[...byKind].map(([k, v]) => `${k} ${v.ok}${v.failed ? `/${v.failed} failed` : ''}`).join(', ')}`);
  log(`RSS ${fmt(trends.rss!, 'MiB')}; judged ${rssJudgement.verdict}: ${rssJudgement.why}`);
  log(`heap ${fmt(trends.heap!, 'MiB')}`);
  log(`fds ${fmt(trends.fds!, 'fds')}; ${baselineFds} at the start, ${endFds} after the load`);
  log(
    `event-loop delay p99 (${probeIntervals} interval(s) of idle probes left out): median of ${eventLoop.intervals} intervals ${eventLoop.medianP99Ms.toFixed(1)} ms, largest ${eventLoop.maxP99Ms.toFixed(1)} ms (bounds the run's p99); ${eventLoop.intervalsOverGoal} interval(s) at or over ${EVENT_LOOP_GOAL_MS} ms; max delay ${eventLoop.maxMs.toFixed(1)} ms; the idle reference process: median ${eventLoop.referenceMedianP99Ms.toFixed(1)} ms, largest ${eventLoop.referenceMaxP99Ms.toFixed(1)} ms (load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} on ${os.cpus().length} CPUs)`,
  );
  log(`associations lost that were not meant to be: ${lost}; hostile connections not ended as expected: ${hostileNotEnded}`);
  log(`written: ${['samples.csv', 'operations.csv', 'messages.csv', 'summary.json', 'soak.svg'].map((f) => path.join(opts.out, f)).join(', ')}`);
  if (failures.length > 0) {
    log(`FAILED:\n  ${failures.join('\n  ')}`);
    return 1;
  }
  log(rssJudgement.verdict === 'retained' ? `passed: nothing lost; RSS rose but not the memory in use (${rssJudgement.why})` : 'passed: no growth, nothing lost');
  return 0;
}
