// The control plane's listeners, one per listen address whatever the number of routes and generations on
// it: opened at start (a route that cannot listen stops the start) and by a reload for the routes it adds
// (all or none), closed when a reload removes their routes and at the stop. Every connection accepted is
// handed to the supervisor with its listener's key.

import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { RouteConfig } from '../config/options.js';
import { formatEndpoint } from '../values/endpoint.js';

interface Listener {
  server: net.Server;
  address: AddressInfo;
}

/**
 * A route's listener, by its address; routes on port 0 (a free port each) by their id or place. A reload keeps
 * the listener of a route whose key it keeps.
 */
export const keyOf = (route: RouteConfig, index: number): string => {
  const where = formatEndpoint(route.options.listen);
  return route.options.listen.port !== 0 ? where : `${where}#${route.id ?? index}`;
};

/** How a route's listen failure is named on stderr: the flag or route it came from, and the address. */
export function listenLabel(route: RouteConfig): string {
  const where = formatEndpoint(route.options.listen);
  return route.label === '--listen' ? `--listen ${where}` : `${route.label} (listen ${where})`;
}

export class Listeners {
  private readonly open = new Map<string, Listener>();

  /**
   * `pauseOnConnect`: a connection for a worker is handed over before anything is read from it.
   * `onConnection`: every connection accepted, with its listener's key.
   */
  constructor(
    private readonly log: Logger,
    private readonly pauseOnConnect: boolean,
    private readonly onConnection: (socket: Socket, key: string) => void,
  ) {}

  /** The address a listener is bound to (its port when the route asked for port 0). */
  address(key: string): AddressInfo | undefined {
    return this.open.get(key)?.address;
  }

  keys(): string[] {
    return [...this.open.keys()];
  }

  /** Bind a route's listener (unless one is open on its address already); an error code when it cannot. */
  async listen(route: RouteConfig, index: number): Promise<string | undefined> {
    const key = keyOf(route, index);
    if (this.open.has(key)) return undefined;
    const server = net.createServer({ pauseOnConnect: this.pauseOnConnect, allowHalfOpen: true }, (socket) => this.onConnection(socket, key));
    try {
      const address = await new Promise<AddressInfo>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: route.options.listen.host, port: route.options.listen.port }, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
      server.on('error', (err) => this.log.error({ listen: key, err: err.message }, 'listener error'));
      this.open.set(key, { server, address });
      return undefined;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return e.code ?? e.message;
    }
  }

  /**
   * The listeners `routes` need and do not have yet, all or none: the keys opened, or the failure (as
   * "listenLabel: code") with the ones opened closed again.
   */
  async listenMissing(routes: readonly RouteConfig[]): Promise<{ opened: string[] } | { failed: string }> {
    const opened: string[] = [];
    for (const [i, route] of routes.entries()) {
      const key = keyOf(route, i);
      if (this.open.has(key)) continue;
      const failed = await this.listen(route, i);
      if (failed) {
        for (const k of opened) await this.close(k);
        return { failed: `${listenLabel(route)}: ${failed}` };
      }
      opened.push(key);
    }
    return { opened };
  }

  close(key: string): Promise<void> {
    const listener = this.open.get(key);
    this.open.delete(key);
    return new Promise((resolve) => (listener?.server.listening ? listener.server.close(() => resolve()) : resolve()));
  }

  closeAll(): Promise<void> {
    return Promise.all(this.keys().map((k) => this.close(k))).then(() => undefined);
  }
}
