// The file a capture (--pcap) goes to, written with O_DIRECT where the file system takes it.
//
// Why: a capture writes twice the bytes the proxy relays. Written through the page cache, the kernel copies
// every byte into it and writes it back later, which cost the proxy's process more CPU than all of its own
// relaying (bench:relay, 16 KB PDUs: 0.9 s of system time per 640 MB run). With O_DIRECT the disk reads the
// bytes from our buffer: the same run costs a few hundredths of a second of system time, and nothing is left
// in the page cache for a rotation to drop.
//
// O_DIRECT wants whole 4 KiB blocks written from 4 KiB-aligned memory at 4 KiB-aligned file offsets. Blocks
// are encoded into 1 MiB slabs carved from one WebAssembly.Memory (whose memory starts on a page boundary);
// a full slab is written as far as its last whole 4 KiB block and the rest moves to the next slab. A flush
// (after each batch, and at close) writes the last partial block padded with zeros and truncates the file
// to its real length, so the file is a whole pcapng file after every flush; the next write rewrites that
// block. Writes run one at a time in order (fs.write on libuv's pool: the event loop never waits on the disk).
// Where O_DIRECT is refused (tmpfs, some network file systems, devices, pipes: the open or a probe write fails
// with EINVAL) the same slabs are written through the page cache, in order (at their offsets in a regular file).
//
// A write that fails or is cut short (a full disk) is retried every RETRY_MS with the same bytes at the
// same offset, and the writes queued behind it wait; while they wait their slabs stay taken, so new bytes
// are dropped (counted by the recorder) once every slab is, exactly as when the disk is slow. When a retry
// succeeds the capture goes on where it was. A Ledger per file knows which blocks are wholly on disk, and
// the captured payload of those that are not: a close that gives up on a disk still full (CLOSE_WAIT_MS)
// cuts the file back to its last whole block and reports that payload as lost, so the file stays whole
// pcapng and the drops are counted exactly.

import fs from 'node:fs';

/** O_DIRECT's unit: memory, offsets and lengths are multiples of it (the logical block size is at most this). */
export const DIRECT_ALIGN = 4096;
/** One slab: what one write takes at most. */
export const SLAB_BYTES = 1024 * 1024;
/** Slabs in the pool (the capture's memory bound): bytes are dropped when every one is being written. */
export const SLAB_COUNT = 64;
/**
 * Full slabs wait until this many bytes are queued (or a flush), then go in one writev: on a virtual disk
 * every request costs an exit to the host, and 4 MiB is what one request takes (max_sectors_kb) here.
 */
const WRITE_BYTES = 4 * 1024 * 1024;
const WASM_PAGE = 65536;

/** After a failed write, the same bytes are tried again this long after. */
export const RETRY_MS = 1000;
/** close() waits at most this long for writes still to do (a disk still full must not hold the shutdown). */
export const CLOSE_WAIT_MS = 5000;

/** The one WebAssembly API used (the project's TypeScript lib has no WebAssembly types). */
declare const WebAssembly: { Memory: new (descriptor: { initial: number; maximum: number }) => { buffer: ArrayBuffer } };
/** Files are private: they hold patient data. */
const FILE_MODE = 0o600;

/** A write that took fewer bytes than it was given: the disk is full (the next one would say ENOSPC). */
function short(written: number, wanted: number): Error | null {
  if (written >= wanted) return null;
  return Object.assign(new Error(`wrote ${written} of ${wanted} bytes`), { code: 'ENOSPC' });
}

function alignDown(n: number): number {
  return n - (n % DIRECT_ALIGN);
}

/** 1 MiB slabs of page-aligned memory; a slab is free again once every write from it is done. */
class SlabPool {
  private readonly memory: Buffer;
  private readonly free: number[] = [];
  /** One aligned block for the padded tail of a flush (only the write being done uses it). */
  readonly tailBlock: Buffer;
  /** One aligned block for the first bytes of a file opened (synchronously). */
  readonly probeBlock: Buffer;

