// Time accounting of one link's sender (the LegTimes of message tracking, src/dimse/tracker.ts): the
// microseconds spent waiting for the sender while the proxy did not hold it paused (idle), those spent
// with the sender paused for backpressure (blocked), and the proxy's own (busy): processing the sender's
// chunks, and the part of each wait between two chunks during which the event loop was working for others.
// No sockets: driven by the link with a clock. Busy costs no clock or loop read of its own: it is made of
// the readings idle already takes.

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
  private busyTotalUs = 0;
  private pausedTotalUs = 0;
  private pausedSinceUs = 0;
  /** When the previous chunk was done with (processed and written), and blockedUs() then; -1 before any. */
  private chunkDoneUs = -1;
  private blockedAtChunkDoneUs = 0;
  private loopIdleAtChunkDoneUs = 0;
  /** When the chunk being processed arrived; -1 between chunks. */
  private chunkArrivedUs = -1;
  /**
   * The totals when the current chunk arrived (idle and busy including the wait for it, busy not yet its
   * processing), and for the chunk before.
   */
  private chunkIdleUs = 0;
  private chunkBlockedUs = 0;
  private chunkBusyUs = 0;
  private prevChunkIdleUs = 0;
  private prevChunkBlockedUs = 0;
  private prevChunkBusyUs = 0;

  constructor(clock: () => number, loopIdle?: () => number) {
    this.clock = clock;
    this.loopIdle = loopIdle;
  }

  idleUs(): number {
    return this.idleTotalUs;
  }

  /**
   * The proxy's own time on this sender's bytes: each chunk's processing (arrival to done with), plus the
   * part of each wait between two chunks that was neither blocked nor loop idle, i.e. the event loop was
   * busy with other work (other associations, the other direction, recorders). Chunks done with only.
   * Without a loop-idle counter the waits are all the sender's, and busy is the processing alone.
   */
  busyUs(): number {
    return this.busyTotalUs;
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
      // That other work is the proxy's own (busy).
      let idle = chunkTime - this.chunkDoneUs - (blocked - this.blockedAtChunkDoneUs);
      if (this.loopIdle) {
        const loopIdle = this.loopIdle() - this.loopIdleAtChunkDoneUs;
        if (idle > loopIdle) {
          this.busyTotalUs += idle - loopIdle;
          idle = loopIdle;
        }
      }
      if (idle > 0) this.idleTotalUs += idle;
    }
    this.chunkArrivedUs = chunkTime;
    this.prevChunkIdleUs = this.chunkIdleUs;
    this.prevChunkBlockedUs = this.chunkBlockedUs;
    this.prevChunkBusyUs = this.chunkBusyUs;
    this.chunkIdleUs = this.idleTotalUs;
    this.chunkBlockedUs = blocked;
    this.chunkBusyUs = this.busyTotalUs;
  }

  /** The chunk was processed and written: its processing counts as busy, and the next wait starts now. */
  chunkDone(): void {
    const now = this.clock();
    if (this.chunkArrivedUs >= 0 && now > this.chunkArrivedUs) this.busyTotalUs += now - this.chunkArrivedUs;
    this.chunkArrivedUs = -1;
    this.chunkDoneUs = now;
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

  /** The busy total when the current chunk (true) or the one before it (false) arrived, before its processing. */
  busyAtChunk(current: boolean): number {
    return current ? this.chunkBusyUs : this.prevChunkBusyUs;
  }
}
