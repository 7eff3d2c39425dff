// An exception inside the proxy (a bug, not a peer's fault) while it relays: the association is aborted
// (A-ABORT to both peers, reason 0: nothing the peers sent was wrong), the log has one error line with the
// exception's stack, the metrics count it as aborts_total{reason="internal_error"}, and other associations
// carry on. The bug is injected in-process: a messages recorder that throws on its first message, and a PDU
// recorder that throws from a socket's write callback (where records are reported once written). And as an
// association ends: a recorder that throws on a message cut short costs one error line, never the process,
// and the association's slot is given back.

import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import pino from 'pino';
import { loadSettings } from '../../src/config/config.js';
import type { MessageRecord, PduRecord, Recorder } from '../../src/events/events.js';
import { encodeAbort } from '../../src/pdu/control.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { RouteRelay } from '../../src/proxy/route-relay.js';
import { MetricsRecorder } from '../../src/record/metrics.js';
import { C_ECHO_RQ, C_ECHO_RSP } from '../fixtures/annotated-commands.js';
import { associate, exchange, release } from '../helpers/assoc.js';
import { FakeScp } from '../helpers/raw.js';

const ABORT_NOT_SPECIFIED = encodeAbort(2, 0);

/** A recorder with a bug: its first message() throws. */
class BuggyRecorder implements Recorder {
  calls = 0;
  message(_record: MessageRecord): void {
    if (++this.calls === 1) throw new TypeError('recorder bug: cannot read properties of undefined');
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * A recorder whose pdu() throws on the second association's first P-DATA-TF record (the first association
 * is the healthy one): records are reported once their bytes are written, from the socket's write
 * callback, outside the relaying's own try/catch.
 */
class BuggyPduRecorder implements Recorder {
  private thrown = false;
  pdu(record: PduRecord): void {
    if (record.assoc !== 2 || record.type !== 'P-DATA-TF' || this.thrown) return;
    this.thrown = true;
    throw new TypeError('recorder bug in a write callback');
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const servers: net.Server[] = [];
after(async () => {
  for (const s of servers) await new Promise((resolve) => s.close(resolve));
});

/** A route's relay on a port of its own, handed connections as the control plane does (every RQ admitted); its log lines and the connections it said were done. */
async function startRelay(scpPort: number, recorders: Recorder[]): Promise<{ port: number; lines: Array<Record<string, unknown>>; done: number[] }> {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    }),
  );
  const options = loadSettings({ upstream: `127.0.0.1:${scpPort}`, listen: '127.0.0.1:0' }).options;
  const done: number[] = [];
  const relay = new RouteRelay(options, log, recorders, {
    route: 'r',
    generation: 1,
    admission: () => Promise.resolve({ arm: undefined, generation: 1 }),
    connectionDone: (assoc) => void done.push(assoc),
  });
  let nextAssoc = 1;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => relay.adopt(socket, nextAssoc++));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, lines, done };
}

/** Run `body` and return what reached the process as uncaught exceptions meanwhile. */
async function uncaughtDuring(body: () => Promise<void>): Promise<unknown[]> {
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown): void => void uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    await body();
  } finally {
    process.off('uncaughtException', onUncaught);
  }
  return uncaught;
}

describe('an internal exception while relaying', { timeout: 30_000 }, () => {
  for (const [where, buggy, thrownIn] of [
    ['a message recorder', () => new BuggyRecorder(), /BuggyRecorder\.message/],
    ["a PDU recorder, called from a write's completion,", () => new BuggyPduRecorder(), /BuggyPduRecorder\.pdu/],
  ] as const) {
    test(`${where} that throws: aborts that association with reason 0, logs an error with the stack, counts it, and the others go on`, async () => {
      const uncaught = await uncaughtDuring(() => abortsOne(buggy(), thrownIn));
      assert.deepEqual(uncaught, [], 'nothing escapes to the process');
    });
  }
});

