// Raw TCP peers for protocol tests: they send exact bytes and record exactly what arrives, so a test can
// check what each side of the proxy received, byte for byte.

import net from 'node:net';
import type { Item } from '../../src/pdu/associate.js';
import { buildFixedPart, encodeAssociate } from '../../src/pdu/associate.js';
import { ItemType, PduType } from '../../src/pdu/constants.js';

export const VERIFICATION = '1.2.840.10008.1.1';
export const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';
export const IMPLICIT_LE = '1.2.840.10008.1.2';
export const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';

function uid(value: string): Buffer {
  const b = Buffer.from(value, 'latin1');
  return b.length % 2 ? Buffer.concat([b, Buffer.alloc(1)]) : b;
}

function leaf(type: number, head: Buffer): Item {
  return { type, reserved: 0, head };
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

export interface RqOptions {
  called?: string;
  calling?: string;
  /** undefined: no Maximum Length sub-item at all. */
  maxLength?: number | undefined;
  contexts?: Array<{ id: number; abstractSyntax: string; transferSyntaxes: string[] }>;
  extraItems?: Item[];
  extraUserItems?: Item[];
}

export function buildRq(o: RqOptions = {}): Buffer {
  const contexts = o.contexts ?? [{ id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_LE] }];
  const user: Item[] = [];
  if (o.maxLength !== undefined) user.push(leaf(ItemType.MaximumLength, u32(o.maxLength)));
  user.push(leaf(ItemType.ImplementationClassUid, uid('1.2.3.4.5.6.7')));
  user.push(...(o.extraUserItems ?? []));
  return encodeAssociate({
    type: PduType.AssociateRq,
    reserved: 0,
    fixed: buildFixedPart(o.called ?? 'SCP', o.calling ?? 'SCU'),
    items: [
      leaf(ItemType.ApplicationContext, uid(APPLICATION_CONTEXT)),
      ...contexts.map((c) => ({
        type: ItemType.PresentationContextRq,
        reserved: 0,
        head: Buffer.from([c.id, 0, 0, 0]),
        children: [leaf(ItemType.AbstractSyntax, uid(c.abstractSyntax)), ...c.transferSyntaxes.map((t) => leaf(ItemType.TransferSyntax, uid(t)))],
      })),
      ...(o.extraItems ?? []),
      { type: ItemType.UserInformation, reserved: 0, head: Buffer.alloc(0), children: user },
    ],
  });
}

export function buildAc(o: { maxLength?: number | undefined; contexts?: Array<{ id: number; transferSyntax: string }>; called?: string; calling?: string } = {}): Buffer {
  const contexts = o.contexts ?? [{ id: 1, transferSyntax: IMPLICIT_LE }];
  const user: Item[] = [];
  if (o.maxLength !== undefined) user.push(leaf(ItemType.MaximumLength, u32(o.maxLength)));
  user.push(leaf(ItemType.ImplementationClassUid, uid('1.2.3.4.5.6.8')));
  return encodeAssociate({
    type: PduType.AssociateAc,
    reserved: 0,
    fixed: buildFixedPart(o.called ?? 'SCP', o.calling ?? 'SCU'),
    items: [
      leaf(ItemType.ApplicationContext, uid(APPLICATION_CONTEXT)),
      ...contexts.map((c) => ({
        type: ItemType.PresentationContextAc,
        reserved: 0,
        head: Buffer.from([c.id, 0, 0, 0]),
        children: [leaf(ItemType.TransferSyntax, uid(c.transferSyntax))],
      })),
      { type: ItemType.UserInformation, reserved: 0, head: Buffer.alloc(0), children: user },
    ],
  });
}

/** Split a byte stream into whole PDUs (test-side reference parser: trusts lengths, no streaming). */
export function splitPdus(bytes: Buffer): { pdus: Buffer[]; rest: Buffer } {
  const pdus: Buffer[] = [];
  let pos = 0;
  while (bytes.length - pos >= 6) {
    const length = bytes.readUInt32BE(pos + 2);
    if (bytes.length - pos < 6 + length) break;
    pdus.push(bytes.subarray(pos, pos + 6 + length));
    pos += 6 + length;
  }
  return { pdus, rest: bytes.subarray(pos) };
}

