// The built-in peers' A-ASSOCIATE-RQ and -AC (PS3.8 9.3.2, 9.3.3, Annex D.1), built on the project's codec.
// Pure: what to propose, what to accept.

import { buildFixedPart, encodeAssociate, presentationContextsRq } from '../pdu/associate.js';
import type { AssociatePdu, Item } from '../pdu/associate.js';
import { ItemType, PduType } from '../pdu/constants.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../dicom/part10.js';

/** The DICOM application context name (PS3.7 A.2.1). */
export const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';
/** Presentation context result 0 (acceptance) and 4 (transfer syntaxes not supported), PS3.8 9.3.3.2. */
const ACCEPTANCE = 0;
const TRANSFER_SYNTAXES_NOT_SUPPORTED = 4;

export interface ProposedContext {
  /** Odd, 1..255 (PS3.8 9.3.2.2). */
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

export interface AcceptedContext {
  id: number;
  abstractSyntax: string;
  /** Undefined when the context was not accepted. */
  transferSyntax: string | undefined;
}

function uid(value: string): Buffer {
  const b = Buffer.alloc(value.length + (value.length % 2));
  b.write(value, 0, 'latin1');
  return b;
}

function leaf(type: number, head: Buffer): Item {
  return { type, reserved: 0, head };
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

function userInformation(maxLength: number): Item {
  return {
    type: ItemType.UserInformation,
    reserved: 0,
    head: Buffer.alloc(0),
    children: [
      leaf(ItemType.MaximumLength, u32(maxLength)),
      leaf(ItemType.ImplementationClassUid, uid(IMPLEMENTATION_CLASS_UID)),
      leaf(ItemType.ImplementationVersionName, Buffer.from(IMPLEMENTATION_VERSION_NAME, 'latin1')),
    ],
  };
}

/** An A-ASSOCIATE-RQ proposing `contexts`, announcing `maxLength` (what this requestor receives). */
export function buildAssociateRq(o: { calledAet: string; callingAet: string; maxLength: number; contexts: readonly ProposedContext[] }): Buffer {
  return encodeAssociate({
    type: PduType.AssociateRq,
    reserved: 0,
    fixed: buildFixedPart(o.calledAet, o.callingAet),
    items: [
      leaf(ItemType.ApplicationContext, uid(APPLICATION_CONTEXT)),
      ...o.contexts.map((c) => ({
        type: ItemType.PresentationContextRq,
        reserved: 0,
        head: Buffer.from([c.id, 0, 0, 0]),
        children: [leaf(ItemType.AbstractSyntax, uid(c.abstractSyntax)), ...c.transferSyntaxes.map((t) => leaf(ItemType.TransferSyntax, uid(t)))],
      })),
      userInformation(o.maxLength),
    ],
  });
}

/**
 * What an accept-everything SCP answers: every proposed context accepted with its first transfer syntax
 * (what the sender has, so nothing is transcoded); one without a transfer syntax gets result 4.
 */
export function acceptAll(rq: AssociatePdu): AcceptedContext[] {
  return presentationContextsRq(rq).map((c) => ({ id: c.id, abstractSyntax: c.abstractSyntax ?? '', transferSyntax: c.transferSyntaxes[0] }));
}

/** The A-ASSOCIATE-AC for `rq`: its AE titles echoed (PS3.8 9.3.3), `accepted`, announcing `maxLength`. */
export function buildAssociateAc(rq: AssociatePdu, accepted: readonly AcceptedContext[], maxLength: number): Buffer {
  return encodeAssociate({
    type: PduType.AssociateAc,
    reserved: 0,
    fixed: Buffer.from(rq.fixed),
    items: [
      leaf(ItemType.ApplicationContext, uid(APPLICATION_CONTEXT)),
      ...accepted.map((c) => ({
        type: ItemType.PresentationContextAc,
        reserved: 0,
        head: Buffer.from([c.id, 0, c.transferSyntax !== undefined ? ACCEPTANCE : TRANSFER_SYNTAXES_NOT_SUPPORTED, 0]),
        children: c.transferSyntax !== undefined ? [leaf(ItemType.TransferSyntax, uid(c.transferSyntax))] : [],
      })),
      userInformation(maxLength),
    ],
  });
}
