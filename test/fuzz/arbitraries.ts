// fast-check input generators for the fuzz targets: structure-aware inputs (well-formed PDUs, command
// sets, P-DATA streams, with random options) and byte-level mutations of them and of the kept corpus
// (bit flips, overwritten length fields, truncation, insertion, splicing). fast-check shrinks a failing
// input to a small one before reporting it.

import fc from 'fast-check';
import type { Item } from '../../src/pdu/associate.js';
import { ItemType } from '../../src/pdu/constants.js';
import { encodeAbort, encodeReleaseRp, encodeReleaseRq, encodeReject } from '../../src/pdu/control.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { commandSet } from '../fixtures/annotated-commands.js';
import { EXPLICIT_LE, IMPLICIT_LE, SECONDARY_CAPTURE, VERIFICATION, buildAc, buildRq } from '../helpers/raw.js';
import type { TargetName } from './targets.js';

const bytes = (max: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));

/** Values that break length arithmetic. */
const INTERESTING_32 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 68, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x100000, 0x100001, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

type Mutation = (b: Buffer) => Buffer;

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })).map(([at, bit]): Mutation => (b) => {
    if (b.length === 0) return b;
    const c = Buffer.from(b);
    c[at % c.length]! ^= 1 << bit;
    return c;
  }),
  fc.tuple(fc.nat(), fc.constantFrom(...INTERESTING_32), fc.boolean()).map(([at, v, wide]): Mutation => (b) => {
    const size = wide ? 4 : 2;
    if (b.length < size) return b;
    const c = Buffer.from(b);
    const pos = at % (c.length - size + 1);
    if (wide) c.writeUInt32BE(v >>> 0, pos);
    else c.writeUInt16BE(v & 0xffff, pos);
    return c;
  }),
  fc.nat().map(
    (n): Mutation =>
      (b) =>
        b.subarray(0, b.length === 0 ? 0 : n % b.length),
  ),
  fc.tuple(fc.nat(), bytes(16)).map(([at, ins]): Mutation => (b) => {
    const pos = b.length === 0 ? 0 : at % b.length;
    return Buffer.concat([b.subarray(0, pos), ins, b.subarray(pos)]);
  }),
  fc.tuple(fc.nat(), fc.nat()).map(([a, n]): Mutation => (b) => {
    if (b.length === 0) return b;
    const pos = a % b.length;
    return Buffer.concat([b.subarray(0, pos), b.subarray(Math.min(b.length, pos + 1 + (n % 32)))]);
  }),
);

/** `base`, then up to `max` mutations. */
export function mutated(base: fc.Arbitrary<Buffer>, max = 4): fc.Arbitrary<Buffer> {
  return fc.tuple(base, fc.array(mutation, { maxLength: max })).map(([b, ms]) => ms.reduce((acc, m) => m(acc), b));
}

/** Two inputs cut and joined. */
function spliced(a: fc.Arbitrary<Buffer>, b: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  return fc.tuple(a, b, fc.nat(), fc.nat()).map(([x, y, i, j]) => Buffer.concat([x.subarray(0, x.length ? i % x.length : 0), y.subarray(y.length ? j % y.length : 0)]));
}

const uidString = fc.array(fc.integer({ min: 0, max: 999 }), { minLength: 1, maxLength: 12 }).map((parts) => `1.2.${parts.join('.')}`);

const leafItem = (types: number[]): fc.Arbitrary<Item> => fc.record({ type: fc.constantFrom(...types), reserved: fc.constantFrom(0, 0, 0, 0xff), head: bytes(40) });

const contextsRq = fc.array(
  fc.record({
    id: fc.integer({ min: 0, max: 255 }),
    abstractSyntax: fc.oneof(fc.constantFrom(VERIFICATION, SECONDARY_CAPTURE), uidString),
    transferSyntaxes: fc.array(fc.oneof(fc.constantFrom(IMPLICIT_LE, EXPLICIT_LE), uidString), { maxLength: 4 }),
  }),
  { maxLength: 5 },
);

const maxLengthValue = fc.option(fc.oneof(fc.constantFrom(...INTERESTING_32), fc.nat()), { nil: undefined });

/** A large user information sub-item (e.g. a SAML or JWT user identity), near the UInt16 item limit. */
const BIG = 60000;
/**
 * A large user information sub-item (e.g. a SAML or JWT user identity) that fills the user information
 * item to within `short` bytes of the UInt16 item limit, next to buildRq's 18-byte implementation class UID.
 */
const bigUserItem = fc.integer({ min: 0, max: 16 }).map((short): Item => ({ type: ItemType.UserIdentityRq, reserved: 0, head: Buffer.alloc(0xffff - 18 - 4 - short, 0x41) }));