/** The PDVs of a whole P-DATA-TF. */
export function pdvsOf(pdu: Buffer): Array<{ contextId: number; mch: number; fragment: Buffer }> {
  const out: Array<{ contextId: number; mch: number; fragment: Buffer }> = [];
  let pos = 6;
  while (pos < pdu.length) {
    const itemLength = pdu.readUInt32BE(pos);
    out.push({ contextId: pdu[pos + 4]!, mch: pdu[pos + 5]!, fragment: pdu.subarray(pos + 6, pos + 4 + itemLength) });
    pos += 4 + itemLength;
  }
  return out;
}

export class RawPeer {
  readonly socket: net.Socket;
  private chunks: Buffer[] = [];
  private total = 0;
  readonly ended: Promise<void>;
  readonly closed: Promise<void>;
  private listeners: Array<() => void> = [];

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.total += c.length;
      for (const l of this.listeners.slice()) l();
    });
    socket.on('error', () => undefined);
    this.ended = new Promise((resolve) => socket.once('end', () => resolve()));
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static connect(port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
      socket.once('connect', () => resolve(new RawPeer(socket)));
      socket.once('error', reject);
    });
  }

  get bytes(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  get receivedLength(): number {
    return this.total;
  }

  pdus(): Buffer[] {
    return splitPdus(this.bytes).pdus;
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Wait until at least `n` whole PDUs have arrived; resolves with all PDUs so far. */
  waitForPdus(n: number, timeoutMs = 5000): Promise<Buffer[]> {
    return this.waitFor(
      () => this.pdus().length >= n,
      timeoutMs,
      () => `${n} PDUs (have ${this.pdus().length}, ${this.total} bytes)`,
    ).then(() => this.pdus());
  }

  /** Wait until `bytes` bytes have arrived. */
  waitForBytes(bytes: number, timeoutMs = 10_000): Promise<void> {
    return this.waitFor(
      () => this.total >= bytes,
      timeoutMs,
      () => `${bytes} bytes (have ${this.total})`,
    );
  }

  waitClosed(timeoutMs = 5000): Promise<void> {
    return withTimeout(this.closed, timeoutMs, 'connection close');
  }

  private waitFor(done: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!done()) return;
        cleanup();
        resolve();
      };
      const onClose = (): void => {
        if (done()) return;
        cleanup();
        reject(new Error(`connection closed while waiting for ${what()}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${what()}`));
      }, timeoutMs);
      // Every way out removes what it added: tests wait many times on one socket.
      const cleanup = (): void => {
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== check);
        this.socket.off('close', onClose);
      };
      this.listeners.push(check);
      this.socket.once('close', onClose);
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A fake SCP: accepts connections and hands each to the test as a RawPeer. */
export class FakeScp {
  readonly server: net.Server;
  readonly peers: RawPeer[] = [];
  private waiting: Array<(p: RawPeer) => void> = [];

  private constructor(server: net.Server) {
    this.server = server;
    server.on('connection', (socket) => {
      const peer = new RawPeer(socket);
      this.peers.push(peer);
      const w = this.waiting.shift();
      if (w) w(peer);
    });
  }

  static listen(): Promise<FakeScp & { port: number }> {
    return new Promise((resolve) => {
      const server = net.createServer({ allowHalfOpen: true });
      server.listen(0, '127.0.0.1', () => {
        // Never what keeps a test file's process alive: a test that fails before its close() (a start that
        // timed out) left the server open, and the file then ran into the runner's 300 s timeout.
        server.unref();
        const scp = new FakeScp(server) as FakeScp & { port: number };
        scp.port = (server.address() as net.AddressInfo).port;
        resolve(scp);
      });
    });
  }

  /** The next connection (or one already made and not yet taken). */
  nextPeer(timeoutMs = 5000): Promise<RawPeer> {
    const taken = this.taken;
    if (this.peers.length > taken) {
      this.taken++;
      return Promise.resolve(this.peers[taken]!);
    }
    return withTimeout(
      new Promise<RawPeer>((resolve) =>
        this.waiting.push((p) => {
          this.taken++;
          resolve(p);
        }),
      ),
      timeoutMs,
      'an upstream connection',
    );
  }

  private taken = 0;

  close(): Promise<void> {
    for (const p of this.peers) p.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e as Error);
      },
    );
  });
}
