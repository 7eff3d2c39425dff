// The last stage of a link: handing its output to the receiving socket. Two writers behind one interface:
// DirectWriter writes each batch at once (corked: one writev), ShapedWriter queues it in a Shaper
// (--latency, --bandwidth) and writes each chunk when it is due. Both pause the sender while the receiver
// (or the shaper's queue) is full and resume it when there is room again, and say when the receiving socket
// refuses bytes and when it takes them again (the link's stall watch). With a capture (--pcap), each tells
// its OutputTap what it hands the socket: each write or corked batch, and the half-close.

import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { OutputTap } from '../capture/tap.js';
import type { LinkShaping, Wire } from '../transform/shaper.js';
import { Shaper } from '../transform/shaper.js';

/** Called once the bytes it came with are written; with an error when they never will be. */
export type OnWritten = (err?: Error | null) => void;

/** Backpressure, kept by the link: it counts the time the sender is paused and watches for a stalled receiver. */
export interface Backpressure {
  /** Stop reading from the sender; false when it was paused already. */
  pause(): boolean;
  /** Read from the sender again. */
  resume(): void;
  /** The receiving socket refused more bytes (write returned false). */
  receiverFull(): void;
  /** ... and has taken them ('drain'). */
  receiverDrained(): void;
  /** Bytes were written to the receiving socket (its kernel may hold them unacknowledged: the link watches). */
  wrote(): void;
}

export interface Writer {
  /**
   * Send `batch` (views, in order) to the receiver; `onWritten` once its last byte is written. With an
   * empty batch, `onWritten` is called once what was sent before is written (at once when nothing waits in
   * the writer).
   */
  send(batch: readonly Buffer[], onWritten: OnWritten | undefined): void;
  /** Half-close the receiving socket once everything sent has been written. */
  end(): void;
  /** The receiver is gone: forget what waits, telling each onWritten that it never will be written. */
  drop(): void;
}

/** The emulated link of a proxy, one wire per direction, shared by all its associations (--bandwidth). */
export interface Wires {
  toScp: Wire;
  toScu: Wire;
}

/** Shapers share Wires across associations: one clock for all (ms). */
const SHAPER_CLOCK = { now: (): number => performance.now() };

/** The writer for a link: shaped when a shaping is given, direct otherwise. */
export function writerFor(dest: Socket, source: Backpressure, shaping: LinkShaping | undefined, wire: Wire | undefined, tap?: OutputTap): Writer {
  return shaping ? new ShapedWriter(dest, source, shaping, wire, tap) : new DirectWriter(dest, source, tap);
}

/**
 * Bytes waiting in a TLS socket's writable buffer before its sender is paused. A TLS socket takes a write
 * only when its encrypted form has been written out, and one encrypted write is in flight at a time, so
 * its buffer is over Node's 16 KiB high-water mark after almost every write: pausing the sender at
 * that mark made the relay stop and go once per TLS record (0.58-0.64x stunnel's speed at 16 KB PDUs,
 * the machine 30% busy). Letting up to this much wait lets the TLS layer encrypt and write it in bulk
 * (0.91-0.95x stunnel, with less CPU), and still bounds what a slow TLS receiver makes the proxy hold.
 * A plain socket takes bytes at once while the kernel has room: it is paused when a write is refused.
 */
export const TLS_PAUSE_AT_BYTES = 512 * 1024;

/** Writes each batch at once; when the socket's buffer is full the sender waits for its 'drain'. */
export class DirectWriter implements Writer {
  private readonly dest: Socket;
  private readonly source: Backpressure;
  private readonly tap: OutputTap | undefined;
  private readonly onDrain: () => void;

  /** Pause the sender when a write is refused and at least this much waits (TLS_PAUSE_AT_BYTES for TLS, else 0). */
  private readonly pauseAt: number;

  constructor(dest: Socket, source: Backpressure, tap?: OutputTap) {
    this.dest = dest;
    this.source = source;
    this.tap = tap;
    this.pauseAt = (dest as Socket & { encrypted?: boolean }).encrypted === true ? TLS_PAUSE_AT_BYTES : 0;
    this.onDrain = () => {
      source.receiverDrained();
      source.resume();
    };
  }

