// Writing a DIMSE message from memory: the command set and the data set as P-DATA-TF of one PDV each, cut
// by fragmentPlan to the receiver's Maximum Length. Nothing is copied: the socket gets views of one header
// buffer and subarrays of the data, corked in batches (one writev each), and the next batch waits for
// 'drain' whenever the socket's buffer is over its mark (backpressure).

import type net from 'node:net';
import { fragmentPlan, planHeaders, SINGLE_PDV_OVERHEAD } from '../pdu/pdata.js';
import type { PlannedFragment } from '../pdu/pdata.js';

/** Bytes handed to the socket per corked batch before backpressure is checked. */
const WRITE_BATCH_BYTES = 4 * 1024 * 1024;

/** A stream's plan and its headers, made once and reused for every image of the same size and limit. */
export interface PreparedStream {
  plan: PlannedFragment[];
  headers: Buffer;
}

export function prepareStream(length: number, maxLength: number, contextId: number, command: boolean): PreparedStream {
  const plan = fragmentPlan(length, maxLength);
  return { plan, headers: planHeaders(plan, contextId, command) };
}

/** Resolve on 'drain'; reject when the socket closes or fails first. */
export function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      socket.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new Error('connection closed while sending'));
    const onError = (e: Error): void => done(e);
    socket.on('drain', onDrain);
    socket.on('close', onClose);
    socket.on('error', onError);
  });
}

/** Write `data` as the PDUs of `stream`, honouring backpressure. */
export async function writeStream(socket: net.Socket, stream: PreparedStream, data: Buffer): Promise<void> {
  const { plan, headers } = stream;
  let i = 0;
  while (i < plan.length) {
    if (socket.destroyed) throw new Error('connection closed while sending');
    socket.cork();
    let batched = 0;
    while (i < plan.length && batched < WRITE_BATCH_BYTES) {
      const f = plan[i]!;
      socket.write(headers.subarray(i * SINGLE_PDV_OVERHEAD, (i + 1) * SINGLE_PDV_OVERHEAD));
      if (f.length > 0) socket.write(data.subarray(f.offset, f.offset + f.length));
      batched += SINGLE_PDV_OVERHEAD + f.length;
      i++;
    }
    socket.uncork();
    if (socket.writableNeedDrain) await drained(socket);
  }
}
