// Per-association DIMSE message tracking: which request is on the wire, when its bytes came and went, which
// responses answer it, and where the time went. Pure: fed P-DATA events (from the links), PDU forward
// reports and two counters per leg; it reports MessageRecords through a callback. No sockets, no clock.
//
// In each direction the messages follow one another (PS3.8 9.3.5: a P-DATA-TF holds PDVs of one message;
// a message's command fragments come first, then its data set fragments, PS3.7 6.3.1). A request is
// matched to its responses by MessageID / MessageIDBeingRespondedTo, per direction: requests from the SCU
// (to_scp) are answered to_scu, and requests from the SCP (C-GET's C-STORE sub-operations) the other way.

import { FIRST_GENERATION } from '../events/events.js';
import type { AssociationTags, Direction, MessageRecord, PduRecord } from '../events/events.js';
import type { CommandSet } from './command.js';
import { C_CANCEL_RQ, CommandSetError, MAX_COMMAND_SET_LENGTH, NO_DATA_SET, RESPONSE_BIT, commandName, decodeCommandSet, isPending } from './command.js';

/** PS3.8 9.3.5.1 message control header bits. */
const MCH_COMMAND = 0x01;
const MCH_LAST = 0x02;

/** Counters a leg (one link) keeps for its sender; all cumulative microseconds since the accept. */
export interface LegTimes {
  /** Time spent waiting for the sender's next bytes while not pausing it. */
  idleUs(): number;
  /** Time the sender was paused on backpressure (the receiver was not taking bytes), up to now. */
  blockedUs(): number;
  /**
   * The proxy's own time on the sender's chunks: processing them (chunks done with only), and the waits
   * between them while the event loop was busy with other work (src/proxy/sender-time.ts).
   */
  busyUs(): number;
}

/** What a link tells the tracker, in stream order. `time`s are the link's chunk receive times. */
export interface PDataObserver {
  /**
   * A P-DATA-TF starts; its first byte arrived at `firstByteUs`, when the leg's LegTimes read `idleUs`,
   * `blockedUs` and `busyUs` (the link passes the values of the chunk that held the first byte, which may be
   * an earlier chunk than the one completing the header; busy before that chunk's processing).
   */
  dataStart(direction: Direction, firstByteUs: number, idleUs: number, blockedUs: number, busyUs: number): void;
  pdvStart(direction: Direction, contextId: number, mch: number): void;
  pdvData(direction: Direction, bytes: Buffer): void;
  /** The PDV's last byte arrived at `timeUs`; `pdu` is the record of the PDU holding it. */
  pdvEnd(direction: Direction, timeUs: number, pdu: PduRecord): void;
}

/** Per-direction totals (association summary). */
export interface TimeSplit {
  messages: number;
  idleUs: number;
  blockedUs: number;
  responseUs: number;
  busyUs: number;
}

export interface TrackerEvents {
  message(record: MessageRecord): void;
  /** A command set that cannot be decoded (malformed, or over MAX_COMMAND_SET_LENGTH): no row for it. */
  undecodable(direction: Direction, why: string): void;
}

const enum Phase {
  /** Between messages. */
  Idle,
  /** Command fragments arriving. */
  Command,
  /** Data set fragments arriving. */
  Dataset,
}

/** A request being tracked; becomes a MessageRecord. */
interface Request extends MessageRecord {
  idleAtStart: number;
  blockedAtStart: number;
  busyAtStart: number;
  /** The proxy's busy time on the request's leg (set when its last byte is forwarded, or at the end). */
  requestBusyUs: number | undefined;
  /** The response leg's busy total when the first response byte arrived; undefined before. */
  responseBusyAtStart: number | undefined;
  /** The response leg's busy time up to the final response's last byte. */
  responseBusyUs: number;
  /** The PDU holding the request's last byte, until it has been reported forwarded. */
  lastPdu: PduRecord | undefined;
  forwardDone: boolean;
  finalDone: boolean;
  /** Reported already: a request is reported once, whichever way it ends. */
  reported: boolean;
}

