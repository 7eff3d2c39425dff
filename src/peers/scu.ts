// The built-in SCU: C-STORE from memory on the project's own codec. Each image is loaded and encoded once,
// before any timing (its SOP Instance UID gets a fixed-length slot so that each send only overwrites those
// bytes); the command set and the data set go out as P-DATA-TF of exactly the Maximum Length the
// A-ASSOCIATE-AC gives (the last one shorter; 0 = no maximum = one PDV), written as views without copies
// (src/peers/writer.ts). Every wait is bounded: a peer that stalls gets an A-ABORT and the call fails; so
// does one that sends a PDU over the Maximum Length this SCU announced.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { fixedLengthUid, readPart10, withUidSlot } from '../dicom/part10.js';
import type { ValueSlot } from '../dicom/part10.js';
import { C_STORE_RQ, C_STORE_RSP, DATA_SET_PRESENT, PRIORITY_MEDIUM, encodeCommandSet } from '../dimse/command.js';
import type { CommandSet } from '../dimse/command.js';
import { decodeAssociate, maxLength as announcedMaxLength, presentationContextsAc } from '../pdu/associate.js';
import { AbortReason, AbortSource, PduType, pduTypeName } from '../pdu/constants.js';
import { decodeAbort, decodeReject, describeAbort, encodeAbort, encodeReleaseRq } from '../pdu/control.js';
import { ProtocolError } from '../pdu/errors.js';
import { buildAssociateRq } from './negotiation.js';
import type { ProposedContext } from './negotiation.js';
import { MessageReader } from './reader.js';
import { prepareStream, writeStream } from './writer.js';
import type { PreparedStream } from './writer.js';

/** What the built-in SCU announces by default: large, so that no response is ever cut (PS3.8 D.1.1). */
export const SCU_MAX_LENGTH = 64 * 1024 * 1024;

/** An image ready to send: its data set encoded once. */
export interface ScuImage {
  file: string;
  sopClassUid: string;
  transferSyntax: string;
  dataset: Buffer;
  /** Where the SOP Instance UID lies in `dataset` (fixed length); undefined: sent with its own UID. */
  slot: ValueSlot | undefined;
  /** The UID in the data set now. */
  sopInstanceUid: string;
  /** Fragment plans by Maximum Length and context id ("L/id"), made once per image. */
  streams: Map<string, PreparedStream>;
}

/** Load a Part 10 file for sending: the data set (with a fixed-length UID slot when it can be walked to). */
export function loadImage(file: string): ScuImage {
  const p = readPart10(readFileSync(file));
  const uid = fixedLengthUid(randomBytes(16));
  const slotted = withUidSlot(p.dataset, p.transferSyntax, uid);
  return {
    file,
    sopClassUid: p.sopClassUid,
    transferSyntax: p.transferSyntax,
    dataset: slotted ? slotted.dataset : Buffer.from(p.dataset),
    slot: slotted?.slot,
    sopInstanceUid: slotted ? uid : p.sopInstanceUid,
    streams: new Map(),
  };
}

/** Give the image a fresh SOP Instance UID, in place (no-op without a slot); returns the UID it now has. */
export function renewInstanceUid(image: ScuImage): string {
  if (!image.slot) return image.sopInstanceUid;
  image.sopInstanceUid = fixedLengthUid(randomBytes(16));
  image.dataset.write(image.sopInstanceUid, image.slot.value, 'latin1');
  return image.sopInstanceUid;
}

/** The presentation contexts for a set of images: one per (SOP class, transfer syntax), ids 1, 3, 5, … */
export function contextsFor(images: readonly ScuImage[]): ProposedContext[] {
  const seen = new Map<string, ProposedContext>();
  for (const im of images) {
    const key = `${im.sopClassUid}|${im.transferSyntax}`;
    if (!seen.has(key)) seen.set(key, { id: 2 * seen.size + 1, abstractSyntax: im.sopClassUid, transferSyntaxes: [im.transferSyntax] });
  }
  if (seen.size > 128) throw new Error(`${seen.size} presentation contexts: more than one association can carry (128)`);
  return [...seen.values()];
}

