// The capture (--pcap FILE): both TCP connections of every association as a pcapng file Wireshark reads,
// rebuilt from what the proxy's links read and wrote (tap.ts); encoding/ numbers the bytes and encodes the
// blocks.
//
// Each event is encoded when it happens, straight into the file's current 1 MiB slab (capture-file.ts):
// the chunk's bytes are copied once, where they will be written from, and nothing keeps a reference to
// them (a socket chunk held for a batch outlives the young generation and made the garbage collector
// mark the old one several times as often). Slabs are written when full (queued ones joined into one
// writev) and 100 ms after the first bytes of a pause, on libuv's pool; the event loop never waits on the
// disk. Memory is bounded by the slabs (MAX_PENDING_BYTES): when every slab is still being written, bytes
// are dropped (their sequence numbers still advance, so Wireshark shows the hole as "previous segment not
// captured"), counted, and warned about. --pcap-max-size rotates FILE to FILE.1, FILE.1 to FILE.2 ...,
// keeping --pcap-max-files files in all. The files are created mode 0600: they hold patient data.

import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { CaptureFile, SLAB_BYTES, SLAB_COUNT } from './capture-file.js';
import type { CaptureFileEvents } from './capture-file.js';
import { CapturedConnection } from './encoding/connection.js';
import type { CapturePayload } from './encoding/connection.js';
import { interfaceDescriptionBlock, sectionHeaderBlock } from './encoding/pcapng.js';
import type { Segment } from './encoding/tcp-conversation.js';
import { parseIpAddress } from './encoding/tcp-ip.js';
import type { ConnectionEvents, Leg, Recorder, SocketEnds } from '../events/events.js';

/** One interface per leg, in this order: filters pick a leg with frame.interface_name == "scu". */
export const CAPTURE_INTERFACES: readonly Leg[] = ['scu', 'scp'];
const INTERFACE_ID: Readonly<Record<Leg, number>> = { scu: 0, scp: 1 };

/** Bytes are written at the latest this long after they were captured. */
const FLUSH_DELAY_MS = 100;
/** Encoded bytes not yet on disk beyond which new bytes are dropped: the file's slabs. */
export const MAX_PENDING_BYTES = SLAB_COUNT * SLAB_BYTES;
export const DEFAULT_PCAP_MAX_FILES = 5;

export interface PcapOptions {
  /** Rotate when the file would grow past this many bytes; undefined or 0 = never. */
  maxSize?: number | undefined;
  /** Files kept in all (FILE and FILE.1 ... FILE.(N-1)); default 5. */
  maxFiles?: number | undefined;
  /** Told once when bytes are first dropped, when a file fails, and at close how many were dropped. */
  log?: Logger | undefined;
}

/** The bytes of the file's start: section header and one interface per leg. */
function fileHeader(): Buffer {
  return Buffer.concat([sectionHeaderBlock('dicom-pdu-proxy'), ...CAPTURE_INTERFACES.map((leg) => interfaceDescriptionBlock(leg))]);
}

/** FILE, and its rotated predecessors FILE.1 (newest) ... FILE.(maxFiles-1). */
class RotatingFile {
  readonly out: CaptureFile;
  private readonly maxSize: number;
  private readonly headerLength: number;
  private rotations = 0;
  /** Deletions of rotated-out files under way (awaited at close). */
  readonly deleting: Array<Promise<unknown>> = [];

  private constructor(
    private readonly path: string,
    maxSize: number,
    private readonly maxFiles: number,
    private readonly onError: (err: Error) => void,
    events: CaptureFileEvents,
  ) {
    const header = fileHeader();
    this.headerLength = header.length;
    this.out = CaptureFile.open(path, header, events);
    // A device or a pipe (--pcap /dev/null, a FIFO read by a live Wireshark) is not ours to rename.
    this.maxSize = this.out.regular ? maxSize : 0;
  }

  /** Throws (ENOENT, EACCES ...) when the file cannot be created. */
  /** `onError`: a rotation failed (no next file: the capture stops); `events`: writes failing and resuming. */
  static open(path: string, maxSize: number, maxFiles: number, onError: (err: Error) => void, events: CaptureFileEvents): RotatingFile {
    return new RotatingFile(path, maxSize, maxFiles, onError, events);
  }

