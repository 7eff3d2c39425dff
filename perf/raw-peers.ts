// Cheap DICOM peers for bench:relay --peers raw, so that the relay between them is the bottleneck: a C-STORE
// sink that reads and discards (answering only the association, each C-STORE and the release), and a
// sender that opens N associations at once and stores an image R times on each, writing whole P-DATA-TF
// PDUs from one prebuilt block (no per-PDU allocation, one write per ~1 MiB). Not general peers: one
// presentation context (Secondary Capture, explicit VR LE), no checks beyond framing.
//
//   node --import tsx perf/raw-peers.ts sink PORT MAX_PDU
//     listens on 127.0.0.1:PORT, announces MAX_PDU; prints "listening PORT"; runs until SIGTERM.
//   node --import tsx perf/raw-peers.ts send PORT PARALLEL REPEAT IMAGE_BYTES
//     PARALLEL associations at once, each REPEAT C-STOREs of an IMAGE_BYTES dataset, in PDUs of the Maximum
//     Length the peer announced (fragment = length - 6); prints one JSON line {"ms":..,"bytes":..} and exits
//     0 when every C-STORE-RSP said success (non-zero otherwise).

import net from 'node:net';
import { once } from 'node:events';
import { decodeAssociate, maxLength } from '../src/pdu/associate.js';
import { MCH_COMMAND, MCH_LAST, PduType } from '../src/pdu/constants.js';
import { encodeReleaseRp, encodeReleaseRq } from '../src/pdu/control.js';
import type { FrameHandler } from '../src/pdu/framer.js';
import { PduFramer } from '../src/pdu/framer.js';
import { encodePData, singlePdvHeader } from '../src/pdu/pdata.js';
import { EXPLICIT_LE, SECONDARY_CAPTURE, buildAc, buildRq } from '../test/helpers/raw.js';
import { busyShare, machineTicks } from './machine.js';
import { cStoreRqCommand, commandStatus, element, us } from './raw-store.js';

/** Whole middle PDUs per prebuilt block (one write each). */
const BLOCK_TARGET_BYTES = 1024 * 1024;

/** Collects command PDVs and reports each complete command set; data PDVs are only counted. */
class Messages implements FrameHandler {
  private command: Buffer[] = [];
  private inCommand = false;
  private lastPdv = false;
  datasetsDone = 0;
  constructor(
    private readonly onCommand: (command: Buffer) => void,
    private readonly onOther: (type: number, pdu: Buffer) => void,
  ) {}
  onPdu(type: number, pdu: Buffer): void {
    this.onOther(type, pdu);
  }
  onDataStart(): void {}
  onPdvStart(_itemLength: number, _contextId: number, mch: number): void {
    this.inCommand = (mch & MCH_COMMAND) !== 0;
    this.lastPdv = (mch & MCH_LAST) !== 0;
  }
  onPdvData(bytes: Buffer): void {
    if (this.inCommand) this.command.push(Buffer.from(bytes));
  }
  onPdvEnd(): void {
    if (!this.lastPdv) return;
    if (this.inCommand) {
      const command = Buffer.concat(this.command);
      this.command = [];
      this.onCommand(command);
    } else {
      this.datasetsDone++;
    }
  }
  onDataEnd(): void {}
}

/** The value of an implicit VR LE command element, or undefined. */
function commandElement(command: Buffer, tagElem: number): Buffer | undefined {
  let pos = 0;
  while (pos + 8 <= command.length) {
    const group = command.readUInt16LE(pos);
    const elem = command.readUInt16LE(pos + 2);
    const length = command.readUInt32LE(pos + 4);
    if (group === 0 && elem === tagElem) return command.subarray(pos + 8, pos + 8 + length);
    pos += 8 + length;
  }
  return undefined;
}

