// One direction of an association: bytes from a sender socket, through the framer and the re-fragmenter,
// to the receiver socket. The link owns no socket lifetime (the session does); it reads, writes, applies
// backpressure, and times every PDU it receives. Its stages: framer (src/pdu/framer.ts) → re-fragmenter
// (src/transform/refragment.ts) → batch (write-batch.ts: one writev per chunk read, adjacent views merged)
// → writer (output.ts: direct, or shaped). Beside them: reads into the link's own buffers
// (own-read-buffer.ts), the sender's time accounting (sender-time.ts) and the stall watch (stall-watch.ts:
// on Node's buffer, and on the kernel's with unacked-watch.ts).

import type { Socket } from 'node:net';
import { MCH_COMMAND, MCH_LAST, PDU_HEADER_LENGTH, PduType, pduTypeName } from '../pdu/constants.js';
import { ProtocolError } from '../pdu/errors.js';
import type { FrameHandler } from '../pdu/framer.js';
import { PduFramer } from '../pdu/framer.js';
import type { PDataObserver } from '../dimse/tracker.js';
import type { Direction, PduRecord } from '../events/events.js';
import type { PDataSink } from '../transform/refragment.js';
import { Refragmenter } from '../transform/refragment.js';
import type { LinkShaping, Wire } from '../transform/shaper.js';
import type { OutputTap } from '../capture/tap.js';
import type { Backpressure, OnWritten, Writer } from './output.js';
import { writerFor } from './output.js';
import { readIntoOwnBuffer } from './own-read-buffer.js';
import { ReadSizer, processReadBudget } from './read-size.js';
import type { InFlight } from './pdu-records.js';
import { PendingRecords } from './pdu-records.js';
import { SenderTime } from './sender-time.js';
import { StallWatch } from './stall-watch.js';
import { resetOrDestroy } from './tls.js';
import { WriteBatch } from './write-batch.js';

/** An empty batch, for a flush that only reports records. */
const NO_BYTES: readonly Buffer[] = [];

export type { InFlight } from './pdu-records.js';

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

export class Link implements FrameHandler, PDataSink {
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
  private readonly stallWatch = new StallWatch(() => this.owner.onStalled(this));
  /**
   * Read the sender into buffers of the link's own, reused while nothing else holds them (set before
   * attachSource).
   */
  reuseReadBuffers = false;
  /** Told of every chunk read from the sender before anything is done with it; copies what it keeps (--pcap). */
  readTap: ((chunk: Buffer) => void) | undefined;
  /** Told of what the link hands the receiving socket, its half-close and its reset (--pcap); set before attachDest. */
  writeTap: OutputTap | undefined;
  /** Something of the current own read buffer was handed out (undefined: reads use Node's buffers). */
  private ownBufferShared: boolean | undefined;
  /** The size of the next own read buffer (src/proxy/read-size.ts). */
  private readonly readSizer = new ReadSizer(processReadBudget);

  private readonly owner: LinkOwner;
  private readonly assoc: number;
  private readonly clock: () => number;
  /** Where the sender's time went (the tracker's LegTimes), kept only with an observer: a clock read per chunk. */
  readonly times: SenderTime;
  private readonly framer = new PduFramer();
  private source: Socket | undefined;
  private dest: Socket | undefined;
  private readonly batch = new WriteBatch();
  private readonly awaiting = new PendingRecords();
  private current: InFlight | undefined;
  private lastData: InFlight | undefined;
  private chunkTime = 0;
  private receivedPayload = 0;
  private seq = 0;
  /** Link shaping (--latency, --bandwidth) for the writer; undefined = none (a direct writer). */
  private shaping: LinkShaping | undefined;
  private wire: Wire | undefined;
  /** Hands batches to the receiving socket; set with it. */
  private writer: Writer | undefined;
  private readonly backpressure: Backpressure = {
    pause: () => this.pauseSource(),
    resume: () => this.resumeSource(),
    receiverFull: () => this.stallWatch.start(this.stallTimeoutMs),
    receiverDrained: () => this.stallWatch.end(),
    wrote: () => {
      if (this.dest) this.stallWatch.wrote(this.dest, this.stallTimeoutMs);
    },
  };

