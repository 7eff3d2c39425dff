// The built-in SCP: accepts every proposed presentation context (first transfer syntax), answers C-ECHO,
// A-RELEASE and A-ABORT, and acknowledges each C-STORE as soon as its last fragment has arrived. It streams:
// data set bytes are views of socket chunks, dropped at once or handed to a file stream (--store-dir), never
// assembled, so memory does not grow with PDU or data set size. A protocol error, a P-DATA-TF over the
// Maximum Length it announced, or an association idle for `idleTimeoutMs` ends in an A-ABORT (source 2).

import { createWriteStream, mkdirSync, renameSync, rmSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { encodeFileMeta } from '../dicom/part10.js';
import {
  C_ECHO_RQ,
  C_ECHO_RSP,
  C_STORE_RQ,
  C_STORE_RSP,
  NO_DATA_SET,
  RESPONSE_BIT,
  STATUS_OUT_OF_RESOURCES,
  STATUS_PROCESSING_FAILURE,
  STATUS_SUCCESS,
  commandName,
  encodeCommandSet,
} from '../dimse/command.js';
import type { CommandSet } from '../dimse/command.js';
import { decodeAssociate, maxLength as announcedMaxLength } from '../pdu/associate.js';
import { AbortReason, AbortSource, PduType, pduTypeName } from '../pdu/constants.js';
import { decodeAbort, describeAbort, encodeAbort, encodeReleaseRp } from '../pdu/control.js';
import { ProtocolError } from '../pdu/errors.js';
import { acceptAll, buildAssociateAc } from './negotiation.js';
import { MessageReader } from './reader.js';
import { prepareStream, writeStream } from './writer.js';

/** PS3.7 C.4.2.1.4 has no "unrecognized operation" for C-STORE; PS3.7 C.1.4 gives 0211 for any service. */
const STATUS_UNRECOGNIZED_OPERATION = 0x0211;
/** After A-RELEASE-RP (or an A-ABORT it sent) the SCP waits this long for the peer to close (ARTIM-like). */
const CLOSE_WAIT_MS = 5_000;
/** The file stream's buffer: above it the socket is paused until the disk catches up. */
const FILE_HIGH_WATER_MARK = 1024 * 1024;
/** A SOP Instance UID used as a file name: digits and dots only (PS3.5 9.1), else a counter is used. */
const SAFE_UID = /^[0-9.]{1,64}$/;

export interface ScpOptions {
  /** Announced in every A-ASSOCIATE-AC (0 = no maximum); larger incoming P-DATA-TF are aborted. */
  maxLength: number;
  /** Write each data set as <SOP Instance UID>.dcm (Part 10) here, answering once the file is complete. */
  storeDir?: string | undefined;
  /** Answer every Nth C-STORE with A700 (Refused: out of resources) instead of Success. */
  failEvery?: number | undefined;
  /** An association with no byte received for this long is aborted. */
  idleTimeoutMs: number;
  /** One line per event worth telling (aborts, protocol errors, store failures, failed TLS handshakes). */
  log: (line: string) => void;
  /** DICOM TLS: the listener's certificate, key and (for client certificates) ca, requestCert, rejectUnauthorized. */
  tls?: tls.TlsOptions | undefined;
  /**
   * A known cost per P-DATA-TF: each C-STORE is answered no earlier than this many milliseconds per PDU that
   * carried its data set after its command arrived (a benchmark's SCP whose cost per PDU is known).
   */
  pdataDelayMs?: number | undefined;
}

export interface ScpCounters {
  associations: number;
  stores: number;
  echoes: number;
  /** A-ABORTs sent (protocol errors, idle) and received. */
  abortsSent: number;
  abortsReceived: number;
  /** P-DATA-TF PDUs that carried C-STORE data set bytes. */
  dataPdus: number;
}

interface PendingStore {
  contextId: number;
  command: CommandSet;
  /** When its command arrived (performance.now()), and the P-DATA-TF PDUs that carried its data set. */
  commandAt: number;
  dataPdus: number;
  /** --store-dir: the part file being written, and the first error writing it (then the rest is read and dropped). */
  file?: { stream: WriteStream; part: string; final: string; error?: Error };
}

/** The C-STORE status for a data set that could not be written: A700 when the disk is full, else 0110. */
function writeFailureStatus(err: NodeJS.ErrnoException): number {
  return err.code === 'ENOSPC' || err.code === 'EDQUOT' ? STATUS_OUT_OF_RESOURCES : STATUS_PROCESSING_FAILURE;
}

export class BuiltinScp {
  readonly counters: ScpCounters = { associations: 0, stores: 0, echoes: 0, abortsSent: 0, abortsReceived: 0, dataPdus: 0 };
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private fileCounter = 0;

  constructor(private readonly o: ScpOptions) {
    if (o.storeDir) mkdirSync(o.storeDir, { recursive: true });
    if (o.tls) {
      // An association starts once the handshake is done; a failed handshake is one line, the server goes on.
      this.server = tls.createServer(o.tls, (socket) => this.accept(socket));
      this.server.on('tlsClientError', (err: Error) => o.log(`TLS handshake failed: ${err.message}`));
    } else this.server = net.createServer((socket) => this.accept(socket));
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve((this.server.address() as net.AddressInfo).port));
    });
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const o = this.o;
    const counters = this.counters;
    const contexts = new Map<number, { abstractSyntax: string; transferSyntax: string }>();
    let peerMaxLength = 0;
    let pending: PendingStore | undefined;
    let ended = false;
    /** The P-DATA-TF being read has carried data set bytes already. */
    let dataInPdu = false;

    const finish = (): void => {
      if (ended) return;
      ended = true;
      reader.stop();
      if (pending?.file) {
        pending.file.stream.destroy();
        rmSync(pending.file.part, { force: true });
      }
      pending = undefined;
      setTimeout(() => socket.destroy(), CLOSE_WAIT_MS).unref();
    };
    const abort = (reason: AbortReason, why: string): void => {
      if (ended) return;
      o.log(`A-ABORT sent to ${socket.remoteAddress}:${socket.remotePort}: ${why}`);
      counters.abortsSent++;
      socket.end(encodeAbort(AbortSource.ServiceProvider, reason));
      finish();
    };
    const send = (contextId: number, fields: Parameters<typeof encodeCommandSet>[0]): void => {
      const command = encodeCommandSet(fields);
      writeStream(socket, prepareStream(command.length, peerMaxLength, contextId, true), command).catch(() => socket.destroy());
    };
    const respondNow = (p: PendingStore, status: number): void => {
      if (ended) return;
      send(p.contextId, {
        commandField: C_STORE_RSP,
        affectedSopClassUid: p.command.affectedSopClassUid,
        messageIdBeingRespondedTo: p.command.messageId,
        dataSetType: NO_DATA_SET,
        status,
        affectedSopInstanceUid: p.command.affectedSopInstanceUid,
      });
    };
    // With pdataDelayMs, the answer waits until the store's PDUs have cost their time (a timer can fire a
    // little early by the clock it is compared with: it is then set again for the rest).
    const respond = (p: PendingStore, status: number): void => {
      const wait = o.pdataDelayMs ? p.commandAt + p.dataPdus * o.pdataDelayMs - performance.now() : 0;
      if (wait > 0) setTimeout(() => respond(p, status), wait);
      else respondNow(p, status);
    };
    const completeStore = (p: PendingStore): void => {
      counters.stores++;
      const refused = o.failEvery !== undefined && counters.stores % o.failEvery === 0;
      if (!p.file) {
        respond(p, refused ? STATUS_OUT_OF_RESOURCES : STATUS_SUCCESS);
        return;
      }
      const file = p.file;
      const failed = (err: Error): void => {
        file.stream.destroy();
        rmSync(file.part, { force: true });
        respond(p, writeFailureStatus(err));
      };
      if (file.error) {
        failed(file.error);
        return;
      }
      // Called once the file is closed, with the error if a write or the close failed.
      file.stream.end((err?: Error | null) => {
        if (ended) return;
        const error = err ?? file.error;
        if (error) {
          failed(error);
          return;
        }
        let status = refused ? STATUS_OUT_OF_RESOURCES : STATUS_SUCCESS;
        try {
          renameSync(file.part, file.final);
        } catch (e) {
          o.log(`writing ${file.final} failed: ${(e as Error).message}`);
          rmSync(file.part, { force: true });
          status = STATUS_PROCESSING_FAILURE;
        }
        respond(p, status);
      });
    };

    const reader = new MessageReader({
      onPdu: (type, pdu) => {
        switch (type) {
          case PduType.AssociateRq: {
            if (reader.contexts !== undefined) throw new ProtocolError('unexpected-pdu', 'a second A-ASSOCIATE-RQ');
            const rq = decodeAssociate(pdu);
            const accepted = acceptAll(rq);
            peerMaxLength = announcedMaxLength(rq) ?? 0;
            for (const c of accepted) if (c.transferSyntax !== undefined) contexts.set(c.id, { abstractSyntax: c.abstractSyntax, transferSyntax: c.transferSyntax });
            reader.contexts = new Set(contexts.keys());
            reader.maxLength = o.maxLength;
            counters.associations++;
            socket.write(buildAssociateAc(rq, accepted, o.maxLength));
            return;
          }
          case PduType.ReleaseRq:
            if (reader.contexts === undefined) throw new ProtocolError('unexpected-pdu', 'A-RELEASE-RQ before the association');
            socket.end(encodeReleaseRp());
            finish();
            return;
          case PduType.Abort:
            counters.abortsReceived++;
            if (pending) o.log(`A-ABORT received (${describeAbort(decodeAbort(pdu))}) during a C-STORE`);
            finish();
            socket.destroy();
            return;
          default:
            throw new ProtocolError('unexpected-pdu', `${pduTypeName(type)} from the requestor`);
        }
      },
      onCommand: (contextId, command) => {
        if (pending) throw new ProtocolError('unexpected-pdu', `${commandName(command.commandField ?? 0)} before the C-STORE data set ended`);
        if (command.commandField === C_STORE_RQ && command.dataSetType !== NO_DATA_SET) {
          const p: PendingStore = { contextId, command, commandAt: performance.now(), dataPdus: 0 };
          if (o.storeDir) {
            const uid = command.affectedSopInstanceUid ?? '';
            const name = SAFE_UID.test(uid) ? uid : `store-${++this.fileCounter}`;
            const final = path.join(o.storeDir, `${name}.dcm`);
            const part = `${final}.${process.pid}-${++this.fileCounter}.part`;
            const stream = createWriteStream(part, { highWaterMark: FILE_HIGH_WATER_MARK });
            stream.write(
              encodeFileMeta({
                sopClassUid: command.affectedSopClassUid ?? contexts.get(contextId)!.abstractSyntax,
                sopInstanceUid: uid,
                transferSyntax: contexts.get(contextId)!.transferSyntax,
              }),
            );
            const file: NonNullable<PendingStore['file']> = { stream, part, final };
            // A write that fails (a full disk) mid-data-set: logged once, the rest of the data set is read
            // and dropped (a socket paused for the file's 'drain' would wait for ever), and the C-STORE is
            // answered with a failure when it ends.
            stream.on('error', (err) => {
              if (file.error) return;
              file.error = err;
              o.log(`writing ${final} failed: ${err.message}`);
              socket.resume();
            });
            p.file = file;
          }
          pending = p;
        } else if (command.commandField === C_ECHO_RQ) {
          counters.echoes++;
          send(contextId, {
            commandField: C_ECHO_RSP,
            affectedSopClassUid: command.affectedSopClassUid,
            messageIdBeingRespondedTo: command.messageId,
            dataSetType: NO_DATA_SET,
            status: STATUS_SUCCESS,
          });
        } else if (command.commandField !== undefined && (command.commandField & RESPONSE_BIT) === 0) {
          if (command.dataSetType !== NO_DATA_SET) throw new ProtocolError('unexpected-pdu', `${commandName(command.commandField)} with a data set is not served`);
          send(contextId, {
            commandField: command.commandField | RESPONSE_BIT,
            messageIdBeingRespondedTo: command.messageId,
            dataSetType: NO_DATA_SET,
            status: STATUS_UNRECOGNIZED_OPERATION,
          });
        }
      },
      onDataset: (contextId, bytes) => {
        if (!pending || pending.contextId !== contextId) throw new ProtocolError('unexpected-pdu', `data set fragment on context ${contextId} without its C-STORE-RQ`);
        if (!dataInPdu) {
          dataInPdu = true;
          pending.dataPdus++;
          counters.dataPdus++;
        }
        const file = pending.file;
        if (file && !file.error && !file.stream.write(bytes)) {
          socket.pause();
          file.stream.once('drain', () => socket.resume());
        }
      },
      onDataPduEnd: () => {
        dataInPdu = false;
      },
      onDatasetEnd: () => {
        const p = pending!;
        pending = undefined;
        completeStore(p);
      },
    });

    socket.setTimeout(o.idleTimeoutMs, () => abort(AbortReason.NotSpecified, `nothing received for ${o.idleTimeoutMs} ms`));
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        if (err instanceof ProtocolError) abort(err.reason, `${err.code}: ${err.message}`);
        else throw err;
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.sockets.delete(socket);
      finish();
    });
  }
}
