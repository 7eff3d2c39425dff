// Lines queued by a recorder and written to a file in batches, off the proxy's hot path: when `maxLines`
// are queued, or `maxDelayMs` after the first queued line, whichever comes first; one file write per batch.
// Shared by the chunk CSV and the messages CSV.
//
// Lines are encoded straight into a batch buffer that is reused once the file has it on disk: no string of
// the whole batch and no fresh Buffer per batch. Joining 4096 rows into one string and encoding it made a
// ~400 KB allocation per batch; on glibc that churn shows up as page faults (minor faults doubled with the
// chunk CSV on at 4 KB PDUs), i.e. kernel time the proxy's own JavaScript profile never shows.
//
// A recorder never stops the relaying, and its file never costs more than a bounded amount of memory:
// - one write is in flight at a time; batches wait in a queue of at most MAX_QUEUED_BYTES. A disk that does
//   not keep up (or a write that never completes) fills the queue, and later batches are dropped, counted.
// - a write that fails (ENOSPC, EIO, ...) is logged once, and retried every RETRY_MS (the bytes of that
//   batch are kept, so no row is ever half written); until a retry succeeds every other batch is dropped,
//   counted. When the file takes bytes again, writing resumes and one line says how many rows were lost.
// - a write to a regular file that is cut short (the disk filled up inside the batch) is never continued
//   by a second write: with --workers every process appends to the same file, and another worker's batch
//   could land between the two parts, splitting a row. Instead the half row it left is cut off the end of
//   the file at once (LineSink.cutTail: it is the file's last bytes, as no writer's bytes can follow them
//   while the disk is full), the whole rows it wrote stay, and the rest of the batch, whole rows only, is
//   retried like a failed write. A pipe or a device (no cutTail) gets the rest at once, as a single writer.
// - close() writes what it can, counts the rest as dropped, and gives up waiting after CLOSE_WAIT_MS.

/** Where batches go: a file opened with fs.promises.open (a FileHandle) fits; src/record/row-file.ts adds cutTail. */
export interface LineSink {
  write(buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }>;
  close(): Promise<void>;
  /**
   * A regular file only: remove `tail` from the end of the file if the file ends with exactly those bytes
   * (what a short write left); false when other bytes follow them (another process appended since).
   */
  cutTail?(tail: Buffer): Promise<boolean>;
}

/** The few logger methods used here (pino's Logger has them); lines carry the recorder's bindings. */
export interface LinesLog {
  error(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
}

/** Bytes per batch buffer; a batch is written sooner when full. A line longer than this is written alone. */
const BATCH_BYTES = 256 * 1024;
/** UTF-8 needs at most 3 bytes per UTF-16 code unit. */
const MAX_BYTES_PER_CHAR = 3;
/** Written-out buffers kept for reuse; more in flight at once (a slow disk) are left to the GC afterwards. */
const MAX_SPARE = 4;
/** Bytes of batches waiting for the file (the one being written included); more are dropped. */
export const MAX_QUEUED_BYTES = 8 * BATCH_BYTES;
/** After a failed write, the same bytes are tried again this long after. */
export const RETRY_MS = 1000;
/** close() waits at most this long for a write in flight (a hung disk must not hold the shutdown). */
export const CLOSE_WAIT_MS = 5000;

/** A filled batch: bytes [offset, end) of `buffer` are still to be written; `lines` rows end in it. */
interface Batch {
  buffer: Buffer;
  offset: number;
  end: number;
  lines: number;
  /** A batch buffer (reused afterwards), not a one-off buffer of a long line or a header. */
  reusable: boolean;
}

export interface BatchedLinesOptions {
  log?: LinesLog;
  retryMs?: number;
  closeWaitMs?: number;
}

const silent: LinesLog = { error() {}, warn() {}, info() {} };

export class BatchedLines {
  private readonly sink: LineSink;
  private readonly maxLines: number;
  private readonly maxDelayMs: number;
  private readonly log: LinesLog;
  /** Buffers the file has finished with, ready for the next batch. */
  private readonly spare: Buffer[] = [];
  private buffer: Buffer | undefined;
  private used = 0;
  private lines = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Batches not yet fully written; the first one is being written (or waits for its retry). */
  private readonly queue: Batch[] = [];
  private queued = 0;
  private writing = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** The last write failed and its retry has not succeeded yet. */
  private failing = false;
  /** Rows dropped since the file last took bytes (reported when it does again). */
  private droppedInEpisode = 0;
  private dropped = 0;
  private idle: (() => void) | undefined;

  private readonly retryMs: number;
  private readonly closeWaitMs: number;