  /** Whether a block of `next` bytes must go to a fresh file. A file holds at least one block, whatever its size. */
  full(next: number): boolean {
    const size = this.out.size;
    return this.maxSize > 0 && size > this.headerLength && size + next > this.maxSize;
  }

  /** FILE becomes FILE.1 (older ones move up, the oldest goes); a new FILE starts with the header. */
  rotate(): void {
    try {
      // The file that goes: FILE.(N-1), or FILE itself when only one is kept. Deleting a large file frees
      // its blocks within the unlink (or the rename over it), 50 ms on the event loop for 256 MB here; moved
      // aside under a name of its own (a cheap rename), it is deleted on libuv's pool instead.
      const oldest = this.maxFiles > 1 ? `${this.path}.${this.maxFiles - 1}` : this.path;
      const doomed = `${oldest}.deleting-${process.pid}-${++this.rotations}`;
      if (renameIfThere(oldest, doomed)) this.deleting.push(fs.promises.unlink(doomed).catch(() => undefined));
      if (this.maxFiles > 1) {
        for (let i = this.maxFiles - 1; i >= 2; i--) renameIfThere(`${this.path}.${i - 1}`, `${this.path}.${i}`);
        fs.renameSync(this.path, `${this.path}.1`);
      }
    } catch (err) {
      this.onError(err as Error);
    }
    // The old file's last writes still go to it (now FILE.1: a rename keeps the open file).
    try {
      this.out.switchTo(this.path);
    } catch (err) {
      // Nowhere to write: the capture stops (onError).
      this.onError(err as Error);
    }
  }
}

/** Whether `from` was there (and is now `to`). */
function renameIfThere(from: string, to: string): boolean {
  try {
    fs.renameSync(from, to);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return false;
  }
}

function totalLength(buffers: readonly Buffer[]): number {
  let n = 0;
  for (const b of buffers) n += b.length;
  return n;
}

/** Microseconds since 1970 of a performance.now() time. */
function epochMicros(time: number): number {
  return Math.round((performance.timeOrigin + time) * 1000);
}

export class PcapRecorder implements Recorder {
  private readonly file: RotatingFile;
  private readonly log: Logger | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private connections = 0;
  private droppedBytes = 0;
  private failed = false;
  /** droppedBytes when the current outage of the file began. */
  private droppedBeforeOutage = 0;
  private closed = false;
  /** The event being encoded: its connection and time (microseconds since 1970), for the sink. */
  private current: CapturedConnection | undefined;
  private timeUs = 0;
  private readonly sink = (segment: Segment): void => this.block(segment);

  private constructor(file: RotatingFile, log: Logger | undefined) {
    this.file = file;
    this.log = log;
  }

  /** Create (truncate) `path`, mode 0600, and write the pcapng header. Rejects if it cannot be opened. */
  static async open(path: string, options: PcapOptions = {}): Promise<PcapRecorder> {
    let recorder: PcapRecorder | undefined;
    const file = RotatingFile.open(path, options.maxSize ?? 0, options.maxFiles ?? DEFAULT_PCAP_MAX_FILES, (err) => recorder?.fail(err), {
      writeFailed: (err) => recorder?.writeFailed(err),
      writing: () => recorder?.writingAgain(),
    });
    recorder = new PcapRecorder(file, options.log);
    return recorder;
  }

  /** The recorder as one route sees it: its connections captured with `payload`; close() does nothing. */
  view(payload: CapturePayload): Recorder {
    return {
      connection: (leg, ends, time) => this.connection(leg, ends, time, payload),
      close: () => Promise.resolve(),
    };
  }

  /** Bytes not captured (no slab free, or the file failed). */
  get dropped(): number {
    return this.droppedBytes;
  }

