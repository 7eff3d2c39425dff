// The capture sees a link's writes through the link's own output (src/proxy/output.ts, link.ts), not by
// patching the socket: each write or corked batch, the half-close and a reset are told to the OutputTap,
// in the order the socket gets them, and only what the socket really gets.

import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import type { OutputTap } from '../../src/capture/tap.js';
import { DirectWriter, ShapedWriter } from '../../src/proxy/output.js';
import type { Backpressure } from '../../src/proxy/output.js';
import { Link } from '../../src/proxy/link.js';
import type { LinkOwner } from '../../src/proxy/link.js';

const source: Backpressure = { pause: () => true, resume: () => {}, receiverFull: () => {}, receiverDrained: () => {}, wrote: () => {} };

/** A socket stand-in that records what reaches it: one entry per write call or writev, 'END' at the end. */
function sink(): { socket: Socket; got: string[] } {
  const got: string[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk.toString());
      cb();
    },
    writev(chunks, cb) {
      got.push(chunks.map((c) => (c.chunk as Buffer).toString()).join('+'));
      cb();
    },
    final(cb) {
      got.push('END');
      cb();
    },
  });
  return { socket: w as unknown as Socket, got };
}

/** A tap that writes down what it is told, in the same notation. */
function recordingTap(): OutputTap & { told: string[] } {
  const told: string[] = [];
  return {
    told,
    written: (bytes) => told.push(Buffer.isBuffer(bytes) ? bytes.toString() : (bytes as readonly Buffer[]).map((b) => b.toString()).join('+')),
    ended: () => told.push('END'),
    reset: () => told.push('RST'),
  };
}

test('direct writer: one write, a corked batch as one, then the half-close, as the socket gets them', async () => {
  const { socket, got } = sink();
  const tap = recordingTap();
  const writer = new DirectWriter(socket, source, tap);
  writer.send([Buffer.from('a')], undefined);
  writer.send([Buffer.from('b'), Buffer.from('c'), Buffer.from('d')], undefined);
  writer.send([], undefined); // only a report: nothing reaches the socket, nothing is told
  writer.end();
  writer.end(); // ended already: told once
  await new Promise((resolve) => socket.once('finish', resolve));
  assert.deepEqual(tap.told, ['a', 'b+c+d', 'END']);
  assert.deepEqual(got, ['a', 'b+c+d', 'END']);
});

test('shaped writer: what one release writes is told as one batch; the half-close waits behind the queue', async () => {
  const { socket, got } = sink();
  const tap = recordingTap();
  const writer = new ShapedWriter(socket, source, { latency: { ms: 20, jitterMs: 0 } }, undefined, tap);
  writer.send([Buffer.from('x'), Buffer.from('y')], undefined);
  writer.end();
  assert.deepEqual(tap.told, [], 'nothing is due before the latency');
  await new Promise((resolve) => socket.once('finish', resolve));
  assert.deepEqual(tap.told, ['x+y', 'END']);
  assert.deepEqual(got, ['x+y', 'END']);
});

test('a link resetting its output tells the tap (a plain socket), once, and not when nothing is attached', () => {
  const owner: LinkOwner = {
    onControlPdu: () => {},
    dataAllowed: () => true,
    onProtocolError: (_l, err) => assert.fail(err),
    onInternalError: (_l, err) => assert.fail(err),
    onStalled: () => {},
    onRecord: () => {},
  };
  const link = new Link('to_scu', 1, owner, () => 0);
  const tap = recordingTap();
  link.writeTap = tap;
  assert.equal(link.resetOutput(), false, 'no receiving socket yet');
  let resets = 0;
  const { socket } = sink();
  Object.assign(socket, {
    resetAndDestroy(this: Socket) {
      resets++;
      this.destroy();
      return this;
    },
  });
  link.attachDest(socket);
  assert.equal(link.resetOutput(), true);
  assert.equal(link.resetOutput(), true, 'destroyed already: nothing more to do');
  assert.equal(resets, 1);
  assert.deepEqual(tap.told, ['RST']);
});