describe('an internal exception when an association ends', { timeout: 30_000 }, () => {
  test('a message recorder that throws on a request cut short by a lost peer: one error line, the connection given back, the process alive', async () => {
    const scp = await FakeScp.listen();
    const { port, lines, done } = await startRelay(scp.port, [new BuggyRecorder()]);
    try {
      const uncaught = await uncaughtDuring(async () => {
        const victim = await associate(port, scp);
        victim.scu.send(encodePData([{ contextId: 1, command: true, last: true, fragment: C_ECHO_RQ }]));
        await victim.up.waitForPdus(2);
        // The SCP goes away before it answers: the request is reported cut short as the association ends.
        victim.up.socket.destroy();
        await victim.scu.waitForPdus(2);
        victim.scu.socket.destroy();
        for (let i = 0; i < 100 && !lines.some((l) => l.msg === 'association closed'); i++) await new Promise((r) => setTimeout(r, 20));
      });
      assert.deepEqual(uncaught, [], 'nothing escapes to the process');
      assert.ok(
        lines.some((l) => l.msg === 'association closed'),
        JSON.stringify(lines.slice(-5)),
      );
      const errors = lines.filter((l) => (l.level as number) >= 50);
      assert.equal(errors.length, 1, JSON.stringify(errors));
      assert.match(String((errors[0]!.err as { stack: string }).stack), /BuggyRecorder\.message/);
      assert.deepEqual(done, [1], 'the connection was given back (its admission slot freed)');
      const next = await associate(port, scp);
      await exchange(next);
      await release(next);
    } finally {
      await scp.close();
    }
  });
});

async function abortsOne(buggy: Recorder, thrownIn: RegExp): Promise<void> {
  const scp = await FakeScp.listen();
  const metrics = new MetricsRecorder();
  const { port, lines } = await startRelay(scp.port, [buggy, metrics]);
  try {
    const healthy = await associate(port, scp);
    await exchange(healthy);
    const victim = await associate(port, scp);
    // A C-ECHO: its response completes a message, and the buggy recorder throws on it.
    victim.scu.send(encodePData([{ contextId: 1, command: true, last: true, fragment: C_ECHO_RQ }]));
    await victim.up.waitForPdus(2);
    victim.up.send(encodePData([{ contextId: 1, command: true, last: true, fragment: C_ECHO_RSP }]));
    const [toScu, toScp] = await Promise.all([victim.scu.waitForPdus(2), victim.up.waitForPdus(3)]);
    assert.ok(toScu[1]!.equals(ABORT_NOT_SPECIFIED), `the SCU gets A-ABORT (2, 0), got type ${toScu[1]![0]}`);
    assert.ok(toScp[2]!.equals(ABORT_NOT_SPECIFIED), `the SCP gets A-ABORT (2, 0), got type ${toScp[2]![0]}`);
    await Promise.all([victim.scu.ended, victim.up.ended]);
    victim.scu.socket.end();
    victim.up.socket.end();
    await Promise.all([victim.scu.waitClosed(), victim.up.waitClosed()]);

    const errors = lines.filter((l) => (l.level as number) >= 50);
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0]!.msg, 'internal error: association aborted');
    const err = errors[0]!.err as { message: string; stack: string; type: string };
    assert.equal(err.type, 'TypeError');
    assert.match(err.stack, /recorder bug/);
    assert.match(err.stack, thrownIn, 'the stack names where it was thrown');
    assert.ok(!lines.some((l) => l.msg === 'protocol error: association aborted'), "not reported as a peer's protocol error");

    // The other association is untouched.
    await exchange(healthy);
    await release(healthy);
    const text = await metrics.metrics();
    assert.match(text, /^dicom_pdu_proxy_aborts_total\{route="r",reason="internal_error"\} 1$/m);
    assert.match(text, /^dicom_pdu_proxy_aborts_total\{route="r",reason="protocol_error"\} 0$/m);
  } finally {
    await scp.close();
  }
}