/** C-STORE-RSP (success) for a C-STORE-RQ command set. */
function cStoreRsp(rq: Buffer): Buffer {
  const messageId = commandElement(rq, 0x0110)?.readUInt16LE(0) ?? 1;
  const body = Buffer.concat([
    element(0x0000, 0x0002, commandElement(rq, 0x0002) ?? Buffer.alloc(0)),
    element(0x0000, 0x0100, us(0x8001)),
    element(0x0000, 0x0120, us(messageId)),
    element(0x0000, 0x0800, us(0x0101)),
    element(0x0000, 0x0900, us(0x0000)),
    element(0x0000, 0x1000, commandElement(rq, 0x1000) ?? Buffer.alloc(0)),
  ]);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(body.length, 0);
  return encodePData([{ contextId: 1, command: true, last: true, fragment: Buffer.concat([element(0x0000, 0x0000, length), body]) }]);
}

function sink(port: number, maxPdu: number): void {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    const framer = new PduFramer();
    let pendingRq: Buffer | undefined;
    const handler = new Messages(
      (command) => {
        // The RSP goes once the dataset has arrived (a C-STORE-RQ always has one here).
        pendingRq = command;
      },
      (type) => {
        if (type === PduType.AssociateRq) {
          socket.write(buildAc({ maxLength: maxPdu, contexts: [{ id: 1, transferSyntax: EXPLICIT_LE }], called: 'STORESCP', calling: 'RAWSTORE' }));
        } else if (type === PduType.ReleaseRq) {
          socket.end(encodeReleaseRp());
        } else if (type === PduType.Abort) {
          socket.destroy();
        }
      },
    );
    let datasets = 0;
    socket.on('data', (chunk: Buffer) => {
      try {
        framer.push(chunk, 0, handler);
      } catch {
        socket.destroy();
        return;
      }
      if (handler.datasetsDone !== datasets) {
        datasets = handler.datasetsDone;
        if (pendingRq) socket.write(cStoreRsp(pendingRq));
        pendingRq = undefined;
      }
    });
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
  process.on('SIGTERM', () => process.exit(0));
}

/** Dataset prefix (explicit VR LE): SOP class and instance, then the Pixel Data header (OB, 32-bit length). */
function datasetPrefix(sopInstance: string, pixelBytes: number): Buffer {
  const short = (group: number, elem: number, value: string): Buffer => {
    const v = Buffer.from(value.length % 2 ? `${value}\0` : value, 'latin1');
    const header = Buffer.alloc(8);
    header.writeUInt16LE(group, 0);
    header.writeUInt16LE(elem, 2);
    header.write('UI', 4, 'latin1');
    header.writeUInt16LE(v.length, 6);
    return Buffer.concat([header, v]);
  };
  const pixelHeader = Buffer.alloc(12);
  pixelHeader.writeUInt16LE(0x7fe0, 0);
  pixelHeader.writeUInt16LE(0x0010, 2);
  pixelHeader.write('OB', 4, 'latin1');
  pixelHeader.writeUInt32LE(pixelBytes, 8);
  return Buffer.concat([short(0x0008, 0x0016, SECONDARY_CAPTURE), short(0x0008, 0x0018, sopInstance), pixelHeader]);
}

