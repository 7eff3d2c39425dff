// bench: the max-PDU experiment in one command. For each setting (max PDU x image) it starts the proxy
// (the real CLI, its own process) with --max-pdu set, --parallel SCU worker processes sending --count
// images through it to the SCP (embedded, its own process, or --upstream), collects every image's time
// and status, and writes results.csv, the proxy's CSV logs, chart.svg, run.json (the run's settings) and
// report.html (src/report/: the page `stats --html` writes from the same files) to --out.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import cliProgress from 'cli-progress';
import { formatSize } from '../values/size.js';
import { datasetOffset, writeTestDicom } from '../dicom/synthetic.js';
import { experimentSpec, renderSvg } from '../analysis/chart.js';
import { STATUS_SUCCESS } from '../analysis/messages.js';
import { mbPerSecond, meanOf, summarize } from '../analysis/summary.js';
import { renderResultTable } from '../analysis/table.js';
import type { ResultRow } from '../analysis/table.js';
import { writeBenchReport } from '../report/build.js';
import { machineInfo, RUN_JSON } from '../report/run-info.js';
import type { RunInfo, RunSettingInfo } from '../report/run-info.js';
import { Child, nodeScript, PACKAGE_ROOT, PROXY_BIN } from './child.js';
import { makeBenchPki, opensslOnPath } from './certs.js';
import type { BenchPki } from './certs.js';
import { formatEndpoint, linkArgs, linkSettings } from './options.js';
import type { BenchMode, BenchOptions, ScpKind } from './options.js';
import { isShapedLink, linkLabel } from '../values/shaping.js';
import type { LinkSetting } from '../values/shaping.js';
import { RESULTS_CSV_COLUMNS, resultsCsvRow } from './results.js';
import { SCP_STOP_GRACE_MS, ScpStartError, startScpCommand } from './scp-command.js';
import type { RunningScp } from './scp-command.js';
import { fidelity, renderFidelityTable } from '../analysis/fidelity.js';
import type { SettingResult } from './results.js';
import type { WorkerJob, WorkerLine } from './scu-worker.js';

/**
 * What the embedded dcmjs-dimse SCP announces behind the proxy: above every swept size, so each reaches it
 * unchanged. The built-in SCP announces 0 (no maximum) there: it streams, whatever the PDU size.
 */
export const EMBEDDED_SCP_MAX_PDU = 64 * 1024 * 1024;

/** The sender, as the plan line and the report name it. */
export function senderLabel(o: Pick<BenchOptions, 'scu' | 'association'>): string {
  if (o.scu === 'dcmtk') return 'DCMTK storescu';
  if (o.scu === 'dcmjs') return 'dcmjs-dimse Client';
  return `built-in SCU (${o.association === 'per-sender' ? 'one association per sender' : 'one association per image'})`;
}

/** What each sender does with a swept size (what the chunk CSVs then show). */
export function senderWithSize(scu: BenchOptions['scu']): string {
  if (scu === 'dcmtk') return 'never sends PDUs over 128KB (DCMTK caps its send limit at 131072, header included): settings above 128KB measure 128KB PDUs';
  if (scu === 'dcmjs') return 'fills PDUs to the size the AC gives but never over 4 MiB (4194304): 10MB and 20MB send 4 MiB PDUs';
  return 'sends P-DATA-TF of exactly the size the AC gives (the last one shorter), from memory; 0 = the whole data set in one PDV';
}

/** The SCP, as the plan line names it. */
function scpPlan(o: BenchOptions, scpMaxText: string): string {
  if (o.upstream) return formatEndpoint(o.upstream);
  if (o.scpCommand) {
    const how = o.modes.map((m) => (m === 'proxy' ? `{pdu} = ${o.scpPdu} behind the proxy` : '{pdu} = each size natively')).join(', ');
    return `\`${o.scpCommand.source}\` started per setting (${how})`;
  }
  return `embedded ${o.scp} (announces ${scpMaxText})`;
}

/** What the embedded SCP does (undefined with --upstream: that SCP is the user's). */
export function scpWithSize(o: Pick<BenchOptions, 'scp' | 'upstream' | 'scpCommand'>): string | undefined {
  if (o.upstream || o.scpCommand) return undefined;
  if (o.scp === 'dcmjs')
    return 'announces 64MB behind the proxy, the swept size with --direct; assembles each PDU with a Buffer.concat per read, so its cost grows with the square of the PDU size';
  return 'announces 0 (no maximum) behind the proxy, the swept size with --direct; streams every PDU (never holds a whole PDU or data set) and answers each C-STORE when its last fragment arrives';
}
const START_TIMEOUT_MS = 30_000;
const LOOPBACK = '127.0.0.1';

