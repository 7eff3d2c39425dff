// Reading the proxy's CSV files in tests with fast-csv's parser, strictly: a header row, and every row with
// exactly the header's columns (a malformed row fails the read).

import { parseFile, parseString } from 'fast-csv';
import type { CsvParserStream } from 'fast-csv';

export type CsvRow = Record<string, string>;

function collect(stream: CsvParserStream<CsvRow, CsvRow>): Promise<CsvRow[]> {
  const rows: CsvRow[] = [];
  return new Promise<CsvRow[]>((resolve, reject) => {
    stream
      .on('error', reject)
      .on('data-invalid', (row: unknown) => reject(new Error(`invalid CSV row ${JSON.stringify(row)}`)))
      .on('data', (row: CsvRow) => rows.push(row))
      .on('end', () => resolve(rows));
  });
}

/** The rows of a CSV file with a header row, by column name. */
export function readCsvRows(file: string): Promise<CsvRow[]> {
  return collect(parseFile<CsvRow, CsvRow>(file, { headers: true, strictColumnHandling: true }));
}

/** The same for CSV text. */
export function parseCsvRows(text: string): Promise<CsvRow[]> {
  return collect(parseString<CsvRow, CsvRow>(text, { headers: true, strictColumnHandling: true }));
}
