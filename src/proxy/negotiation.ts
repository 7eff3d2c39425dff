// Association negotiation seen from the middle: each peer's real Maximum Length, the value written in its
// place (--max-pdu-rq in the RQ, --max-pdu in the AC), the accepted presentation contexts, each link's
// re-fragmenter set to its receiver's real limit, and the two log lines that describe it. The Negotiator
// works on the two links, not on sockets (the sockets only give the log lines their peer and TLS fields).

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { AssociatePdu } from '../pdu/associate.js';
import {
  calledAe,
  callingAe,
  decodeAssociate,
  implementationClassUid,
  implementationVersionName,
  maxLength,
  presentationContextsAc,
  presentationContextsRq,
  rewriteMaxLength,
} from '../pdu/associate.js';
import { AbortReason } from '../pdu/constants.js';
import { decodeReject } from '../pdu/control.js';
import { ProtocolError } from '../pdu/errors.js';
import { MIN_USABLE_MAX_LENGTH } from '../pdu/pdata.js';
import type { MessageTracker } from '../dimse/tracker.js';
import type { FragmentPolicy } from '../transform/refragment.js';
import type { ProxyOptions } from '../config/options.js';
import type { Refusal } from './admission.js';
import type { Arm } from '../experiment/arms.js';
import type { InFlight, Link } from './link.js';
import { tlsFields } from './tls.js';

/** A protocol error in what a peer sent: the association is aborted (A-ABORT with `reason`). */
export type Fail = (message: string, code: string, reason: AbortReason) => void;

/** Negotiates one association over its two links: toScp carries the RQ, toScu the AC. */
export class Negotiator {
  /** The real limits: what each peer announced itself (0 = none). */
  private scuMax = 0;
  private scpMax = 0;
  private readonly options: ProxyOptions;
  private readonly log: Logger;
  private readonly toScp: Link;
  private readonly toScu: Link;
  private readonly tracker: MessageTracker;
  private readonly fail: Fail;
  /** The association's arm (set when it is admitted): its Maximum Length goes into the AC; undefined = the SCP's. */
  arm: Arm | undefined;

  constructor(options: ProxyOptions, log: Logger, links: { toScp: Link; toScu: Link }, tracker: MessageTracker, fail: Fail) {
    this.options = options;
    this.log = log;
    this.toScp = links.toScp;
    this.toScu = links.toScu;
    this.tracker = tracker;
    this.fail = fail;
  }

  /** Decode an A-ASSOCIATE-RQ/AC from `sender`; undefined when malformed (then the association is aborted). */
  decode(raw: Buffer, sender: string): AssociatePdu | undefined {
    try {
      return decodeAssociate(raw);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.fail(`${sender} sent ${err.message}`, err.code, err.reason);
      return undefined;
    }
  }

  /** The admitted RQ: forward it with the Maximum Length the SCP is to see. False when the association was aborted. */
  request(raw: Buffer, rq: AssociatePdu, record: InFlight, scu: Socket): boolean {
    const scuMax = this.limitOf(rq, 'SCU');
    if (scuMax === undefined) return false;
    this.scuMax = scuMax;
    const { out, written } = withMaxLength(raw, rq, scuMax, this.options.maxPduRq);
    // What the SCP may send back is bounded by what it was told; the SCU's real limit bounds the proxy.
    this.toScu.announcedMax = written;
    this.log.info(requestedLogFields(rq, scu, scuMax), 'association requested');
    this.toScp.forward(out, record);
    return true;
  }

  /**
   * The SCP's AC: set both links up (limits, accepted contexts, re-fragmenters) and forward it with the
   * Maximum Length the SCU is to see. False when the association was aborted.
   */
  accept(raw: Buffer, record: InFlight, scu: Socket, scp: Socket | undefined): boolean {
    const ac = this.decode(raw, 'SCP');
    if (!ac) return false;
    const scpMax = this.limitOf(ac, 'SCP');
    if (scpMax === undefined) return false;
    this.scpMax = scpMax;
    const { out, written } = withMaxLength(raw, ac, scpMax, this.arm?.maxPdu);
    this.toScp.announcedMax = written;
    this.tracker.setLimits(written, scpMax);
    this.tracker.setTransferSyntaxes(acceptedTransferSyntaxes(presentationContextsAc(ac)));
    const accepted = acceptedContextTable(presentationContextsAc(ac));
    this.toScp.acceptedContexts = accepted;
    this.toScu.acceptedContexts = accepted;
    this.toScp.refragmenter.configure(scpMax, this.options.fragment);
    this.toScu.refragmenter.configure(this.scuMax, this.options.fragment);
    const limits = { scpAnnounced: scpMax, writtenToScu: written, scuAnnounced: this.scuMax, writtenToScp: this.toScu.announcedMax };
    this.log.info({ arm: this.arm?.label, ...negotiatedLogFields(ac, limits, this.options.fragment, scu, scp) }, 'association negotiated');
    this.toScu.forward(out, record);
    return true;
  }

  /** The peer's real Maximum Length (0 = none); undefined when unusable (then the association is aborted). */
  private limitOf(pdu: AssociatePdu, sender: string): number | undefined {
    const max = peerMaxLength(pdu);
    if (max.missing) this.log.warn({ from: sender }, 'no Maximum Length sub-item: treated as no maximum (0)');
    if (max.unusable === undefined) return max.value;
    // A Maximum Length of 1..7 leaves no room for a fragment: a protocol error (A-ABORT, reason 6).
    this.fail(`${sender} sent ${max.unusable}`, 'max-length-too-small', AbortReason.InvalidPduParameterValue);
    return undefined;
  }
}