/** A message (request or response) being received in one direction. */
interface Incoming {
  firstByteUs: number;
  idleAtStart: number;
  blockedAtStart: number;
  busyAtStart: number;
  contextId: number;
  command: CommandSet | undefined;
  /** The request it is (requests), or the request it answers (responses), when tracked. */
  request: Request | undefined;
  isResponse: boolean;
}

class Stream {
  phase = Phase.Idle;
  /** Snapshot at the start of the current P-DATA-TF. */
  pduFirstByteUs = 0;
  pduIdleUs = 0;
  pduBlockedUs = 0;
  pduBusyUs = 0;
  mch = 0;
  message: Incoming | undefined;
  commandPieces: Buffer[] = [];
  commandLength = 0;
  overflow = false;
  datasetBytes = 0;
  /** Requests sent this way, not yet finally answered, by MessageID. */
  readonly outstanding = new Map<number, Request>();
}

const other = (d: Direction): Direction => (d === 'to_scp' ? 'to_scu' : 'to_scp');

export class MessageTracker implements PDataObserver {
  private readonly assoc: number;
  private readonly legs: Readonly<Record<Direction, LegTimes>>;
  private readonly epochMs: number;
  private readonly events: TrackerEvents;
  private readonly streams: Record<Direction, Stream> = { to_scp: new Stream(), to_scu: new Stream() };
  /** Requests whose last byte arrived but has not been reported forwarded yet (normally 0 or 1). */
  private awaitingForward: Request[] = [];
  private maxPdu = 0;
  private scpMaxPdu = 0;
  private tags: AssociationTags = { arm: '', callingAet: '', calledAet: '', generation: FIRST_GENERATION };
  /** The transfer syntax accepted per presentation context id (from the A-ASSOCIATE-AC). */
  private transferSyntaxes: ReadonlyMap<number, string> = new Map();
  private closed = false;
  readonly totals: Record<Direction, TimeSplit> = {
    to_scp: { messages: 0, idleUs: 0, blockedUs: 0, responseUs: 0, busyUs: 0 },
    to_scu: { messages: 0, idleUs: 0, blockedUs: 0, responseUs: 0, busyUs: 0 },
  };
  undecodable = 0;

  /**
   * `epochMs`: wall-clock milliseconds (Unix epoch) of time 0 of the association's clock, for started_at.
   * `legs`: each direction's counters, read when a message starts, ends and is forwarded.
   */
  constructor(assoc: number, legs: Readonly<Record<Direction, LegTimes>>, epochMs: number, events: TrackerEvents) {
    this.assoc = assoc;
    this.legs = legs;
    this.epochMs = epochMs;
    this.events = events;
  }

  /** The Maximum Length the SCU was told (after any rewrite) and the SCP's own, from the A-ASSOCIATE-AC. */
  setLimits(maxPdu: number, scpMaxPdu: number): void {
    this.maxPdu = maxPdu;
    this.scpMaxPdu = scpMaxPdu;
  }

  /** The association's arm, AE titles and generation, for every message row (set when it is admitted). */
  setTags(tags: AssociationTags): void {
    this.tags = tags;
  }

  /** The accepted presentation contexts' transfer syntaxes, by context id (from the A-ASSOCIATE-AC). */
  setTransferSyntaxes(byContext: ReadonlyMap<number, string>): void {
    this.transferSyntaxes = byContext;
  }

  // ---- PDataObserver ----------------------------------------------------------------------------

  dataStart(direction: Direction, firstByteUs: number, idleUs: number, blockedUs: number, busyUs: number): void {
    const s = this.streams[direction];
    s.pduFirstByteUs = firstByteUs;
    s.pduIdleUs = idleUs;
    s.pduBlockedUs = blockedUs;
    s.pduBusyUs = busyUs;
  }

