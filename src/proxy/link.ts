// One direction of an association: bytes from a sender socket, through the framer and the re-fragmenter,
// to the receiver socket. The link owns no socket lifetime (the session does); it reads, writes, applies
// backpressure, and times every PDU it receives. Its stages: framer (src/pdu/framer.ts) → re-fragmenter
// (src/transform/refragment.ts) → batch (here) → writer (src/proxy/output.ts: direct, or shaped).
//
// Writes made while one chunk is processed are collected and handed to the writer as one batch (one
// writev). Adjacent views of the same chunk are merged first, so a PDU forwarded unchanged costs one write
// of a view, not one per header and fragment.

import type { Socket } from 'node:net';
import { MCH_COMMAND, MCH_LAST, PDU_HEADER_LENGTH, PduType, pduTypeName } from '../pdu/constants.js';
import { ProtocolError } from '../pdu/errors.js';
import type { FrameHandler } from '../pdu/framer.js';
import { PduFramer } from '../pdu/framer.js';
import type { LegTimes, PDataObserver } from '../dimse/tracker.js';
import type { Direction, PduRecord } from '../events/events.js';
import type { PDataSink } from '../transform/refragment.js';
import { Refragmenter } from '../transform/refragment.js';
import type { LinkShaping, Wire } from '../transform/shaper.js';
import type { Backpressure, OnWritten, Writer } from './output.js';
import { writerFor } from './output.js';
import { READ_BUFFER_BYTES, ReadSizer, processReadBudget } from './read-size.js';

/** An empty batch, for a flush that only reports records. */
const NO_BYTES: readonly Buffer[] = [];

/** A PDU record still being received or waiting for its bytes to be written. */
export interface InFlight extends PduRecord {
  /** Cumulative fragment bytes received on this link up to this PDU's end. */
  payloadEnd: number;
  /** Its last byte has been received. */
  complete: boolean;
  /** The session chose not to forward it. */
  dropped: boolean;
}

export interface LinkOwner {
  /** A whole PDU other than P-DATA-TF arrived from this link's sender. Forward it with link.forward(). */
  onControlPdu(link: Link, type: number, pdu: Buffer, record: InFlight): void;
  /** Whether P-DATA-TF may arrive on this link now. */
  dataAllowed(link: Link): boolean;
  onProtocolError(link: Link, err: ProtocolError): void;
  /** An exception inside the proxy while relaying (a bug, not the peer's fault). */
  onInternalError(link: Link, err: Error): void;
  /** This link's receiver took no bytes for stallTimeoutMs while the link had bytes for it. */
  onStalled(link: Link): void;
  onRecord(record: PduRecord): void;
}

export interface LinkCounters {
  bytesIn: number;
  pdusIn: number;
  bytesOut: number;
  pdusOut: number;
  violations: number;
}

export class Link implements FrameHandler, PDataSink, LegTimes {
  readonly direction: Direction;
  readonly refragmenter: Refragmenter;
  readonly counters: LinkCounters = { bytesIn: 0, pdusIn: 0, bytesOut: 0, pdusOut: 0, violations: 0 };
  /** The Maximum Length the proxy announced to this link's sender (0 = none); larger P-DATA-TF PDUs are violations. */
  announcedMax = 0;
  /** Largest PDU-length this link received. */
  largestPduIn = 0;
  /** Told about P-DATA as it arrives (message tracking); undefined = nobody listens, no cost. */
  observer: PDataObserver | undefined;
  /** Presentation context ids accepted in the A-ASSOCIATE-AC (1 = accepted); a PDV on any other aborts. */
  acceptedContexts: Uint8Array | undefined;
  /** How long the receiver may refuse bytes (no 'drain') before the owner is told (onStalled); 0 = never. */
  stallTimeoutMs = 0;
  private stallTimer: NodeJS.Timeout | undefined;
  /**
   * Read the sender into buffers of the link's own, reused while nothing else holds them (set before
   * attachSource).
   */
  reuseReadBuffers = false;
  /** Told of every chunk read from the sender before anything is done with it; copies what it keeps (--pcap). */
  readTap: ((chunk: Buffer) => void) | undefined;
  /** Something of the current own read buffer was handed out (undefined: reads use Node's buffers). */
  private ownBufferShared: boolean | undefined;
  /** The size of the next own read buffer (src/proxy/read-size.ts). */
  private readonly readSizer = new ReadSizer(processReadBudget);

