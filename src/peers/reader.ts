// What the built-in peers read from their socket: the framer's events turned into whole association PDUs,
// whole command sets (small, bounded) and data set fragments as they arrive (never assembled). It also
// enforces what this peer announced: no P-DATA-TF over its Maximum Length, no PDV on a context the
// association did not accept. Pure: fed chunks, it calls its handler or throws ProtocolError.

import { decodeCommandSet, MAX_COMMAND_SET_LENGTH } from '../dimse/command.js';
import type { CommandSet } from '../dimse/command.js';
import { MCH_COMMAND, MCH_LAST } from '../pdu/constants.js';
import { ProtocolError } from '../pdu/errors.js';
import { PduFramer } from '../pdu/framer.js';
import type { FrameHandler } from '../pdu/framer.js';

export interface MessageHandler {
  /** A whole PDU other than P-DATA-TF (association, release, abort). */
  onPdu(type: number, pdu: Buffer): void;
  /** A whole command set, decoded; `bytes` is a private copy. */
  onCommand(contextId: number, command: CommandSet, bytes: Buffer): void;
  /** Data set bytes in order (a view of a socket chunk: hand it on or drop it, never keep it for later writes). */
  onDataset(contextId: number, bytes: Buffer): void;
  /** The data set's last fragment has been read. */
  onDatasetEnd(contextId: number): void;
  /** A P-DATA-TF PDU has been read to its end (after its fragments' calls). */
  onDataPduEnd?(): void;
}

export class MessageReader {
  private readonly framer = new PduFramer();
  /** This peer's Maximum Length (0 = none): a P-DATA-TF over it is a protocol error. */
  maxLength = 0;
  /** Accepted presentation context ids; undefined until the association is negotiated (then all are refused). */
  contexts: ReadonlySet<number> | undefined;
  private command: Buffer[] = [];
  private commandLength = 0;
  private pdv = { contextId: 0, mch: 0 };
  private readonly events: FrameHandler;

  constructor(private readonly handler: MessageHandler) {
    this.events = {
      onPdu: (type, pdu) => this.handler.onPdu(type, pdu),
      onDataStart: (length) => {
        if (this.maxLength !== 0 && length > this.maxLength) {
          throw new ProtocolError('pdu-over-maximum', `P-DATA-TF PDU-length ${length} is over the announced Maximum Length ${this.maxLength}`);
        }
      },
      onPdvStart: (_itemLength, contextId, mch) => {
        if (!this.contexts?.has(contextId)) throw new ProtocolError('unknown-context-id', `PDV on presentation context ${contextId}, which was not accepted`);
        this.pdv = { contextId, mch };
      },
      onPdvData: (bytes) => {
        if (this.pdv.mch & MCH_COMMAND) {
          this.commandLength += bytes.length;
          if (this.commandLength > MAX_COMMAND_SET_LENGTH) {
            throw new ProtocolError('invalid-command-set', `command set over ${MAX_COMMAND_SET_LENGTH} bytes`);
          }
          this.command.push(Buffer.from(bytes));
        } else this.handler.onDataset(this.pdv.contextId, bytes);
      },
      onPdvEnd: () => {
        if (!(this.pdv.mch & MCH_LAST)) return;
        if (this.pdv.mch & MCH_COMMAND) {
          const bytes = Buffer.concat(this.command, this.commandLength);
          this.command = [];
          this.commandLength = 0;
          let decoded: CommandSet;
          try {
            decoded = decodeCommandSet(bytes);
          } catch (err) {
            throw new ProtocolError('invalid-command-set', `undecodable command set: ${(err as Error).message}`);
          }
          this.handler.onCommand(this.pdv.contextId, decoded, bytes);
        } else this.handler.onDatasetEnd(this.pdv.contextId);
      },
      onDataEnd: () => this.handler.onDataPduEnd?.(),
    };
  }

  /** Feed a socket chunk. Throws ProtocolError on the first violation (the framer then ignores the rest). */
  push(chunk: Buffer): void {
    this.framer.push(chunk, 0, this.events);
  }

  /** Stop reading (after an A-ABORT or a release): later bytes are ignored. */
  stop(): void {
    this.framer.stop();
  }
}