  constructor(sink: LineSink, maxLines: number, maxDelayMs: number, options: BatchedLinesOptions = {}) {
    this.sink = sink;
    this.maxLines = maxLines;
    this.maxDelayMs = maxDelayMs;
    this.log = options.log ?? silent;
    this.retryMs = options.retryMs ?? RETRY_MS;
    this.closeWaitMs = options.closeWaitMs ?? CLOSE_WAIT_MS;
  }

  /** Rows that never reached the file (disk full, write errors, a disk that did not keep up). */
  get droppedRows(): number {
    return this.dropped;
  }

  /** Bytes waiting for the file, the batch being filled excluded (at most MAX_QUEUED_BYTES). */
  get queuedBytes(): number {
    return this.queued;
  }

  /**
   * Queue `text` at once, as a batch of its own: behind the batches already queued, ahead of the lines still
   * being collected into the current batch. A header, given before the first line, so it is written first.
   */
  queueNow(text: string): void {
    const buffer = Buffer.from(text, 'utf8');
    this.enqueue({ buffer, offset: 0, end: buffer.length, lines: 0, reusable: false });
  }

  /** Queue one line (without its newline); ignored once closed. */
  push(line: string): void {
    if (this.closed) return;
    const worst = line.length * MAX_BYTES_PER_CHAR + 1;
    if (worst > BATCH_BYTES) {
      this.drain();
      const buffer = Buffer.from(`${line}\n`, 'utf8');
      this.enqueue({ buffer, offset: 0, end: buffer.length, lines: 1, reusable: false });
      return;
    }
    const buffer = this.room(worst);
    this.used += buffer.write(line, this.used, 'utf8');
    buffer[this.used++] = 0x0a;
    this.countLine();
  }

  /** The batch buffer with at least `worst` bytes free after `used`: the current one, or a fresh one after queueing it. */
  private room(worst: number): Buffer {
    let buffer = this.buffer;
    if (buffer !== undefined && this.used + worst > buffer.length) {
      this.drain();
      buffer = undefined;
    }
    if (buffer === undefined) {
      buffer = this.spare.pop() ?? Buffer.allocUnsafe(BATCH_BYTES);
      this.buffer = buffer;
      this.used = 0;
    }
    return buffer;
  }

  /**
   * Queue one line that `encode` writes itself into the batch buffer at `at` (at most `maxBytes` bytes,
   * without its newline), returning where it ended: no string per line. Ignored once closed.
   */
  pushEncoded(maxBytes: number, encode: (buffer: Buffer, at: number) => number): void {
    if (this.closed) return;
    const worst = maxBytes + 1;
    if (worst > BATCH_BYTES) throw new RangeError(`a line of up to ${maxBytes} bytes does not fit a batch`);
    const buffer = this.room(worst);
    this.used = encode(buffer, this.used);
    buffer[this.used++] = 0x0a;
    this.countLine();
  }

  /** One more line is in the batch: write it out when full, or start the delay. */
  private countLine(): void {
    this.lines++;
    if (this.lines >= this.maxLines) {
      this.drain();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.drain(), this.maxDelayMs);
      this.timer.unref();
    }
  }

  /** Hand the batch being filled to the writer. */
  private drain(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const buffer = this.buffer;
    if (buffer === undefined || this.used === 0) return;
    this.buffer = undefined;
    const batch: Batch = { buffer, offset: 0, end: this.used, lines: this.lines, reusable: true };
    this.lines = 0;
    this.used = 0;
    this.enqueue(batch);
  }

  private enqueue(batch: Batch): void {
    const size = batch.end - batch.offset;
    // While the file fails, only the batch being retried is kept. Otherwise a queue over its bound means
    // the disk does not keep up: drop, never grow. (The first batch is always taken, whatever its size.)
    if (this.queue.length > 0 && (this.failing || this.queued + size > MAX_QUEUED_BYTES)) {
      this.drop(batch, this.failing ? undefined : 'the file does not keep up with the rows');
      return;
    }
    this.queue.push(batch);
    this.queued += size;
    this.writeNext();
  }

  private drop(batch: Batch, why: string | undefined): void {
    if (why !== undefined && this.droppedInEpisode === 0) {
      this.log.error({ queuedBytes: this.queued }, `recorder cannot write: ${why}; rows are dropped until it can`);
    }
    this.dropped += batch.lines;
    this.droppedInEpisode += batch.lines;
    this.recycle(batch);
  }

  private recycle(batch: Batch): void {
    if (batch.reusable && this.spare.length < MAX_SPARE) this.spare.push(batch.buffer);
  }