export interface BenchIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

interface ImageSet {
  label: string;
  files: string[];
  /** Dataset bytes (after the Part 10 meta header) per file: what a C-STORE carries. */
  datasetBytes: number[];
}

export interface ImageOutcome {
  ms?: number;
  status?: string;
  error?: string;
  bytes: number;
  /** The built-in sender: connect and negotiation of the association this image opened (ms). */
  connectMs?: number;
  associateMs?: number;
}

function storescuOnPath(): boolean {
  const r = spawnSync('storescu', ['--version'], { encoding: 'utf8', timeout: 15_000 });
  return r.error === undefined && r.status === 0;
}

/** Per-setting file names: results/…/chunks-16KB-16MB.csv; with shaping chunks-16KB-16MB-20ms-100Mbit.csv. */
function fileTag(pdu: number, image: ImageSet, mode: BenchMode, link: LinkSetting): string {
  const shaped = isShapedLink(link) ? `-${linkLabel(link).replace('±', 'j').replace(' ', '-').replace('/s', 'ps')}` : '';
  return `${formatSize(pdu)}-${image.label}${shaped}${mode === 'proxy' ? '' : `-${mode}`}`;
}

async function startScp(kind: ScpKind, maxPdu: number, storeDir: string | undefined, pki: BenchPki | undefined): Promise<{ child: Child; port: number }> {
  const args = [...nodeScript(kind === 'builtin' ? 'scp-builtin-process' : 'scp-process'), '--port', '0', '--max-pdu', String(maxPdu)];
  if (storeDir) args.push('--store-dir', storeDir);
  // --tls: the server certificate; client certificates from the bench CA required.
  if (pki) args.push('--tls-cert', pki.server.cert, '--tls-key', pki.server.key, '--tls-ca', pki.ca);
  const child = new Child('embedded SCP', process.execPath, args);
  const m = await child.waitForLine(/^listening (\d+)$/, START_TIMEOUT_MS);
  return { child, port: Number(m[1]) };
}

/** --tls: the proxy re-encrypts; client certificates required on both legs (ATNA's mutual authentication). */
function proxyTlsArgs(pki: BenchPki): string[] {
  return [
    '--tls-cert',
    pki.server.cert,
    '--tls-key',
    pki.server.key,
    '--tls-ca',
    pki.ca,
    '--tls-client-auth',
    'required',
    '--upstream-tls',
    '--upstream-tls-ca',
    pki.ca,
    '--upstream-tls-cert',
    pki.client.cert,
    '--upstream-tls-key',
    pki.client.key,
  ];
}

type LegsTls = NonNullable<RunSettingInfo['tls']>;

async function startProxy(
  upstream: string,
  pdu: number,
  link: LinkSetting,
  chunkCsv: string,
  messagesCsv: string | undefined,
  pki: BenchPki | undefined,
): Promise<{ child: Child; port: number; tls: () => LegsTls | undefined }> {
  const args = [PROXY_BIN, '--listen', `${LOOPBACK}:0`, '--upstream', upstream, '--max-pdu', String(pdu), ...linkArgs(link), '--csv', chunkCsv];
  if (messagesCsv) args.push('--messages-csv', messagesCsv);
  if (pki) args.push(...proxyTlsArgs(pki));
  const child = new Child('proxy', process.execPath, args);
  // The first 'association negotiated' line says what TLS each leg of the proxy ran (version, cipher).
  let legs: LegsTls | undefined;
  if (pki) {
    child.onLine((line) => {
      if (legs || !line.includes('"association negotiated"')) return;
      const t = (JSON.parse(line) as { tls?: Record<'scu' | 'scp', { version: string | null; cipher: string } | undefined> }).tls;
      const leg = (x: { version: string | null; cipher: string } | undefined): { version: string | null; cipher: string } | undefined =>
        x ? { version: x.version, cipher: x.cipher } : undefined;
      legs = { scu: leg(t?.scu), scp: leg(t?.scp) };
    });
  }
  const m = await child.waitForLine(/"msg":"listening"/, START_TIMEOUT_MS);
  const listen = (JSON.parse(m.input!) as { listen: string }).listen;
  return { child, port: Number(listen.slice(listen.lastIndexOf(':') + 1)), tls: () => legs };
}

interface WorkerRun {
  outcomes: ImageOutcome[];
  /** Spawn -> last worker ready, and last ready -> last worker done (ms). */
  startMs: number;
  sendMs: number;
  /** Mean interval between consecutive images of one sender (image, release, next association): a steady round. */
  cycleMs: number | undefined;
}

