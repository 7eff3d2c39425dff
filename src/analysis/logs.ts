// The inputs of `stats` and the report as views of the engine: `chunks`, `messages` and `results`, over
// any mix of the proxy's CSV files, bench's results.csv and Parquet files with the same columns (globs
// expanded). Each file's kind is told by its header, checked first (fast-csv reads the CSV header line;
// Parquet files are described by the engine); the rows are read by the engine only when a query runs.

import fs from 'node:fs';
import { parse } from 'fast-csv';
import { detectKind, missingColumns } from './csv.js';
import type { CsvKind } from './csv.js';
import { EngineError, sqlName, sqlString } from './engine.js';
import type { Engine } from './engine.js';

/** Column types of the chunk CSV (--csv). Empty fields are NULL. */
export const CHUNK_TYPES: Readonly<Record<string, string>> = {
  assoc: 'BIGINT',
  direction: 'VARCHAR',
  seq: 'BIGINT',
  type: 'VARCHAR',
  length: 'BIGINT',
  pdvs: 'INTEGER',
  context_id: 'INTEGER',
  kind: 'VARCHAR',
  last: 'TINYINT',
  first_byte_us: 'BIGINT',
  last_byte_us: 'BIGINT',
  forwarded_us: 'BIGINT',
  out_pdus: 'INTEGER',
  out_max_length: 'BIGINT',
  violation: 'TINYINT',
  route: 'VARCHAR',
};

/** Column types of the messages CSV (--messages-csv). started_at is a UTC timestamp. */
export const MESSAGE_TYPES: Readonly<Record<string, string>> = {
  assoc: 'BIGINT',
  message_id: 'INTEGER',
  command: 'VARCHAR',
  context_id: 'INTEGER',
  sop_instance_uid: 'VARCHAR',
  bytes: 'BIGINT',
  max_pdu: 'BIGINT',
  scp_max_pdu: 'BIGINT',
  request_first_byte_us: 'BIGINT',
  request_last_byte_us: 'BIGINT',
  response_first_byte_us: 'BIGINT',
  response_last_byte_us: 'BIGINT',
  duration_ms: 'DOUBLE',
  scu_idle_ms: 'DOUBLE',
  upstream_blocked_ms: 'DOUBLE',
  scp_response_ms: 'DOUBLE',
  pending_responses: 'INTEGER',
  status: 'VARCHAR',
  started_at: 'TIMESTAMP',
  requested_by: 'VARCHAR',
  route: 'VARCHAR',
  arm: 'VARCHAR',
  calling_aet: 'VARCHAR',
  called_aet: 'VARCHAR',
  sop_class_uid: 'VARCHAR',
  transfer_syntax_uid: 'VARCHAR',
  generation: 'INTEGER',
  proxy_busy_ms: 'DOUBLE',
};

/** results.csv columns are typed by the engine's detection (a few rows, columns added over time). */
const TYPES: Record<CsvKind, Readonly<Record<string, string>> | undefined> = { chunks: CHUNK_TYPES, messages: MESSAGE_TYPES, results: undefined };

/** The view of each kind. */
export const VIEWS: Record<CsvKind, string> = { chunks: 'chunks', messages: 'messages', results: 'results' };

/** The text the proxy writes for a typed column, in SQL: so groups by any column are labelled as in the file. */
export function columnText(kind: CsvKind, column: string): string {
  const type = TYPES[kind]?.[column];
  const c = sqlName(column);
  if (type === 'DOUBLE') return `printf('%.3f', ${c})`;
  if (type === 'TIMESTAMP') return `strftime(${c}, '%Y-%m-%dT%H:%M:%S.%gZ')`;
  return `CAST(${c} AS VARCHAR)`;
}

export type LogFormat = 'csv' | 'parquet';

export interface LogSource {
  /** As given (or as a glob expanded to). */
  path: string;
  kind: CsvKind;
  format: LogFormat;
  /** The file's columns, in order. */
  columns: string[];
}

