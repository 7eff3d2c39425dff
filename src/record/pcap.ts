// The capture (--pcap FILE): both TCP connections of every association as a pcapng file Wireshark reads,
// rebuilt from what the proxy's sockets saw (src/capture/ numbers the bytes and encodes the blocks).
//
// Off the hot path like the CSV recorders: an event only queues a reference to the bytes (no copy); the
// queue is encoded into reused 1 MiB buffers and written in one file write per buffer, when 4 MiB are
// queued or 100 ms after the first event. Memory is bounded: past MAX_PENDING_BYTES queued or not yet on
// disk, bytes are dropped (their sequence numbers still advance, so Wireshark shows the hole as "previous
// segment not captured"), counted, and warned about. --pcap-max-size rotates FILE to FILE.1, FILE.1 to
// FILE.2 ..., keeping --pcap-max-files files in all. The files are created mode 0600: they hold patient data.

import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { CaptureFile, SLAB_BYTES } from './capture-file.js';
import { CapturedConnection } from '../capture/connection.js';
import type { CapturePayload } from '../capture/connection.js';
import { interfaceDescriptionBlock, sectionHeaderBlock } from '../capture/pcapng.js';
import type { Segment } from '../capture/tcp-conversation.js';
import { parseIpAddress } from '../capture/tcp-ip.js';
import type { ConnectionEvents, Leg, Recorder, SocketEnds } from '../events/events.js';

/** One interface per leg, in this order: filters pick a leg with frame.interface_name == "scu". */
export const CAPTURE_INTERFACES: readonly Leg[] = ['scu', 'scp'];
const INTERFACE_ID: Readonly<Record<Leg, number>> = { scu: 0, scp: 1 };

/** Queued bytes that start encoding at once rather than at the timer. */
const ENCODE_AT_BYTES = 4 * 1024 * 1024;
const ENCODE_DELAY_MS = 100;
/** After this long with nothing new, the file is written up to its last byte (O_DIRECT writes whole blocks). */
const SETTLE_MS = 250;
/** Queued plus written-but-not-on-disk bytes beyond which new bytes are dropped. */
export const MAX_PENDING_BYTES = 64 * 1024 * 1024;
/** A batch larger than this is joined in a buffer of its own rather than in the reused one. */
const MAX_SCRATCH_BYTES = 4 * 1024 * 1024;
/** Room an event needs beyond its bytes: the blocks' headers and the ACKs (a generous bound). */
const EVENT_OVERHEAD = 64 * 1024;
export const DEFAULT_PCAP_MAX_FILES = 5;

export interface PcapOptions {
  /** Rotate when the file would grow past this many bytes; undefined or 0 = never. */
  maxSize?: number | undefined;
  /** Files kept in all (FILE and FILE.1 ... FILE.(N-1)); default 5. */
  maxFiles?: number | undefined;
  /** Told once when bytes are first dropped, when a file fails, and at close how many were dropped. */
  log?: Logger | undefined;
}

const enum Kind {
  Open,
  Data,
  Skip,
  Fin,
  Rst,
}

interface Event {
  kind: Kind;
  connection: CapturedConnection;
  fromClient: boolean;
  time: number;
  /** Data: one buffer, or the buffers of one batch (segmented as one stream of bytes). */
  bytes: Buffer | readonly Buffer[] | undefined;
  length: number;
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

  private constructor(
    private readonly path: string,
    maxSize: number,
    private readonly maxFiles: number,
    private readonly onError: (err: Error) => void,
  ) {
    const header = fileHeader();
    this.headerLength = header.length;
    this.out = CaptureFile.open(path, header, onError);
    // A device or a pipe (--pcap /dev/null, a FIFO read by a live Wireshark) is not ours to rename.
    this.maxSize = this.out.regular ? maxSize : 0;
  }

  /** Throws (ENOENT, EACCES ...) when the file cannot be created. */
  static open(path: string, maxSize: number, maxFiles: number, onError: (err: Error) => void): RotatingFile {
    return new RotatingFile(path, maxSize, maxFiles, onError);
  }

