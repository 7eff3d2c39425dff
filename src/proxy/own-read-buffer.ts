// Reading a socket into buffers of one's own, reused, instead of a fresh allocation per read: the link's
// reads (src/proxy/link.ts). Set up with Node's own hooks for net.connect's `onread` option; no socket
// method is replaced.

import type { Socket } from 'node:net';
import { READ_BUFFER_BYTES } from './read-size.js';

/** The parts of Node's net.Socket internals that readIntoOwnBuffer uses. */
interface SocketInternals {
  _handle?: { useUserBuffer?: (buffer: Uint8Array) => void } | null;
  encrypted?: boolean;
}

/**
 * Have `socket` read into a buffer of our own instead of a fresh 64 KiB allocation per read, as
 * net.connect's `onread` option does (documented; Node offers it for sockets it connects, not for those a
 * server accepts, so it is set up here the way the net.Socket constructor does it). Why: every fresh read
 * buffer is external memory that only a garbage collection frees; at hundreds of MB/s that is a full
 * (mark-compact) collection every 64 MiB or so ("external memory pressure") and a malloc heap that grows
 * and is trimmed again, i.e. page faults (bench:relay prints both costs).
 *
 * `onRead(nread, buffer)` gets each read (the first `nread` bytes of `buffer`) and returns the buffer for
 * the next one. Backpressure, 'end', 'error' and 'close' work as before (pause() stops reading at once).
 * Returns false, leaving the socket as it was, when that cannot be done here: a TLS socket, bytes already
 * read or listened for, or a Node whose internals differ.
 */
export function readIntoOwnBuffer(socket: Socket, onRead: (nread: number, buffer: Buffer) => Buffer, firstSize: number = READ_BUFFER_BYTES): boolean {
  const internals = socket as unknown as SocketInternals & Record<symbol, unknown>;
  const handle = internals._handle;
  if (internals.encrypted === true || !handle || typeof handle.useUserBuffer !== 'function') return false;
  if (socket.readableLength > 0 || socket.listenerCount('data') > 0 || socket.listenerCount('readable') > 0) return false;
  const symbols = new Map(Object.getOwnPropertySymbols(socket).map((s) => [s.description, s]));
  const kBuffer = symbols.get('kBuffer');
  const kBufferCb = symbols.get('kBufferCb');
  const kBufferGen = symbols.get('kBufferGen');
  if (!kBuffer || !kBufferCb || !kBufferGen || internals[kBuffer] !== null || internals[kBufferCb] !== null) return false;
  let buffer: Buffer = Buffer.allocUnsafeSlow(firstSize);
  let next = buffer;
  handle.useUserBuffer(buffer);
  internals[kBuffer] = buffer;
  internals[kBufferCb] = (nread: number, current: Buffer): boolean => {
    next = onRead(nread, current);
    return true;
  };
  // Asked right after each read: a new buffer replaces the current one, the same one is reused.
  internals[kBufferGen] = (): Buffer | undefined => {
    if (next === buffer) return undefined;
    buffer = next;
    return buffer;
  };
  return true;
}
