// A CSV file the recorders append rows to (src/record/batched-lines.ts writes it): a FileHandle opened
// with O_APPEND, and for a regular file the one repair a full disk needs, cutting off the half row a short
// write left (cutTail). Opened for reading too, to check those bytes are still the file's last ones.

import fs from 'node:fs';
import type { LineSink } from './batched-lines.js';

export class RowFile implements LineSink {
  readonly cutTail: ((tail: Buffer) => Promise<boolean>) | undefined;

  private constructor(
    private readonly handle: fs.promises.FileHandle,
    regular: boolean,
  ) {
    this.cutTail = regular ? (tail) => this.cut(tail) : undefined;
  }

  /** Open `path` for appending: 'truncate' empties it first, 'append' keeps what is there. */
  static async open(path: string, how: 'truncate' | 'append'): Promise<RowFile> {
    const { O_RDWR, O_CREAT, O_APPEND, O_TRUNC } = fs.constants;
    const handle = await fs.promises.open(path, O_RDWR | O_CREAT | O_APPEND | (how === 'truncate' ? O_TRUNC : 0), 0o666);
    try {
      return new RowFile(handle, (await handle.stat()).isFile());
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** The open file, for reading what is there before the first row (a header check). */
  get file(): fs.promises.FileHandle {
    return this.handle;
  }

  write(buffer: Buffer, offset: number, length: number): Promise<{ bytesWritten: number }> {
    return this.handle.write(buffer, offset, length);
  }

  close(): Promise<void> {
    return this.handle.close();
  }

  private async cut(tail: Buffer): Promise<boolean> {
    const { size } = await this.handle.stat();
    if (size < tail.length) return false;
    const last = Buffer.alloc(tail.length);
    const { bytesRead } = await this.handle.read(last, 0, tail.length, size - tail.length);
    if (bytesRead !== tail.length || !last.equals(tail)) return false;
    await this.handle.truncate(size - tail.length);
    return true;
  }
}
