// Synthetic proxy logs for `npm run bench:stats` and the stats tests: a chunk CSV (one row per PDU) and its
// messages CSV (one C-STORE per association), shaped like the proxy writes them (same columns, same
// vocabulary, times in µs increasing within an association). Deterministic: the same seed writes the same
// bytes. Rows are built in batches of one string and written with backpressure, so the generator's own
// memory stays small at 20 million rows.

import fs from 'node:fs';
import { once } from 'node:events';
import { CHUNK_CSV_COLUMNS } from '../src/record/chunk-csv.js';
import { MESSAGES_CSV_COLUMNS } from '../src/record/messages-csv.js';

export interface LogSpec {
  /** Chunk rows to write at least (whole associations: the last one may go a little over). */
  chunkRows: number;
  seed?: number;
  /** Routes the associations are spread over, round robin (default: one, "default"). */
  routes?: readonly string[];
  /** Max PDU lengths the SCUs are told, cycled per association (default 16KB, 100KB, 1MB, 16382). */
  maxPdus?: readonly number[];
  /** Largest image data set in bytes (default 16 MiB; each association sends one, 1/16 to all of it). */
  maxImageBytes?: number;
}

export interface LogCounts {
  chunkRows: number;
  messages: number;
  associations: number;
}

/** mulberry32: a small seeded PRNG, good enough for test data. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Sink {
  private parts: string[] = [];
  private size = 0;
  constructor(private readonly out: fs.WriteStream) {}
  async line(text: string): Promise<void> {
    this.parts.push(text);
    if (++this.size >= 8192) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.size === 0) return;
    const chunk = this.parts.join('\n') + '\n';
    this.parts = [];
    this.size = 0;
    if (!this.out.write(chunk)) await once(this.out, 'drain');
  }
  async close(): Promise<void> {
    await this.flush();
    this.out.end();
    await once(this.out, 'finish');
  }
}

const COMMAND_LENGTH = 200;
const RESPONSE_LENGTH = 84;

/** Write `chunksPath` and `messagesPath`; resolves with what was written. */
export async function writeSyntheticLogs(chunksPath: string, messagesPath: string, spec: LogSpec): Promise<LogCounts> {
  const rand = prng(spec.seed ?? 1);
  const routes = spec.routes ?? ['default'];
  const maxPdus = spec.maxPdus ?? [16384, 102400, 1048576, 16382];
  const maxImage = spec.maxImageBytes ?? 16 * 1024 * 1024;
  const chunks = new Sink(fs.createWriteStream(chunksPath));
  const messages = new Sink(fs.createWriteStream(messagesPath));
  await chunks.line(CHUNK_CSV_COLUMNS.join(','));
  await messages.line(MESSAGES_CSV_COLUMNS.join(','));
  const startMs = Date.UTC(2026, 0, 1, 8, 0, 0);
  let rows = 0;
  let assoc = 0;
  while (rows < spec.chunkRows) {
    assoc++;
    const route = routes[(assoc - 1) % routes.length]!;
    const maxPdu = maxPdus[(assoc - 1) % maxPdus.length]!;
    const image = Math.max(1024, Math.floor(maxImage / 16 + rand() * (maxImage - maxImage / 16)));
    let t = Math.floor(rand() * 2000);
    const seq = { to_scp: 0, to_scu: 0 };
    // One PDU: received over `us` µs, forwarded shortly after; re-fragmented when it breaks the limit.
    const pdu = async (direction: 'to_scp' | 'to_scu', type: string, length: number, kind: string, last: number, us: number): Promise<void> => {
      const first = t;
      t += Math.max(1, Math.round(us));
      const pdata = type === 'P-DATA-TF';
      const violation = pdata && length > maxPdu ? 1 : 0;
      const outPdus = violation ? Math.ceil(length / maxPdu) : 1;
      const outMax = violation ? maxPdu : length;
      await chunks.line(
        `${assoc},${direction},${++seq[direction]},${type},${length},${pdata ? 1 : 0},${pdata ? 1 : ''},${kind},${last},${first},${t},${t + 5 + Math.floor(rand() * 40)},${outPdus},${outMax},${violation},${route},,1`,
      );
      rows++;
    };
    await pdu('to_scp', 'A-ASSOCIATE-RQ', 236, '', 0, 40);
    await pdu('to_scu', 'A-ASSOCIATE-AC', 190, '', 0, 30);
    const requestFirst = t;
    await pdu('to_scp', 'P-DATA-TF', COMMAND_LENGTH, 'command', 1, 20);
    // The data set in fragments of the allowed length (PDV header: 6 bytes); now and then a sender breaks it.
    const payload = maxPdu - 6;
    let left = image;
    let idle = 0;
    while (left > 0) {
      const piece = Math.min(left, rand() < 0.002 ? payload * 2 : payload);
      left -= piece;
      const gap = rand() < 0.05 ? rand() * 3000 : 0;
      idle += gap;
      t += Math.round(gap);
      await pdu('to_scp', 'P-DATA-TF', piece + 6, 'dataset', left === 0 ? 1 : 0, piece / 400);
    }
    const requestLast = t;
    const scpMs = 1 + rand() * 30;
    t += Math.round(scpMs * 1000);
    const answered = rand() > 0.01;
    const status = !answered ? '' : rand() < 0.02 ? 'a700' : '0000';
    const responseFirst = t;
    if (answered) await pdu('to_scu', 'P-DATA-TF', RESPONSE_LENGTH, 'command', 1, 10);
    const responseLast = t;
    await pdu('to_scp', 'A-RELEASE-RQ', 4, '', 0, 5);
    await pdu('to_scu', 'A-RELEASE-RP', 4, '', 0, 5);
    const blocked = rand() < 0.3 ? rand() * 50 : 0;
    const ms = (us: number): string => (us / 1000).toFixed(3);
    await messages.line(
      [
        assoc,
        1,
        'C-STORE-RQ',
        1,
        `1.2.826.0.1.3680043.10.1.${assoc}`,
        image,
        maxPdu,
        67108864,
        requestFirst,
        requestLast,
        answered ? responseFirst : '',
        answered ? responseLast : '',
        answered ? ms(responseLast - requestFirst) : '',
        answered ? ms(idle) : '',
        answered ? blocked.toFixed(3) : '',
        answered ? ms(responseFirst - requestLast) : '',
        0,
        status,
        new Date(startMs + assoc * 250).toISOString(),
        'scu',
        route,
        // No arm, one device, Secondary Capture in explicit VR little endian, the first generation.
        '',
        'MODALITY',
        'PACS',
        '1.2.840.10008.5.1.4.1.1.7',
        '1.2.840.10008.1.2.1',
        1,
      ].join(','),
    );
  }
  await Promise.all([chunks.close(), messages.close()]);
  return { chunkRows: rows, messages: assoc, associations: assoc };
}