export interface AssociationOptions {
  host: string;
  port: number;
  calledAet: string;
  callingAet: string;
  /** What this SCU announces in the A-ASSOCIATE-RQ (0 = no maximum). */
  maxLength: number;
  contexts: readonly ProposedContext[];
  /** Bound on connecting, on negotiating, and on each C-STORE (request start to response). */
  timeoutMs: number;
  /** DICOM TLS: certificates and trust (ca, cert, key); the connection counts from the TLS handshake's end. */
  tls?: tls.ConnectionOptions | undefined;
}

/** Why an association or a store failed: the text bench reports per image. */
export class ScuError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScuError';
  }
}

type Waiter = { resolve: (v: unknown) => void; reject: (e: Error) => void };

export class ScuAssociation {
  /** Connect and negotiation times of this association (ms). */
  connectMs = 0;
  associateMs = 0;
  /** The Maximum Length the SCP announced: what each P-DATA-TF toward it is cut to (0 = none). */
  peerMaxLength = 0;
  private readonly accepted = new Map<string, number>();
  private waiter: (Waiter & { expect: 'ac' | 'rsp' | 'rp'; messageId?: number }) | undefined;
  private failure: ScuError | undefined;
  private messageId = 0;
  /** True while a message is being written: an A-ABORT then cannot be framed, the connection is reset. */
  private writing = false;
  private readonly reader: MessageReader;

  private constructor(
    private readonly socket: net.Socket,
    private readonly o: AssociationOptions,
  ) {
    this.reader = new MessageReader({
      onPdu: (type, pdu) => this.onPdu(type, pdu),
      onCommand: (_contextId, command) => this.onCommand(command),
      onDataset: () => {
        throw new ProtocolError('unexpected-pdu', 'a data set from the SCP during C-STORE');
      },
      onDatasetEnd: () => undefined,
    });
    this.reader.maxLength = o.maxLength;
    socket.on('data', (chunk: Buffer) => {
      try {
        this.reader.push(chunk);
      } catch (err) {
        if (err instanceof ProtocolError) this.abort(err.reason, `protocol error from the SCP (${err.code}: ${err.message}); A-ABORT sent`);
        else this.fail(new ScuError(`internal error: ${(err as Error).message}`));
      }
    });
    socket.on('error', (err) => this.fail(new ScuError(`network error: ${err.message}`)));
    socket.on('close', () => this.fail(new ScuError('connection closed by the SCP')));
  }