  constructor(direction: Direction, assoc: number, owner: LinkOwner, clock: () => number, loopIdle?: () => number) {
    this.direction = direction;
    this.assoc = assoc;
    this.owner = owner;
    this.clock = clock;
    this.times = new SenderTime(clock, loopIdle);
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
    this.writer = writerFor(socket, this.backpressure, this.shaping, this.wire, this.writeTap);
    this.flush();
  }

  /**
   * Stop delivering and read the rest of the input only to discard it: used once the association is being
   * torn down. A source paused for backpressure toward a receiver that is gone would otherwise never see
   * its peer's FIN, and the connection would linger until the close timeout.
   */
  discardInput(): void {
    this.framer.stop();
    this.times.forgetPause();
    this.source?.resume();
  }

  private onChunk(chunk: Buffer): void {
    this.readTap?.(chunk);
    this.counters.bytesIn += chunk.length;
    this.chunkTime = this.clock();
    const observed = this.observer !== undefined;
    if (observed) this.times.chunkArrived(this.chunkTime);
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
    if (observed) this.times.chunkDone();
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
    this.awaiting.add(record);
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
      const t = this.times;
      this.observer.dataStart(this.direction, firstByteTime, t.idleAtChunk(now), t.blockedAtChunk(now), t.busyAtChunk(now));
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
    this.batch.pduStart();
  }

  write(bytes: Buffer): void {
    const n = bytes.length;
    if (n === 0) return;
    this.counters.bytesOut += n;
    this.batch.add(bytes);
  }

  pduEnd(length: number): void {
    this.batch.pduEnd();
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
      if (!this.batch.withdrawOpenPdu()) return false;
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
    const ready = this.awaiting.takeReady(this.refragmenter.emittedPayload);
    if (dest.destroyed || dest.writableEnded) {
      this.batch.take();
      writer.drop();
      this.report(ready, undefined);
      return;
    }
    if (this.batch.length > 0) writer.send(this.batch.take(), this.reportWhenWritten(ready));
    else if (ready.length > 0) writer.send(NO_BYTES, this.reportWhenWritten(ready));
  }

  /** The callback that reports `ready` once its bytes are written (undefined when nothing is to report). */
  private reportWhenWritten(ready: InFlight[]): OnWritten | undefined {
    return ready.length > 0 ? (err?: Error | null) => this.report(ready, err ? undefined : this.clock()) : undefined;
  }

  /** Stop reading from the sender (backpressure); false when it was paused already. */
  private pauseSource(): boolean {
    if (this.times.paused || !this.source) return false;
    this.times.pause();
    this.source.pause();
    return true;
  }

  /** Read from the sender again, counting the time it was paused. */
  private resumeSource(): void {
    if (!this.times.paused) return;
    this.times.resume();
    this.source?.resume();
  }

  /** Half-close the receiving socket once everything this link sent has been written (at once when unshaped). */
  closeOutput(): void {
    const dest = this.dest;
    const writer = this.writer;
    if (!dest || !writer || dest.destroyed || dest.writableEnded) return;
    writer.end();
  }

  /**
   * Reset the receiving connection (RST; a TLS one is only closed): it can take neither an A-ABORT nor the
   * rest of its data. False when no receiving socket is attached (nothing done).
   */
  resetOutput(): boolean {
    const dest = this.dest;
    if (!dest) return false;
    if (!dest.destroyed && resetOrDestroy(dest)) this.writeTap?.reset();
    return true;
  }

  /**
   * Hand records to the owner (recorders, message tracking). Often called from a socket's write callback or
   * a timer, outside the relaying's try/catch: an exception here (a bug) is the owner's internal error,
   * one A-ABORT for this association, never an uncaught exception that ends the process.
   */
  private report(records: readonly InFlight[], forwardedUs: number | undefined): void {
    try {
      for (const record of records) {
        record.forwardedUs = record.dropped ? undefined : forwardedUs;
        this.owner.onRecord(record);
      }
    } catch (err) {
      this.owner.onInternalError(this, asError(err));
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
    this.stallWatch.stop();
    this.flush();
    this.writer?.drop();
    this.report(this.awaiting.takeAll(), undefined);
    this.current = undefined;
  }
}

/** What was thrown, as an Error (with a stack) even when it was not one. */
function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(`non-Error thrown: ${String(thrown)}`);
}