  private readonly owner: LinkOwner;
  private readonly assoc: number;
  private readonly clock: () => number;
  /**
   * Cumulative microseconds the event loop has spent waiting with nothing to do (libuv's idle time), or
   * undefined: then every wait between two chunks counts as the sender's. With it, only the part of a
   * wait during which the proxy had nothing else to do counts: time spent on other associations, the other
   * direction or the recorders is the proxy's own, not a slow sender's.
   */
  private readonly loopIdle: (() => number) | undefined;
  private loopIdleAtChunkDoneUs = 0;
  private readonly framer = new PduFramer();
  private source: Socket | undefined;
  private dest: Socket | undefined;
  private batch: Buffer[] = [];
  /** The batch's last entry and the writes adjacent to it in memory since: [start, end) of `buffer`. */
  private readonly run: { head: Buffer | undefined; buffer: ArrayBufferLike | undefined; start: number; end: number; merged: boolean } = {
    head: undefined,
    buffer: undefined,
    start: 0,
    end: 0,
    merged: false,
  };
  private readonly awaiting: InFlight[] = [];
  private current: InFlight | undefined;
  private lastData: InFlight | undefined;
  private chunkTime = 0;
  private receivedPayload = 0;
  private seq = 0;
  private paused = false;
  // Where the time went (LegTimes): cumulative microseconds spent waiting for the sender while not pausing
  // it (kept only with an observer: it costs a clock read per chunk), and spent with the sender paused.
  private idleTotalUs = 0;
  private pausedTotalUs = 0;
  private pausedSinceUs = 0;
  /** When the previous chunk was done with (processed and written), and blockedUs() then; -1 before any. */
  private chunkDoneUs = -1;
  private blockedAtChunkDoneUs = 0;
  /** The totals when the current chunk arrived (idle including the wait for it), and for the chunk before. */
  private chunkIdleUs = 0;
  private chunkBlockedUs = 0;
  private prevChunkIdleUs = 0;
  private prevChunkBlockedUs = 0;
  /** Where the output PDU in progress starts in the unflushed batch; undefined once any of it was flushed. */
  private openPduMark: { entries: number; lastLength: number } | undefined;
  /** Link shaping (--latency, --bandwidth) for the writer; undefined = none (a direct writer). */
  private shaping: LinkShaping | undefined;
  private wire: Wire | undefined;
  /** Hands batches to the receiving socket; set with it. */
  private writer: Writer | undefined;
  private readonly backpressure: Backpressure = {
    pause: () => this.pauseSource(),
    resume: () => this.resumeSource(),
    receiverFull: () => this.stallWatchStart(),
    receiverDrained: () => this.stallWatchEnd(),
  };

  constructor(direction: Direction, assoc: number, owner: LinkOwner, clock: () => number, loopIdle?: () => number) {
    this.direction = direction;
    this.assoc = assoc;
    this.owner = owner;
    this.clock = clock;
    this.loopIdle = loopIdle;
    this.refragmenter = new Refragmenter(this);
  }

  /**
   * Shape what this link sends (src/proxy/output.ts ShapedWriter): a one-way latency and a bandwidth. Set
   * before the receiving socket is attached.
   */
  shape(shaping: LinkShaping | undefined, wire?: Wire): void {
    this.shaping = shaping;
    this.wire = wire;
  }

  attachSource(socket: Socket): void {
    this.source = socket;
    if (this.reuseReadBuffers && readIntoOwnBuffer(socket, (n, buffer) => this.onOwnRead(n, buffer), this.readSizer.size)) {
      socket.once('close', () => this.readSizer.release());
      return;
    }
    socket.on('data', (chunk: Buffer) => this.onChunk(chunk));
  }

