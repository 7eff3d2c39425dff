// The listening side: accepts SCU connections and gives each its own Session. Sessions are independent:
// one association's failure never touches another's.

import net from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Recorder } from '../record/events.js';
import type { ProxyOptions } from './options.js';
import { Session } from './session.js';

export class ProxyServer {
  private readonly options: ProxyOptions;
  private readonly log: Logger;
  private readonly recorders: readonly Recorder[];
  private readonly server: Server;
  private readonly sessions = new Set<Session>();
  private nextId = 1;
  private idleWaiters: Array<() => void> = [];

  constructor(options: ProxyOptions, log: Logger, recorders: readonly Recorder[]) {
    this.options = options;
    this.log = log;
    this.recorders = recorders;
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => this.accept(socket));
    this.server.on('error', (err) => this.log.error({ err: err.message }, 'listener error'));
  }

  get activeAssociations(): number {
    return this.sessions.size;
  }

  /** Start listening; resolves with the bound address (port 0 picks a free port). */
  listen(): Promise<AddressInfo> {
    const { host, port } = this.options.listen;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        const address = this.server.address() as AddressInfo;
        this.log.info(
          {
            listen: `${address.address}:${address.port}`,
            upstream: `${this.options.upstream.host}:${this.options.upstream.port}`,
            maxPdu: this.options.maxPdu ?? 'unchanged',
            maxPduRq: this.options.maxPduRq ?? 'unchanged',
            fragment: this.options.fragment.mode === 'size' ? this.options.fragment.size : this.options.fragment.mode,
          },
          'listening',
        );
        resolve(address);
      });
    });
  }

  private accept(socket: Socket): void {
    const id = this.nextId++;
    const log = this.log.child({ assoc: id });
    log.debug({ peer: `${socket.remoteAddress}:${socket.remotePort}` }, 'connection accepted');
    const session = new Session(id, socket, this.options, log, this.recorders, (s) => this.sessionDone(s));
    this.sessions.add(session);
  }

  private sessionDone(session: Session): void {
    this.sessions.delete(session);
    if (this.sessions.size === 0) {
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  /** Stop accepting new connections. */
  stopListening(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
  }

  /** Abort every association in flight (A-ABORT to both peers) and wait until all are closed. */
  async abortAll(why: string): Promise<void> {
    const idle = this.whenIdle();
    for (const session of this.sessions) session.abort(why);
    await idle;
  }

  whenIdle(): Promise<void> {
    if (this.sessions.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