  pdvStart(direction: Direction, contextId: number, mch: number): void {
    const s = this.streams[direction];
    s.mch = mch;
    if (mch & MCH_COMMAND) {
      if (s.phase === Phase.Command) return;
      if (s.phase === Phase.Dataset) this.cutShort(s); // a new command before the data set's last fragment
      s.phase = Phase.Command;
      s.message = {
        firstByteUs: s.pduFirstByteUs,
        idleAtStart: s.pduIdleUs,
        blockedAtStart: s.pduBlockedUs,
        busyAtStart: s.pduBusyUs,
        contextId,
        command: undefined,
        request: undefined,
        isResponse: false,
      };
      s.commandPieces = [];
      s.commandLength = 0;
      s.overflow = false;
      s.datasetBytes = 0;
    } else if (s.phase !== Phase.Dataset) {
      // Data set bytes with no command announcing one: nothing to attribute them to.
      s.mch = 0;
    }
  }

  pdvData(direction: Direction, bytes: Buffer): void {
    const s = this.streams[direction];
    if (s.phase === Phase.Dataset) {
      if (!(s.mch & MCH_COMMAND)) s.datasetBytes += bytes.length;
      return;
    }
    if (s.phase !== Phase.Command || !(s.mch & MCH_COMMAND) || s.overflow) return;
    if (s.commandLength + bytes.length > MAX_COMMAND_SET_LENGTH) {
      s.overflow = true;
      s.commandPieces = [];
      return;
    }
    // Copied, not kept as views: a view would keep its whole socket chunk alive, and a peer sending a
    // command set a byte per chunk could then pin far more memory than the 64 KiB cap.
    s.commandPieces.push(Buffer.from(bytes));
    s.commandLength += bytes.length;
  }

  pdvEnd(direction: Direction, timeUs: number, pdu: PduRecord): void {
    const s = this.streams[direction];
    if (!(s.mch & MCH_LAST)) return;
    if (s.phase === Phase.Command && s.mch & MCH_COMMAND) {
      this.commandComplete(direction, s, timeUs, pdu);
    } else if (s.phase === Phase.Dataset && !(s.mch & MCH_COMMAND)) {
      this.messageComplete(direction, s, timeUs, pdu);
    }
  }

  // ---- Messages ---------------------------------------------------------------------------------

  private commandComplete(direction: Direction, s: Stream, timeUs: number, pdu: PduRecord): void {
    const message = s.message!;
    let command: CommandSet;
    try {
      if (s.overflow) throw new CommandSetError(`command set longer than ${MAX_COMMAND_SET_LENGTH} bytes`);
      const bytes = s.commandPieces.length === 1 ? s.commandPieces[0]! : Buffer.concat(s.commandPieces, s.commandLength);
      command = decodeCommandSet(bytes);
      if (command.commandField === undefined) throw new CommandSetError('no CommandField (0000,0100)');
    } catch (err) {
      if (!(err instanceof CommandSetError)) throw err;
      this.undecodable++;
      this.events.undecodable(direction, err.message);
      this.reset(s);
      return;
    } finally {
      s.commandPieces = [];
    }
    message.command = command;
    const field = command.commandField!;
    message.isResponse = (field & RESPONSE_BIT) !== 0;
    if (message.isResponse) {
      const answered = command.messageIdBeingRespondedTo;
      const request = answered === undefined ? undefined : this.streams[other(direction)].outstanding.get(answered);
      if (request) {
        message.request = request;
        if (request.responseFirstByteUs === undefined) {
          request.responseFirstByteUs = message.firstByteUs;
          request.responseBusyAtStart = message.busyAtStart;
        }
      }
    } else if (field !== C_CANCEL_RQ) {
      // C-CANCEL-RQ has no response and no MessageID of its own: it gets no row.
      if (command.messageId === undefined) {
        this.undecodable++;
        this.events.undecodable(direction, `${commandName(field)} without MessageID (0000,0110)`);
      } else {
        message.request = this.newRequest(direction, message, command, field, command.messageId);
      }
    }
    if (command.dataSetType === undefined || command.dataSetType === NO_DATA_SET) {
      this.messageComplete(direction, s, timeUs, pdu);
    } else {
      s.phase = Phase.Dataset;
    }
  }

