// Storage peers whose timing the test controls, to make each column of the messages CSV's time split move:
// - ThrottledStoreScp: an in-process C-STORE SCP (built on the proxy's own PduFramer) that can stop reading
//   for a while mid-data set (upstream_blocked_ms) or wait before answering (scp_response_ms).
// - slowStore: a raw SCU that sends a C-STORE data set in pieces with sleeps between them (scu_idle_ms).

import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildFixedPart, calledAe, callingAe, decodeAssociate, encodeAssociate, presentationContextsRq } from '../../src/pdu/associate.js';
import type { Item } from '../../src/pdu/associate.js';
import { ItemType, PduType } from '../../src/pdu/constants.js';
import { encodeReleaseRp, encodeReleaseRq } from '../../src/pdu/control.js';
import type { FrameHandler } from '../../src/pdu/framer.js';
import { PduFramer } from '../../src/pdu/framer.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { decodeCommandSet } from '../../src/dimse/command.js';
import { commandSet } from '../fixtures/annotated-commands.js';
import { EXPLICIT_LE, RawPeer, SECONDARY_CAPTURE, buildRq, withTimeout } from './raw.js';

const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';
const MCH_COMMAND = 0x01;
const MCH_LAST = 0x02;

function uid(value: string): Buffer {
  const b = Buffer.from(value, 'latin1');
  return b.length % 2 ? Buffer.concat([b, Buffer.alloc(1)]) : b;
}

const leaf = (type: number, head: Buffer): Item => ({ type, reserved: 0, head });

/** An AC accepting every proposed context, with explicit VR LE when offered, else the first syntax. */
function acceptAll(rqBytes: Buffer, maxLength: number): Buffer {
  const rq = decodeAssociate(rqBytes);
  const max = Buffer.alloc(4);
  max.writeUInt32BE(maxLength, 0);
  return encodeAssociate({
    type: PduType.AssociateAc,
    reserved: 0,
    fixed: buildFixedPart(calledAe(rq), callingAe(rq)),
    items: [
      leaf(ItemType.ApplicationContext, uid(APPLICATION_CONTEXT)),
      ...presentationContextsRq(rq).map((c) => ({
        type: ItemType.PresentationContextAc,
        reserved: 0,
        head: Buffer.from([c.id, 0, 0, 0]),
        children: [leaf(ItemType.TransferSyntax, uid(c.transferSyntaxes.includes(EXPLICIT_LE) ? EXPLICIT_LE : c.transferSyntaxes[0]!))],
      })),
      {
        type: ItemType.UserInformation,
        reserved: 0,
        head: Buffer.alloc(0),
        children: [leaf(ItemType.MaximumLength, max), leaf(ItemType.ImplementationClassUid, uid('1.2.3.4.5.6.9'))],
      },
    ],
  });
}

export interface ThrottleOptions {
  /** Stop reading once this many data set bytes of a message have arrived ... */
  pauseAfterBytes?: number;
  /** ... for this long (once per message). */
  pauseMs?: number;
  /** Wait this long after a request's last byte before answering. */
  respondDelayMs?: number;
  /** The Maximum Length in the AC (default 16384, as DCMTK). */
  maxLength?: number;
}