  private writeNext(): void {
    if (this.writing || this.retryTimer !== undefined) return;
    const batch = this.queue[0];
    if (batch === undefined) {
      this.idle?.();
      return;
    }
    this.writing = true;
    this.sink.write(batch.buffer, batch.offset, batch.end - batch.offset).then(
      ({ bytesWritten }) => {
        if (bytesWritten < batch.end - batch.offset && this.sink.cutTail) {
          void this.cutShort(batch, bytesWritten);
          return;
        }
        this.writing = false;
        // A short write to a pipe or a device is continued from where it stopped (one writer only).
        batch.offset += bytesWritten;
        this.queued -= bytesWritten;
        if (batch.offset >= batch.end) {
          this.queue.shift();
          this.recycle(batch);
        }
        // The end of an episode: the failing file took bytes again, or the queue of a slow one is empty.
        if (bytesWritten > 0 && (this.failing || (this.droppedInEpisode > 0 && this.queue.length === 0))) this.recovered();
        this.writeNext();
      },
      (err: NodeJS.ErrnoException) => {
        this.writing = false;
        this.failed(err.code ?? err.message);
      },
    );
  }

  /**
   * The write of `batch` to a regular file took only `written` bytes: the whole rows among them stay, the
   * half row after them is cut off the file, and the rest of the batch (whole rows) waits for a retry.
   */
  private async cutShort(batch: Batch, written: number): Promise<void> {
    const start = batch.offset;
    const stop = start + written;
    const rowsEnd = stop > start ? Math.max(start, batch.buffer.lastIndexOf(0x0a, stop - 1) + 1) : start;
    let cut = true;
    if (stop > rowsEnd) cut = await this.sink.cutTail!(batch.buffer.subarray(rowsEnd, stop)).catch(() => false);
    this.writing = false;
    let resumeAt = rowsEnd;
    let lost = 0;
    if (!cut) {
      // Another process appended after the half row (the disk had room again at once): it stays, and so
      // does its row's loss; the batch goes on from the next row.
      resumeAt = Math.min(batch.end, batch.buffer.indexOf(0x0a, stop) + 1 || batch.end);
      lost = 1;
      this.log.error({ bytesWritten: written }, 'recorder: a write cut short by a full disk left half a row that could not be removed (another writer followed it)');
    }
    const rowsWritten = countNewlines(batch.buffer, start, rowsEnd) + lost;
    batch.lines = Math.max(0, batch.lines - rowsWritten);
    this.dropped += lost;
    this.droppedInEpisode += lost;
    this.queued -= resumeAt - start;
    batch.offset = resumeAt;
    if (batch.offset >= batch.end) {
      this.queue.shift();
      this.recycle(batch);
    }
    this.failed('ENOSPC');
  }

  /** A write failed (or was cut short): one line per outage, what waits behind is dropped, the first batch is retried. */
  private failed(why: string): void {
    if (!this.failing) {
      this.failing = true;
      this.log.error({ err: why }, 'recorder cannot write: rows are dropped until it can (the write is retried)');
      // Only the batch being retried is kept; what waited behind it goes.
      for (const batch of this.queue.splice(1)) {
        this.queued -= batch.end - batch.offset;
        this.drop(batch, undefined);
      }
    }
    if (this.closed) {
      this.idle?.();
      return;
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.writeNext();
    }, this.retryMs);
    this.retryTimer.unref();
  }

  private recovered(): void {
    this.failing = false;
    this.log.warn({ droppedRows: this.droppedInEpisode, droppedRowsTotal: this.dropped }, 'recorder writing again');
    this.droppedInEpisode = 0;
  }

  /** Write what is queued and close the file; resolves when it is on disk, or given up on (rows dropped). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.drain();
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.queue.length > 0) {
      // One more try for what is queued (the disk may have room again); failing that, it is dropped.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          this.idle = resolve;
          this.writeNext();
        }),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, this.closeWaitMs))),
      ]);
      clearTimeout(timer);
      this.idle = undefined;
    }
    for (const batch of this.queue.splice(0)) {
      this.dropped += batch.lines;
      this.droppedInEpisode += batch.lines;
    }
    this.queued = 0;
    if (this.dropped > 0) this.log.warn({ droppedRows: this.dropped }, 'recorder closed: rows were dropped');
    // A write still in flight (a hung disk) keeps the file: closing it under that write is not safe.
    if (!this.writing) await this.sink.close().catch(() => undefined);
  }
}

/** Newlines in buffer[start, end): the rows a written part holds. */
function countNewlines(buffer: Buffer, start: number, end: number): number {
  let n = 0;
  for (let i = buffer.indexOf(0x0a, start); i !== -1 && i < end; i = buffer.indexOf(0x0a, i + 1)) n++;
  return n;
}
