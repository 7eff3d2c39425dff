// How large a link's next read buffer is. A link starts with READ_BUFFER_BYTES; a read that fills it (the
// kernel had at least that much queued) moves the link to LARGE_READ_BUFFER_BYTES, which quarters the reads,
// writes and callbacks per byte of a fast stream; SHRINK_AFTER_SMALL_READS reads in a row that would have
// fit the small buffer move it back. The large buffers of a process come out of one budget, so that memory
// stays bounded however many associations stream at once: past it, links keep the small size.
// Pure: no I/O, no timers.

/** Bytes per read into a link's own buffer to begin with: what Node allocates for each socket read. */
export const READ_BUFFER_BYTES = 64 * 1024;
/** Bytes per read once a link's reads fill the small buffer. */
export const LARGE_READ_BUFFER_BYTES = 256 * 1024;
/** Reads in a row that would have fit READ_BUFFER_BYTES before a link goes back to it. */
export const SHRINK_AFTER_SMALL_READS = 16;
/** Large read buffers a process may hold at once, in bytes (256 links). */
export const LARGE_READ_BUDGET_BYTES = 64 * 1024 * 1024;

/** The large read buffers a process holds, against a limit. */
export class ReadBufferBudget {
  private used = 0;

  constructor(readonly limitBytes: number = LARGE_READ_BUDGET_BYTES) {}

  get usedBytes(): number {
    return this.used;
  }

  take(bytes: number): boolean {
    if (this.used + bytes > this.limitBytes) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }
}

/** One per link: the size of its next read buffer, from the reads so far. */
export class ReadSizer {
  private current = READ_BUFFER_BYTES;
  private smallReads = 0;

  constructor(private readonly budget: ReadBufferBudget) {}

  get size(): number {
    return this.current;
  }

  /** A read of `nread` bytes into a buffer of the current size: the size for the next buffer. */
  next(nread: number): number {
    if (this.current === READ_BUFFER_BYTES) {
      if (nread >= READ_BUFFER_BYTES && this.budget.take(LARGE_READ_BUFFER_BYTES)) {
        this.current = LARGE_READ_BUFFER_BYTES;
        this.smallReads = 0;
      }
    } else if (nread > READ_BUFFER_BYTES) {
      this.smallReads = 0;
    } else if (++this.smallReads >= SHRINK_AFTER_SMALL_READS) {
      this.release();
    }
    return this.current;
  }

  /** Back to the small size, returning a large buffer's share of the budget (the link closed, or went slow). */
  release(): void {
    if (this.current === LARGE_READ_BUFFER_BYTES) this.budget.give(LARGE_READ_BUFFER_BYTES);
    this.current = READ_BUFFER_BYTES;
    this.smallReads = 0;
  }
}

/** The budget every link of this process draws on. */
export const processReadBudget = new ReadBufferBudget();
