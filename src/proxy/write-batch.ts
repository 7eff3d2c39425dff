// Write merging: what a link writes while one chunk is processed, collected as one batch for the writer
// (one writev). Adjacent views of the same memory are merged first, so a PDU forwarded unchanged (its
// header, PDV header and data are consecutive views of one read) costs one entry, not one per piece.
// The output PDU in progress can be withdrawn while none of it has left the batch (a generated A-ABORT
// must not follow half a PDU). No sockets: testable on its own.

export class WriteBatch {
  private entries: Buffer[] = [];
  /** The last entry and the writes adjacent to it in memory since: [start, end) of `buffer`. */
  private readonly run: { head: Buffer | undefined; buffer: ArrayBufferLike | undefined; start: number; end: number; merged: boolean } = {
    head: undefined,
    buffer: undefined,
    start: 0,
    end: 0,
    merged: false,
  };
  /** Where the output PDU in progress starts in the batch; undefined once any of it was taken. */
  private openPduMark: { entries: number; lastLength: number } | undefined;

  /** Entries in the batch (adjacent writes merged count once). */
  get length(): number {
    return this.entries.length;
  }

  /** Append `bytes` (not empty): merged into the last entry when they follow it in memory. */
  add(bytes: Buffer): void {
    const n = bytes.length;
    const offset = bytes.byteOffset;
    const run = this.run;
    // The offsets are compared first: `.buffer` is a call into the runtime, too dear for every write.
    if (run.head !== undefined && offset === run.end && bytes.buffer === run.buffer) {
      run.end = offset + n;
      run.merged = true;
      return;
    }
    this.sealRun();
    this.entries.push(bytes);
    run.head = bytes;
    run.buffer = bytes.buffer;
    run.start = offset;
    run.end = offset + n;
  }

  /** An output PDU starts here (it may be withdrawn until the batch is taken or the PDU ends). */
  pduStart(): void {
    const last = this.entries[this.entries.length - 1];
    const lastLength = this.run.head !== undefined ? this.run.end - this.run.start : last ? last.length : 0;
    this.openPduMark = { entries: this.entries.length, lastLength };
  }

  /** The output PDU in progress is complete. */
  pduEnd(): void {
    this.openPduMark = undefined;
  }

  /**
   * Remove what the batch holds of the output PDU in progress. False when some of it was taken already
   * (it has reached the writer), or no start was marked.
   */
  withdrawOpenPdu(): boolean {
    const mark = this.openPduMark;
    if (!mark) return false;
    this.sealRun();
    this.entries.length = mark.entries;
    const last = this.entries[mark.entries - 1];
    if (last && last.length !== mark.lastLength) this.entries[mark.entries - 1] = last.subarray(0, mark.lastLength);
    this.openPduMark = undefined;
    return true;
  }

  /** The batch, handed over (merged runs made into one view each); a new one starts. */
  take(): Buffer[] {
    this.sealRun();
    const entries = this.entries;
    this.entries = [];
    this.openPduMark = undefined;
    return entries;
  }

  /** Make the last entry the one view that covers the run of adjacent writes it started. */
  private sealRun(): void {
    const run = this.run;
    if (run.head === undefined) return;
    if (run.merged) this.entries[this.entries.length - 1] = Buffer.from(run.buffer!, run.start, run.end - run.start);
    run.head = undefined;
    run.buffer = undefined;
    run.merged = false;
  }
}
