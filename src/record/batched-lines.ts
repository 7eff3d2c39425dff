// Lines queued by a recorder and written to a file in batches, off the proxy's hot path: when `maxLines`
// are queued, or `maxDelayMs` after the first queued line, whichever comes first; one string and one
// file write per batch. Shared by the chunk CSV and the messages CSV.

import fs from 'node:fs';
import { once } from 'node:events';

export class BatchedLines {
  private readonly file: fs.WriteStream;
  private readonly maxLines: number;
  private readonly maxDelayMs: number;
  private queue: string[] = [];
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
    this.queue.push(line);
    if (this.queue.length >= this.maxLines) {
      this.drain();
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.drain(), this.maxDelayMs);
      this.timer.unref();
    }
  }

  private drain(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length === 0) return;
    const text = `${this.queue.join('\n')}\n`;
    this.queue = [];
    this.file.write(text);
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