  private newRequest(direction: Direction, message: Incoming, command: CommandSet, field: number, messageId: number): Request {
    const outstanding = this.streams[direction].outstanding;
    const previous = outstanding.get(messageId);
    if (previous) {
      // The sender reused a MessageID still awaiting its final response: the old one will not be answered.
      outstanding.delete(messageId);
      this.emit(previous);
    }
    const request: Request = {
      assoc: this.assoc,
      direction,
      messageId,
      command: commandName(field),
      contextId: message.contextId,
      sopInstanceUid: command.affectedSopInstanceUid ?? '',
      bytes: 0,
      maxPdu: this.maxPdu,
      scpMaxPdu: this.scpMaxPdu,
      requestFirstByteUs: message.firstByteUs,
      requestLastByteUs: undefined,
      requestForwardedUs: undefined,
      responseFirstByteUs: undefined,
      responseLastByteUs: undefined,
      senderIdleUs: 0,
      receiverBlockedUs: 0,
      proxyBusyUs: 0,
      pendingResponses: 0,
      status: undefined,
      startedAt: new Date(this.epochMs + message.firstByteUs / 1000).toISOString(),
      arm: this.tags.arm,
      callingAet: this.tags.callingAet,
      calledAet: this.tags.calledAet,
      sopClassUid: command.affectedSopClassUid ?? '',
      transferSyntaxUid: this.transferSyntaxes.get(message.contextId) ?? '',
      generation: this.tags.generation,
      idleAtStart: message.idleAtStart,
      blockedAtStart: message.blockedAtStart,
      busyAtStart: message.busyAtStart,
      requestBusyUs: undefined,
      responseBusyAtStart: undefined,
      responseBusyUs: 0,
      lastPdu: undefined,
      forwardDone: false,
      finalDone: false,
      reported: false,
    };
    outstanding.set(messageId, request);
    return request;
  }

  /** The message's last byte arrived at `timeUs` in `pdu`. */
  private messageComplete(direction: Direction, s: Stream, timeUs: number, pdu: PduRecord): void {
    const message = s.message!;
    const request = message.request;
    const datasetBytes = s.datasetBytes;
    this.reset(s);
    if (!request) return;
    if (!message.isResponse) {
      request.bytes = datasetBytes;
      request.requestLastByteUs = timeUs;
      request.senderIdleUs = this.legs[direction].idleUs() - request.idleAtStart;
      request.lastPdu = pdu;
      this.awaitingForward.push(request);
      return;
    }
    const status = message.command!.status;
    if (status !== undefined && isPending(status)) {
      request.pendingResponses++;
      return;
    }
    request.status = status;
    request.responseLastByteUs = timeUs;
    // Busy up to the arrival of the chunk holding the last byte (its processing comes after the duration's end).
    if (request.responseBusyAtStart !== undefined) request.responseBusyUs = this.legs[direction].busyUs() - request.responseBusyAtStart;
    request.finalDone = true;
    this.streams[request.direction].outstanding.delete(request.messageId);
    // Reported now when it was forwarded whole, or when it never will be: its data set was cut short (not
    // waiting to be forwarded, not still arriving). Otherwise forwarded() reports it.
    const arriving = this.streams[request.direction].message?.request === request;
    if (request.forwardDone || (!arriving && !this.awaitingForward.includes(request))) this.emit(request);
  }

  /** A data set cut short by a new command: what it had counts, its last byte never came. */
  private cutShort(s: Stream): void {
    const request = s.message?.request;
    if (request && !s.message!.isResponse) {
      request.bytes = s.datasetBytes;
      // Already answered: nothing more will come for it.
      if (request.finalDone) this.emit(request);
    }
    this.reset(s);
  }