  /**
   * A read into the link's own buffer (see readIntoOwnBuffer). Returns the buffer for the next read: the
   * same one when nothing of this one is still referenced (every byte forwarded was taken by the kernel,
   * no control PDU was handed out as a view of it), else a new one, leaving this one to whoever holds it.
   */
  private onOwnRead(nread: number, buffer: Buffer): Buffer {
    this.ownBufferShared = false;
    this.onChunk(nread === buffer.length ? buffer : buffer.subarray(0, nread));
    const size = this.readSizer.next(nread);
    const dest = this.dest;
    if (size === buffer.length && !this.ownBufferShared && this.batch.length === 0 && this.shaping === undefined && dest !== undefined && dest.writableLength === 0) {
      return buffer;
    }
    return Buffer.allocUnsafeSlow(size);
  }

  /** Set the receiving socket; anything written before is sent now. */
  attachDest(socket: Socket): void {
    this.dest = socket;
    this.writer = writerFor(socket, this.backpressure, this.shaping, this.wire);
    this.flush();
  }

  /**
   * Stop delivering: used once the association is being torn down. Input is still read (and discarded):
   * a source paused for backpressure toward a receiver that is gone would otherwise never see its peer's
   * FIN, and the connection would linger until the close timeout.
   */
  stop(): void {
    this.framer.stop();
    this.paused = false;
    this.source?.resume();
  }

  private onChunk(chunk: Buffer): void {
    this.readTap?.(chunk);
    this.counters.bytesIn += chunk.length;
    this.chunkTime = this.clock();
    const observed = this.observer !== undefined;
    if (observed) {
      const blocked = this.blockedUs();
      if (this.chunkDoneUs >= 0) {
        // The wait since the previous chunk, less the time the proxy itself held the sender paused, and at
        // most the time the event loop had nothing to do meanwhile (the rest it spent on other work).
        let idle = this.chunkTime - this.chunkDoneUs - (blocked - this.blockedAtChunkDoneUs);
        if (this.loopIdle) idle = Math.min(idle, this.loopIdle() - this.loopIdleAtChunkDoneUs);
        if (idle > 0) this.idleTotalUs += idle;
      }
      this.prevChunkIdleUs = this.chunkIdleUs;
      this.prevChunkBlockedUs = this.chunkBlockedUs;
      this.chunkIdleUs = this.idleTotalUs;
      this.chunkBlockedUs = blocked;
    }
    try {
      this.framer.push(chunk, this.chunkTime, this);
    } catch (err) {
      if (err instanceof ProtocolError) this.owner.onProtocolError(this, err);
      else this.owner.onInternalError(this, asError(err));
    }
    try {
      this.flush();
    } catch (err) {
      this.owner.onInternalError(this, asError(err));
    }
    if (observed) {
      this.chunkDoneUs = this.clock();
      this.blockedAtChunkDoneUs = this.blockedUs();
      if (this.loopIdle) this.loopIdleAtChunkDoneUs = this.loopIdle();
    }
  }

  // ---- LegTimes ----------------------------------------------------------------------------------

  idleUs(): number {
    return this.idleTotalUs;
  }

  blockedUs(): number {
    return this.paused ? this.pausedTotalUs + (this.clock() - this.pausedSinceUs) : this.pausedTotalUs;
  }

  private newRecord(type: number, length: number, firstByteTime: number): InFlight {
    this.counters.pdusIn++;
    if (length > this.largestPduIn) this.largestPduIn = length;
    // Maximum Length bounds P-DATA-TF only (PS3.8 D.1): association PDUs may be larger and are no violation.
    const violation = type === PduType.PDataTf && this.announcedMax > 0 && length > this.announcedMax;
    if (violation) this.counters.violations++;
    const record: InFlight = {
      assoc: this.assoc,
      direction: this.direction,
      seq: ++this.seq,
      type: pduTypeName(type),
      length,
      pdvs: 0,
      contextId: undefined,
      kind: '',
      last: false,
      firstByteUs: firstByteTime,
      lastByteUs: this.chunkTime,
      forwardedUs: undefined,
      outPdus: 0,
      outMaxLength: 0,
      violation,
      payloadEnd: this.receivedPayload,
      complete: false,
      dropped: false,
    };
    this.awaiting.push(record);
    return record;
  }

  // ---- FrameHandler ----------------------------------------------------------------------------