  constructor(count: number) {
    const bytes = count * SLAB_BYTES + 2 * DIRECT_ALIGN;
    const pages = Math.ceil(bytes / WASM_PAGE);
    this.memory = Buffer.from(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer);
    // Lowest index last: the same few slabs are reused, the others never touched (never resident).
    for (let i = count - 1; i >= 0; i--) this.free.push(i);
    this.tailBlock = this.memory.subarray(count * SLAB_BYTES, count * SLAB_BYTES + DIRECT_ALIGN);
    this.probeBlock = this.memory.subarray(count * SLAB_BYTES + DIRECT_ALIGN, count * SLAB_BYTES + 2 * DIRECT_ALIGN);
  }

  take(): Buffer | undefined {
    const i = this.free.pop();
    return i === undefined ? undefined : this.memory.subarray(i * SLAB_BYTES, (i + 1) * SLAB_BYTES);
  }

  give(slab: Buffer): void {
    this.free.push((slab.byteOffset - this.memory.byteOffset) / SLAB_BYTES);
  }

  get available(): number {
    return this.free.length;
  }
}

interface Slab {
  buffer: Buffer;
  /** Writes queued from it and not yet done. */
  writes: number;
  /** No more bytes go into it: free once its writes are done. */
  sealed: boolean;
}

/**
 * The blocks committed to one file, in order: where each ends and the captured payload bytes it holds; and
 * how far the file is whole (every byte up to a block's end written).
 */
class Ledger {
  private ends: number[] = [];
  private payloads: number[] = [];
  private head = 0;

  constructor(public validEnd: number) {}

  add(end: number, payload: number): void {
    this.ends.push(end);
    this.payloads.push(payload);
  }

  /** Every byte before `end` is written: the blocks ending there are whole on disk. */
  written(end: number): void {
    const ends = this.ends;
    let head = this.head;
    while (head < ends.length && ends[head]! <= end) this.validEnd = ends[head++]!;
    if (head > 4096 && head * 2 > ends.length) {
      this.ends = ends.slice(head);
      this.payloads = this.payloads.slice(head);
      head = 0;
    }
    this.head = head;
  }

  /** Captured payload bytes in blocks not (wholly) written. */
  pending(): number {
    let n = 0;
    for (let i = this.head; i < this.payloads.length; i++) n += this.payloads[i]!;
    return n;
  }
}

interface Write {
  fd: number;
  ledger: Ledger;
  /** Not a regular file (a pipe, a device): never truncated. */
  stream: boolean;
  slab: Slab;
  start: number;
  end: number;
  /** The file offset of its first byte. */
  offset: number;
  /** Where it is written: `offset` in a regular file, null (the file's position) in a pipe or a device. */
  position: number | null;
  /** Direct: the bytes end within a block, written padded and the file truncated to this length. */
  truncateTo?: number | undefined;
  /** Close fd after this write. */
  close?: boolean;
}

/** One open file of the capture. */
export interface OpenedFile {
  fd: number;
  direct: boolean;
  /** A regular file (chmod, rotation); not a device or pipe. */
  regular: boolean;
  ledger: Ledger;
}

/**
 * Create (truncate) `path`, private; with O_DIRECT when the file system takes it (tried with `probe`, the
 * file's first bytes, which are written here for a direct file). Synchronous: a rotation must have the new file in place
 * before the next one renames it, and an error at start-up is reported before the proxy listens.
 */
function openCaptureFile(path: string, probe: Buffer, block: Buffer): OpenedFile {
  const { O_WRONLY, O_CREAT, O_TRUNC, O_DIRECT } = fs.constants;
  const plain = O_WRONLY | O_CREAT | O_TRUNC;
  // Only a regular file is tried with O_DIRECT: a named pipe opened twice would show its reader an end.
  let regularPath = true;
  try {
    regularPath = fs.statSync(path).isFile();
  } catch {
    // Not there yet: it will be a regular file.
  }
  if (O_DIRECT !== undefined && regularPath && probe.length <= DIRECT_ALIGN) {
    let fd: number | undefined;
    try {
      fd = fs.openSync(path, plain | O_DIRECT, FILE_MODE);
      if (fs.fstatSync(fd).isFile()) {
        fs.fchmodSync(fd, FILE_MODE);
        block.fill(0);
        probe.copy(block);
        try {
          fs.writeSync(fd, block, 0, DIRECT_ALIGN, 0);
        } catch (err) {
          // A full disk: O_DIRECT was not refused, and the first slab's write carries the header again.
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return { fd, direct: true, regular: true, ledger: new Ledger(0) };
          throw err;
        }
        fs.ftruncateSync(fd, probe.length);
        return { fd, direct: true, regular: true, ledger: new Ledger(probe.length) };
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') {
        if (fd !== undefined) fs.closeSync(fd);
        throw err;
      }
    }
    if (fd !== undefined) fs.closeSync(fd);
  }
  const fd = fs.openSync(path, plain, FILE_MODE);
  const regular = fs.fstatSync(fd).isFile();
  // mode applies only when the file is created: an existing file is made private too.
  if (regular) fs.fchmodSync(fd, FILE_MODE);
  // The first bytes are written with the rest: a full disk then costs the capture, not the start-up.
  return { fd, direct: false, regular, ledger: new Ledger(0) };
}

