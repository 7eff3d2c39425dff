// The timers of one association, besides each link's stall watch (stall-watch.ts): ARTIM from the accept
// until the A-ASSOCIATE-RQ (PS3.8 9.1.4), --idle-timeout on the SCU connection, the upstream connect
// timeout (upstream.ts), and the close timer that bounds how long the peers may take to close once the
// association is over. All cleared at once when the session finishes.

import type { Socket } from 'node:net';

export interface TimerSettings {
  artimTimeoutMs: number;
  idleTimeoutMs: number;
  closeTimeoutMs: number;
}

export class SessionTimers {
  private readonly settings: TimerSettings;
  private artim: NodeJS.Timeout | undefined;
  private close: NodeJS.Timeout | undefined;
  private cancelConnect: (() => void) | undefined;

  constructor(settings: TimerSettings) {
    this.settings = settings;
  }

  /** ARTIM: a fixed deadline from the accept, so dribbling bytes does not extend it. */
  startArtim(onExpired: () => void): void {
    this.artim = setTimeout(onExpired, this.settings.artimTimeoutMs);
  }

  /** The A-ASSOCIATE-RQ arrived. */
  stopArtim(): void {
    clearTimeout(this.artim);
  }

  /** --idle-timeout (0 = none): `socket` saw no traffic either way for that long. */
  watchIdle(socket: Socket, onIdle: () => void): void {
    if (this.settings.idleTimeoutMs > 0) socket.setTimeout(this.settings.idleTimeoutMs, onIdle);
  }

  /** The connect timeout of the upstream connection, cancelled with the rest. */
  connecting(cancel: () => void): void {
    this.cancelConnect = cancel;
  }

  /** Bound how long the proxy waits for the peers to close after the association is over (once; keeps no process alive). */
  startClose(onExpired: () => void): void {
    if (this.close) return;
    this.close = setTimeout(onExpired, this.settings.closeTimeoutMs);
    this.close.unref();
  }

  clearAll(): void {
    clearTimeout(this.close);
    this.cancelConnect?.();
    clearTimeout(this.artim);
  }
}
