// The kinds of the proxy's CSV files: the messages CSV (--messages-csv), the chunk CSV (--csv) and bench's
// results.csv, told by their header, so `stats` takes any of them without a flag (logs.ts checks each file's
// header with these; the engine reads the rows). readCsvFile reads a small file whole with fast-csv's
// parser, for the tests; `stats` and the report never hold a file's rows.

import fs from 'node:fs';
import { parse } from 'fast-csv';

/** The messages CSV header, as the proxy writes it (one definition: src/record/messages-csv.ts). */
export { MESSAGES_CSV_COLUMNS } from '../record/messages-csv.js';

/** The columns `stats` needs from a chunk CSV (the recorder may add columns; it never renames). */
export const CHUNK_CSV_REQUIRED = ['assoc', 'direction', 'seq', 'type', 'length', 'first_byte_us', 'last_byte_us', 'violation'] as const;
export const MESSAGES_CSV_REQUIRED = ['assoc', 'command', 'bytes', 'max_pdu', 'duration_ms', 'status'] as const;
/**
 * bench's results.csv header, in order (written by src/bench/results.ts, read here and by the report): a
 * contract, columns are added, never renamed.
 */
export const RESULTS_CSV_COLUMNS = [
  'pdu_bytes',
  'image_bytes',
  'parallel',
  'images',
  'mean_s',
  'min_s',
  'max_s',
  'p50_s',
  'p95_s',
  'mb_per_s',
  'scu_idle_ms',
  'upstream_blocked_ms',
  'scp_response_ms',
  'failures',
  'mode',
  'scu',
  'latency_ms',
  'jitter_ms',
  'bandwidth_bps',
  'connect_ms',
  'associate_ms',
  'scp',
  'association',
  'sd_s',
  'ci95_low_s',
  'ci95_high_s',
  'proxy_busy_ms',
] as const;
/** The results.csv columns that are settings of a row; the others are measurements (never part of a series). */
export const RESULTS_CSV_SETTINGS: ReadonlySet<string> = new Set(['image_bytes', 'parallel', 'mode', 'scu', 'latency_ms', 'jitter_ms', 'bandwidth_bps', 'scp', 'association']);
/** The columns the report needs from bench's results.csv (bench may add columns; they are read by name). */
export const RESULTS_CSV_REQUIRED = ['pdu_bytes', 'images', 'mean_s', 'min_s', 'max_s', 'failures'] as const;

export type CsvKind = 'messages' | 'chunks' | 'results';
export type CsvRow = Record<string, string>;

export interface CsvFile {
  path: string;
  kind: CsvKind;
  columns: string[];
  rows: CsvRow[];
}

export class CsvInputError extends Error {}

/** messages or chunks, from the header; undefined when it is neither. */
export function detectKind(columns: readonly string[]): CsvKind | undefined {
  const has = (names: readonly string[]): boolean => names.every((n) => columns.includes(n));
  if (columns[1] === 'message_id' && has(MESSAGES_CSV_REQUIRED)) return 'messages';
  if (columns[1] === 'direction' && has(CHUNK_CSV_REQUIRED)) return 'chunks';
  if (columns[0] === 'pdu_bytes' && has(RESULTS_CSV_REQUIRED)) return 'results';
  return undefined;
}

/**
 * The columns a file that looks like one of the kinds (by its first columns) lacks, as a sentence; undefined
 * when it looks like none.
 */
export function missingColumns(columns: readonly string[]): string | undefined {
  const lacking = (names: readonly string[]): string[] => names.filter((n) => !columns.includes(n));
  const near: Array<[boolean, string, readonly string[]]> = [
    [columns[1] === 'message_id', 'a messages CSV (--messages-csv)', MESSAGES_CSV_REQUIRED],
    [columns[1] === 'direction', 'a chunk CSV (--csv)', CHUNK_CSV_REQUIRED],
    [columns[0] === 'pdu_bytes', "bench's results.csv", RESULTS_CSV_REQUIRED],
  ];
  for (const [looks, name, required] of near) {
    const missing = lacking(required);
    if (looks && missing.length > 0) return `${name} without the column${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
  }
  return undefined;
}

/** Read one small CSV file whole (tests; `stats` leaves the rows to the engine). */
export async function readCsvFile(path: string): Promise<CsvFile> {
  let columns: string[] = [];
  const rows: CsvRow[] = [];
  await new Promise<void>((resolve, reject) => {
    const input = fs.createReadStream(path);
    input.once('error', (err: NodeJS.ErrnoException) => reject(new CsvInputError(`${path}: ${err.code ?? err.message}`)));
    input
      .pipe(parse({ headers: true, ignoreEmpty: true, trim: true }))
      .on('headers', (h: string[]) => (columns = h))
      .on('data', (row: CsvRow) => rows.push(row))
      .on('error', (err: Error) => reject(new CsvInputError(`${path}: ${err.message}`)))
      .on('end', () => resolve());
  });
  if (columns.length === 0) throw new CsvInputError(`${path}: empty file (no CSV header)`);
  const kind = detectKind(columns);
  if (!kind) {
    throw new CsvInputError(`${path}: not a messages CSV (--messages-csv) nor a chunk CSV (--csv) nor bench's results.csv: header starts ${columns.slice(0, 3).join(',')}`);
  }
  return { path, kind, columns, rows };
}

/** A number from a CSV field; undefined when the field is empty or not a finite number. */
export function num(text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}
