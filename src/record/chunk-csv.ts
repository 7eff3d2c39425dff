// The per-PDU chunk log (--csv). One row per PDU received by the proxy, written once it was forwarded.
// Rows are queued by pdu() (never blocks the proxy) and handed to fast-csv in batches on a later tick.

import fs from 'node:fs';
import { once } from 'node:events';
import { format } from 'fast-csv';
import type { CsvFormatterStream, FormatterRow as Row } from 'fast-csv';
import type { PduRecord, Recorder } from './events.js';

/** The columns, in order. Scripts depend on these names: add, never rename. */
export const CHUNK_CSV_COLUMNS = [
  'assoc',
  'direction',
  'seq',
  'type',
  'length',
  'pdvs',
  'context_id',
  'kind',
  'last',
  'first_byte_us',
  'last_byte_us',
  'forwarded_us',
  'out_pdus',
  'out_max_length',
  'violation',
] as const;

export function chunkCsvRow(r: PduRecord): Array<string | number> {
  return [
    r.assoc,
    r.direction,
    r.seq,
    r.type,
    r.length,
    r.pdvs,
    r.contextId ?? '',
    r.kind,
    r.last ? 1 : 0,
    Math.round(r.firstByteUs),
    Math.round(r.lastByteUs),
    r.forwardedUs === undefined ? '' : Math.round(r.forwardedUs),
    r.outPdus,
    r.outMaxLength,
    r.violation ? 1 : 0,
  ];
}

export class ChunkCsvRecorder implements Recorder {
  private readonly csv: CsvFormatterStream<Row, Row>;
  private readonly file: fs.WriteStream;
  private queue: Array<Array<string | number>> = [];
  private scheduled = false;
  private closed = false;

  private constructor(file: fs.WriteStream) {
    this.file = file;
    this.csv = format({ headers: [...CHUNK_CSV_COLUMNS], writeHeaders: true, includeEndRowDelimiter: true });
    this.csv.pipe(file);
  }

  /** Create (truncate) `path` and write the header row. Rejects if the file cannot be opened. */
  static async open(path: string): Promise<ChunkCsvRecorder> {
    const file = fs.createWriteStream(path, { flags: 'w' });
    await once(file, 'open');
    return new ChunkCsvRecorder(file);
  }

  pdu(record: PduRecord): void {
    if (this.closed) return;
    this.queue.push(chunkCsvRow(record));
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drainQueue());
    }
  }

  private drainQueue(): void {
    this.scheduled = false;
    const rows = this.queue;
    this.queue = [];
    for (const row of rows) this.csv.write(row);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.drainQueue();
    const finished = once(this.file, 'finish');
    this.csv.end();
    await finished;
  }
}