/** A C-STORE (and C-ECHO) SCP on 127.0.0.1 that answers Success, with the delays asked for. */
export class ThrottledStoreScp {
  readonly server: net.Server;
  port = 0;
  /** Data set bytes received per stored message, in order. */
  readonly received: number[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly options: ThrottleOptions;

  private constructor(options: ThrottleOptions) {
    this.options = options;
    this.server = net.createServer((socket) => this.serve(socket));
  }

  static async start(options: ThrottleOptions = {}): Promise<ThrottledStoreScp> {
    const scp = new ThrottledStoreScp(options);
    await new Promise<void>((resolve) => scp.server.listen(0, '127.0.0.1', resolve));
    scp.port = (scp.server.address() as net.AddressInfo).port;
    return scp;
  }

  private serve(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    const { pauseAfterBytes, pauseMs = 0, respondDelayMs = 0, maxLength = 16384 } = this.options;
    const framer = new PduFramer();
    let command: Buffer[] = [];
    let mch = 0;
    let contextId = 0;
    let datasetBytes = 0;
    let paused = false;
    let pausedThisMessage = false;
    const answer = (request: Buffer, ctx: number, bytes: number): void => {
      const c = decodeCommandSet(request);
      const rsp = commandSet([
        [0x0002, c.affectedSopClassUid ?? ''],
        [0x0100, (c.commandField ?? 0) | 0x8000],
        [0x0120, c.messageId ?? 0],
        [0x0800, 0x0101],
        [0x0900, 0x0000],
        ...(c.affectedSopInstanceUid ? ([[0x1000, c.affectedSopInstanceUid]] as Array<[number, string]>) : []),
      ]);
      this.received.push(bytes);
      const send = (): void => {
        if (!socket.destroyed) socket.write(encodePData([{ contextId: ctx, command: true, last: true, fragment: rsp }]));
      };
      if (respondDelayMs > 0) setTimeout(send, respondDelayMs);
      else send();
    };
    const handler: FrameHandler = {
      onPdu: (type, pdu) => {
        if (type === PduType.AssociateRq) socket.write(acceptAll(pdu, maxLength));
        else if (type === PduType.ReleaseRq) socket.end(encodeReleaseRp());
      },
      onDataStart: () => undefined,
      onPdvStart: (_length, ctx, m) => {
        mch = m;
        contextId = ctx;
      },
      onPdvData: (bytes) => {
        if (mch & MCH_COMMAND) {
          command.push(Buffer.from(bytes));
          return;
        }
        datasetBytes += bytes.length;
        if (pauseAfterBytes !== undefined && !pausedThisMessage && datasetBytes >= pauseAfterBytes) {
          pausedThisMessage = true;
          paused = true;
        }
      },
      onPdvEnd: () => {
        if (!(mch & MCH_LAST)) return;
        const bytes = Buffer.concat(command);
        if (mch & MCH_COMMAND) {
          const c = decodeCommandSet(bytes);
          if (c.dataSetType !== 0x0101) return; // the data set follows
        }
        answer(bytes, contextId, datasetBytes);
        command = [];
        datasetBytes = 0;
        pausedThisMessage = false;
      },
      onDataEnd: () => undefined,
    };
    socket.on('data', (chunk: Buffer) => {
      framer.push(chunk, 0, handler);
      if (paused) {
        paused = false;
        socket.pause();
        setTimeout(() => socket.resume(), pauseMs);
      }
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function pdata(contextId: number, mch: number, fragment: Buffer): Buffer {
  return encodePData([{ contextId, command: (mch & MCH_COMMAND) !== 0, last: (mch & MCH_LAST) !== 0, fragment }]);
}

export interface SlowStoreOptions {
  port: number;
  calledAe: string;
  sopInstanceUid: string;
  /** The data set (explicit VR LE), sent in `pieces` P-DATA-TFs ... */
  dataset: Buffer;
  pieces: number;
  /** ... with this long a sleep before each one after the first. */
  sleepMs: number;
  /** Send the command PDU's first 3 bytes, sleep this long, then the rest (a header split over chunks). */
  headerSplitMs?: number;
}

/**
 * A raw SCU: associate (Secondary Capture, explicit VR LE, Maximum Length 0), one C-STORE whose data set
 * goes out in `pieces` PDUs with sleeps between them, then release. Resolves with the response's Status.
 */
export async function slowStore(o: SlowStoreOptions): Promise<number | undefined> {
  const peer = await RawPeer.connect(o.port);
  try {
    peer.send(buildRq({ called: o.calledAe, calling: 'SLOWSCU', maxLength: 0, contexts: [{ id: 1, abstractSyntax: SECONDARY_CAPTURE, transferSyntaxes: [EXPLICIT_LE] }] }));
    const [ac] = await peer.waitForPdus(1);
    if (ac![0] !== PduType.AssociateAc) throw new Error(`association not accepted: PDU type ${ac![0]}`);
    const command = commandSet([
      [0x0002, SECONDARY_CAPTURE],
      [0x0100, 0x0001],
      [0x0110, 1],
      [0x0700, 0],
      [0x0800, 0x0000],
      [0x1000, o.sopInstanceUid],
    ]);
    const commandPdu = pdata(1, MCH_COMMAND | MCH_LAST, command);
    if (o.headerSplitMs !== undefined) {
      peer.send(commandPdu.subarray(0, 3));
      await sleep(o.headerSplitMs);
      peer.send(commandPdu.subarray(3));
    } else {
      peer.send(commandPdu);
    }
    const size = Math.ceil(o.dataset.length / o.pieces / 2) * 2; // even fragments
    for (let i = 0, at = 0; at < o.dataset.length; i++, at += size) {
      if (i > 0) await sleep(o.sleepMs);
      const end = Math.min(at + size, o.dataset.length);
      peer.send(pdata(1, end === o.dataset.length ? MCH_LAST : 0, o.dataset.subarray(at, end)));
    }
    const pdus = await peer.waitForPdus(2, 10_000);
    const rsp = pdus[1]!;
    const status = decodeCommandSet(rsp.subarray(12)).status;
    peer.send(encodeReleaseRq());
    await peer.waitForPdus(3, 5_000);
    peer.socket.end();
    await withTimeout(peer.closed, 5_000, 'the connection to close');
    return status;
  } finally {
    peer.destroy();
  }
}
