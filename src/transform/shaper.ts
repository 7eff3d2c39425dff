// Link shaping: when each chunk of bytes a link sends may go out, so that one direction of an
// association behaves like a WAN link with a given one-way latency (± jitter) and bandwidth. Pure: no
// sockets, no timers; the clock and the random source are injected. The link (src/proxy/link.ts) pushes
// the views it would have written, asks when the next one is due, and writes what is due.
//
// The model is a serial link followed by a propagation delay:
// - bandwidth: a chunk is "on the wire" for bytes / rate seconds, starting when it arrives or when the wire
//   finished the chunk before it, whichever is later (no credit builds up while idle). Large chunks are cut
//   into views of at most SLICE_BYTES (subarray: no copy) so the receiver sees a smooth stream, and so that
//   shapers sharing one Wire (the associations of one proxy) interleave in slices;
// - latency: each chunk then takes latency ± jitter more (jitter uniform in [-jitter, +jitter], the delay
//   never below 0), and a chunk is never released before the one before it:
//   release = max(previous release, sent + latency ± jitter). Order is kept whatever the jitter.
// The queue is bounded by the caller: `full` says when to stop reading from the sender.

import type { Latency } from '../values/shaping.js';

/** The shaping of one direction; both parts optional. */
export interface LinkShaping {
  latency?: Latency | undefined;
  /** Bytes per second; undefined or 0 = not limited. */
  bytesPerSecond?: number | undefined;
}

/** Views handed to the receiver at once are at most this long when a bandwidth is set. */
export const SLICE_BYTES = 16 * 1024;
/** Bounds of the per-direction queue (see queueLimit). */
export const MIN_QUEUE_BYTES = 1024 * 1024;
export const MAX_QUEUE_BYTES = 16 * 1024 * 1024;
/** Without a bandwidth, latency alone: bytes that may be in flight on the emulated link. */
export const LATENCY_ONLY_QUEUE_BYTES = 8 * 1024 * 1024;

/**
 * How many bytes may wait in the shaper of one direction before the sender is paused: twice what the
 * emulated link holds (bandwidth × (latency + jitter)) plus 1 MiB, within [1 MiB, 16 MiB]; 8 MiB with a latency
 * and no bandwidth (which caps that link at 8 MiB per latency: 400 MiB/s at 20 ms).
 */
export function queueLimit(s: LinkShaping): number {
  const rate = s.bytesPerSecond ?? 0;
  if (rate <= 0) return LATENCY_ONLY_QUEUE_BYTES;
  const delayMs = s.latency ? s.latency.ms + s.latency.jitterMs : 0;
  const inFlight = (rate * delayMs) / 1000;
  return Math.round(Math.min(MAX_QUEUE_BYTES, Math.max(MIN_QUEUE_BYTES, 2 * inFlight + MIN_QUEUE_BYTES)));
}

/**
 * The serial part of an emulated link: when it is free again (ms). One per direction shared by all the
 * associations of a proxy makes --bandwidth the capacity of one link they share, as on a real WAN; each
 * association still has its own queue, order and latency. Times of every shaper sharing it must come from
 * one clock.
 */
export class Wire {
  free = -Infinity;
}

export interface ShaperClock {
  /** Milliseconds, monotonic (performance.now() in the proxy; a variable in tests). */
  now(): number;
  /** Uniform in [0, 1) (Math.random by default). */
  random?(): number;
}

export interface ShapedChunk<T> {
  bytes: Buffer;
  /** When it may be written (ms, on the shaper's clock). */
  release: number;
  /** The caller's tag, on the last view of what was pushed (the link's write callback). */
  tag: T | undefined;
}

export class Shaper<T = unknown> {
  readonly limit: number;
  private readonly latencyMs: number;
  private readonly jitterMs: number;
  /** Bytes per millisecond; 0 = not limited. */
  private readonly bytesPerMs: number;
  private readonly clock: ShaperClock;
  private readonly random: () => number;
  private queue: Array<ShapedChunk<T>> = [];
  private head = 0;
  /** The emulated serial link (its own, or shared with other shapers). */
  private readonly wire: Wire;
  private lastRelease = -Infinity;
  private queued = 0;

  constructor(shaping: LinkShaping, clock: ShaperClock, limit = queueLimit(shaping), wire = new Wire()) {
    this.wire = wire;
    this.latencyMs = shaping.latency?.ms ?? 0;
    this.jitterMs = shaping.latency?.jitterMs ?? 0;
    this.bytesPerMs = (shaping.bytesPerSecond ?? 0) / 1000;
    this.clock = clock;
    this.random = clock.random ? () => clock.random!() : Math.random;
    this.limit = limit;
  }

  /** Bytes waiting. */
  get queuedBytes(): number {
    return this.queued;
  }

  /** The sender should be paused: at least `limit` bytes wait. */
  get full(): boolean {
    return this.queued >= this.limit;
  }

  get empty(): boolean {
    return this.head === this.queue.length;
  }

  /**
   * Schedule `bytes` (kept as a view, never copied). An empty buffer with a tag is a marker: it is released
   * after everything pushed before it.
   */
  push(bytes: Buffer, tag?: T): void {
    const now = this.clock.now();
    let delay = this.latencyMs;
    if (this.jitterMs > 0) delay += (this.random() * 2 - 1) * this.jitterMs;
    if (delay < 0) delay = 0;
    if (this.bytesPerMs === 0 || bytes.length === 0) {
      this.append(bytes, (this.bytesPerMs === 0 ? now : Math.max(now, this.wire.free)) + delay, tag);
      return;
    }
    let offset = 0;
    while (offset < bytes.length) {
      const end = Math.min(bytes.length, offset + SLICE_BYTES);
      const start = Math.max(now, this.wire.free);
      this.wire.free = start + (end - offset) / this.bytesPerMs;
      this.append(offset === 0 && end === bytes.length ? bytes : bytes.subarray(offset, end), this.wire.free + delay, end === bytes.length ? tag : undefined);
      offset = end;
    }
  }

  private append(bytes: Buffer, due: number, tag: T | undefined): void {
    const release = due > this.lastRelease ? due : this.lastRelease;
    this.lastRelease = release;
    this.queue.push({ bytes, release, tag });
    this.queued += bytes.length;
  }

  /** When the next chunk is due (ms); undefined when nothing waits. */
  nextRelease(): number | undefined {
    return this.head < this.queue.length ? this.queue[this.head]!.release : undefined;
  }

  /** The next chunk if it is due at `now`, removed from the queue; undefined otherwise. */
  take(now = this.clock.now()): ShapedChunk<T> | undefined {
    if (this.head === this.queue.length) return undefined;
    const chunk = this.queue[this.head]!;
    if (chunk.release > now) return undefined;
    this.queue[this.head] = undefined as unknown as ShapedChunk<T>;
    this.head++;
    this.queued -= chunk.bytes.length;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return chunk;
  }

  /** Drop everything waiting (the receiver is gone). Returns the tags of what was dropped, in order. */
  clear(): T[] {
    const tags: T[] = [];
    for (let i = this.head; i < this.queue.length; i++) {
      const tag = this.queue[i]!.tag;
      if (tag !== undefined) tags.push(tag);
    }
    this.queue = [];
    this.head = 0;
    this.queued = 0;
    return tags;
  }
}