/** Run `parallel` workers sending `count` images in all to host:port; every image gets an outcome. */
async function runWorkers(o: BenchOptions, image: ImageSet, host: string, port: number, count: number, onImage: () => void, pki?: BenchPki): Promise<WorkerRun> {
  const t0 = performance.now();
  let lastReady = t0;
  const outcomes: ImageOutcome[] = [];
  const cycles: number[] = [];
  const shares = Array.from({ length: Math.min(o.parallel, count) }, (_, w) => Math.floor(count / o.parallel) + (w < count % o.parallel ? 1 : 0));
  let first = 0;
  const runs = shares.map(async (share, w) => {
    const job: WorkerJob = {
      scu: o.scu,
      association: o.association,
      host,
      port,
      callingAet: o.callingAet,
      calledAet: o.calledAet,
      files: image.files,
      first: (first += share) - share,
      count: share,
      timeoutMs: o.timeoutMs,
      ...(pki ? { tls: { ca: pki.ca, cert: pki.client.cert, key: pki.client.key } } : {}),
    };
    const mine: ImageOutcome[] = [];
    let previous: number | undefined;
    const child = new Child(`scu worker ${w + 1}`, process.execPath, [...nodeScript('scu-worker'), JSON.stringify(job)]);
    child.onLine((line) => {
      if (!line.startsWith('{')) return;
      const msg = JSON.parse(line) as WorkerLine;
      if ('ready' in msg) {
        lastReady = Math.max(lastReady, performance.now());
        return;
      }
      const now = performance.now();
      if (previous !== undefined) cycles.push(now - previous);
      previous = now;
      const bytes = image.datasetBytes[msg.file] ?? 0;
      mine.push('error' in msg ? { error: msg.error, bytes } : { ms: msg.ms, status: msg.status, bytes, connectMs: msg.connectMs, associateMs: msg.associateMs });
      onImage();
    });
    const { code, signal } = await child.exited;
    // An image the worker never reported is a failure too, never a gap.
    while (mine.length < share) {
      mine.push({ error: `SCU worker ${w + 1} ended (${signal ?? `exit ${code}`}) before reporting it: ${child.stderr.split('\n').pop() ?? ''}`, bytes: 0 });
      onImage();
    }
    outcomes.push(...mine);
  });
  await Promise.all(runs);
  const cycleMs = cycles.length > 0 ? cycles.reduce((a, b) => a + b, 0) / cycles.length : undefined;
  return { outcomes, startMs: lastReady - t0, sendMs: performance.now() - lastReady, cycleMs };
}

/** The time split of the C-STORE requests of a messages CSV (the engine is loaded here, on use). */
async function messagesSplit(messagesCsv: string): Promise<Pick<ResultRow, 'scuIdleMs' | 'upstreamBlockedMs' | 'scpResponseMs' | 'proxyBusyMs'>> {
  const [{ withEngine }, { createViews, inputError, openLogs }, { groupMessages }] = await Promise.all([
    import('../analysis/engine.js'),
    import('../analysis/logs.js'),
    import('../analysis/messages.js'),
  ]);
  return withEngine(async (engine) => {
    const sources = await openLogs(engine, [messagesCsv]);
    await createViews(engine, sources);
    try {
      const { rows } = await groupMessages(engine, { by: 'command', perRoute: false, where: "command = 'C-STORE-RQ'" });
      const split = rows[0];
      return { scuIdleMs: split?.scuIdleMs, upstreamBlockedMs: split?.upstreamBlockedMs, scpResponseMs: split?.scpResponseMs, proxyBusyMs: split?.proxyBusyMs };
    } catch (err) {
      throw inputError(err, sources);
    }
  });
}

/** The table row of one setting, from the senders' measurements and (when written) the messages CSV. */
export async function settingRow(label: string, outcomes: readonly ImageOutcome[], messagesCsv: string | undefined): Promise<ResultRow> {
  const acked = outcomes.filter((x) => x.ms !== undefined);
  const seconds = acked.map((x) => x.ms! / 1000);
  const row: ResultRow = {
    label,
    count: outcomes.length,
    failures: outcomes.filter((x) => x.status !== STATUS_SUCCESS).length,
    seconds: summarize(seconds),
    mbPerS: mbPerSecond(
      acked.reduce((s, x) => s + x.bytes, 0),
      seconds.reduce((s, v) => s + v, 0),
    ),
    scuIdleMs: undefined,
    upstreamBlockedMs: undefined,
    scpResponseMs: undefined,
    proxyBusyMs: undefined,
  };
  if (messagesCsv && existsSync(messagesCsv) && statSync(messagesCsv).size > 0) {
    const split = await messagesSplit(messagesCsv);
    row.scuIdleMs = split.scuIdleMs;
    row.upstreamBlockedMs = split.upstreamBlockedMs;
    row.scpResponseMs = split.scpResponseMs;
    row.proxyBusyMs = split.proxyBusyMs;
  }
  return row;
}