/** What a capture file tells its recorder. */
export interface CaptureFileEvents {
  /** A write failed (or was cut short): the first of an outage. It is retried. */
  writeFailed(err: Error): void;
  /** A retry succeeded: the file takes bytes again. */
  writing(): void;
}

/**
 * Where encoded blocks go: reserve() room in the current slab, commit() what was written there, flush() at
 * the end of a batch. `events` hears of failed writes (retried) and of the file taking bytes again.
 */
export class CaptureFile {
  private readonly pool: SlabPool;
  private file: OpenedFile;
  /** Direct: the file's first bytes (already written, but the first slab's write covers their block again). */
  private lead: Buffer | undefined;
  private slab: Slab | undefined;
  /** Bytes encoded in the current slab, and how many of them are queued for writing. */
  private used = 0;
  private sent = 0;
  /** The file offset of the current slab's first byte. */
  private slabPosition: number;
  private readonly writes: Write[] = [];
  private writing = false;
  /** Bytes in `writes`. */
  private queuedBytes = 0;
  /** The first queued write failed; its retry is due at retryTimer. */
  private failing = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Captured payload bytes of blocks a close gave up on (the disk still full). */
  lostPayload = 0;
  /** The `used` an exact flush last wrote the partial block for (not again if nothing was added). */
  private exactAt = -1;
  /** A rotation could not create the next file: nothing more is written. */
  private dead = false;
  private idle: Array<() => void> = [];

  private constructor(
    pool: SlabPool,
    file: OpenedFile,
    private readonly header: Buffer,
    private readonly events: CaptureFileEvents,
  ) {
    this.pool = pool;
    this.file = file;
    this.slabPosition = 0;
    this.start(file);
  }

  /** Create (truncate) `path`, private, starting with `header`. Throws (ENOENT, EACCES ...) when it cannot. */
  static open(path: string, header: Buffer, events: CaptureFileEvents): CaptureFile {
    const pool = new SlabPool(SLAB_COUNT);
    return new CaptureFile(pool, openCaptureFile(path, header, pool.probeBlock), header, events);
  }

  private start(file: OpenedFile): void {
    this.file = file;
    this.slab = undefined;
    this.used = 0;
    this.sent = 0;
    this.exactAt = -1;
    // The first slab starts at 0 with the header in it (direct: slabs start at block boundaries, and the
    // header written by the probe is written again with that block).
    this.slabPosition = 0;
    this.lead = this.header;
    file.ledger.add(this.header.length, 0);
    if (!file.direct && this.reserve(0)) this.flush(false);
  }

  /** The file's length once everything committed is written. */
  get size(): number {
    return this.slabPosition + this.used;
  }

  get regular(): boolean {
    return this.file.regular;
  }

  /** Bytes committed and not yet on disk. */
  get pending(): number {
    return (SLAB_COUNT - this.pool.available) * SLAB_BYTES;
  }

  /**
   * A buffer and offset with room for `length` bytes (at most SLAB_BYTES - DIRECT_ALIGN); undefined when
   * every slab is being written (try again after onSlabFree).
   */
  reserve(length: number): { buffer: Buffer; offset: number } | undefined {
    if (this.dead) return undefined;
    if (this.slab === undefined || this.used + length > SLAB_BYTES) {
      const buffer = this.pool.take();
      if (buffer === undefined) return undefined;
      const next: Slab = { buffer, writes: 0, sealed: false };
      const old = this.slab;
      if (this.lead) {
        this.used = this.lead.copy(buffer, 0);
        this.lead = undefined;
      } else if (old) {
        // The old slab's whole blocks go now; its partial last block carries over to the new slab.
        const cut = this.file.direct ? alignDown(this.used) : this.used;
        if (cut > this.sent) this.queue(old, this.sent, cut, undefined, false);
        old.buffer.copy(buffer, 0, cut, this.used);
        this.slabPosition += cut;
        this.used -= cut;
        this.sent = 0;
        this.exactAt = -1;
        this.seal(old);
      }
      this.slab = next;
    }
    return { buffer: this.slab.buffer, offset: this.used };
  }

