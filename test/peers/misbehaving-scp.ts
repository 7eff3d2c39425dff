// An SCP for bad-peer tests, built from the built-in peers' parts (negotiation, reader): it accepts every
// association, then treats each C-STORE as `behaviour(n)` says (n counts stores from 1 over all
// associations): answer it, abort instead, stall (never answer), or answer in a P-DATA-TF one byte over
// the Maximum Length the SCU announced. It counts the A-ABORTs it receives.

import net from 'node:net';
import { C_STORE_RQ, C_STORE_RSP, NO_DATA_SET, encodeCommandSet } from '../../src/dimse/command.js';
import type { CommandSet } from '../../src/dimse/command.js';
import { decodeAssociate, maxLength } from '../../src/pdu/associate.js';
import { AbortReason, AbortSource, PduType } from '../../src/pdu/constants.js';
import { encodeAbort, encodeReleaseRp } from '../../src/pdu/control.js';
import { encodePData, fragmentPlan, planHeaders } from '../../src/pdu/pdata.js';
import { acceptAll, buildAssociateAc } from '../../src/peers/negotiation.js';
import { MessageReader } from '../../src/peers/reader.js';

export type Behaviour = 'answer' | 'abort' | 'stall' | 'oversize';

export interface MisbehavingScp {
  port: number;
  abortsReceived: number;
  stores: number;
  close(): void;
}

export async function startMisbehavingScp(behaviour: (n: number) => Behaviour, announce = 16384): Promise<MisbehavingScp> {
  const sockets = new Set<net.Socket>();
  const scp: MisbehavingScp = { port: 0, abortsReceived: 0, stores: 0, close: () => undefined };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let scuMax = 0;
    let pending: { contextId: number; command: CommandSet; what: Behaviour } | undefined;
    const respond = (contextId: number, command: CommandSet, padTo?: number): void => {
      const rsp = encodeCommandSet({
        commandField: C_STORE_RSP,
        affectedSopClassUid: command.affectedSopClassUid,
        messageIdBeingRespondedTo: command.messageId,
        dataSetType: NO_DATA_SET,
        status: 0,
        affectedSopInstanceUid: command.affectedSopInstanceUid,
      });
      if (padTo !== undefined) {
        // One PDV whose fragment makes the PDU-length padTo: the command set and zero bytes after it.
        const fragment = Buffer.alloc(padTo - 6);
        rsp.copy(fragment);
        socket.write(encodePData([{ contextId, command: true, last: true, fragment }]));
        return;
      }
      const plan = fragmentPlan(rsp.length, scuMax);
      const headers = planHeaders(plan, contextId, true);
      plan.forEach((f, i) => socket.write(Buffer.concat([headers.subarray(i * 12, i * 12 + 12), rsp.subarray(f.offset, f.offset + f.length)])));
    };
    const reader = new MessageReader({
      onPdu: (type, pdu) => {
        if (type === PduType.AssociateRq) {
          const rq = decodeAssociate(pdu);
          scuMax = maxLength(rq) ?? 0;
          const accepted = acceptAll(rq);
          reader.contexts = new Set(accepted.map((c) => c.id));
          socket.write(buildAssociateAc(rq, accepted, announce));
        } else if (type === PduType.ReleaseRq) socket.end(encodeReleaseRp());
        else if (type === PduType.Abort) {
          scp.abortsReceived++;
          socket.destroy();
        }
      },
      onCommand: (contextId, command) => {
        if (command.commandField !== C_STORE_RQ) return;
        scp.stores++;
        pending = { contextId, command, what: behaviour(scp.stores) };
        if (pending.what === 'abort') {
          socket.end(encodeAbort(AbortSource.ServiceUser, AbortReason.NotSpecified));
          reader.stop();
        }
      },
      onDataset: () => undefined,
      onDatasetEnd: () => {
        const p = pending!;
        pending = undefined;
        if (p.what === 'answer') respond(p.contextId, p.command);
        else if (p.what === 'oversize') respond(p.contextId, p.command, scuMax + 2);
      },
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch {
        socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  scp.port = (server.address() as net.AddressInfo).port;
  scp.close = () => {
    server.close();
    for (const s of sockets) s.destroy();
  };
  return scp;
}
