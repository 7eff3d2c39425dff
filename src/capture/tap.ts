// Feeds the capture (--pcap) from one connection of an association: what was read from the peer, what was
// handed to the socket toward it, and how the connection ended. The engine tells the tap itself; no socket
// method is replaced:
// - reads: the link reading the socket calls `read` with each chunk before anything is forwarded from it
//   (the capture copies what it keeps at once, so the link may read into a reused buffer);
// - writes: the link's writer (src/proxy/output.ts) calls `written` with each write, or with the writes
//   of one corked batch together (they go to the kernel as one writev, so the capture shows them in full
//   segments as TCP would send them), and `ended` when it half-closes; the link calls `reset` when it
//   resets the connection;
// - the peer's FIN, the peer's reset and the close come from the socket's own events.

import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Leg, Recorder } from '../events/events.js';

/** What a link's output tells the capture: writes, the half-close, a reset (src/proxy/output.ts, link.ts). */
export interface OutputTap {
  /** Bytes handed to the socket toward the peer: one write, or the writes of one corked batch, in order. */
  written(bytes: Buffer | readonly Buffer[]): void;
  /** The proxy half-closes the connection (FIN). */
  ended(): void;
  /** The proxy resets the connection (RST). */
  reset(): void;
}

/** A tapped connection: its output, and what the link reading it tells of each chunk (its readTap). */
export interface SocketTap extends OutputTap {
  read(chunk: Buffer): void;
}

/** The recorder that captures connections, among a route's recorders (undefined: no --pcap). */
export function captureRecorder(recorders: readonly Recorder[]): Recorder | undefined {
  return recorders.find((r) => r.connection);
}

/** Start capturing `socket` (connected now) as `leg`; undefined when there is no capture. */
export function tapSocket(recorder: Recorder | undefined, leg: Leg, socket: Socket): SocketTap | undefined {
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
  return {
    read: (chunk) => events.fromPeer(chunk, performance.now()),
    written: (bytes) => events.toPeer(bytes, performance.now()),
    ended: () => events.proxyFin(performance.now()),
    reset: () => events.proxyReset(performance.now()),
  };
}