/** One association: `repeat` C-STOREs, then release. Resolves with the dataset bytes sent. */
async function storeMany(port: number, repeat: number, imageBytes: number, index: number): Promise<number> {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  const framer = new PduFramer();
  let waiting: ((v: { type: number; pdu?: Buffer; status?: number }) => void) | undefined;
  const queue: Array<{ type: number; pdu?: Buffer; status?: number }> = [];
  const deliver = (event: { type: number; pdu?: Buffer; status?: number }): void => {
    if (waiting) {
      const w = waiting;
      waiting = undefined;
      w(event);
    } else queue.push(event);
  };
  const handler = new Messages(
    (command) => deliver({ type: PduType.PDataTf, status: commandStatus(command) }),
    (type, pdu) => deliver({ type, pdu: Buffer.from(pdu) }),
  );
  socket.on('data', (chunk: Buffer) => framer.push(chunk, 0, handler));
  socket.on('close', () => deliver({ type: -1 }));
  const next = (): Promise<{ type: number; pdu?: Buffer; status?: number }> => (queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise((resolve) => (waiting = resolve)));

  socket.write(buildRq({ called: 'STORESCP', calling: 'RAWSTORE', maxLength: 16384, contexts: [{ id: 1, abstractSyntax: SECONDARY_CAPTURE, transferSyntaxes: [EXPLICIT_LE] }] }));
  const ac = await next();
  if (ac.type !== PduType.AssociateAc || !ac.pdu) throw new Error(`association not accepted (PDU type ${ac.type})`);
  const announced = maxLength(decodeAssociate(ac.pdu)) ?? 0;
  const fragment = (announced > 0 ? Math.min(announced, 4 * 1024 * 1024) : 16384) - 6;
  if (fragment < 2 || fragment % 2) throw new Error(`unusable Maximum Length ${announced}`);

  // A block of whole middle PDUs (dataset bytes only, not the last), written again and again.
  const pduBytes = 12 + fragment;
  const perBlock = Math.max(1, Math.floor(BLOCK_TARGET_BYTES / pduBytes));
  const block = Buffer.alloc(perBlock * pduBytes, 0x5a);
  for (let i = 0; i < perBlock; i++) singlePdvHeader(fragment, 1, 0).copy(block, i * pduBytes);

  let sent = 0;
  for (let n = 1; n <= repeat; n++) {
    const sop = `1.2.826.0.1.3680043.9.7433.${process.pid}.${index}.${n}`;
    socket.write(encodePData([{ contextId: 1, command: true, last: true, fragment: cStoreRqCommand(n, SECONDARY_CAPTURE, sop) }]));
    const prefix = datasetPrefix(sop, imageBytes);
    const total = prefix.length + imageBytes;
    // First PDU: the prefix and pattern bytes; then whole middle PDUs from the block; then the last one.
    const first = Math.min(fragment, total);
    const head = Buffer.alloc(12 + first, 0x5a);
    singlePdvHeader(first, 1, first === total ? MCH_LAST : 0).copy(head, 0);
    prefix.copy(head, 12);
    socket.write(head);
    let left = total - first;
    let middle = left > 0 ? Math.ceil(left / fragment) - 1 : 0;
    left -= middle * fragment;
    while (middle > 0) {
      const k = Math.min(middle, perBlock);
      const ok = socket.write(k === perBlock ? block : block.subarray(0, k * pduBytes));
      middle -= k;
      if (!ok) await once(socket, 'drain');
    }
    if (left > 0) {
      const tail = Buffer.alloc(12 + left, 0x5a);
      singlePdvHeader(left, 1, MCH_LAST).copy(tail, 0);
      socket.write(tail);
    }
    sent += total;
    const rsp = await next();
    if (rsp.type !== PduType.PDataTf || rsp.status !== 0) throw new Error(`C-STORE ${n} failed (PDU type ${rsp.type}, status ${rsp.status})`);
  }
  socket.write(encodeReleaseRq());
  const rp = await next();
  if (rp.type !== PduType.ReleaseRp) throw new Error(`release not answered (PDU type ${rp.type})`);
  socket.end();
  return sent;
}

async function send(port: number, parallel: number, repeat: number, imageBytes: number): Promise<void> {
  const machineBefore = machineTicks();
  const t0 = performance.now();
  const sent = await Promise.all(Array.from({ length: parallel }, (_, i) => storeMany(port, repeat, imageBytes, i)));
  const ms = performance.now() - t0;
  const busy = busyShare(machineBefore, machineTicks());
  process.stdout.write(`${JSON.stringify({ ms, bytes: sent.reduce((a, b) => a + b, 0), busy })}\n`);
}

const [mode, ...rest] = process.argv.slice(2);
const nums = rest.map(Number);
if (mode === 'sink' && nums.length === 2) {
  sink(nums[0]!, nums[1]!);
} else if (mode === 'send' && nums.length === 4) {
  send(nums[0]!, nums[1]!, nums[2]!, nums[3]!).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
} else {
  console.error('usage: raw-peers.ts sink PORT MAX_PDU | send PORT PARALLEL REPEAT IMAGE_BYTES');
  process.exit(2);
}
