// The stall watch of a link: once its receiver refuses bytes, a timer; if the receiver takes none before
// it fires, the link's owner is told (--stall-timeout). Taking bytes again ('drain') stops it.

export class StallWatch {
  private timer: NodeJS.Timeout | undefined;
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

  /** The receiver took bytes again, or the link is done. */
  end(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