  /** Connect, propose the contexts, and wait for the A-ASSOCIATE-AC. */
  static async open(o: AssociationOptions): Promise<ScuAssociation> {
    const t0 = performance.now();
    // With TLS, connectMs includes the handshake; the host is checked against the certificate (IP SANs for an IP).
    const socket: net.Socket = o.tls
      ? tls.connect({ ...o.tls, host: o.host, port: o.port, noDelay: true } as tls.ConnectionOptions)
      : net.connect({ host: o.host, port: o.port, noDelay: true });
    const ready = o.tls ? 'secureConnect' : 'connect';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ScuError(`not connected within ${o.timeoutMs} ms`));
      }, o.timeoutMs);
      socket.once(ready, () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new ScuError(`network error: ${err.message}`));
      });
    });
    const a = new ScuAssociation(socket, o);
    const t1 = performance.now();
    a.connectMs = t1 - t0;
    socket.write(buildAssociateRq(o));
    await a.wait('ac', undefined, `no A-ASSOCIATE-AC within ${o.timeoutMs} ms; A-ABORT sent`);
    a.associateMs = performance.now() - t1;
    return a;
  }

  /** Send one C-STORE of `image` (with its current UID) and wait for its response; resolves with the status. */
  async store(image: ScuImage): Promise<number> {
    if (this.failure) throw this.failure;
    const contextId = this.accepted.get(`${image.sopClassUid}|${image.transferSyntax}`);
    if (contextId === undefined) throw new ScuError(`the SCP did not accept ${image.sopClassUid} in ${image.transferSyntax}`);
    this.messageId = (this.messageId % 0xffff) + 1;
    const command = encodeCommandSet({
      commandField: C_STORE_RQ,
      affectedSopClassUid: image.sopClassUid,
      messageId: this.messageId,
      priority: PRIORITY_MEDIUM,
      dataSetType: DATA_SET_PRESENT,
      affectedSopInstanceUid: image.sopInstanceUid,
    });
    const key = `${this.peerMaxLength}/${contextId}`;
    let data = image.streams.get(key);
    if (!data) {
      data = prepareStream(image.dataset.length, this.peerMaxLength, contextId, false);
      image.streams.set(key, data);
    }
    const response = this.wait('rsp', this.messageId, `no C-STORE-RSP within ${this.o.timeoutMs} ms; A-ABORT sent`) as Promise<CommandSet>;
    // It can fail while the data set is still being written (an A-ABORT during a wait for 'drain'): it is
    // awaited below, and must not count as unhandled meanwhile.
    response.catch(() => undefined);
    this.writing = true;
    try {
      await writeStream(this.socket, prepareStream(command.length, this.peerMaxLength, contextId, true), command);
      await writeStream(this.socket, data, image.dataset);
    } catch (err) {
      this.fail(err instanceof ScuError ? err : new ScuError(`sending failed: ${(err as Error).message}`));
    } finally {
      this.writing = false;
    }
    const rsp = await response;
    return rsp.status ?? -1;
  }

  /** A-RELEASE-RQ, wait for the RP (bounded), close. Never throws. */
  async release(): Promise<void> {
    if (!this.failure) {
      this.socket.write(encodeReleaseRq());
      await this.wait('rp', undefined, 'no A-RELEASE-RP; A-ABORT sent').catch(() => undefined);
    }
    this.socket.end();
    this.socket.destroy();
  }

  /** Send A-ABORT (source 2, service provider: this side found the fault) and close; pending calls fail with `why`. */
  abort(reason: AbortReason, why: string): void {
    if (this.writing) this.socket.destroy();
    else if (!this.socket.destroyed) this.socket.end(encodeAbort(AbortSource.ServiceProvider, reason));
    this.reader.stop();
    this.fail(new ScuError(why));
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private wait(expect: 'ac' | 'rsp' | 'rp', messageId: number | undefined, timeoutText: string): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.abort(AbortReason.NotSpecified, timeoutText), this.o.timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiter = undefined;
      };
      this.waiter = {
        expect,
        messageId,
        resolve: (v) => {
          done();
          resolve(v);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      };
    });
  }

  private fail(err: ScuError): void {
    this.failure ??= err;
    this.waiter?.reject(this.failure);
  }

  private onPdu(type: number, pdu: Buffer): void {
    const w = this.waiter;
    switch (type) {
      case PduType.AssociateAc: {
        if (w?.expect !== 'ac') throw new ProtocolError('unexpected-pdu', 'an A-ASSOCIATE-AC out of turn');
        const ac = decodeAssociate(pdu);
        this.peerMaxLength = announcedMaxLength(ac) ?? 0;
        const ids = new Set<number>();
        for (const c of presentationContextsAc(ac)) {
          const proposed = this.o.contexts.find((p) => p.id === c.id);
          if (c.result !== 0 || !proposed) continue;
          ids.add(c.id);
          this.accepted.set(`${proposed.abstractSyntax}|${c.transferSyntax ?? proposed.transferSyntaxes[0]}`, c.id);
        }
        this.reader.contexts = ids;
        w.resolve(undefined);
        return;
      }
      case PduType.AssociateRj: {
        const r = decodeReject(pdu);
        this.reader.stop();
        this.fail(new ScuError(`association rejected (result ${r.result}, source ${r.source}, reason ${r.reason})`));
        return;
      }
      case PduType.ReleaseRp:
        if (w?.expect !== 'rp') throw new ProtocolError('unexpected-pdu', 'an A-RELEASE-RP out of turn');
        this.reader.stop();
        w.resolve(undefined);
        return;
      case PduType.Abort:
        this.reader.stop();
        this.fail(new ScuError(`association aborted by the SCP (${describeAbort(decodeAbort(pdu))})`));
        // The association is over: a write waiting for 'drain' stops now, not at the store's timeout.
        this.socket.destroy();
        return;
      default:
        throw new ProtocolError('unexpected-pdu', `${pduTypeName(type)} from the SCP`);
    }
  }

  private onCommand(command: CommandSet): void {
    const w = this.waiter;
    if (command.commandField !== C_STORE_RSP || w?.expect !== 'rsp' || command.messageIdBeingRespondedTo !== w.messageId) {
      throw new ProtocolError('unexpected-pdu', `unexpected ${command.commandField?.toString(16)} (responding to ${command.messageIdBeingRespondedTo}) from the SCP`);
    }
    w.resolve(command);
  }
}