/** A peer's Maximum Length (0 = none) and what is wrong with it, if anything. */
export interface PeerMaxLength {
  value: number;
  /** No Maximum Length sub-item: treated as no maximum (0). */
  missing: boolean;
  /** A Maximum Length of 1..7 leaves no room for a fragment (a protocol error): why, else undefined. */
  unusable: string | undefined;
}

export function peerMaxLength(pdu: AssociatePdu): PeerMaxLength {
  const announced = maxLength(pdu);
  const value = announced ?? 0;
  const unusable = value === 0 || value >= MIN_USABLE_MAX_LENGTH ? undefined : `Maximum Length ${value}: no P-DATA-TF can carry data within it (${MIN_USABLE_MAX_LENGTH} at least)`;
  return { value, missing: announced === undefined, unusable };
}

/**
 * The PDU to forward and the Maximum Length it says: `raw` as it came when `forced` is undefined, else
 * rewritten to say `forced`.
 */
export function withMaxLength(raw: Buffer, pdu: AssociatePdu, announced: number, forced: number | undefined): { out: Buffer; written: number } {
  if (forced === undefined) return { out: raw, written: announced };
  return { out: rewriteMaxLength(raw, pdu, forced), written: forced };
}

/** The transfer syntax of each accepted presentation context, by id. */
export function acceptedTransferSyntaxes(contexts: ReadonlyArray<{ id: number; result: number; transferSyntax: string | undefined }>): Map<number, string> {
  const out = new Map<number, string>();
  for (const c of contexts) if (c.result === 0 && c.transferSyntax !== undefined) out.set(c.id, c.transferSyntax);
  return out;
}

/** Accepted presentation context ids as a 256-entry table (1 = accepted) for the per-PDV check. */
export function acceptedContextTable(contexts: ReadonlyArray<{ id: number; result: number }>): Uint8Array {
  const table = new Uint8Array(256);
  for (const c of contexts) if (c.result === 0) table[c.id] = 1;
  return table;
}

export function contextResultName(result: number): string {
  return ['accepted', 'user-rejection', 'no-reason', 'abstract-syntax-not-supported', 'transfer-syntaxes-not-supported'][result] ?? `result-${result}`;
}

export function describeReject(pdu: Buffer): string {
  const { result, source, reason } = decodeReject(pdu);
  return `A-ASSOCIATE-RJ result ${result} source ${source} reason ${reason}`;
}

/** The fields of the 'association rejected by the proxy' line (peer strings are values of fields, never part of the message or of a key). */
export function refusalLogFields(refusal: Refusal, peer: string | undefined, rq: AssociatePdu): Record<string, unknown> {
  return { code: refusal.code, reason: refusal.reason, peer, callingAe: callingAe(rq), calledAe: calledAe(rq), result: decodeReject(refusal.reject) };
}

/** The fields of the 'association requested' line. */
export function requestedLogFields(rq: AssociatePdu, scu: Socket, scuMax: number): Record<string, unknown> {
  return {
    peer: `${scu.remoteAddress}:${scu.remotePort}`,
    callingAe: callingAe(rq),
    calledAe: calledAe(rq),
    maxLength: scuMax,
    implementationClassUid: implementationClassUid(rq),
    implementationVersionName: implementationVersionName(rq),
    contexts: presentationContextsRq(rq).map((c) => ({ id: c.id, abstractSyntax: c.abstractSyntax, transferSyntaxes: c.transferSyntaxes })),
    ...legTls(scu, undefined),
  };
}

/** What the 'association negotiated' line reports of the Maximum Lengths. */
export interface NegotiatedLimits {
  scpAnnounced: number;
  writtenToScu: number;
  scuAnnounced: number;
  writtenToScp: number;
}

/** The fields of the 'association negotiated' line. */
export function negotiatedLogFields(ac: AssociatePdu, limits: NegotiatedLimits, fragment: FragmentPolicy, scu: Socket, scp: Socket | undefined): Record<string, unknown> {
  return {
    maxPdu: {
      toScp: { scpAnnounced: limits.scpAnnounced, writtenToScu: limits.writtenToScu },
      toScu: { scuAnnounced: limits.scuAnnounced, writtenToScp: limits.writtenToScp },
    },
    fragment: fragment.mode === 'size' ? fragment.size : fragment.mode,
    implementationClassUid: implementationClassUid(ac),
    implementationVersionName: implementationVersionName(ac),
    contexts: presentationContextsAc(ac).map((c) =>
      c.result === 0 ? { id: c.id, result: 'accepted', transferSyntax: c.transferSyntax } : { id: c.id, result: contextResultName(c.result) },
    ),
    ...legTls(scu, scp),
  };
}

/** `tls: { scu: {...}, scp: {...} }` for the legs that use TLS: version, cipher suite, peer certificate subject. */
function legTls(scu: Socket, scp: Socket | undefined): { tls?: Record<string, unknown> } {
  const out: Record<string, unknown> = {};
  const a = tlsFields(scu);
  if (a) out.scu = a;
  const b = tlsFields(scp);
  if (b) out.scp = b;
  return Object.keys(out).length > 0 ? { tls: out } : {};
}
