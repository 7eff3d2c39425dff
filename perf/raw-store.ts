// A minimal raw C-STORE SCU for benchmarks: it sends P-DATA-TF PDUs of exactly the size it is told (even
// 20 MB, which neither DCMTK nor dcmjs-dimse will send), streaming the dataset from one reused buffer so
// that the sender itself stays small. Not a general SCU: one context (Secondary Capture, explicit VR LE),
// one C-STORE, then release.

import net from 'node:net';
import { once } from 'node:events';
import { decodeAssociate, maxLength } from '../src/pdu/associate.js';
import { MCH_COMMAND, MCH_LAST, PduType } from '../src/pdu/constants.js';
import { encodeReleaseRq } from '../src/pdu/control.js';
import { encodePData, singlePdvHeader } from '../src/pdu/pdata.js';
import { EXPLICIT_LE, SECONDARY_CAPTURE, buildRq, splitPdus } from '../test/helpers/raw.js';

export interface RawStoreOptions {
  port: number;
  host?: string;
  /** Bytes of pixel data in the dataset. */
  pixelBytes: number;
  /** Fragment size per P-DATA-TF (PDU-length = fragment + 6), whatever the peer announced. */
  fragmentBytes: number;
  calledAe?: string;
  maxLength?: number;
  sopInstanceUid?: string;
}

export interface RawStoreResult {
  status: number;
  /** What the peer announced in the A-ASSOCIATE-AC. */
  peerMaxLength: number | undefined;
  durationMs: number;
}

/** One implicit VR LE element: tag, 4-byte length, value. */
export function element(group: number, elem: number, value: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt16LE(group, 0);
  header.writeUInt16LE(elem, 2);
  header.writeUInt32LE(value.length, 4);
  return Buffer.concat([header, value]);
}

/** A US value, little endian. */
export function us(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n, 0);
  return b;
}

function uid(s: string): Buffer {
  const b = Buffer.from(s, 'latin1');
  return b.length % 2 ? Buffer.concat([b, Buffer.alloc(1)]) : b;
}

/** C-STORE-RQ command set, implicit VR little endian (PS3.7 9.3.1.1). */
export function cStoreRqCommand(messageId: number, sopClass: string, sopInstance: string): Buffer {
  const body = Buffer.concat([
    element(0x0000, 0x0002, uid(sopClass)),
    element(0x0000, 0x0100, us(0x0001)), // C-STORE-RQ
    element(0x0000, 0x0110, us(messageId)),
    element(0x0000, 0x0700, us(0)), // priority medium
    element(0x0000, 0x0800, us(0x0000)), // a dataset follows
    element(0x0000, 0x1000, uid(sopInstance)),
  ]);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(body.length, 0);
  return Buffer.concat([element(0x0000, 0x0000, length), body]);
}

/** Status (0000,0900) from an implicit VR LE command set, or undefined. */
export function commandStatus(command: Buffer): number | undefined {
  let pos = 0;
  while (pos + 8 <= command.length) {
    const group = command.readUInt16LE(pos);
    const elem = command.readUInt16LE(pos + 2);
    const length = command.readUInt32LE(pos + 4);
    if (group === 0 && elem === 0x0900 && length === 2) return command.readUInt16LE(pos + 8);
    pos += 8 + length;
  }
  return undefined;
}

function explicitShort(group: number, elem: number, vr: string, value: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt16LE(group, 0);
  header.writeUInt16LE(elem, 2);
  header.write(vr, 4, 'latin1');
  header.writeUInt16LE(value.length, 6);
  return Buffer.concat([header, value]);
}

/** Dataset prefix (explicit VR LE): SOP class and instance, then the Pixel Data header (OB, 32-bit length). */
function datasetPrefix(sopInstance: string, pixelBytes: number): Buffer {
  const pixelHeader = Buffer.alloc(12);
  pixelHeader.writeUInt16LE(0x7fe0, 0);
  pixelHeader.writeUInt16LE(0x0010, 2);
  pixelHeader.write('OB', 4, 'latin1');
  pixelHeader.writeUInt32LE(pixelBytes, 8);
  return Buffer.concat([explicitShort(0x0008, 0x0016, 'UI', uid(SECONDARY_CAPTURE)), explicitShort(0x0008, 0x0018, 'UI', uid(sopInstance)), pixelHeader]);
}

const PATTERN = Buffer.alloc(1024 * 1024, 0x5a);

class Reader {
  private bytes = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  constructor(socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.bytes = Buffer.concat([this.bytes, c]);
      this.waiting?.();
    });
    socket.on('close', () => this.waiting?.());
  }
  async nextPdu(socket: net.Socket): Promise<Buffer> {
    for (;;) {
      const { pdus } = splitPdus(this.bytes);
      const first = pdus[0];
      if (first) {
        this.bytes = this.bytes.subarray(first.length);
        return first;
      }
      if (socket.destroyed) throw new Error('connection closed');
      await new Promise<void>((resolve) => (this.waiting = resolve));
    }
  }
}

export async function rawStore(o: RawStoreOptions): Promise<RawStoreResult> {
  const t0 = performance.now();
  const socket = net.connect({ host: o.host ?? '127.0.0.1', port: o.port, noDelay: true });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  const reader = new Reader(socket);
  socket.write(
    buildRq({
      called: o.calledAe ?? 'STORESCP',
      calling: 'RAWSTORE',
      maxLength: o.maxLength ?? 16384,
      contexts: [{ id: 1, abstractSyntax: SECONDARY_CAPTURE, transferSyntaxes: [EXPLICIT_LE] }],
    }),
  );
  const ac = await reader.nextPdu(socket);
  if (ac[0] !== PduType.AssociateAc) throw new Error(`association not accepted: PDU type ${ac[0]}`);
  const peerMaxLength = maxLength(decodeAssociate(ac));
  const sopInstance = o.sopInstanceUid ?? `1.2.826.0.1.3680043.9.7433.${process.pid}.${Date.now()}.${Math.floor(Math.random() * 1e6)}`;

  socket.write(encodePData([{ contextId: 1, command: true, last: true, fragment: cStoreRqCommand(1, SECONDARY_CAPTURE, sopInstance) }]));
  const prefix = datasetPrefix(sopInstance, o.pixelBytes);
  const total = prefix.length + o.pixelBytes;
  let sent = 0;
  while (sent < total) {
    const fragment = Math.min(o.fragmentBytes, total - sent);
    const last = sent + fragment === total;
    socket.write(singlePdvHeader(fragment, 1, last ? MCH_LAST : 0));
    let left = fragment;
    let at = sent;
    while (left > 0) {
      let piece: Buffer;
      if (at < prefix.length) piece = prefix.subarray(at, Math.min(prefix.length, at + left));
      else piece = PATTERN.subarray(0, Math.min(PATTERN.length, left));
      const ok = socket.write(piece);
      left -= piece.length;
      at += piece.length;
      if (!ok) await once(socket, 'drain');
    }
    sent += fragment;
  }
  let status: number | undefined;
  while (status === undefined) {
    const pdu = await reader.nextPdu(socket);
    if (pdu[0] === PduType.Abort) throw new Error('association aborted');
    if (pdu[0] !== PduType.PDataTf) continue;
    const itemLength = pdu.readUInt32BE(6);
    const mch = pdu[11]!;
    if (mch & MCH_COMMAND) status = commandStatus(pdu.subarray(12, 6 + 4 + itemLength));
  }
  socket.write(encodeReleaseRq());
  await reader.nextPdu(socket).catch(() => undefined);
  socket.end();
  return { status, peerMaxLength, durationMs: performance.now() - t0 };
}