  /** Whether a block of `next` bytes must go to a fresh file. A file holds at least one block, whatever its size. */
  full(next: number): boolean {
    const size = this.out.size;
    return this.maxSize > 0 && size > this.headerLength && size + next > this.maxSize;
  }

  /** FILE becomes FILE.1 (older ones move up, the oldest goes); a new FILE starts with the header. */
  rotate(): void {
    try {
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

function renameIfThere(from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
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
  private queue: Event[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private settle: NodeJS.Timeout | undefined;
  /** The next event of the queue to encode (the ones before it are done). */
  private queueAt = 0;
  /** Encoding waits for a slab to be written. */
  private waiting = false;
  private readonly drained: Array<() => void> = [];
  /** Where the writes of a batch are joined before they are cut into segments (reused). */
  private scratch = Buffer.alloc(0);
  private connections = 0;
  private droppedBytes = 0;
  private failed = false;
  private closed = false;

  private constructor(file: RotatingFile, log: Logger | undefined) {
    this.file = file;
    this.log = log;
    file.out.onSlabFree = () => this.slabFree();
  }

  /** Create (truncate) `path`, mode 0600, and write the pcapng header. Rejects if it cannot be opened. */
  static async open(path: string, options: PcapOptions = {}): Promise<PcapRecorder> {
    let recorder: PcapRecorder | undefined;
    const file = RotatingFile.open(path, options.maxSize ?? 0, options.maxFiles ?? DEFAULT_PCAP_MAX_FILES, (err) => recorder?.fail(err));
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
    this.push(Kind.Open, connection, true, time, undefined, 0);
    const fromPeer = peerIsClient;
    let ended = false;
    return {
      fromPeer: (bytes, t) => this.data(connection, fromPeer, bytes, t),
      toPeer: (bytes, t) => this.data(connection, !fromPeer, bytes, t),
      peerFin: (t) => this.push(Kind.Fin, connection, fromPeer, t, undefined, 0),
      proxyFin: (t) => {
        if (!ended) this.push(Kind.Fin, connection, !fromPeer, t, undefined, 0);
        ended = true;
      },
      peerReset: (t) => this.push(Kind.Rst, connection, fromPeer, t, undefined, 0),
      proxyReset: (t) => {
        if (!ended) this.push(Kind.Rst, connection, !fromPeer, t, undefined, 0);
        ended = true;
      },
      // A socket destroyed without end() still sends a FIN (the kernel closes it).
      closed: (t) => {
        if (!ended) this.push(Kind.Fin, connection, !fromPeer, t, undefined, 0);
        ended = true;
      },
    };
  }

  private data(connection: CapturedConnection, fromClient: boolean, bytes: Buffer | readonly Buffer[], time: number): void {
    const length = Buffer.isBuffer(bytes) ? bytes.length : totalLength(bytes);
    if (length === 0) return;
    if (this.failed || this.queuedBytes + this.file.out.pending > MAX_PENDING_BYTES) {
      if (this.droppedBytes === 0 && !this.failed) {
        this.log?.warn({ pendingBytes: this.queuedBytes + this.file.out.pending }, 'pcap: the capture cannot keep up; bytes are dropped from it (counted at the end)');
      }
      this.droppedBytes += length;
      this.push(Kind.Skip, connection, fromClient, time, undefined, length);
      return;
    }
    this.queuedBytes += length;
    this.push(Kind.Data, connection, fromClient, time, bytes, length);
  }

  private push(kind: Kind, connection: CapturedConnection, fromClient: boolean, time: number, bytes: Event['bytes'], length: number): void {
    if (this.closed) return;
    this.queue.push({ kind, connection, fromClient, time, bytes, length });
    if (this.queuedBytes >= ENCODE_AT_BYTES) {
      this.immediate ??= setImmediate(() => this.encode());
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.encode(), ENCODE_DELAY_MS);
      this.timer.unref();
    }
  }

  /**
   * Encode what is queued into blocks and hand them to the file, as far as the file has room (its slabs
   * being written): the rest waits in the queue for the next free slab.
   */
  private encode(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.immediate) clearImmediate(this.immediate);
    this.immediate = undefined;
    const queue = this.queue;
    const out = this.file.out;
    if (this.failed) {
      this.queue = [];
      this.queueAt = 0;
      this.queuedBytes = 0;
      return;
    }
    let time = 0;
    let connection: CapturedConnection | undefined;
    const sink = (segment: Segment): void => this.block(connection!, segment, time);
    let i = this.queueAt;
    for (; i < queue.length; i++) {
      const event = queue[i]!;
      // Wait for room unless nothing is being written (an event larger than every slab goes in part).
      if (event.length + EVENT_OVERHEAD > out.room && out.pending > SLAB_BYTES) break;
      connection = event.connection;
      time = epochMicros(event.time);
      const tcp = connection.conversation;
      switch (event.kind) {
        case Kind.Open:
          tcp.open(sink);
          break;
        case Kind.Data:
          tcp.data(event.fromClient, this.contiguous(event.bytes!, event.length), 0, event.length, sink);
          this.queuedBytes -= event.length;
          break;
        case Kind.Skip:
          tcp.skip(event.fromClient, event.length);
          break;
        case Kind.Fin:
          tcp.fin(event.fromClient, sink);
          break;
        case Kind.Rst:
          tcp.rst(event.fromClient, sink);
          break;
      }
      queue[i] = undefined!;
      if (this.failed) break;
    }
    if (i >= queue.length || this.failed) {
      this.queue = [];
      this.queueAt = 0;
    } else {
      this.queueAt = i;
      this.waiting = true;
    }
    out.flush(false);
    // Once the traffic pauses, the file is made whole up to its last block.
    if (this.settle) this.settle.refresh();
    else {
      this.settle = setTimeout(() => this.file.out.flush(true), SETTLE_MS);
      this.settle.unref();
    }
  }

  /** A slab is free again: go on encoding if the queue waited for one. */
  private slabFree(): void {
    if (!this.waiting) return;
    this.waiting = false;
    this.immediate ??= setImmediate(() => this.encode());
    for (const resolve of this.drained.splice(0)) resolve();
  }

  /** The bytes of a batch in one buffer (segments span its writes); a single buffer as it is. */
  private contiguous(bytes: Buffer | readonly Buffer[], length: number): Buffer {
    if (Buffer.isBuffer(bytes)) return bytes;
    if (length > MAX_SCRATCH_BYTES) return Buffer.concat(bytes, length);
    if (this.scratch.length < length) this.scratch = Buffer.allocUnsafe(Math.max(length, this.scratch.length * 2));
    let at = 0;
    for (const b of bytes) at += b.copy(this.scratch, at);
    return this.scratch;
  }

  private block(connection: CapturedConnection, segment: Segment, timestampUs: number): void {
    const length = connection.blockLength(segment);
    if (this.file.full(length)) this.file.rotate();
    const room = this.file.out.reserve(length);
    if (room === undefined) {
      // No slab free (an event larger than all of them) or the file failed: the segment is not captured.
      if (!this.failed) this.droppedBytes += segment.end - segment.start;
      return;
    }
    this.file.out.commit(connection.writeBlock(room.buffer, room.offset, segment, timestampUs));
  }

  private fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.log?.error({ err: (err as NodeJS.ErrnoException).code ?? err.message }, 'pcap: the capture file cannot be written; capturing stopped');
  }

  /** Write what is queued and close the file(s); resolves when on disk. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.encode();
    while (this.waiting) {
      await new Promise<void>((resolve) => this.drained.push(resolve));
      this.encode();
    }
    clearTimeout(this.settle);
    if (this.droppedBytes > 0) this.log?.warn({ droppedBytes: this.droppedBytes }, 'pcap: bytes dropped from the capture under load');
    await this.file.out.close();
  }
}