export const associatePdu: fc.Arbitrary<Buffer> = fc.oneof(
  fc
    .record({
      maxLength: maxLengthValue,
      contexts: contextsRq,
      extraItems: fc.array(leafItem([0x10, 0x30, 0x40, 0x51, 0x60, 0x7f, 0xff]), { maxLength: 3 }),
      extraUserItems: fc.oneof(
        { weight: 5, arbitrary: fc.array(leafItem([0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x70]), { maxLength: 4 }) },
        { weight: 1, arbitrary: bigUserItem.map((i) => [i]) },
      ),
      called: fc.string({ maxLength: 20 }),
      calling: fc.string({ maxLength: 20 }),
    })
    // With the big sub-item there is no room for a Maximum Length: the RQ carries none.
    .map((o) => buildRq(o.extraUserItems.some((i) => i.head.length > BIG) ? { ...o, maxLength: undefined } : o)),
  fc
    .record({
      maxLength: maxLengthValue,
      contexts: fc.array(fc.record({ id: fc.integer({ min: 0, max: 255 }), transferSyntax: fc.oneof(fc.constantFrom(IMPLICIT_LE, EXPLICIT_LE), uidString) }), { maxLength: 4 }),
    })
    .map((o) => buildAc(o)),
);

/** An association PDU whose PDU-length field is made to fit again after mutation (so decoding goes deeper). */
const associateMutated = mutated(associatePdu).map((b) => {
  if (b.length >= 6 && (b[0] === 1 || b[0] === 2)) {
    const c = Buffer.from(b);
    c.writeUInt32BE(c.length - 6, 2);
    return c;
  }
  return b;
});

const pdv = fc.record({
  contextId: fc.constantFrom(1, 3, 5, 0, 255),
  command: fc.boolean(),
  last: fc.boolean(),
  fragment: fc.oneof(
    bytes(64),
    fc.integer({ min: 0, max: 70000 }).map((n) => Buffer.alloc(n, 0x33)),
  ),
});

const pdu: fc.Arbitrary<Buffer> = fc.oneof(
  associatePdu,
  fc.constantFrom(encodeReleaseRq(), encodeReleaseRp(), encodeAbort(0, 0), encodeAbort(2, 6), encodeReject(1, 1, 3)),
  fc.array(pdv, { minLength: 1, maxLength: 4 }).map((pdvs) => encodePData(pdvs)),
  // A P-DATA-TF whose PDU-length leaves 1-5 bytes after its PDVs: too few for another PDV header.
  fc.tuple(fc.array(pdv, { minLength: 1, maxLength: 2 }), bytes(5)).map(([pdvs, tail]) => {
    const p = Buffer.concat([encodePData(pdvs), tail]);
    p.writeUInt32BE(p.length - 6, 2);
    return p;
  }),
  // A bare header with any type and length claim, and a short body.
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.oneof(fc.constantFrom(...INTERESTING_32), fc.nat()), bytes(32)).map(([type, length, body]) => {
    const h = Buffer.alloc(6);
    h[0] = type;
    h.writeUInt32BE(length >>> 0, 2);
    return Buffer.concat([h, body]);
  }),
);

const pduStream = fc.array(pdu, { maxLength: 6 }).map((p) => Buffer.concat(p));

const usElement = fc.tuple(fc.constantFrom(0x0100, 0x0110, 0x0120, 0x0800, 0x0900, 0x0700, 0x1020), fc.integer({ min: 0, max: 0xffff }));
const uiElement = fc.tuple(fc.constantFrom(0x0002, 0x1000, 0x1001, 0x0600), uidString);
export const commandBytes: fc.Arbitrary<Buffer> = fc
  .array(fc.oneof(usElement, uiElement) as fc.Arbitrary<[number, number | string]>, { maxLength: 8 })
  .map((elements) => commandSet(elements));

/** One generator per target, each given the kept corpus to mutate and splice. */
export function inputsFor(target: TargetName, corpus: readonly Buffer[]): fc.Arbitrary<Buffer> {
  const fromCorpus = corpus.length > 0 ? fc.constantFrom(...corpus) : fc.constant(Buffer.alloc(0));
  const corpusMutated = mutated(fromCorpus, 8);
  const withPrefix = (prefixLength: number, body: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> =>
    fc.tuple(fc.uint8Array({ minLength: prefixLength, maxLength: prefixLength }), body).map(([p, b]) => Buffer.concat([Buffer.from(p), b]));
  switch (target) {
    case 'framer':
      return fc.oneof(withPrefix(1, pduStream), withPrefix(1, mutated(pduStream)), withPrefix(1, spliced(pduStream, pduStream)), corpusMutated, bytes(512));
    case 'associate':
      return fc.oneof(withPrefix(4, associatePdu), withPrefix(4, associateMutated), withPrefix(4, mutated(associatePdu)), corpusMutated, bytes(256));
    case 'refragment':
      return fc.oneof(bytes(400), corpusMutated);
    case 'command':
      return fc.oneof(commandBytes, mutated(commandBytes), corpusMutated, bytes(128));
    case 'tracker':
      return fc.oneof(bytes(300), corpusMutated, spliced(corpusMutated, bytes(100)));
  }
}
