// The parts of a SIGHUP reload that need no running proxy (src/control/generations.ts, listeners.ts): which
// process-wide settings a reload may not change, and opening the listeners of the routes a reload adds, all
// or none (a route that cannot listen closes the ones opened before it).

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, describe, test } from 'node:test';
import { pino } from 'pino';
import { loadSettings } from '../../src/config/config.js';
import type { RouteConfig } from '../../src/config/options.js';
import { processWideChanges } from '../../src/control/generations.js';
import { keyOf, Listeners } from '../../src/control/listeners.js';

const UP = { upstream: 'pacs:104' };
const base = loadSettings(UP).routes[0]!;

describe('processWideChanges', () => {
  test('none when --csv, --messages-csv and --pcap stay; per-route settings may change', () => {
    const before = loadSettings({ ...UP, csv: '/tmp/a.csv', messagesCsv: '/tmp/m.csv' }).options;
    assert.equal(processWideChanges(before, loadSettings({ ...UP, csv: '/tmp/a.csv', messagesCsv: '/tmp/m.csv', maxPdu: '64KB' }).options), undefined);
  });

  test('the flags of those that change, in a fixed order', () => {
    const before = loadSettings({ ...UP, csv: '/tmp/a.csv' }).options;
    assert.equal(processWideChanges(before, loadSettings({ ...UP, csv: '/tmp/b.csv' }).options), '--csv');
    assert.equal(processWideChanges(before, loadSettings({ ...UP, pcap: '/tmp/c.pcapng', messagesCsv: '/tmp/m.csv' }).options), '--csv, --messages-csv, --pcap');
  });
});

describe('Listeners', () => {
  const listeners = new Listeners(pino({ level: 'silent' }), false, (socket, key) => accepted.push([socket, key]));
  const accepted: Array<[net.Socket, string]> = [];
  const busy = net.createServer();
  after(async () => {
    for (const [socket] of accepted) socket.destroy();
    await listeners.closeAll();
    await new Promise((resolve) => busy.close(resolve));
  });
  const route = (id: string, port: number, label = `route ${id}`): RouteConfig => ({ ...base, id, label, options: { ...base.options, listen: { host: '127.0.0.1', port } } });

  test('listenMissing: all or none; the ones it opens take connections', async () => {
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const busyPort = (busy.address() as net.AddressInfo).port;
    const a = route('a', 0);
    assert.equal(await listeners.listen(a, 0), undefined);
    assert.deepEqual(listeners.keys(), [keyOf(a, 0)]);

    // c opens, then b cannot: c is closed again, a (already open) stays.
    const c = route('c', 0);
    const b = route('b', busyPort);
    const failed = await listeners.listenMissing([a, c, b]);
    assert.deepEqual(failed, { failed: `route b (listen 127.0.0.1:${busyPort}): EADDRINUSE` });
    assert.deepEqual(listeners.keys(), [keyOf(a, 0)]);

    const opened = await listeners.listenMissing([a, c]);
    assert.deepEqual(opened, { opened: [keyOf(c, 1)] });
    assert.deepEqual(listeners.keys(), [keyOf(a, 0), keyOf(c, 1)]);
    const port = listeners.address(keyOf(c, 1))!.port;
    const client = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => client.once('connect', resolve));
    while (accepted.length === 0) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(accepted[0]![1], keyOf(c, 1));
    client.destroy();
    accepted[0]![0].destroy(); // a listener closes once its connections are gone

    await listeners.closeAll();
    assert.deepEqual(listeners.keys(), []);
  });
});