/** A bad input file or argument: one line naming it. */
export class LogInputError extends Error {}

const GLOB = /[*?[]/;
const PARQUET_MAGIC = 'PAR1';

function firstBytes(path: string, n: number): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    throw new LogInputError(`${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const buf = Buffer.alloc(n);
    const got = fs.readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } catch (err) {
    throw new LogInputError(`${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** The header of a CSV file, read by fast-csv (the rest of the file is left to the engine). */
export async function csvHeader(path: string): Promise<string[]> {
  return new Promise<string[]>((resolve, reject) => {
    const input = fs.createReadStream(path);
    let done = false;
    const finish = (err: Error | undefined, columns?: string[]): void => {
      if (done) return;
      done = true;
      input.destroy();
      if (err) reject(err);
      else resolve(columns ?? []);
    };
    input.once('error', (err: NodeJS.ErrnoException) => finish(new LogInputError(`${path}: ${err.code ?? err.message}`)));
    input
      .pipe(parse({ headers: true, ignoreEmpty: true, trim: true, maxRows: 1 }))
      .on('headers', (h: string[]) => finish(undefined, h))
      .on('error', (err: Error) => finish(new LogInputError(`${path}: ${err.message}`)))
      .on('data', () => undefined)
      .on('end', () => finish(undefined, []));
  });
}

const notALog = (path: string, columns: readonly string[], format: LogFormat): LogInputError => {
  const missing = missingColumns(columns);
  if (missing) return new LogInputError(`${path}: ${missing}${format === 'parquet' ? ' (Parquet)' : ''}`);
  return new LogInputError(
    `${path}: not a messages CSV (--messages-csv) nor a chunk CSV (--csv) nor bench's results.csv${format === 'parquet' ? ' (as Parquet)' : ''}: header starts ${columns.slice(0, 3).join(',')}`,
  );
};

/** One input file: its format (Parquet by its magic bytes), its columns and its kind. */
async function describe(engine: Engine, path: string): Promise<LogSource> {
  const head = firstBytes(path, 4);
  if (head.toString('latin1') === PARQUET_MAGIC) {
    let columns: string[];
    try {
      columns = (await engine.all<{ column_name: string }>(`DESCRIBE SELECT * FROM read_parquet(${sqlString(path)})`)).map((r) => r.column_name);
    } catch (err) {
      throw new LogInputError(`${path}: ${(err as Error).message}`);
    }
    const kind = detectKind(columns);
    if (!kind) throw notALog(path, columns, 'parquet');
    return { path, kind, format: 'parquet', columns };
  }
  const columns = await csvHeader(path);
  if (columns.length === 0) throw new LogInputError(`${path}: empty file (no CSV header)`);
  const kind = detectKind(columns);
  if (!kind) throw notALog(path, columns, 'csv');
  return { path, kind, format: 'csv', columns };
}

/** The files of the arguments: a path as it is; a pattern (*, ?, [...]) that is not a file, expanded in name order. */
export async function expandInputs(engine: Engine, args: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const arg of args) {
    if (GLOB.test(arg) && !fs.existsSync(arg)) {
      const files = (await engine.all<{ file: string }>(`SELECT file FROM glob(${sqlString(arg)}) ORDER BY file`)).map((r) => r.file);
      if (files.length === 0) throw new LogInputError(`${arg}: no file matches`);
      out.push(...files);
    } else out.push(arg);
  }
  return out;
}

/** Expand, check and describe every input. */
export async function openLogs(engine: Engine, args: readonly string[]): Promise<LogSource[]> {
  const paths = await expandInputs(engine, args);
  const sources: LogSource[] = [];
  for (const p of paths) sources.push(await describe(engine, p));
  return sources;
}

/** One SELECT over files of one format and one header: the kind's columns typed (NULL when absent), then the others, then `file`. */
function selectGroup(kind: CsvKind, format: LogFormat, columns: readonly string[], paths: readonly string[]): string {
  const types = TYPES[kind];
  const list = `[${paths.map(sqlString).join(', ')}]`;
  const known = types ? Object.keys(types) : [];
  const present = new Set(columns);
  const projection = [
    ...known.map((c) => (present.has(c) ? (format === 'parquet' ? `CAST(${sqlName(c)} AS ${types![c]}) AS ${sqlName(c)}` : sqlName(c)) : `NULL::${types![c]} AS ${sqlName(c)}`)),
    ...columns.filter((c) => !known.includes(c) && c !== 'file').map(sqlName),
    'filename AS file',
  ].join(', ');
  if (format === 'parquet') return `SELECT ${projection} FROM read_parquet(${list}, filename = true, union_by_name = true)`;
  if (!types) return `SELECT ${projection} FROM read_csv(${list}, header = true, filename = true, union_by_name = true)`;
  const spec = columns.map((c) => `${sqlString(c)}: ${sqlString(types[c] ?? 'VARCHAR')}`).join(', ');
  return `SELECT ${projection} FROM read_csv(${list}, header = true, auto_detect = false, delim = ',', quote = '"', escape = '"', nullstr = '', columns = {${spec}}, filename = true)`;
}

/** The SELECT of one source alone: its rows with the kind's typed columns and `file`. */
export function sourceSelect(s: LogSource): string {
  return selectGroup(s.kind, s.format, s.columns, [s.path]);
}

/** An empty view with the kind's columns (no input of that kind). */
function emptyView(kind: CsvKind): string {
  const types = TYPES[kind] ?? { pdu_bytes: 'BIGINT' };
  return `SELECT ${Object.entries(types)
    .map(([c, t]) => `NULL::${t} AS ${sqlName(c)}`)
    .join(', ')}, NULL::VARCHAR AS file WHERE false`;
}

/** Create the views chunks, messages and results over the sources (each with a `file` column: the path). */
export async function createViews(engine: Engine, sources: readonly LogSource[]): Promise<void> {
  for (const kind of Object.keys(VIEWS) as CsvKind[]) {
    const groups = new Map<string, { format: LogFormat; columns: string[]; paths: string[] }>();
    for (const s of sources.filter((x) => x.kind === kind)) {
      const key = `${s.format}\u0000${s.columns.join(',')}`;
      const g = groups.get(key) ?? { format: s.format, columns: s.columns, paths: [] };
      g.paths.push(s.path);
      groups.set(key, g);
    }
    const parts = [...groups.values()].map((g) => selectGroup(kind, g.format, g.columns, g.paths));
    const body = parts.length === 0 ? emptyView(kind) : parts.join('\nUNION ALL BY NAME\n');
    await engine.run(`CREATE OR REPLACE VIEW ${VIEWS[kind]} AS ${body}`);
  }
}

/**
 * A query's failure as one line naming the input: a row the engine could not read (wrong number of
 * fields, a value that is not of its column's type) is reported with its file, line and reason.
 */
export function inputError(err: unknown, sources: readonly LogSource[]): Error {
  if (!(err instanceof EngineError)) return err as Error;
  const detail = err.detail;
  const line = /CSV Error on Line:\s*(\d+)/.exec(detail)?.[1];
  if (line === undefined) return new LogInputError(err.message);
  const named = /^\s*file = (.*)$/m.exec(detail)?.[1]?.trim();
  const file = sources.find((s) => s.path === named)?.path ?? named ?? sources.find((s) => detail.includes(s.path))?.path ?? 'input';
  // The line after "Original Line: ..." says what is wrong with it.
  const lines = detail.split('\n');
  const at = lines.findIndex((l) => l.startsWith('Original Line:'));
  const reason = (at >= 0 ? lines[at + 1] : undefined)?.trim() || err.message;
  return new LogInputError(`${file}: line ${line}: corrupt row: ${reason}`);
}
