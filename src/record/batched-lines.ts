// Lines queued by a recorder and written to a file in batches, off the proxy's hot path: when `maxLines`
// are queued, or `maxDelayMs` after the first queued line, whichever comes first; one file write per batch.
// Shared by the chunk CSV and the messages CSV.
//
// Lines are encoded straight into a batch buffer that is reused once the file has it on disk: no string of
// the whole batch and no fresh Buffer per batch. Joining 4096 rows into one string and encoding it made a
// ~400 KB allocation per batch; on glibc that churn shows up as page faults (minor faults doubled with the
// chunk CSV on at 4 KB PDUs), i.e. kernel time the proxy's own JavaScript profile never shows.

import fs from 'node:fs';
import { once } from 'node:events';

/** Bytes per batch buffer; a batch is written sooner when full. A line longer than this is written alone. */
const BATCH_BYTES = 256 * 1024;
/** UTF-8 needs at most 3 bytes per UTF-16 code unit. */
const MAX_BYTES_PER_CHAR = 3;
/** Written-out buffers kept for reuse; more in flight at once (a slow disk) are left to the GC afterwards. */
const MAX_SPARE = 4;

export class BatchedLines {
  private readonly file: fs.WriteStream;
  private readonly maxLines: number;
  private readonly maxDelayMs: number;
  /** Buffers the file has finished with, ready for the next batch. */
  private readonly spare: Buffer[] = [];
  private buffer: Buffer | undefined;
  private used = 0;
  private lines = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(file: fs.WriteStream, maxLines: number, maxDelayMs: number) {
    this.file = file;
    this.maxLines = maxLines;
    this.maxDelayMs = maxDelayMs;
  }

  /** Write `text` now, ahead of any queued line (a header). */
  writeNow(text: string): void {
    this.file.write(text);
  }

  /** Queue one line (without its newline); ignored once closed. */
  push(line: string): void {
    if (this.closed) return;
    const worst = line.length * MAX_BYTES_PER_CHAR + 1;
    if (worst > BATCH_BYTES) {
      this.drain();
      this.file.write(`${line}\n`);
      return;
    }
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
    this.used += buffer.write(line, this.used, 'utf8');
    buffer[this.used++] = 0x0a;
    this.lines++;
    if (this.lines >= this.maxLines) {
      this.drain();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.drain(), this.maxDelayMs);
      this.timer.unref();
    }
  }

  private drain(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const buffer = this.buffer;
    if (buffer === undefined || this.used === 0) return;
    this.buffer = undefined;
    this.lines = 0;
    // The stream keeps this view until it is written: the buffer is reused only after that.
    this.file.write(buffer.subarray(0, this.used), () => {
      if (this.spare.length < MAX_SPARE) this.spare.push(buffer);
    });
    this.used = 0;
  }

  /** Write what is queued and close the file; resolves when it is on disk. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.drain();
    const finished = once(this.file, 'finish');
    this.file.end();
    await finished;
  }
}