  send(batch: readonly Buffer[], onWritten: OnWritten | undefined): void {
    const dest = this.dest;
    if (batch.length === 0) {
      onWritten?.();
      return;
    }
    this.tap?.written(batch.length === 1 ? batch[0]! : batch);
    let ok: boolean;
    if (batch.length === 1) {
      ok = dest.write(batch[0]!, onWritten);
    } else {
      dest.cork();
      const lastIndex = batch.length - 1;
      for (let i = 0; i < lastIndex; i++) dest.write(batch[i]!);
      ok = dest.write(batch[lastIndex]!, onWritten);
      dest.uncork();
    }
    this.source.wrote();
    if (!ok && dest.writableLength >= this.pauseAt && this.source.pause()) {
      this.source.receiverFull();
      dest.once('drain', this.onDrain);
    }
  }

  end(): void {
    endSocket(this.dest, this.tap);
  }

  drop(): void {
    // Nothing waits here: what was written is the socket's.
  }
}

/**
 * Shapes what a link sends (after re-fragmentation, so PDU order is kept): a one-way latency and a
 * bandwidth, with at most the shaper's limit of bytes waiting; beyond that the sender is paused, as for a
 * slow receiver. A timer writes what is due.
 */
export class ShapedWriter implements Writer {
  private readonly dest: Socket;
  private readonly source: Backpressure;
  private readonly shaper: Shaper<OnWritten>;
  private readonly tap: OutputTap | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The receiving socket refused more (write returned false): releases wait for its 'drain'. */
  private awaitingDrain = false;
  /** end() was called while bytes waited: end the socket once they are written. */
  private endWhenSent = false;

  constructor(dest: Socket, source: Backpressure, shaping: LinkShaping, wire?: Wire, tap?: OutputTap) {
    this.dest = dest;
    this.source = source;
    this.tap = tap;
    this.shaper = new Shaper<OnWritten>(shaping, SHAPER_CLOCK, undefined, wire);
  }

  /** The batch joins the shaper's queue; what is due is written now, the rest later. */
  send(batch: readonly Buffer[], onWritten: OnWritten | undefined): void {
    const shaper = this.shaper;
    if (batch.length > 0) {
      const lastIndex = batch.length - 1;
      for (let i = 0; i < lastIndex; i++) shaper.push(batch[i]!);
      shaper.push(batch[lastIndex]!, onWritten);
    } else if (onWritten) {
      // Nothing new to send: reported when everything before the marker is written.
      if (shaper.empty) onWritten();
      else shaper.push(Buffer.alloc(0), onWritten);
    } else {
      return;
    }
    if (shaper.full) this.source.pause();
    if (this.timer === undefined && !this.awaitingDrain) this.release();
  }

  end(): void {
    if (this.shaper.empty) endSocket(this.dest, this.tap);
    else this.endWhenSent = true;
  }

  drop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const onWritten of this.shaper.clear()) onWritten(new Error('receiver gone'));
  }

  /** Write every chunk that is due, then wait for the next one (timer) or for the socket to drain. */
  private release(): void {
    const dest = this.dest;
    const shaper = this.shaper;
    this.timer = undefined;
    if (dest.destroyed || dest.writableEnded) {
      this.drop();
      return;
    }
    const now = SHAPER_CLOCK.now();
    let ok = true;
    let corked = false;
    // What this release hands the socket, for the capture: one corked batch.
    const told: Buffer[] | undefined = this.tap ? [] : undefined;
    for (let chunk = shaper.take(now); chunk !== undefined; chunk = ok ? shaper.take(now) : undefined) {
      if (chunk.bytes.length === 0) {
        chunk.tag?.();
        continue;
      }
      if (!corked) {
        dest.cork();
        corked = true;
      }
      told?.push(chunk.bytes);
      ok = chunk.tag ? dest.write(chunk.bytes, chunk.tag) : dest.write(chunk.bytes);
    }
    if (told !== undefined && told.length > 0) this.tap!.written(told.length === 1 ? told[0]! : told);
    if (corked) {
      dest.uncork();
      this.source.wrote();
    }
    if (!ok) {
      this.awaitingDrain = true;
      this.source.receiverFull();
      dest.once('drain', () => {
        this.source.receiverDrained();
        this.awaitingDrain = false;
        this.release();
      });
    } else {
      const next = shaper.nextRelease();
      if (next !== undefined) this.timer = setTimeout(() => this.release(), Math.max(0, next - SHAPER_CLOCK.now()));
      else if (this.endWhenSent) endSocket(dest, this.tap);
    }
    if (!shaper.full) this.source.resume();
  }
}

/** Half-close the socket, telling the capture first (once: not when it is closed or ended already). */
function endSocket(dest: Socket, tap: OutputTap | undefined): void {
  if (tap && !dest.destroyed && !dest.writableEnded) tap.ended();
  dest.end();
}
