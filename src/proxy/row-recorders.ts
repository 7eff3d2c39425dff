// The row files a proxy process writes, opened in one place: the chunk CSV (--csv) and the messages CSV
// (--messages-csv), with the dropped-row counts the metrics watch. Used by the single process (run.ts), and
// with --workers by the primary (which creates the files and writes their headers) and by each worker
// (which appends to them).

import type { Logger } from 'pino';
import type { ProxyOptions } from '../config/options.js';
import type { Recorder } from '../events/events.js';
import { ChunkCsvRecorder } from '../record/chunk-csv.js';
import { MessagesCsvRecorder } from '../record/messages-csv.js';

/** A row file that could not be opened. Its message is the one line for the user: the flag, the file, why. */
export class RowFileError extends Error {}

export interface RowRecorders {
  recorders: Recorder[];
  /** [metrics label, rows dropped so far] for each file. */
  dropCounts: Array<[string, () => number]>;
}

/**
 * Open the row recorders `options` asks for. `chunkCsv`: 'create' writes the chunk CSV's header when the
 * file is new, 'append' adds rows to a file another process created. When a file cannot be opened, what was
 * opened is closed again and a RowFileError names the flag and the file.
 */
export async function openRowRecorders(options: ProxyOptions, log: Logger, chunkCsv: 'create' | 'append'): Promise<RowRecorders> {
  const rows: RowRecorders = { recorders: [], dropCounts: [] };
  const open = async (flag: string, label: string, file: string, how: () => Promise<Recorder & { readonly droppedRows: number }>): Promise<void> => {
    try {
      const recorder = await how();
      rows.recorders.push(recorder);
      rows.dropCounts.push([label, () => recorder.droppedRows]);
    } catch (err) {
      await Promise.all(rows.recorders.map((r) => r.close()));
      const e = err as NodeJS.ErrnoException;
      throw new RowFileError(`${flag} ${e.code ? `${file}: ${e.code}` : e.message}`);
    }
  };
  const csv = options.csv;
  if (csv) {
    const csvLog = log.child({ recorder: '--csv', file: csv });
    await open('--csv', 'csv', csv, () => (chunkCsv === 'append' ? ChunkCsvRecorder.append(csv, csvLog) : ChunkCsvRecorder.open(csv, csvLog)));
  }
  const messagesCsv = options.messagesCsv;
  if (messagesCsv)
    await open('--messages-csv', 'messages_csv', messagesCsv, () =>
      // Only the process that opens the file first (one process, or the primary) repairs its end.
      MessagesCsvRecorder.open(messagesCsv, log.child({ recorder: '--messages-csv', file: messagesCsv }), chunkCsv === 'create'),
    );
  return rows;
}
