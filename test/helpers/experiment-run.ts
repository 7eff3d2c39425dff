// One experiment through the real proxy, end to end: the built-in SCP with a known cost per P-DATA-TF
// (--pdata-delay), the proxy with arms (--max-pdu A,B --assign block --assign-seed N) writing its messages
// CSV, and live-like traffic in front of it: several devices (calling AE titles) in parallel, some DCMTK
// storescu (one process per association), some the built-in SCU, each sending associations of a few
// images of mixed sizes. Then `stats`' analysis of the CSV, and the effect the SCP's cost per PDU implies.
// Used by scripts/experiment-check.ts (the A/A and A/B goals of issue 25) and test/integration/experiment-ab.test.ts.

import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { addMessage, emptySums, fitArms, ratioOf } from '../../src/analysis/arm-effect.js';
import type { Sums } from '../../src/analysis/arm-effect.js';
import { withEngine } from '../../src/analysis/engine.js';
import { analyseExperiment, TIMED_MESSAGE } from '../../src/analysis/experiment.js';
import type { Experiment } from '../../src/analysis/experiment.js';
import { createViews, openLogs } from '../../src/analysis/logs.js';
import { ScuAssociation, contextsFor, loadImage, renewInstanceUid, SCU_MAX_LENGTH } from '../../src/peers/scu.js';
import { seededRandom } from '../../src/experiment/random.js';
import { storescuArgs } from './dcmtk.js';
import { writeTestDicom } from './dicom-file.js';
import { runToExit, spawnPeer } from './procs.js';
import { ProxyProcess, REPO_ROOT } from './proxy.js';

/** A PDV header inside a P-DATA-TF: item length (4), context id (1), message control header (1): PS3.8 9.3.5.1. */
const PDV_HEADER = 6;
const SCP_PROCESS = path.join(REPO_ROOT, 'dist', 'bench', 'scp-builtin-process.js');

export interface Device {
  aet: string;
  scu: 'dcmtk' | 'builtin';
}

export interface RunSpec {
  /** --max-pdu of the proxy: the arms ("16KB,20KB"; "16KB,16KB" for an A/A run). */
  arms: string;
  /** --assign-seed, and the seed of the traffic (which images, how many). */
  seed: number;
  /** The SCP's cost per P-DATA-TF that carried a data set, in ms. */
  delayMs: number;
  devices: readonly Device[];
  associationsPerDevice: number;
  /** Images per association: uniform in [min, max]. */
  imagesPerAssociation: readonly [number, number];
  /** The image files to draw from (imagePool writes some). */
  images: readonly string[];
  /** Where the run's files go. */
  dir: string;
}

export interface RunOutcome {
  messagesCsv: string;
  /** The analysis of all devices together, and per device (--by calling_aet). */
  pooled: Experiment;
  perDevice: Experiment;
  /**
   * The effect of the second arm the SCP's cost implies: the same regression over the expected durations
   * (PDUs × delay + the run's median remainder), for the messages and arms of this run.
   */
  computed: number;
  /**
   * P-DATA-TF PDUs of data sets: counted by the SCP, and predicted from the bytes and the arms as
   * ceil(bytes / (max PDU - 6)). They agree but for a few data sets that DCMTK storescu sends in one PDU more.
   */
  scpDataPdus: number;
  predictedDataPdus: number;
  /** Associations that failed (an SCU's non-zero exit or error). */
  failures: string[];
}

/** Data sets of mixed sizes, log-uniform in [min, max] bytes of pixel data: `count` Part 10 files in `dir`. */
export async function imagePool(dir: string, count: number, min: number, max: number, seed = 1): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const generator = seededRandom(seed);
  const random = (): number => generator.next() / 2 ** 32;
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const pixelBytes = 2 * Math.round(Math.exp(Math.log(min) + random() * (Math.log(max) - Math.log(min))) / 2);
    files.push((await writeTestDicom(path.join(dir, `image-${i}.dcm`), { pixelBytes, seed: seed * 1000 + i })).path!);
  }
  return files;
}

async function startScp(delayMs: number): Promise<{ port: number; stop: () => Promise<Record<string, number>> }> {
  const scp = spawnPeer(process.execPath, [SCP_PROCESS, '--port', '0', '--max-pdu', '0', '--pdata-delay', String(delayMs)], { name: 'built-in SCP' });
  const [, port] = (await scp.waitForOutput(/listening (\d+)/, 10_000)) as RegExpMatchArray;
  return {
    port: Number(port),
    stop: async () => {
      await scp.kill(5000);
      const line = /scp-builtin-process: (\{.*\})/.exec(scp.stderr)?.[1];
      return line ? (JSON.parse(line) as Record<string, number>) : {};
    },
  };
}