  /** The block reserved ends at `end`, and holds `payload` captured bytes. */
  commit(end: number, payload: number): void {
    this.used = end;
    this.file.ledger.add(this.slabPosition + end, payload);
  }

  /** A write failed and waits for its retry. */
  get failingNow(): boolean {
    return this.failing;
  }

  /**
   * Write what is committed. Direct: `exact` also writes the last partial block (padded) and truncates the
   * file to its real length, two more system calls and a rewrite of that block; without it the partial
   * block waits for the bytes that complete it (so under load only whole blocks are written).
   */
  flush(exact: boolean): void {
    this.queueCommitted(exact);
    if (!this.writing && this.writes.length > 0) this.next();
  }

  private queueCommitted(exact: boolean): void {
    const slab = this.slab;
    if (this.dead || slab === undefined || this.used === this.sent) return;
    if (!this.file.direct) {
      this.queue(slab, this.sent, this.used, undefined, true);
      this.sent = this.used;
      return;
    }
    const whole = alignDown(this.used);
    if (whole > this.sent) this.queue(slab, this.sent, whole, undefined, true);
    this.sent = whole;
    if (exact && this.used > whole && this.used !== this.exactAt) {
      this.queue(slab, whole, this.used, this.slabPosition + this.used, true);
      this.exactAt = this.used;
    }
  }

  /**
   * Finish the current file (flush; it closes once written) and go on in a new one at `path` (created
   * like the first). Throws when it cannot be created: the old file is finished all the same.
   */
  switchTo(path: string): void {
    this.flush(true);
    this.closeAfterWrites();
    if (this.slab) this.seal(this.slab);
    this.slab = undefined;
    let next: OpenedFile;
    try {
      next = openCaptureFile(path, this.header, this.pool.probeBlock);
    } catch (err) {
      this.dead = true;
      throw err;
    }
    this.start(next);
  }

