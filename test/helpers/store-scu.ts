// A raw C-STORE SCU that sends given dataset bytes exactly as it is told (fragment size, whatever the peer
// announced), for tests that compare what an SCP stored with what was sent. One context (Secondary
// Capture, explicit VR LE), one C-STORE, then release.

import net from 'node:net';
import { once } from 'node:events';
import { commandStatus, cStoreRqCommand } from '../../perf/raw-store.js';
import { MCH_COMMAND, PduType } from '../../src/pdu/constants.js';
import { encodeReleaseRq } from '../../src/pdu/control.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { EXPLICIT_LE, SECONDARY_CAPTURE, buildRq, splitPdus } from './raw.js';

export interface StoreOptions {
  port: number;
  calledAe: string;
  callingAe?: string;
  dataset: Buffer;
  sopInstanceUid: string;
  /** Fragment bytes per P-DATA-TF (even). */
  fragmentBytes: number;
  timeoutMs?: number;
  /** Awaited after the A-ASSOCIATE-AC, before the C-STORE (lets a test hold many associations open at once). */
  afterAc?: () => Promise<void>;
}

/** Resolves with the C-STORE-RSP status; rejects on A-ASSOCIATE-RJ, A-ABORT, a close, or the timeout. */
export async function storeDataset(o: StoreOptions): Promise<number> {
  const socket = net.connect({ host: '127.0.0.1', port: o.port, noDelay: true });
  socket.on('error', () => undefined);
  const timer = setTimeout(() => socket.destroy(new Error('timeout')), o.timeoutMs ?? 30_000);
  try {
    await once(socket, 'connect');
    let bytes = Buffer.alloc(0);
    let wake: (() => void) | undefined;
    socket.on('data', (c: Buffer) => {
      bytes = Buffer.concat([bytes, c]);
      wake?.();
    });
    socket.on('close', () => wake?.());
    const nextPdu = async (): Promise<Buffer> => {
      for (;;) {
        const first = splitPdus(bytes).pdus[0];
        if (first) {
          bytes = bytes.subarray(first.length);
          return first;
        }
        if (socket.destroyed || socket.readableEnded) throw new Error('connection closed');
        await new Promise<void>((resolve) => (wake = resolve));
      }
    };
    socket.write(
      buildRq({
        called: o.calledAe,
        calling: o.callingAe ?? 'STORETEST',
        maxLength: 16384,
        contexts: [{ id: 1, abstractSyntax: SECONDARY_CAPTURE, transferSyntaxes: [EXPLICIT_LE] }],
      }),
    );
    const ac = await nextPdu();
    if (ac[0] !== PduType.AssociateAc) throw new Error(`association not accepted: PDU type ${ac[0]}`);
    await o.afterAc?.();
    socket.write(encodePData([{ contextId: 1, command: true, last: true, fragment: cStoreRqCommand(1, SECONDARY_CAPTURE, o.sopInstanceUid) }]));
    for (let at = 0; at < o.dataset.length; at += o.fragmentBytes) {
      const fragment = o.dataset.subarray(at, Math.min(o.dataset.length, at + o.fragmentBytes));
      const last = at + fragment.length === o.dataset.length;
      if (!socket.write(encodePData([{ contextId: 1, command: false, last, fragment }]))) await once(socket, 'drain');
    }
    let status: number | undefined;
    while (status === undefined) {
      const pdu = await nextPdu();
      if (pdu[0] === PduType.Abort) throw new Error('association aborted');
      if (pdu[0] === PduType.PDataTf && pdu[11]! & MCH_COMMAND) status = commandStatus(pdu.subarray(12, 10 + pdu.readUInt32BE(6)));
    }
    socket.write(encodeReleaseRq());
    const rp = await nextPdu();
    if (rp[0] !== PduType.ReleaseRp) throw new Error(`expected A-RELEASE-RP, got type ${rp[0]}`);
    socket.end();
    return status;
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}
