// Feeds the capture (--pcap) from a socket: what was read from the peer, what was handed to the socket
// toward it, and how the connection ended. The only place the capture touches the engine: the session
// taps its two sockets, the links know nothing of it.
//
// Reads are seen through the link that reads the socket (tapSocket returns the link's readTap: it is told
// of each chunk before anything is forwarded from it, and the capture copies what it keeps at once, so the
// link may read into a reused buffer); writes by wrapping the socket's own write/end/resetAndDestroy, which every path
// of the link (direct, corked, shaped) ends in. The writes of one corked batch go to the kernel together
// (one writev) and are told as one, so the capture shows them in full segments as TCP would send them.

import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Leg, Recorder } from '../events/events.js';

/** The recorder that captures connections, among a route's recorders (undefined: no --pcap). */
export function captureRecorder(recorders: readonly Recorder[]): Recorder | undefined {
  return recorders.find((r) => r.connection);
}

/**
 * Start capturing `socket` (connected now) as `leg`. Returns what the link reading the socket must tell of
 * each chunk it reads (its readTap); undefined when there is no capture.
 */
export function tapSocket(recorder: Recorder | undefined, leg: Leg, socket: Socket): ((chunk: Buffer) => void) | undefined {
  if (!recorder) return undefined;
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  if (remoteAddress === undefined || remotePort === undefined || localAddress === undefined || localPort === undefined) return undefined;
  const events = recorder.connection!(leg, { peerAddress: remoteAddress, peerPort: remotePort, proxyAddress: localAddress, proxyPort: localPort }, performance.now());
  if (!events) return undefined;
  socket.prependListener('end', () => events.peerFin(performance.now()));
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'ECONNRESET') events.peerReset(performance.now());
  });
  socket.on('close', () => events.closed(performance.now()));

  let corked = 0;
  let batch: Buffer[] = [];
  const sendBatch = (): void => {
    if (batch.length === 0) return;
    events.toPeer(batch.length === 1 ? batch[0]! : batch, performance.now());
    batch = [];
  };
  const cork = socket.cork;
  socket.cork = function (this: Socket): void {
    corked++;
    cork.call(this);
  };
  const uncork = socket.uncork;
  socket.uncork = function (this: Socket): void {
    if (corked > 0 && --corked === 0) sendBatch();
    uncork.call(this);
  };
  const write = socket.write;
  socket.write = function (this: Socket, chunk: unknown, ...rest: unknown[]): boolean {
    if (Buffer.isBuffer(chunk) && chunk.length > 0 && !this.destroyed && !this.writableEnded) {
      if (corked > 0) batch.push(chunk);
      else events.toPeer(chunk, performance.now());
    }
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as Socket['write'];
  const end = socket.end;
  socket.end = function (this: Socket, ...args: unknown[]): Socket {
    if (Buffer.isBuffer(args[0]) && !this.destroyed && !this.writableEnded) batch.push(args[0]);
    sendBatch();
    if (!this.destroyed && !this.writableEnded) events.proxyFin(performance.now());
    return (end as (...a: unknown[]) => Socket).apply(this, args);
  } as Socket['end'];
  const resetAndDestroy = socket.resetAndDestroy;
  socket.resetAndDestroy = function (this: Socket): Socket {
    batch = [];
    if (!this.destroyed) events.proxyReset(performance.now());
    return resetAndDestroy.call(this);
  };
  return (chunk: Buffer) => events.fromPeer(chunk, performance.now());
}