  onPdu(type: number, pdu: Buffer, firstByteTime: number): void {
    // The owner may keep a control PDU: a view of a reused read buffer must not outlive this read.
    if (this.ownBufferShared === false) this.ownBufferShared = true;
    const record = this.newRecord(type, pdu.length - PDU_HEADER_LENGTH, firstByteTime);
    record.complete = true;
    this.owner.onControlPdu(this, type, pdu, record);
  }

  onDataStart(length: number, header: Buffer, firstByteTime: number): void {
    if (!this.owner.dataAllowed(this)) {
      throw new ProtocolError('unexpected-pdu', `P-DATA-TF on ${this.direction} before the association was accepted`);
    }
    this.current = this.newRecord(header[0]!, length, firstByteTime);
    this.refragmenter.dataStart(length, header);
    if (this.observer) {
      // A header split over chunks started in the previous one (a 6-byte header spans two at most, unless a
      // sender's chunks are under 6 bytes: then the wait between those tiny chunks is not the message's).
      const now = firstByteTime === this.chunkTime;
      this.observer.dataStart(this.direction, firstByteTime, now ? this.chunkIdleUs : this.prevChunkIdleUs, now ? this.chunkBlockedUs : this.prevChunkBlockedUs);
    }
  }

  onPdvStart(itemLength: number, contextId: number, mch: number, header: Buffer): void {
    if (this.acceptedContexts !== undefined && this.acceptedContexts[contextId] !== 1) {
      throw new ProtocolError('unknown-context-id', `PDV on presentation context ${contextId}, which the A-ASSOCIATE-AC did not accept`);
    }
    const record = this.current!;
    const kind = mch & MCH_COMMAND ? 'command' : 'dataset';
    if (record.pdvs === 0) {
      record.contextId = contextId;
      record.kind = kind;
    } else if (record.kind !== kind) {
      record.kind = 'mixed';
    }
    record.pdvs++;
    if (mch & MCH_LAST) record.last = true;
    this.refragmenter.pdvStart(itemLength, contextId, mch, header);
    this.observer?.pdvStart(this.direction, contextId, mch);
  }

  onPdvData(bytes: Buffer): void {
    this.receivedPayload += bytes.length;
    this.refragmenter.pdvData(bytes);
    this.observer?.pdvData(this.direction, bytes);
  }

  onPdvEnd(): void {
    this.observer?.pdvEnd(this.direction, this.chunkTime, this.current!);
  }

  onDataEnd(): void {
    this.refragmenter.dataEnd();
    const record = this.current!;
    record.lastByteUs = this.chunkTime;
    record.payloadEnd = this.receivedPayload;
    record.complete = true;
    this.lastData = record;
    this.current = undefined;
  }

  // ---- PDataSink -------------------------------------------------------------------------------

  pduStart(): void {
    const last = this.batch[this.batch.length - 1];
    const lastLength = this.run.head !== undefined ? this.run.end - this.run.start : last ? last.length : 0;
    this.openPduMark = { entries: this.batch.length, lastLength };
  }

  write(bytes: Buffer): void {
    const n = bytes.length;
    if (n === 0) return;
    this.counters.bytesOut += n;
    const offset = bytes.byteOffset;
    // Adjacent in memory to the batch's last entry (a passed-through PDU's header, PDV header and data are
    // consecutive views of one read): extend the run; one view covering it is made when the batch is read.
    // The offsets are compared first: `.buffer` is a call into the runtime, too dear for every write.
    if (this.run.head !== undefined && offset === this.run.end && bytes.buffer === this.run.buffer) {
      this.run.end = offset + n;
      this.run.merged = true;
      return;
    }
    this.sealRun();
    this.batch.push(bytes);
    this.run.head = bytes;
    this.run.buffer = bytes.buffer;
    this.run.start = offset;
    this.run.end = offset + n;
  }

  /** Make the batch's last entry the one view that covers the run of adjacent writes it started. */
  private sealRun(): void {
    const run = this.run;
    if (run.head === undefined) return;
    if (run.merged) this.batch[this.batch.length - 1] = Buffer.from(run.buffer!, run.start, run.end - run.start);
    run.head = undefined;
    run.buffer = undefined;
    run.merged = false;
  }

