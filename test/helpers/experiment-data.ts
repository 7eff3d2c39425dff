// A synthetic messages CSV of an experiment with a known effect: devices (calling AE titles) send
// associations of several C-STOREs of mixed sizes (log-uniform), each association gets an arm (permuted
// blocks per device, or given weights), and every message's duration is
//   ln(duration_ms) = device base + slope · ln(bytes) − ln(ratio of the arm [for the device]) + u + e
// with u ~ N(0, sdAssoc) shared by the messages of one association and e ~ N(0, sdMessage) per message:
// the arm's throughput at equal size is `ratio` times the reference's, exactly. Deterministic per seed.
// Used by the unit tests of stats' experiment table and by perf/stats-experiment.ts (2 M rows).

import fs from 'node:fs';
import { once } from 'node:events';
import { MESSAGES_CSV_COLUMNS } from '../../src/record/messages-csv.js';
import { seededRandom } from '../../src/experiment/random.js';

/** The columns issue 25 appends to the messages CSV (in this order). */
export const EXPERIMENT_COLUMNS = ['arm', 'calling_aet', 'called_aet', 'sop_class_uid', 'transfer_syntax_uid', 'generation'] as const;

export interface SyntheticArm {
  label: string;
  maxPdu: number;
  /** Throughput at equal size against the first arm (1 for the first arm); per device when a function. */
  ratio: number | ((device: string) => number);
}

export interface ExperimentSpec {
  associations: number;
  arms: readonly SyntheticArm[];
  devices?: readonly string[];
  /** Messages per association: uniform in [min, max]. */
  messages?: readonly [number, number];
  /** Data-set sizes: log-uniform in [min, max] bytes; per arm (its index) when a function. */
  sizes?: readonly [number, number] | ((arm: number) => readonly [number, number]);
  /** ln(duration) per ln(bytes). */
  slope?: number;
  sdAssoc?: number;
  sdMessage?: number;
  seed?: number;
  /** Draw each association's arm with these weights instead of permuted blocks (one per arm). */
  weights?: readonly number[];
  /** Write the columns of files from before arms only (no arm, AE titles...): an older file. */
  older?: boolean;
  /** Every n-th message fails (status A700, no effect on the others); 0: none. */
  failEvery?: number;
}

export interface Written {
  rows: number;
  associations: number;
}

function normal(random: () => number): () => number {
  return () => {
    const u = 1 - random();
    const v = random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
}

/** The rows (header first) of the spec, as CSV lines, handed over in batches. */
export async function generateExperiment(spec: ExperimentSpec, sink: (lines: string[]) => void | Promise<void>): Promise<Written> {
  const generator = seededRandom(spec.seed ?? 7);
  const random = (): number => generator.next() / 2 ** 32;
  const gauss = normal(random);
  const devices = spec.devices ?? ['CT1', 'MR1', 'US1'];
  const [minMessages, maxMessages] = spec.messages ?? [2, 12];
  const sizesOf = (k: number): readonly [number, number] => (typeof spec.sizes === 'function' ? spec.sizes(k) : (spec.sizes ?? [256 * 1024, 64 * 1024 * 1024]));
  const slope = spec.slope ?? 0.9;
  const sdAssoc = spec.sdAssoc ?? 0.1;
  const sdMessage = spec.sdMessage ?? 0.15;
  const header = spec.older
    ? [...MESSAGES_CSV_COLUMNS].filter((c) => !(EXPERIMENT_COLUMNS as readonly string[]).includes(c))
    : [...new Set([...MESSAGES_CSV_COLUMNS, ...EXPERIMENT_COLUMNS])];
  await sink([header.join(',')]);
  const deviceBase = new Map(devices.map((d, i) => [d, -9 + 0.3 * i]));
  const blocks = new Map<string, number[]>();
  const nextArm = (device: string): number => {
    if (spec.weights) {
      const total = spec.weights.reduce((s, w) => s + w, 0);
      let r = random() * total;
      for (let k = 0; k < spec.weights.length; k++) if ((r -= spec.weights[k]!) < 0) return k;
      return spec.weights.length - 1;
    }
    let block = blocks.get(device) ?? [];
    if (block.length === 0) {
      block = spec.arms.flatMap((_, k) => [k, k]);
      for (let i = block.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [block[i], block[j]] = [block[j]!, block[i]!];
      }
    }
    const k = block.shift()!;
    blocks.set(device, block);
    return k;
  };
  const start = Date.UTC(2026, 0, 5, 7, 0, 0);
  let rows = 0;
  let batch: string[] = [];
  for (let a = 1; a <= spec.associations; a++) {
    const device = devices[Math.floor(random() * devices.length)]!;
    const k = nextArm(device);
    const arm = spec.arms[k]!;
    const ratio = typeof arm.ratio === 'function' ? arm.ratio(device) : arm.ratio;
    const u = sdAssoc * gauss();
    const count = minMessages + Math.floor(random() * (maxMessages - minMessages + 1));
    const [minSize, maxSize] = sizesOf(k);
    let t = start + a * 1000;
    for (let m = 1; m <= count; m++) {
      const bytes = Math.round(Math.exp(Math.log(minSize) + random() * (Math.log(maxSize) - Math.log(minSize))));
      const ms = Math.exp(deviceBase.get(device)! + slope * Math.log(bytes) - Math.log(ratio) + u + sdMessage * gauss());
      rows++;
      const failed = spec.failEvery !== undefined && spec.failEvery > 0 && rows % spec.failEvery === 0;
      const us = Math.round(ms * 1000);
      const values: Record<string, string | number> = {
        assoc: a,
        message_id: m,
        command: 'C-STORE-RQ',
        context_id: 1,
        sop_instance_uid: `1.2.826.0.1.3680043.10.1.${a}.${m}`,
        bytes,
        max_pdu: arm.maxPdu,
        scp_max_pdu: 65536,
        request_first_byte_us: 0,
        request_last_byte_us: us,
        response_first_byte_us: us,
        response_last_byte_us: us,
        duration_ms: ms.toFixed(3),
        scu_idle_ms: '0.000',
        upstream_blocked_ms: '0.000',
        scp_response_ms: '0.100',
        pending_responses: 0,
        status: failed ? 'a700' : '0000',
        started_at: new Date(t).toISOString(),
        requested_by: 'scu',
        route: 'default',
        arm: arm.label,
        calling_aet: device,
        called_aet: 'PACS',
        sop_class_uid: '1.2.840.10008.5.1.4.1.1.2',
        transfer_syntax_uid: '1.2.840.10008.1.2.1',
        generation: 1,
      };
      t += Math.ceil(ms) + 1;
      batch.push(header.map((c) => values[c] ?? '').join(','));
      if (batch.length >= 8192) {
        await sink(batch);
        batch = [];
      }
    }
  }
  if (batch.length > 0) await sink(batch);
  return { rows, associations: spec.associations };
}

/** Write the spec's messages CSV to `file` (streamed, with backpressure: 2 M rows take little memory). */
export async function writeExperimentCsv(file: string, spec: ExperimentSpec): Promise<Written> {
  const out = fs.createWriteStream(file);
  const written = await generateExperiment(spec, async (lines) => {
    if (!out.write(lines.join('\n') + '\n')) await once(out, 'drain');
  });
  out.end();
  await once(out, 'finish');
  return written;
}
