// Knowing, instead of guessing with a sleep, that a process on this host has read what a test's socket
// wrote to it: the socket's bytes are all acknowledged by the peer's kernel (tx_queue 0 in /proc/net/tcp)
// and the peer's socket has none left unread (its rx_queue 0). Both sockets are listed in this network
// namespace's table when the peer is local (127.0.0.1). The same table and keys as the proxy's stall watch
// (src/proxy/unacked-watch.ts).

import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { procSocket } from '../../src/proxy/unacked-watch.js';

/** tx_queue and rx_queue of the socket listed under `key` in /proc/net/<table>, or undefined when it is not. */
function queues(table: string, key: string): { tx: number; rx: number } | undefined {
  for (const line of readFileSync(`/proc/net/${table}`, 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (`${fields[1]} ${fields[2]}` !== key) continue;
    const [tx, rx] = fields[4]!.split(':').map((h) => parseInt(h, 16));
    return { tx: tx!, rx: rx! };
  }
  return undefined;
}

/**
 * Resolves once everything written to `socket` so far is read by the local process at its other end;
 * rejects after `timeoutMs` saying what is still queued.
 */
export async function readByPeer(socket: Socket, timeoutMs = 10_000): Promise<void> {
  const ours = procSocket(socket);
  const theirs = procSocket({ localAddress: socket.remoteAddress, localPort: socket.remotePort, remoteAddress: socket.localAddress, remotePort: socket.localPort });
  if (!ours || !theirs) throw new Error('readByPeer: the socket is not connected');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const mine = socket.writableLength === 0 ? queues(ours.table, ours.key) : undefined;
    const peer = queues(theirs.table, theirs.key);
    if (mine?.tx === 0 && peer?.rx === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`readByPeer: not read within ${timeoutMs} ms (ours: ${socket.writableLength} in Node, ${JSON.stringify(mine)}; the peer's: ${JSON.stringify(peer)})`);
    }
    await sleep(10);
  }
}