  private reset(s: Stream): void {
    s.phase = Phase.Idle;
    s.message = undefined;
    s.commandPieces = [];
    s.commandLength = 0;
    s.overflow = false;
    s.datasetBytes = 0;
  }

  // ---- Forwarding and the end ------------------------------------------------------------------

  /** A PDU record was reported (forwarded, or given up at the end): it may hold a request's last byte. */
  forwarded(record: PduRecord): void {
    if (this.awaitingForward.length === 0) return;
    const i = this.awaitingForward.findIndex((r) => r.lastPdu === record);
    if (i < 0) return;
    const request = this.awaitingForward[i]!;
    this.awaitingForward.splice(i, 1);
    request.lastPdu = undefined;
    request.forwardDone = true;
    request.requestForwardedUs = record.forwardedUs;
    request.receiverBlockedUs = this.legs[request.direction].blockedUs() - request.blockedAtStart;
    // Reported from a write callback, after the last chunk was done with: its processing counts.
    request.requestBusyUs = this.legs[request.direction].busyUs() - request.busyAtStart;
    if (request.finalDone) this.emit(request);
  }

  /** The association is over: report every request still open, with what is known. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const open = new Set<Request>(this.awaitingForward);
    for (const direction of ['to_scp', 'to_scu'] as const) {
      const s = this.streams[direction];
      const inFlight = s.message;
      if (inFlight?.request && !inFlight.isResponse && inFlight.request.requestLastByteUs === undefined) {
        // Its last byte never came: what arrived counts.
        inFlight.request.bytes = s.datasetBytes;
        inFlight.request.senderIdleUs = this.legs[direction].idleUs() - inFlight.request.idleAtStart;
        open.add(inFlight.request); // answered already, it is no longer outstanding
      }
      for (const request of s.outstanding.values()) open.add(request);
      s.outstanding.clear();
    }
    this.awaitingForward = [];
    for (const request of [...open].sort((a, b) => a.requestFirstByteUs - b.requestFirstByteUs)) {
      if (!request.forwardDone) {
        request.receiverBlockedUs = this.legs[request.direction].blockedUs() - request.blockedAtStart;
        request.requestBusyUs = this.legs[request.direction].busyUs() - request.busyAtStart;
      }
      this.emit(request);
    }
  }

  private emit(request: Request): void {
    if (request.reported) return;
    request.reported = true;
    request.proxyBusyUs = (request.requestBusyUs ?? 0) + request.responseBusyUs;
    const totals = this.totals[request.direction];
    totals.messages++;
    totals.idleUs += request.senderIdleUs;
    totals.blockedUs += request.receiverBlockedUs;
    totals.busyUs += request.proxyBusyUs;
    const response = responseUs(request);
    if (response !== undefined) totals.responseUs += response;
    const {
      idleAtStart: _i,
      blockedAtStart: _b,
      busyAtStart: _u,
      requestBusyUs: _q,
      responseBusyAtStart: _s,
      responseBusyUs: _p,
      lastPdu: _l,
      forwardDone: _f,
      finalDone: _d,
      reported: _r,
      ...record
    } = request;
    this.events.message(record);
  }
}

/** Last request byte forwarded → first response byte (never below 0: a late write callback is not negative time). */
export function responseUs(m: MessageRecord): number | undefined {
  if (m.requestForwardedUs === undefined || m.responseFirstByteUs === undefined) return undefined;
  return Math.max(0, m.responseFirstByteUs - m.requestForwardedUs);
}

/**
 * First request byte → last byte of the final response, from the whole microseconds the CSV shows, so
 * that duration_ms is exactly (response_last_byte_us - request_first_byte_us) / 1000 of its own row.
 */
export function durationUs(m: MessageRecord): number | undefined {
  return m.responseLastByteUs === undefined ? undefined : Math.round(m.responseLastByteUs) - Math.round(m.requestFirstByteUs);
}
