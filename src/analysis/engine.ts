// The embedded analytical engine (DuckDB, @duckdb/node-api) that `stats`, `bench` and the report compute
// with: it reads the CSV (or Parquet) logs itself, in parallel and out of core, so memory follows the
// result and not the input. Loaded on first use by a dynamic import: the proxy never loads this module.

import type { DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';

/** The npm package of the engine (an optional dependency: the proxy runs without it). */
export const ENGINE_PACKAGE = '@duckdb/node-api';

/** The engine could not be used (not installed, or it refused a query): one line for the user. */
export class EngineError extends Error {
  /** The engine's whole message (several lines: the failing CSV row, the file, hints). */
  readonly detail: string;
  constructor(message: string, detail?: string) {
    super(message);
    this.detail = detail ?? message;
  }
}

const failed = (err: unknown): EngineError => new EngineError(oneLine(err), err instanceof Error ? err.message : String(err));

/** A row of a query, values as plain JS: numbers (BIGINT and DECIMAL included), strings, booleans, null, lists, objects. */
export type Row = Record<string, unknown>;

/** Plain JS values: integers as numbers (counts and byte sums stay far below 2^53), nested lists and structs too. */
function plain(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object' && !(v instanceof Date)) {
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

/** DuckDB's messages span several lines (the query, a caret, hints): the first line says what went wrong. */
export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (
    text
      .split('\n')
      .find((l) => l.trim() !== '')
      ?.trim() ?? text
  );
}

/** Text for a SQL string literal. */
export function sqlString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** A quoted SQL identifier. */
export function sqlName(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export class Engine {
  private constructor(
    private readonly instance: DuckDBInstance,
    readonly connection: DuckDBConnection,
  ) {}

  /**
   * An in-memory database. `memoryLimit` bounds DuckDB's own buffers (it spills to a temporary directory
   * beyond them); `threads` defaults to the machine's cores.
   */
  static async open(options: { threads?: number; memoryLimit?: string } = {}): Promise<Engine> {
    let api: typeof import('@duckdb/node-api');
    try {
      api = await import('@duckdb/node-api');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
        throw new EngineError(`${ENGINE_PACKAGE} is not installed (an optional dependency, for stats and the report): run \`npm install ${ENGINE_PACKAGE}\``);
      }
      throw new EngineError(`${ENGINE_PACKAGE} could not be loaded: ${oneLine(err)}`);
    }
    const settings: Record<string, string> = {};
    if (options.threads !== undefined) settings.threads = String(options.threads);
    if (options.memoryLimit !== undefined) settings.memory_limit = options.memoryLimit;
    const instance = await api.DuckDBInstance.create(':memory:', settings);
    return new Engine(instance, await instance.connect());
  }

  /** Run statements that return nothing of interest (CREATE VIEW, COPY). */
  async run(sql: string, values?: unknown[]): Promise<void> {
    try {
      await this.connection.run(sql, values as never);
    } catch (err) {
      throw failed(err);
    }
  }

  /**
   * Every row of a query, as plain JS objects (for results that are small by construction: aggregates).
   * Each row comes back as one JSON text made by the engine: half the cost of converting value by value.
   */
  async all<T = Row>(sql: string, values?: unknown[]): Promise<T[]> {
    try {
      const reader = await this.connection.runAndReadAll(`SELECT CAST(to_json(q) AS VARCHAR) AS j FROM (${sql}) AS q`, values as never);
      return (reader.getColumnsJS()[0] ?? []).map((j) => JSON.parse(j as string) as T);
    } catch (err) {
      throw failed(err);
    }
  }

  /** A query's column names and rows (values as plain JS), for results of any shape (stats --sql). */
  async query(sql: string): Promise<{ columns: string[]; rows: unknown[][] }> {
    try {
      const reader = await this.connection.runAndReadAll(sql);
      return { columns: reader.columnNames(), rows: reader.getRowsJS().map((r) => r.map(plain)) };
    } catch (err) {
      throw failed(err);
    }
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

/** Open an engine, run `work` with it, close it. */
export async function withEngine<T>(work: (engine: Engine) => Promise<T>, options?: { threads?: number; memoryLimit?: string }): Promise<T> {
  const engine = await Engine.open(options);
  try {
    return await work(engine);
  } finally {
    engine.close();
  }
}
