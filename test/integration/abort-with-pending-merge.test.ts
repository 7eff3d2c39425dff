// An A-ABORT the proxy generates is the last thing a peer receives. With --fragment repack, bytes of a
// message wait in the re-fragmenter to be merged; with --latency, what the proxy sends waits in the shaper.
// Together, a FIN from the other peer after the abort used to flush those waiting bytes as a P-DATA-TF
// behind the A-ABORT (the flush on FIN ran after the abort had been queued).

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { encodeAbort } from '../../src/pdu/control.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { associate } from '../helpers/assoc.js';
import { ProxyProcess, stopAllProxies } from '../helpers/proxy.js';
import { FakeScp, withTimeout } from '../helpers/raw.js';

after(stopAllProxies);

const ABORT_UNRECOGNIZED = encodeAbort(2, 1);

describe('A-ABORT with data waiting to be merged, on a shaped link', { timeout: 30_000 }, () => {
  test('--fragment repack --latency 300ms: the SCP gets the A-ABORT last, no P-DATA-TF after it, even when the SCU sends FIN at once', async () => {
    const scp = await FakeScp.listen();
    const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--fragment', 'repack', '--latency', '300ms']);
    try {
      const { scu, up } = await associate(proxy, scp);
      const upBefore = up.pdus().length; // the RQ
      // 100 dataset bytes, not the last fragment: repack holds them, waiting for more of the message.
      scu.send(encodePData([{ contextId: 1, command: false, last: false, fragment: Buffer.alloc(100, 0x42) }]));
      // Garbage (an unknown PDU type): the proxy aborts both legs; then the SCU's FIN at once.
      scu.send(Buffer.concat([Buffer.from([0x0f, 0, 0, 0, 0, 4]), Buffer.alloc(4)]));
      scu.socket.end();
      await withTimeout(up.ended, 5000, 'the proxy half-closing toward the SCP');
      const pdus = up.pdus().slice(upBefore);
      assert.deepEqual(
        pdus.map((p) => p[0]),
        [0x07],
        `only an A-ABORT reaches the SCP (PDU types: ${pdus.map((p) => p[0]).join(', ')})`,
      );
      assert.ok(pdus[0]!.equals(ABORT_UNRECOGNIZED));
      up.socket.end();
      const closed = await proxy.waitForLog((l) => l.msg === 'association closed');
      assert.equal(closed.outcome, 'aborted');
    } finally {
      await scp.close();
    }
  });
});
