// Links read into buffers of their own (readIntoOwnBuffer in src/proxy/own-read-buffer.ts) instead of a fresh 64 KiB
// allocation per read. It relies on how Node's net.Socket reads, so this checks that on this Node it is
// really in use for both kinds of socket the proxy has (accepted and connected), and that bytes, pause and
// resume, 'end' and the swap to a new buffer all behave: a Node whose internals differ must fail here
// rather than silently fall back.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { readIntoOwnBuffer } from '../../src/proxy/own-read-buffer.js';
import { READ_BUFFER_BYTES } from '../../src/proxy/read-size.js';

function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >> 8)) & 0xff;
  return b;
}

/** Read `socket` with readIntoOwnBuffer; every `swapEvery`-th read moves to a new buffer. */
function collect(socket: net.Socket, swapEvery: number, pauseAfter?: number) {
  const pieces: Buffer[] = [];
  const buffers = new Set<Buffer>();
  let reads = 0;
  let total = 0;
  let paused = false;
  const engaged = readIntoOwnBuffer(socket, (nread, buffer) => {
    buffers.add(buffer);
    assert.ok(nread > 0 && nread <= buffer.length);
    pieces.push(Buffer.from(buffer.subarray(0, nread)));
    total += nread;
    reads++;
    if (pauseAfter !== undefined && !paused && total >= pauseAfter) {
      paused = true;
      socket.pause();
      setTimeout(() => socket.resume(), 50);
    }
    return reads % swapEvery === 0 ? Buffer.allocUnsafeSlow(READ_BUFFER_BYTES) : buffer;
  });
  const ended = once(socket, 'end').then(() => Buffer.concat(pieces));
  return { engaged, ended, buffers: () => buffers.size, reads: () => reads, paused: () => paused };
}

test('an accepted and a connected socket both read into their own buffers, bytes intact', async () => {
  const sent = pattern(3 * 1024 * 1024 + 17);
  const reply = pattern(200_000).reverse();
  let serverSide: ReturnType<typeof collect> | undefined;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    serverSide = collect(socket, 7, 1024 * 1024);
    socket.end(reply);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const client = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, allowHalfOpen: true });
    await once(client, 'connect');
    const clientSide = collect(client, 3);
    client.end(sent);
    const [got, back] = await Promise.all([
      (async () => {
        while (!serverSide) await new Promise((r) => setTimeout(r, 5));
        return serverSide.ended;
      })(),
      clientSide.ended,
    ]);
    assert.equal(serverSide!.engaged, true, 'accepted socket: own buffers in use');
    assert.equal(clientSide.engaged, true, 'connected socket: own buffers in use');
    assert.ok(got.equals(sent), 'what the client sent arrived unchanged');
    assert.ok(back.equals(reply), 'what the server sent arrived unchanged');
    assert.ok(serverSide!.paused(), 'the reader was paused and resumed');
    // Reused between swaps, and swapped when asked: more reads than buffers, more than one buffer.
    assert.ok(serverSide!.buffers() > 1 && serverSide!.buffers() < serverSide!.reads());
    client.destroy();
  } finally {
    server.close();
  }
});

test('a socket already read by a data listener is left as it was', async () => {
  const server = net.createServer((socket) => socket.end('hello'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const client = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    assert.equal(
      readIntoOwnBuffer(client, () => Buffer.alloc(1)),
      false,
    );
    await once(client, 'end');
    assert.equal(Buffer.concat(chunks).toString(), 'hello');
  } finally {
    server.close();
  }
});
