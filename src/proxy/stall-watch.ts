// The stall watch of a link (--stall-timeout), on both buffers between the link and its receiver:
// - Node's: once the receiving socket refuses bytes, a timer; if it takes none before the timer fires, the
//   link's owner is told. Taking bytes again ('drain') stops it.
// - the kernel's: bytes the socket took and its peer does not acknowledge (unacked-watch.ts).

import type { Socket } from 'node:net';
import { UnackedWatch } from './unacked-watch.js';

export class StallWatch {
  private timer: NodeJS.Timeout | undefined;
  private unacked: UnackedWatch | undefined;
  private readonly onStalled: () => void;

  constructor(onStalled: () => void) {
    this.onStalled = onStalled;
  }

  /** The receiver refused bytes: start watching (unless `timeoutMs` is 0 or a watch runs already). */
  start(timeoutMs: number): void {
    if (timeoutMs <= 0 || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.onStalled();
    }, timeoutMs);
    this.timer.unref();
  }

  /** The receiver took bytes again. */
  end(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Bytes went to `dest`: watch them until its peer acknowledges them (unless `timeoutMs` is 0). */
  wrote(dest: Socket, timeoutMs: number): void {
    if (timeoutMs <= 0) return;
    this.unacked ??= new UnackedWatch(timeoutMs, this.onStalled);
    this.unacked.wrote(dest);
  }

  /** The link is done: both watches stop. */
  stop(): void {
    this.end();
    this.unacked?.end();
  }
}