  pduEnd(length: number): void {
    this.openPduMark = undefined;
    this.counters.pdusOut++;
    const record = this.current ?? this.lastData;
    if (record) {
      record.outPdus++;
      if (length > record.outMaxLength) record.outMaxLength = length;
    }
  }

  // ---- Used by the session ------------------------------------------------------------------------

  /** Forward a whole non-data PDU received on this link (possibly rewritten), after any pending data. */
  forward(pdu: Buffer, record: InFlight): void {
    this.refragmenter.flush();
    this.write(pdu);
    this.counters.pdusOut++;
    record.outPdus = 1;
    record.outMaxLength = pdu.length - PDU_HEADER_LENGTH;
  }

  /** Record that a received PDU was not forwarded. */
  drop(record: InFlight): void {
    record.dropped = true;
  }

  /**
   * Send a PDU the proxy generated (A-ABORT, A-ASSOCIATE-RJ) to this link's receiver, dropping data still
   * waiting to be merged. Returns false when an output PDU is half written, so the PDU cannot be framed.
   */
  sendGenerated(pdu: Buffer): boolean {
    if (this.refragmenter.midPdu) {
      // The PDU in progress can be withdrawn only if none of it has reached the socket yet.
      const mark = this.openPduMark;
      if (!mark) return false;
      this.sealRun();
      this.batch.length = mark.entries;
      const last = this.batch[mark.entries - 1];
      if (last && last.length !== mark.lastLength) this.batch[mark.entries - 1] = last.subarray(0, mark.lastLength);
      this.openPduMark = undefined;
    }
    // Bytes waiting to be merged are dropped too: nothing of the message may follow an A-ABORT (a later
    // endOutput() would otherwise flush them behind it, into a shaped link that has not ended yet).
    this.refragmenter.abandonOutput();
    this.write(pdu);
    this.counters.pdusOut++;
    this.flush();
    return true;
  }

  /** Hand the batch to the receiving socket and report the records whose bytes are all in it. */
  flush(): void {
    const dest = this.dest;
    const writer = this.writer;
    if (!dest || !writer) return;
    const ready = this.takeReady();
    if (dest.destroyed || dest.writableEnded) {
      this.takeBatch();
      writer.drop();
      for (const record of ready) this.owner.onRecord(record);
      return;
    }
    if (this.batch.length > 0) writer.send(this.takeBatch(), this.reportWhenWritten(ready));
    else if (ready.length > 0) writer.send(NO_BYTES, this.reportWhenWritten(ready));
  }

  /** The unflushed batch, handed over; the link starts a new one. */
  private takeBatch(): Buffer[] {
    this.sealRun();
    const batch = this.batch;
    this.batch = [];
    this.openPduMark = undefined;
    return batch;
  }

  /** The callback that reports `ready` once its bytes are written (undefined when nothing is to report). */
  private reportWhenWritten(ready: InFlight[]): OnWritten | undefined {
    return ready.length > 0 ? (err?: Error | null) => this.report(ready, err ? undefined : this.clock()) : undefined;
  }