/** One device's associations, one after the other. */
async function device(d: Device, spec: RunSpec, port: number, failures: string[]): Promise<void> {
  const generator = seededRandom(spec.seed, d.aet);
  const random = (): number => generator.next() / 2 ** 32;
  const [min, max] = spec.imagesPerAssociation;
  for (let a = 0; a < spec.associationsPerDevice; a++) {
    const count = min + Math.floor(random() * (max - min + 1));
    const files = Array.from({ length: count }, () => spec.images[Math.floor(random() * spec.images.length)]!);
    try {
      if (d.scu === 'dcmtk') {
        const r = await runToExit('storescu', storescuArgs({ port, aet: d.aet, calledAet: 'PACS', files, debug: false, timeoutMs: 120_000, dimseTimeoutSec: 60 }), {
          timeoutMs: 120_000,
        });
        if (r.code !== 0) failures.push(`${d.aet} association ${a + 1}: storescu exit ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
      } else {
        const images = files.map(loadImage);
        const assoc = await ScuAssociation.open({
          host: '127.0.0.1',
          port,
          calledAet: 'PACS',
          callingAet: d.aet,
          maxLength: SCU_MAX_LENGTH,
          contexts: contextsFor(images),
          timeoutMs: 60_000,
        });
        for (const image of images) {
          renewInstanceUid(image);
          const status = await assoc.store(image);
          if (status !== 0) failures.push(`${d.aet} association ${a + 1}: status ${status.toString(16)}`);
        }
        await assoc.release();
      }
    } catch (err) {
      failures.push(`${d.aet} association ${a + 1}: ${(err as Error).message}`);
    }
  }
}

interface TimedRow {
  arm: string;
  bytes: number;
  max_pdu: number;
  duration_ms: number;
}

/** The effect of the second arm implied by the SCP's cost per PDU, for this run's messages (see RunOutcome.computed). */
export function computedEffect(rows: readonly TimedRow[], arms: readonly string[], delayMs: number): { ratio: number; pdus: number } {
  const pdus = rows.map((r) => Math.ceil(r.bytes / (r.max_pdu - PDV_HEADER)));
  // What is not the PDUs' cost (the command's way to the SCP, the timer, the answer's way back): the same
  // for both arms, taken as the run's median.
  const rest = rows.map((r, i) => r.duration_ms - pdus[i]! * delayMs).sort((a, b) => a - b);
  const remainder = Math.max(0, rest[Math.floor(rest.length / 2)] ?? 0);
  const sums: Sums[] = arms.map(emptySums);
  rows.forEach((r, i) => addMessage(sums[arms.indexOf(r.arm)]!, r.bytes, pdus[i]! * delayMs + remainder));
  return { ratio: ratioOf(fitArms(sums), 1, 0), pdus: pdus.reduce((a, b) => a + b, 0) };
}

export async function runExperiment(spec: RunSpec): Promise<RunOutcome> {
  mkdirSync(spec.dir, { recursive: true });
  const messagesCsv = path.join(spec.dir, 'messages.csv');
  // The proxy appends to a messages CSV that exists: a run starts with none.
  rmSync(messagesCsv, { force: true });
  const scp = await startScp(spec.delayMs);
  let counters: Record<string, number> = {};
  const failures: string[] = [];
  try {
    const proxy = await ProxyProcess.start([
      '--upstream',
      `127.0.0.1:${scp.port}`,
      '--max-pdu',
      spec.arms,
      '--assign',
      'block',
      '--assign-seed',
      String(spec.seed),
      '--messages-csv',
      messagesCsv,
    ]);
    try {
      await Promise.all(spec.devices.map((d) => device(d, spec, proxy.port, failures)));
    } finally {
      await proxy.stop();
    }
  } finally {
    counters = await scp.stop();
  }
  return withEngine(async (engine) => {
    await createViews(engine, await openLogs(engine, [messagesCsv]));
    const pooled = await analyseExperiment(engine, {});
    const perDevice = await analyseExperiment(engine, { by: 'calling_aet' });
    if (!pooled || !perDevice) throw new Error(`${messagesCsv}: fewer than two arms`);
    const rows = await engine.all<TimedRow>(`SELECT arm, bytes, max_pdu, duration_ms FROM messages WHERE arm <> '' AND ${TIMED_MESSAGE}`);
    const { ratio, pdus } = computedEffect(rows, pooled.arms, spec.delayMs);
    return { messagesCsv, pooled, perDevice, computed: ratio, scpDataPdus: counters.dataPdus ?? NaN, predictedDataPdus: pdus, failures };
  });
}