  /**
   * Flush, close the file, resolve when everything is written; or after `waitMs` with writes still to do
   * (the disk still full): each file is cut back to its last whole block, their payload counted in lostPayload.
   */
  async close(waitMs: number = CLOSE_WAIT_MS): Promise<void> {
    if (!this.dead) {
      this.flush(true);
      this.closeAfterWrites();
      if (this.slab) this.seal(this.slab);
      this.slab = undefined;
      this.dead = true;
    }
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      new Promise<boolean>((resolve) => {
        if (!this.writing && this.writes.length === 0) resolve(true);
        else this.idle.push(() => resolve(true));
      }),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), waitMs))),
    ]);
    clearTimeout(timer);
    if (!done) this.giveUp();
  }

  /** Stop retrying: the files as far as they are whole, the rest counted as lost. */
  private giveUp(): void {
    // A write still in flight (a hung disk) keeps its file: it is neither cut nor closed under it.
    const busy = this.retryTimer === undefined ? this.current?.fd : undefined;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const files = new Map<number, { ledger: Ledger; stream: boolean; close: boolean }>();
    const inFlight = busy === undefined ? undefined : this.current;
    for (const w of [...(inFlight ? [inFlight] : []), ...this.writes.splice(0)]) {
      const f = files.get(w.fd) ?? { ledger: w.ledger, stream: w.stream, close: false };
      f.close ||= w.close === true;
      files.set(w.fd, f);
      if (w === inFlight) continue;
      w.slab.writes--;
      this.release(w.slab);
    }
    this.queuedBytes = 0;
    for (const [fd, f] of files) {
      this.lostPayload += f.ledger.pending();
      if (fd === busy) continue;
      // Synchronous (once, at a stop that gave up): the cut is done before close() resolves and before the
      // descriptor is closed (an asynchronous ftruncate could run after close() resolved, or after the close).
      if (!f.stream) {
        try {
          fs.ftruncateSync(fd, f.ledger.validEnd);
        } catch {
          // The file stays as the disk left it; its pending payload is counted as lost all the same.
        }
      }
      if (f.close) this.closeFd(fd);
    }
    if (busy === undefined) {
      this.writing = false;
      this.current = undefined;
    }
    for (const resolve of this.idle.splice(0)) resolve();
  }

  private closeAfterWrites(): void {
    const last = this.writes[this.writes.length - 1];
    if (last && last.fd === this.file.fd) last.close = true;
    else if (this.writing && this.current?.fd === this.file.fd) this.current.close = true;
    else this.closeFd(this.file.fd);
  }

  private current: Write | undefined;

  private closeFd(fd: number): void {
    fs.close(fd, () => undefined);
  }

  private seal(slab: Slab): void {
    slab.sealed = true;
    this.release(slab);
  }

  private release(slab: Slab): void {
    if (!slab.sealed || slab.writes > 0) return;
    this.pool.give(slab.buffer);
  }

  private queue(slab: Slab, start: number, end: number, truncateTo: number | undefined, now: boolean): void {
    slab.writes++;
    const file = this.file;
    const offset = this.slabPosition + start;
    const position = file.regular ? offset : null;
    this.writes.push({ fd: file.fd, ledger: file.ledger, stream: !file.regular, slab, start, end, offset, position, truncateTo });
    this.queuedBytes += end - start;
    if (!this.writing && (now || this.queuedBytes >= WRITE_BYTES)) this.next();
  }

  private next(): void {
    const w = this.writes.shift();
    if (w) this.queuedBytes -= w.end - w.start;
    this.current = w;
    if (w === undefined) {
      this.writing = false;
      for (const resolve of this.idle.splice(0)) resolve();
      return;
    }
    this.writing = true;
    if (w.truncateTo !== undefined) {
      // The partial last block, padded with zeros, from the block kept for it; then the real length.
      const tail = this.pool.tailBlock;
      tail.fill(0);
      w.slab.buffer.copy(tail, 0, w.start, w.end);
      fs.write(w.fd, tail, 0, DIRECT_ALIGN, w.position, (err, written) => {
        const error = err ?? short(written, DIRECT_ALIGN);
        if (error) this.failed([w], error);
        else fs.ftruncate(w.fd, w.truncateTo!, (e) => (e ? this.failed([w], e) : this.done([w], w.truncateTo!)));
      });
      return;
    }
    // Writes queued behind this one that continue it in the same file go in the same call (one writev).
    const batch = [w];
    let bytes = w.end - w.start;
    while (bytes < WRITE_BYTES) {
      const n = this.writes[0];
      if (n === undefined || n.fd !== w.fd || n.truncateTo !== undefined || n.offset !== w.offset + bytes) break;
      batch.push(this.writes.shift()!);
      bytes += n.end - n.start;
      this.queuedBytes -= n.end - n.start;
    }
    const end = w.offset + bytes;
    const after = (err: Error | null, written: number): void => {
      const error = err ?? short(written, bytes);
      if (error) this.failed(batch, error);
      else this.done(batch, end);
    };
    if (batch.length === 1) fs.write(w.fd, w.slab.buffer, w.start, bytes, w.position, after);
    else
      fs.writev(
        w.fd,
        batch.map((b) => b.slab.buffer.subarray(b.start, b.end)),
        w.position,
        after,
      );
  }

  /** `batch` is on disk, up to file offset `end`. */
  private done(batch: readonly Write[], end: number): void {
    const first = batch[0]!;
    first.ledger.written(end);
    for (const b of batch) {
      b.slab.writes--;
      this.release(b.slab);
    }
    if (batch.some((b) => b.close)) this.closeFd(first.fd);
    if (this.failing) {
      this.failing = false;
      this.events.writing();
    }
    this.next();
  }

  /** `batch` was not (wholly) written: it goes back to the head of the queue and is written again later. */
  private failed(batch: readonly Write[], err: Error): void {
    if (!this.failing) {
      this.failing = true;
      this.events.writeFailed(err);
    }
    this.writes.unshift(...batch);
    for (const b of batch) this.queuedBytes += b.end - b.start;
    // Still `writing`: flushes and new writes queue behind it until the retry.
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.next();
    }, RETRY_MS);
    this.retryTimer.unref();
  }
}
