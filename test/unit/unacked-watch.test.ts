// The stall watch's view into the kernel (src/proxy/unacked-watch.ts): sockets found in /proc/self/net/tcp
// by their addresses, their tx_queue read, and a stall reported when the peer acknowledges nothing for the
// timeout while bytes are outstanding, whether or not Node's own buffer backed up. Real sockets on
// 127.0.0.1 (a receiver that stops reading keeps its window at zero: the bytes stay unacknowledged), and a
// table given by the test for a peer whose acknowledgements stop while everything sits in the kernel.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { UnackedPoller, UnackedWatch, procSocket, txQueues } from '../../src/proxy/unacked-watch.js';

const MiB = 1024 * 1024;

async function pair(): Promise<{ client: net.Socket; server: net.Socket; close: () => void }> {
  const listener = net.createServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const accepted = once(listener, 'connection');
  const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  const [server] = (await accepted) as [net.Socket];
  return {
    client,
    server,
    close: () => {
      client.destroy();
      server.destroy();
      listener.close();
    },
  };
}

test('procSocket spells the addresses as /proc does; txQueues reads tx_queue by them', () => {
  const where = procSocket({ localAddress: '127.0.0.1', localPort: 0x925f, remoteAddress: '10.1.2.3', remotePort: 104 }, true);
  assert.deepEqual(where, { table: 'tcp', key: '0100007F:925F 0302010A:0068' });
  const mapped = procSocket({ localAddress: '::ffff:127.0.0.1', localPort: 11112, remoteAddress: '::ffff:127.0.0.1', remotePort: 40000 }, true);
  assert.deepEqual(mapped, { table: 'tcp6', key: '0000000000000000FFFF00000100007F:2B68 0000000000000000FFFF00000100007F:9C40' });
  assert.equal(procSocket({ localAddress: '127.0.0.1', localPort: 1, remoteAddress: '10.0.0.1', remotePort: 2 }, false)?.key, '7F000001:0001 0A000001:0002');
  assert.equal(procSocket({ localAddress: undefined, localPort: undefined, remoteAddress: undefined, remotePort: undefined }), undefined);
  const table = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:925F 0302010A:0068 01 0003A000:00000000 01:00000014 00000000     0        0 58053 1 0 20 4 30 10 -1',
    '   1: 0100007F:0068 0100007F:925F 01 00000000:00000010 00:00000000 00000000     0        0 58054 1 0 20 4 30 10 -1',
  ].join('\n');
  assert.deepEqual([...txQueues(table, new Set(['0100007F:925F 0302010A:0068', 'FFFFFFFF:0001 00000000:0000']))], [['0100007F:925F 0302010A:0068', 0x3a000]]);
});

test('a real socket: its tx_queue in /proc/self/net/tcp while its peer does not read, 0 once it has', async () => {
  const { client, server, close } = await pair();
  try {
    server.pause();
    client.write(Buffer.alloc(8 * MiB));
    await sleep(100);
    const where = procSocket(client)!;
    assert.equal(where.table, 'tcp');
    const queue = async (): Promise<number | undefined> => txQueues(await readFile('/proc/self/net/tcp', 'latin1'), new Set([where.key])).get(where.key);
    const waiting = await queue();
    assert.ok(waiting !== undefined && waiting > 0, `tx_queue ${waiting}`);
    let read = 0;
    server.on('data', (chunk: Buffer) => (read += chunk.length));
    server.resume();
    while (read < 8 * MiB) await sleep(10);
    assert.equal(await queue(), 0);
  } finally {
    close();
  }
});

test('UnackedWatch: a receiver that stops reading (its window at zero) is reported once, within the timeout and a tick; one that reads is never', async () => {
  const timeoutMs = 400;
  for (const reads of [false, true]) {
    const { client, server, close } = await pair();
    try {
      let stalled = 0;
      const watch = new UnackedWatch(timeoutMs, () => stalled++);
      if (!reads) server.pause();
      else server.resume();
      // More than the receiver's buffer takes: the rest stays outstanding while it does not read.
      client.write(Buffer.alloc(16 * MiB));
      watch.wrote(client);
      const started = Date.now();
      while (stalled === 0 && Date.now() - started < 3 * timeoutMs) await sleep(20);
      if (reads) {
        assert.equal(stalled, 0, 'a reading receiver is no stall');
      } else {
        const elapsed = Date.now() - started;
        assert.equal(stalled, 1);
        assert.ok(elapsed >= timeoutMs - 20 && elapsed < timeoutMs + 1000, `reported ${elapsed} ms after the write (timeout ${timeoutMs})`);
        await sleep(timeoutMs);
        assert.equal(stalled, 1, 'reported once');
      }
      watch.end();
    } finally {
      close();
    }
  }
});

/** A socket as the poller sees it: counters the test moves. */
function fakeSocket(): net.Socket & { completed: number } {
  const s = { localAddress: '10.0.0.1', localPort: 1, remoteAddress: '10.0.0.2', remotePort: 2, destroyed: false, writableLength: 0, completed: 0 };
  Object.defineProperty(s, 'bytesWritten', { get: () => s.completed });
  return s as unknown as net.Socket & { completed: number };
}

test('UnackedWatch: bytes that all sit in the kernel, unacknowledged: a stall; acknowledgements that keep coming: none; nothing outstanding: not watched', async () => {
  const socket = fakeSocket();
  const key = procSocket(socket)!.key;
  let txQueue = 0;
  const table = (): string => `header\n 0: ${key} 01 ${txQueue.toString(16).padStart(8, '0')}:00000000 00:0 0\n`;
  const reads: string[] = [];
  const poller = new UnackedPoller((t) => (reads.push(t), Promise.resolve(table())));
  let stalled = 0;
  const watch = new UnackedWatch(300, () => stalled++, poller);

  // Acknowledged as fast as written: never a stall.
  socket.completed = 256 * 1024;
  txQueue = 256 * 1024;
  watch.wrote(socket);
  for (let i = 0; i < 10; i++) {
    await sleep(80);
    socket.completed += 64 * 1024; // more written...
    txQueue -= 16 * 1024; // ...and more acknowledged than that, net
  }
  assert.equal(stalled, 0);
  // Everything acknowledged: dropped from the poll (no reads while nothing is outstanding).
  txQueue = 0;
  await sleep(200);
  const readsWhenIdle = reads.length;
  await sleep(300);
  assert.equal(reads.length, readsWhenIdle, 'no reads of /proc while nothing is outstanding');
  // A 256 KiB tail written, all of it taken by the kernel, none of it acknowledged.
  socket.completed += 256 * 1024;
  txQueue = 256 * 1024;
  const started = Date.now();
  watch.wrote(socket);
  while (stalled === 0 && Date.now() - started < 2000) await sleep(10);
  assert.equal(stalled, 1);
  assert.ok(Date.now() - started >= 290, `after the timeout (${Date.now() - started} ms)`);
  watch.end();
});

test('UnackedPoller: where /proc cannot be read, watching is off (no stall reported, no more reads)', async () => {
  let reads = 0;
  const poller = new UnackedPoller(() => (reads++, Promise.resolve(undefined)));
  let stalled = 0;
  const watch = new UnackedWatch(100, () => stalled++, poller);
  const socket = fakeSocket();
  socket.completed = 10;
  watch.wrote(socket);
  await sleep(400);
  watch.end();
  watch.wrote(socket);
  await sleep(200);
  assert.equal(stalled, 0);
  assert.equal(reads, 1);
});
