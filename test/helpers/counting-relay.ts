// A TCP relay that counts the bytes it carries each way: put between two peers, it measures what one side
// really sent on the wire, independently of what the proxy says it relayed.

import net from 'node:net';
import type { AddressInfo } from 'node:net';

export class CountingRelay {
  /** Bytes from the connecting side toward the target, and back. */
  forward = 0;
  backward = 0;
  connections = 0;
  /** Connections whose both sides have closed. */
  closed = 0;
  readonly port: number;
  private readonly server: net.Server;
  readonly sockets = new Set<net.Socket>();

  private constructor(server: net.Server) {
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Listen on 127.0.0.1:<free port>, relaying every connection to 127.0.0.1:targetPort. */
  static listen(targetPort: number): Promise<CountingRelay> {
    return new Promise((resolve) => {
      let relay: CountingRelay | undefined;
      const server = net.createServer({ allowHalfOpen: true }, (client) => {
        const r = relay!;
        r.connections++;
        const target = net.connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true });
        for (const s of [client, target]) {
          r.sockets.add(s);
          s.once('close', () => r.sockets.delete(s));
        }
        client.on('data', (b: Buffer) => (r.forward += b.length));
        target.on('data', (b: Buffer) => (r.backward += b.length));
        client.pipe(target);
        target.pipe(client);
        let open = 2;
        const gone = (): void => {
          if (--open === 0) r.closed++;
        };
        client.once('close', gone);
        target.once('close', gone);
        client.on('error', () => target.destroy());
        target.on('error', () => client.destroy());
      });
      server.listen(0, '127.0.0.1', () => {
        relay = new CountingRelay(server);
        resolve(relay);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }
}