  /** The receiver refused bytes: if it takes none for stallTimeoutMs, the owner hears of it. */
  private stallWatchStart(): void {
    if (this.stallTimeoutMs <= 0 || this.stallTimer !== undefined) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      this.owner.onStalled(this);
    }, this.stallTimeoutMs);
    this.stallTimer.unref();
  }

  private stallWatchEnd(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
  }

  /** Stop reading from the sender (backpressure); false when it was paused already. */
  private pauseSource(): boolean {
    if (this.paused || !this.source) return false;
    this.paused = true;
    this.pausedSinceUs = this.clock();
    this.source.pause();
    return true;
  }

  /** Read from the sender again, counting the time it was paused. */
  private resumeSource(): void {
    if (!this.paused) return;
    this.pausedTotalUs += this.clock() - this.pausedSinceUs;
    this.paused = false;
    this.source?.resume();
  }

  /** Half-close the receiving socket once everything this link sent has been written (at once when unshaped). */
  closeOutput(): void {
    const dest = this.dest;
    const writer = this.writer;
    if (!dest || !writer || dest.destroyed || dest.writableEnded) return;
    writer.end();
  }

  /** Records complete and fully written (none of their bytes still pending in the re-fragmenter), in order. */
  private takeReady(): InFlight[] {
    const emitted = this.refragmenter.emittedPayload;
    let n = 0;
    while (n < this.awaiting.length) {
      const record = this.awaiting[n]!;
      if (!record.complete || record.payloadEnd > emitted) break;
      n++;
    }
    return n === 0 ? [] : this.awaiting.splice(0, n);
  }

  private report(records: InFlight[], forwardedUs: number | undefined): void {
    for (const record of records) {
      record.forwardedUs = record.dropped ? undefined : forwardedUs;
      this.owner.onRecord(record);
    }
  }

  /** Flush, then half-close the receiving socket (propagating the sender's FIN). */
  endOutput(): void {
    this.refragmenter.flush();
    this.flush();
    this.closeOutput();
  }

  /** Report every record not reported yet, as never forwarded. Called when the association is over. */
  abandon(): void {
    this.stallWatchEnd();
    this.flush();
    this.writer?.drop();
    for (const record of this.awaiting.splice(0)) {
      record.forwardedUs = undefined;
      this.owner.onRecord(record);
    }
    this.current = undefined;
  }
}

export { READ_BUFFER_BYTES } from './read-size.js';

/** The parts of Node's net.Socket internals that readIntoOwnBuffer uses. */
interface SocketInternals {
  _handle?: { useUserBuffer?: (buffer: Uint8Array) => void } | null;
  encrypted?: boolean;
}

/**
 * Have `socket` read into a buffer of our own instead of a fresh 64 KiB allocation per read, as
 * net.connect's `onread` option does (documented; Node offers it for sockets it connects, not for those a
 * server accepts, so it is set up here the way the net.Socket constructor does it). Why: every fresh read
 * buffer is external memory that only a garbage collection frees; at hundreds of MB/s that is a full
 * (mark-compact) collection every 64 MiB or so ("external memory pressure") and a malloc heap that grows
 * and is trimmed again, i.e. page faults (bench:relay prints both costs).
 *
 * `onRead(nread, buffer)` gets each read (the first `nread` bytes of `buffer`) and returns the buffer for
 * the next one. Backpressure, 'end', 'error' and 'close' work as before (pause() stops reading at once).
 * Returns false, leaving the socket as it was, when that cannot be done here: a TLS socket, bytes already
 * read or listened for, or a Node whose internals differ.
 */
export function readIntoOwnBuffer(socket: Socket, onRead: (nread: number, buffer: Buffer) => Buffer, firstSize: number = READ_BUFFER_BYTES): boolean {
  const internals = socket as unknown as SocketInternals & Record<symbol, unknown>;
  const handle = internals._handle;
  if (internals.encrypted === true || !handle || typeof handle.useUserBuffer !== 'function') return false;
  if (socket.readableLength > 0 || socket.listenerCount('data') > 0 || socket.listenerCount('readable') > 0) return false;
  const symbols = new Map(Object.getOwnPropertySymbols(socket).map((s) => [s.description, s]));
  const kBuffer = symbols.get('kBuffer');
  const kBufferCb = symbols.get('kBufferCb');
  const kBufferGen = symbols.get('kBufferGen');
  if (!kBuffer || !kBufferCb || !kBufferGen || internals[kBuffer] !== null || internals[kBufferCb] !== null) return false;
  let buffer: Buffer = Buffer.allocUnsafeSlow(firstSize);
  let next = buffer;
  handle.useUserBuffer(buffer);
  internals[kBuffer] = buffer;
  internals[kBufferCb] = (nread: number, current: Buffer): boolean => {
    next = onRead(nread, current);
    return true;
  };
  // Asked right after each read: a new buffer replaces the current one, the same one is reused.
  internals[kBufferGen] = (): Buffer | undefined => {
    if (next === buffer) return undefined;
    buffer = next;
    return buffer;
  };
  return true;
}

/** What was thrown, as an Error (with a stack) even when it was not one. */
function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(`non-Error thrown: ${String(thrown)}`);
}
