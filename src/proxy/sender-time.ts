// Time accounting of one link's sender (the LegTimes of message tracking, src/dimse/tracker.ts): the
// microseconds spent waiting for the sender while the proxy did not hold it paused (idle), and those spent
// with the sender paused for backpressure (blocked). No sockets: driven by the link with a clock.

export class SenderTime {
  private readonly clock: () => number;
  /**
   * Cumulative microseconds the event loop has spent waiting with nothing to do (libuv's idle time), or
   * undefined: then every wait between two chunks counts as the sender's. With it, only the part of a
   * wait during which the proxy had nothing else to do counts: time spent on other associations, the other
   * direction or the recorders is the proxy's own, not a slow sender's.
   */
  private readonly loopIdle: (() => number) | undefined;
  /** The sender is held paused (backpressure). */
  paused = false;
  private idleTotalUs = 0;
  private pausedTotalUs = 0;
  private pausedSinceUs = 0;
  /** When the previous chunk was done with (processed and written), and blockedUs() then; -1 before any. */
  private chunkDoneUs = -1;
  private blockedAtChunkDoneUs = 0;
  private loopIdleAtChunkDoneUs = 0;
  /** The totals when the current chunk arrived (idle including the wait for it), and for the chunk before. */
  private chunkIdleUs = 0;
  private chunkBlockedUs = 0;
  private prevChunkIdleUs = 0;
  private prevChunkBlockedUs = 0;

  constructor(clock: () => number, loopIdle?: () => number) {
    this.clock = clock;
    this.loopIdle = loopIdle;
  }

  idleUs(): number {
    return this.idleTotalUs;
  }

  blockedUs(): number {
    return this.paused ? this.pausedTotalUs + (this.clock() - this.pausedSinceUs) : this.pausedTotalUs;
  }

  /** The sender is paused now; false when it was already. */
  pause(): boolean {
    if (this.paused) return false;
    this.paused = true;
    this.pausedSinceUs = this.clock();
    return true;
  }

  /** The sender reads again: the time it was paused counts as blocked. */
  resume(): void {
    if (!this.paused) return;
    this.pausedTotalUs += this.clock() - this.pausedSinceUs;
    this.paused = false;
  }

  /** The sender reads again and the pause in progress is not counted (the association is being torn down). */
  forgetPause(): void {
    this.paused = false;
  }

  /** A chunk arrived at `chunkTime`: the wait since the previous one counts as idle, as far as it was the sender's. */
  chunkArrived(chunkTime: number): void {
    const blocked = this.blockedUs();
    if (this.chunkDoneUs >= 0) {
      // The wait since the previous chunk, less the time the proxy itself held the sender paused, and at
      // most the time the event loop had nothing to do meanwhile (the rest it spent on other work).
      let idle = chunkTime - this.chunkDoneUs - (blocked - this.blockedAtChunkDoneUs);
      if (this.loopIdle) idle = Math.min(idle, this.loopIdle() - this.loopIdleAtChunkDoneUs);
      if (idle > 0) this.idleTotalUs += idle;
    }
    this.prevChunkIdleUs = this.chunkIdleUs;
    this.prevChunkBlockedUs = this.chunkBlockedUs;
    this.chunkIdleUs = this.idleTotalUs;
    this.chunkBlockedUs = blocked;
  }

  /** The chunk was processed and written: the next wait starts now. */
  chunkDone(): void {
    this.chunkDoneUs = this.clock();
    this.blockedAtChunkDoneUs = this.blockedUs();
    if (this.loopIdle) this.loopIdleAtChunkDoneUs = this.loopIdle();
  }

  /** The idle total when the current chunk (true) or the one before it (false) arrived. */
  idleAtChunk(current: boolean): number {
    return current ? this.chunkIdleUs : this.prevChunkIdleUs;
  }

  /** The blocked total when the current chunk (true) or the one before it (false) arrived. */
  blockedAtChunk(current: boolean): number {
    return current ? this.chunkBlockedUs : this.prevChunkBlockedUs;
  }
}