  connection(leg: Leg, ends: SocketEnds, time: number, payload: CapturePayload = 'full'): ConnectionEvents | undefined {
    if (this.closed) return undefined;
    const peer = parseIpAddress(ends.peerAddress);
    const proxy = parseIpAddress(ends.proxyAddress);
    if (!peer || !proxy || peer.length !== proxy.length) return undefined;
    const peerEnd = { address: peer, port: ends.peerPort };
    const proxyEnd = { address: proxy, port: ends.proxyPort };
    // The SCU connected to the proxy; the proxy connected to the SCP: the client sends the SYN.
    const peerIsClient = leg === 'scu';
    const connection = new CapturedConnection(INTERFACE_ID[leg], peerIsClient ? peerEnd : proxyEnd, peerIsClient ? proxyEnd : peerEnd, payload, ++this.connections);
    const tcp = connection.conversation;
    if (this.begin(connection, time)) tcp.open(this.sink);
    const fromPeer = peerIsClient;
    let ended = false;
    const fin = (fromClient: boolean, t: number): void => {
      if (this.begin(connection, t)) tcp.fin(fromClient, this.sink);
    };
    const rst = (fromClient: boolean, t: number): void => {
      if (this.begin(connection, t)) tcp.rst(fromClient, this.sink);
    };
    return {
      fromPeer: (bytes, t) => this.data(connection, fromPeer, bytes, t),
      toPeer: (bytes, t) => this.data(connection, !fromPeer, bytes, t),
      peerFin: (t) => fin(fromPeer, t),
      proxyFin: (t) => {
        if (!ended) fin(!fromPeer, t);
        ended = true;
      },
      peerReset: (t) => rst(fromPeer, t),
      proxyReset: (t) => {
        if (!ended) rst(!fromPeer, t);
        ended = true;
      },
      // A socket destroyed without end() still sends a FIN (the kernel closes it).
      closed: (t) => {
        if (!ended) fin(!fromPeer, t);
        ended = true;
      },
    };
  }

  /** Set the sink up for an event of `connection` at `time`; false when nothing is captured any more. */
  private begin(connection: CapturedConnection, time: number): boolean {
    if (this.closed) return false;
    this.current = connection;
    this.timeUs = epochMicros(time);
    return true;
  }

  private data(connection: CapturedConnection, fromClient: boolean, bytes: Buffer | readonly Buffer[], time: number): void {
    if (!this.begin(connection, time)) return;
    const length = Buffer.isBuffer(bytes) ? bytes.length : totalLength(bytes);
    if (length === 0) return;
    const tcp = connection.conversation;
    if (this.failed) {
      this.droppedBytes += length;
      tcp.skip(fromClient, length);
      return;
    }
    tcp.data(fromClient, bytes, 0, length, this.sink);
    if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => this.flush(), FLUSH_DELAY_MS);
      this.flushTimer.unref();
    }
  }

  private flush(): void {
    this.flushTimer = undefined;
    this.file.out.flush(true);
  }

  private block(segment: Segment): void {
    const connection = this.current!;
    const length = connection.blockLength(segment);
    if (this.file.full(length)) this.file.rotate();
    const room = this.file.out.reserve(length);
    if (room === undefined) {
      // Every slab is still being written (or the file failed): the segment is not captured.
      if (!this.failed && !this.file.out.failingNow && this.droppedBytes === 0) {
        this.log?.warn({ pendingBytes: this.file.out.pending }, 'pcap: the capture cannot keep up; bytes are dropped from it (counted at the end)');
      }
      this.droppedBytes += segment.end - segment.start;
      return;
    }
    this.file.out.commit(connection.writeBlock(room.buffer, room.offset, segment, this.timeUs), segment.end - segment.start);
  }

  /** No file to write to (a rotation could not create the next one): the capture stops. */
  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.log?.error({ err: (err as NodeJS.ErrnoException).code ?? err.message }, 'pcap: the capture file cannot be written; capturing stopped');
  }

  /** A write failed (a full disk): it is retried; bytes wait in the slabs, and are dropped once those are full. */
  private writeFailed(err: Error): void {
    this.droppedBeforeOutage = this.droppedBytes;
    this.log?.error(
      { err: (err as NodeJS.ErrnoException).code ?? err.message },
      'pcap: the capture file cannot be written; the write is retried every second, bytes are dropped once the buffers are full',
    );
  }

  private writingAgain(): void {
    this.log?.warn({ droppedBytesInOutage: this.droppedBytes - this.droppedBeforeOutage }, 'pcap: the capture file takes bytes again; capturing goes on');
  }

  /** Write what is encoded and close the file(s); resolves when on disk. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.flushTimer);
    await this.file.out.close();
    // What a disk still full kept out of the files (cut back to their last whole block).
    this.droppedBytes += this.file.out.lostPayload;
    if (this.droppedBytes > 0) this.log?.warn({ droppedBytes: this.droppedBytes }, 'pcap: bytes dropped from the capture');
    await Promise.all(this.file.deleting);
  }
}