function describeFailures(outcomes: readonly ImageOutcome[]): string {
  const reasons = new Map<string, number>();
  for (const x of outcomes) {
    if (x.status === STATUS_SUCCESS) continue;
    const why = x.error ?? `status ${x.status}`;
    reasons.set(why, (reasons.get(why) ?? 0) + 1);
  }
  return [...reasons].map(([why, n]) => `${n} x ${why}`).join('; ');
}

/** cli-progress bar on a TTY (lines are logged above it); plain lines otherwise. */
class Progress {
  private multi: cliProgress.MultiBar | undefined;
  private bar: cliProgress.SingleBar | undefined;
  constructor(
    private readonly io: BenchIo,
    total: number,
  ) {
    if (io.stderr.isTTY) {
      this.multi = new cliProgress.MultiBar(
        { stream: io.stderr as NodeJS.WriteStream, format: '{bar} {value}/{total} images | {setting} | {duration_formatted} elapsed, ETA {eta_formatted}', hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      this.bar = this.multi.create(total, 0, { setting: '' });
    }
  }
  setting(text: string): void {
    if (this.bar) this.bar.update({ setting: text });
    else this.io.stderr.write(`${text}: sending\n`);
  }
  image(): void {
    this.bar?.increment();
  }
  line(text: string): void {
    if (this.multi) {
      this.multi.log(`${text}\n`);
      this.multi.update(); // redraw now: flushes the line above the bar
    } else this.io.stderr.write(`${text}\n`);
  }
  stop(): void {
    this.multi?.stop();
  }
}

function humanSeconds(s: number): string {
  return s < 90 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export async function runBench(o: BenchOptions, io: BenchIo): Promise<number> {
  const say = (text: string): void => void io.stderr.write(`${text}\n`);
  if (o.scu === 'dcmtk' && !storescuOnPath()) {
    say('dicom-pdu-proxy bench: --scu dcmtk needs DCMTK storescu on PATH (Debian/Ubuntu: apt-get install dcmtk)');
    return 2;
  }
  if (o.tls && !opensslOnPath()) {
    say('dicom-pdu-proxy bench: --tls needs openssl on PATH to make its throwaway certificates (Debian/Ubuntu: apt-get install openssl)');
    return 2;
  }
  mkdirSync(o.out, { recursive: true });
  const startedAt = new Date();
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'dpp-bench-'));
  const children: Child[] = [];
  const onSigint = (): void => {
    void Promise.all(children.map((c) => c.stop(1000))).finally(() => {
      rmSync(tmp, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once('SIGINT', onSigint);
  try {
    // --tls: this run's certificates, in the temporary directory (removed at the end).
    const pki = o.tls ? makeBenchPki(path.join(tmp, 'pki')) : undefined;
    // Images: synthetic ones written once; real ones as given.
    const imageSets: ImageSet[] = [];
    if (o.images.length > 0) {
      const bytes = o.images.map((f) => {
        const b = readFileSync(f);
        return b.length - datasetOffset(b);
      });
      imageSets.push({ label: o.images.length === 1 ? path.basename(o.images[0]!) : `${o.images.length}files`, files: o.images, datasetBytes: bytes });
    } else {
      for (const size of o.imageSizes) {
        const info = await writeTestDicom(path.join(tmp, `image-${size}.dcm`), { pixelBytes: size, seed: 1 });
        imageSets.push({ label: formatSize(size), files: [info.path!], datasetBytes: [info.datasetLength] });
      }
    }
    // Links (latency x bandwidth) outside the max PDUs: the table reads as "on this link, which max PDU".
    const links = linkSettings(o);
    // With --scp-command and --both, each size runs natively and through the proxy one after the other
    // (alternating which goes first), so that a machine whose load drifts affects both alike.
    const settings = o.scpCommand
      ? imageSets.flatMap((image) =>
          links.flatMap((link) => o.pdus.flatMap((pdu, k) => (k % 2 === 0 ? o.modes : [...o.modes].reverse()).map((mode) => ({ mode, image, link, pdu })))),
        )
      : o.modes.flatMap((mode) => imageSets.flatMap((image) => links.flatMap((link) => o.pdus.map((pdu) => ({ mode, image, link, pdu })))));
    const sweepsLinks = links.length > 1 || links.some(isShapedLink);
    /** The chart's series: mode (with --both) and link (when shaping is swept). */
    const seriesOf = (s: { mode: BenchMode; link: LinkSetting }): string =>
      [o.modes.length > 1 ? s.mode : '', sweepsLinks ? linkLabel(s.link) : ''].filter(Boolean).join(' ') || s.mode;
    const labelOf = (s: (typeof settings)[number]): string =>
      [formatSize(s.pdu), imageSets.length > 1 ? s.image.label : '', sweepsLinks ? linkLabel(s.link) : '', o.modes.length > 1 ? s.mode : ''].filter(Boolean).join(' ');

    // The SCP behind the proxy: the real one, or the embedded one announcing a large maximum.
    const scpMax = o.scp === 'builtin' ? 0 : Math.max(EMBEDDED_SCP_MAX_PDU, ...o.pdus);
    const scpMaxText = scpMax === 0 ? '0, no maximum' : formatSize(scpMax);
    let scpPort: number | undefined;
    const target = (): string => (o.upstream ? formatEndpoint(o.upstream) : `${LOOPBACK}:${scpPort}`);
    if (!o.upstream && !o.scpCommand) {
      const scp = await startScp(o.scp, scpMax, o.storeDir, pki);
      children.push(scp.child);
      scpPort = scp.port;
    }
    /** --scp-command: the SCP of one setting, started with {pdu} = `pdu`; its log in --out. */
    let scratchCount = 0;
    const startCommandScp = (pdu: number, logName: string): Promise<RunningScp> =>
      startScpCommand(o.scpCommand!, {
        pdu,
        scratch: path.join(tmp, `scp-${++scratchCount}`),
        logFile: path.join(o.out, logName),
        timeoutMs: o.scpStartTimeoutMs,
      });
    const stopCommandScp = async (scp: RunningScp): Promise<void> => {
      await scp.child.stop(SCP_STOP_GRACE_MS);
      rmSync(scp.scratch, { force: true, recursive: true }); // what the SCP stored: one setting's images at most
    };
    if (o.scpCommand) {
      // Every {pdu} the run will use is started once before any image is sent: a template that cannot
      // run (or an SCP that refuses a size) is one line and exit status 2 now, not a run of failures.
      const needed = [...new Set(settings.map((st) => (st.mode === 'proxy' ? o.scpPdu : st.pdu)))];
      for (const pdu of needed) {
        try {
          await stopCommandScp(await startCommandScp(pdu, `scp-start-${formatSize(pdu)}.log`));
        } catch (err) {
          if (!(err instanceof ScpStartError)) throw err;
          say(`dicom-pdu-proxy bench: --scp-command with {pdu} = ${pdu}: ${err.message}`);
          return 2;
        }
      }
    }
    say(
      `bench: ${settings.length} settings (max PDU ${o.pdus.map(formatSize).join(', ')}; image ${imageSets.map((i) => i.label).join(', ')}; ` +
        (sweepsLinks ? `link ${links.map(linkLabel).join(', ')} each way; ` : '') +
        `${o.modes.join(' and ')}), ${o.count} images each, ${o.parallel} × ${senderLabel(o)} in parallel; ` +
        `SCP ${scpPlan(o, scpMaxText)}${pki ? `; TLS on every leg (${o.modes.includes('proxy') ? 'the proxy re-encrypts, ' : ''}throwaway certificates, client certificates required)` : ''}; output ${o.out}`,
    );
    if (o.scu === 'dcmtk' && o.pdus.some((p) => p === 0 || p > 131072)) {
      say('bench: note: storescu never sends PDUs over 128KB (DCMTK caps its send limit at 131072): settings above 128KB measure 128KB PDUs; the chunk CSVs show it');
    }
    if (o.scu === 'dcmjs' && o.pdus.some((p) => p === 0 || p > 4 * 1024 * 1024)) {
      say('bench: note: the dcmjs-dimse Client never sends PDUs over 4 MiB: settings above 4MB measure 4 MiB PDUs; the chunk CSVs show it');
    }

    // Warm-up (not counted): two images per sender straight to the SCP. The first is cold (JIT, caches);
    // the interval to the second is a steady round, from which the whole run is estimated.
    {
      const warmCount = 2 * o.parallel;
      let warmScp: RunningScp | undefined;
      if (o.scpCommand) {
        const first = settings[0]!;
        warmScp = await startCommandScp(first.mode === 'proxy' ? o.scpPdu : first.pdu, 'scp-warm-up.log');
      }
      const warm = o.upstream
        ? await runWorkers(o, imageSets[0]!, o.upstream.host, o.upstream.port, warmCount, () => undefined)
        : await runWorkers(o, imageSets[0]!, LOOPBACK, warmScp ? warmScp.port : scpPort!, warmCount, () => undefined, pki);
      if (warmScp) await stopCommandScp(warmScp);
      const bad = warm.outcomes.filter((x) => x.status !== STATUS_SUCCESS);
      if (bad.length === warm.outcomes.length && bad.every((x) => x.error !== undefined)) {
        say(`bench: the warm-up images could not be sent: ${describeFailures(warm.outcomes)}`);
        return 1;
      }
      // Per setting: senders' start-up + a proxy start (~0.5 s) + rounds of `parallel` images, scaled by image size.
      const rounds = Math.ceil(o.count / o.parallel);
      const cycleMs = warm.cycleMs ?? warm.sendMs;
      // A shaped link (the warm-up is not shaped) can be slower: the images' bytes at its bandwidth, and
      // about 4 one-way latencies per image (RQ/AC, data/RSP) per sender.
      const linkSeconds = (st: (typeof settings)[number]): number =>
        (st.link.bandwidth > 0 ? (o.count * meanBytes(st.image)) / st.link.bandwidth : 0) + (rounds * 4 * st.link.latency.ms) / 1000;
      const estimate = settings.reduce((sum, st) => sum + warm.startMs / 1000 + 0.5 + Math.max((rounds * cycleMs * sizeRatio(st.image, imageSets[0]!)) / 1000, linkSeconds(st)), 0);
      say(
        `bench: warm-up: ${warm.outcomes.length} images in ${(warm.sendMs / 1000).toFixed(2)} s (senders ready in ${(warm.startMs / 1000).toFixed(2)} s, ` +
          `then ${(cycleMs / 1000).toFixed(2)} s per round of ${o.parallel}); estimated total about ${humanSeconds(estimate)}`,
      );
      if (bad.length > 0) say(`bench: warning: ${bad.length} warm-up image(s) not acknowledged with Success: ${describeFailures(bad)}`);
    }

    const settingResult = (s: (typeof settings)[number], row: ResultRow, outcomes: readonly ImageOutcome[]): (typeof results)[number] => ({
      row,
      mode: s.mode,
      pdu: s.pdu,
      imageBytes: meanBytes(s.image),
      parallel: o.parallel,
      scu: o.scu,
      link: s.link,
      connectMs: meanOf(outcomes.map((x) => x.connectMs)),
      associateMs: meanOf(outcomes.map((x) => x.associateMs)),
      scp: o.upstream ? 'upstream' : o.scpCommand ? 'command' : o.scp,
      association: o.scu === 'dcmjs' ? 'per-image' : o.scu === 'dcmtk' ? 'per-sender' : o.association,
      series: seriesOf(s),
      setting: [formatSize(s.pdu), imageSets.length > 1 ? s.image.label : '', sweepsLinks ? linkLabel(s.link) : ''].filter(Boolean).join(' '),
      pduLabel: [formatSize(s.pdu), imageSets.length > 1 ? s.image.label : ''].filter(Boolean).join(' '),
    });
    const progress = new Progress(io, settings.length * o.count);
    const results: Array<SettingResult & { series: string; pduLabel: string; setting: string }> = [];
    const runSettings: RunSettingInfo[] = [];
    const allOutcomes: ImageOutcome[] = [];
    const started = performance.now();
    try {
      for (const [i, s] of settings.entries()) {
        const label = labelOf(s);
        const tag = fileTag(s.pdu, s.image, s.mode, s.link);
        progress.setting(`[${i + 1}/${settings.length}] ${label}`);
        let port: number;
        let stopAfter: Child;
        let messagesCsv: string | undefined;
        let proxyTls: (() => LegsTls | undefined) | undefined;
        const t = performance.now();
        const info: RunSettingInfo = { label, pdu: s.pdu, image: s.image.label, imageBytes: meanBytes(s.image), mode: s.mode };
        if (isShapedLink(s.link)) info.link = { latencyMs: s.link.latency.ms, jitterMs: s.link.latency.jitterMs, bandwidthBps: Math.round(s.link.bandwidth * 8) };
        runSettings.push(info);
        // --scp-command: this setting's SCP, started with the size itself (native) or --scp-pdu (proxy).
        let commandScp: RunningScp | undefined;
        if (o.scpCommand) {
          info.scpLog = `scp-${tag}.log`;
          try {
            commandScp = await startCommandScp(s.mode === 'proxy' ? o.scpPdu : s.pdu, info.scpLog);
          } catch (err) {
            if (!(err instanceof ScpStartError)) throw err;
            // It started before (the check above): count this setting's images as failures and go on.
            const outcomes = Array.from({ length: o.count }, () => ({ error: `the SCP did not start: ${err.message}`, bytes: 0 }));
            outcomes.forEach(() => progress.image());
            allOutcomes.push(...outcomes);
            const row = await settingRow(label, outcomes, undefined);
            results.push(settingResult(s, row, outcomes));
            progress.line(`[${i + 1}/${settings.length}] ${label}: ${o.count} FAILED (the SCP did not start: ${err.message})`);
            continue;
          }
          children.push(commandScp.child);
          scpPort = commandScp.port;
        }
        if (s.mode === 'proxy') {
          info.messagesCsv = `messages-${tag}.csv`;
          info.chunksCsv = `chunks-${tag}.csv`;
          messagesCsv = path.join(o.out, info.messagesCsv);
          // The proxy appends to an existing messages CSV; this setting's split must come from this run only.
          if (messagesCsv) rmSync(messagesCsv, { force: true });
          const proxy = await startProxy(target(), s.pdu, s.link, path.join(o.out, info.chunksCsv), messagesCsv, pki);
          proxyTls = proxy.tls;
          children.push(proxy.child);
          port = proxy.port;
          stopAfter = proxy.child;
        } else if (commandScp) {
          port = commandScp.port;
          stopAfter = commandScp.child;
        } else {
          // --direct: the embedded SCP itself announces this size (one SCP process per setting).
          const scp = await startScp(o.scp, s.pdu, o.storeDir, pki);
          children.push(scp.child);
          port = scp.port;
          stopAfter = scp.child;
        }
        const run = await runWorkers(o, s.image, LOOPBACK, port, o.count, () => progress.image(), pki);
        // An SCP of --scp-command that ended during the setting: its images failed (counted); the next
        // setting starts its own.
        const scpDied = commandScp?.child.ended ? `; the SCP exited during the setting (see ${info.scpLog})` : '';
        await stopAfter.stop(); // the proxy flushes its CSV files on SIGTERM
        const legs = proxyTls?.();
        if (legs) info.tls = legs;
        children.splice(children.indexOf(stopAfter), 1);
        if (commandScp && stopAfter !== commandScp.child) {
          await stopCommandScp(commandScp);
          children.splice(children.indexOf(commandScp.child), 1);
        } else if (commandScp) rmSync(commandScp.scratch, { force: true, recursive: true });
        const row = await settingRow(label, run.outcomes, messagesCsv);
        allOutcomes.push(...run.outcomes);
        results.push(settingResult(s, row, run.outcomes));
        const failures = row.failures > 0 ? `, ${row.failures} FAILED (${describeFailures(run.outcomes)}${scpDied})` : scpDied;
        progress.line(
          `[${i + 1}/${settings.length}] ${label}: ${row.count} images, mean ${row.seconds ? row.seconds.mean.toFixed(3) : '-'} s` +
            `, ${row.mbPerS ? row.mbPerS.toFixed(1) : '-'} MB/s per sender${failures} (${((performance.now() - t) / 1000).toFixed(1)} s)`,
        );
      }
    } finally {
      progress.stop();
    }

    // Output: results.csv, chart.svg, the table.
    writeFileSync(path.join(o.out, 'results.csv'), [RESULTS_CSV_COLUMNS.join(','), ...results.map((r) => resultsCsvRow(r).join(','))].join('\n') + '\n');
    const seriesNames = [...new Set(results.map((r) => r.series))];
    const series = seriesNames.map((name) => ({ series: name, rows: results.filter((r) => r.series === name).map((r) => ({ ...r.row, label: r.pduLabel })) }));
    const svg = await renderSvg(
      experimentSpec(
        series,
        'max PDU',
        `seconds per image: ${imageSets.map((x) => x.label).join(', ')}, ${o.parallel} sender${o.parallel === 1 ? '' : 's'} (${o.scu})${o.tls ? ', over TLS' : ''}`,
      ),
    );
    writeFileSync(path.join(o.out, 'chart.svg'), svg);
    writeFileSync(path.join(o.out, RUN_JSON), `${JSON.stringify(runInfo(o, imageSets, scpMax, startedAt, runSettings), null, 2)}\n`);
    // The measurements are on disk by now: a report that cannot be written must not lose them.
    let report: string | undefined;
    let reportError: string | undefined;
    try {
      report = await writeBenchReport(o.out);
    } catch (err) {
      reportError = (err as Error).message;
    }
    // "vs fastest" compares settings of the same image size, mode and link only.
    io.stdout.write(
      renderResultTable(
        results.map((r) => r.row),
        'max_pdu',
        (_, i) => `${results[i]!.series} ${results[i]!.imageBytes}`,
      ),
    );
    // --both: how closely the proxy reproduces the native method, per setting, and the ranking both ways.
    const both = fidelity(results.map((r) => ({ setting: r.setting, mode: r.mode, seconds: r.row.seconds, proxyBusyMs: r.row.proxyBusyMs })));
    if (both) io.stdout.write(`\nproxy versus ${o.scpCommand ? 'native' : 'direct'} (seconds per image, 95% intervals):\n${renderFidelityTable(both)}`);
    const failed = allOutcomes.filter((x) => x.status !== STATUS_SUCCESS);
    say(
      `bench: ${allOutcomes.length} images in ${humanSeconds((performance.now() - started) / 1000)}; seconds per image as measured by the senders, MB = 2^20 bytes; results in ${o.out}`,
    );
    if (report) say(`bench: report: ${report}`);
    else say(`bench: report.html could not be written (${reportError}); results.csv and the CSV logs are complete: try 'dicom-pdu-proxy stats ${o.out}/*.csv --html report.html'`);
    if (failed.length > 0) {
      say(`bench: ${failed.length} of ${allOutcomes.length} images were NOT acknowledged with Success: ${describeFailures(failed)}`);
      return 1;
    }
    return report ? 0 : 1;
  } finally {
    process.removeListener('SIGINT', onSigint);
    await Promise.all(children.map((c) => c.stop()));
    rmSync(tmp, { recursive: true, force: true });
  }
}

function runInfo(o: BenchOptions, images: readonly ImageSet[], scpMax: number, startedAt: Date, settings: RunSettingInfo[]): RunInfo {
  const { version } = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
  return {
    tool: `dicom-pdu-proxy ${version}`,
    startedAt: startedAt.toISOString().replace(/\.\d+Z$/, 'Z'),
    finishedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    machine: machineInfo(),
    scu: { kind: o.scu, parallel: o.parallel, callingAet: o.callingAet, count: o.count, label: senderLabel(o), withSize: senderWithSize(o.scu) },
    scp: {
      calledAet: o.calledAet,
      target: o.upstream
        ? `${formatEndpoint(o.upstream)} (--upstream)`
        : o.scpCommand
          ? `--scp-command ${o.scpCommand.source}: started per setting with {pdu} = the setting natively, ${o.scpPdu} behind the proxy (--scp-pdu)`
          : `embedded ${o.scp === 'builtin' ? 'built-in' : 'dcmjs-dimse'} SCP, announces ${scpMax === 0 ? '0 (no maximum)' : formatSize(scpMax)} behind the proxy`,
      ...(scpWithSize(o) ? { withSize: scpWithSize(o) } : {}),
    },
    images: images.map((i) => ({ label: i.label, bytes: meanBytes(i) })),
    pdus: o.pdus,
    modes: o.modes,
    proxyOptions: o.modes.includes('proxy')
      ? `dicom-pdu-proxy --listen ${LOOPBACK}:0 --upstream <SCP> --max-pdu <setting>` +
        (linkSettings(o).some(isShapedLink) ? ' --latency <setting> --bandwidth <setting>' : '') +
        (o.tls
          ? ' --tls-cert server.crt --tls-key server.key --tls-ca ca.crt --tls-client-auth required --upstream-tls --upstream-tls-ca ca.crt --upstream-tls-cert client.crt --upstream-tls-key client.key'
          : '') +
        ' --csv chunks-<setting>.csv --messages-csv messages-<setting>.csv (defaults otherwise)'
      : 'no proxy (--direct)',
    ...(o.tls
      ? {
          tls:
            `--tls: every leg over TLS (${o.modes.map((m) => (m === 'proxy' ? 'sender -> proxy -> SCP, the proxy re-encrypting' : 'sender -> SCP')).join('; ')}); ` +
            'throwaway certificates made for the run with openssl (a CA, a server and a client certificate, RSA 2048), client certificates required on every leg',
        }
      : {}),
    settings,
  };
}

function meanBytes(image: ImageSet): number {
  return Math.round(image.datasetBytes.reduce((s, b) => s + b, 0) / image.datasetBytes.length);
}

function sizeRatio(a: ImageSet, b: ImageSet): number {
  return meanBytes(a) / meanBytes(b);
}
