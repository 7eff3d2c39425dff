// Fuzz targets for the pure code: the PDU framer, the A-ASSOCIATE codec and its Maximum Length rewrite,
// the P-DATA re-fragmenter, the DIMSE command set decoder and the message tracker.
//
// Each target is a function of one byte string (leading bytes choose parameters, see InputReader), as a
// libFuzzer/Jazzer.js target is, so the same corpus files drive `npm run fuzz:cov` (fast-check), the unit
// test that replays them, and any byte-level fuzzer. A target throws PropertyViolation when a property
// fails; any other exception that escapes is a crash. Errors the code is specified to throw on bad input
// (ProtocolError, CommandSetError) are expected and end the run of that input.

import { CommandSetError, decodeCommandSet, encodeCommandSet as encodeCommandFields, MAX_COMMAND_SET_LENGTH } from '../../src/dimse/command.js';
import type { CommandSet } from '../../src/dimse/command.js';
import { MessageTracker } from '../../src/dimse/tracker.js';
import {
  applicationContext,
  calledAe,
  callingAe,
  decodeAssociate,
  encodeAssociate,
  implementationClassUid,
  implementationVersionName,
  maxLength,
  presentationContextsAc,
  presentationContextsRq,
  rewriteMaxLength,
} from '../../src/pdu/associate.js';
import type { AssociatePdu, Item } from '../../src/pdu/associate.js';
import { ItemType, MCH_COMMAND, MCH_LAST, PDU_HEADER_LENGTH, PduType } from '../../src/pdu/constants.js';
import { ProtocolError } from '../../src/pdu/errors.js';
import type { FrameHandler } from '../../src/pdu/framer.js';
import { PduFramer } from '../../src/pdu/framer.js';
import { encodePData, fragmentPlan, fragmentSizeFor, planHeaders } from '../../src/pdu/pdata.js';
import type { Direction, MessageRecord, PduRecord } from '../../src/events/events.js';
import { Refragmenter } from '../../src/transform/refragment.js';
import type { FragmentPolicy } from '../../src/transform/refragment.js';
import { InputReader, check, chunksOf, meterAllocations } from './input.js';

export type TargetName = 'framer' | 'associate' | 'refragment' | 'command' | 'tracker';
export const TARGET_NAMES: readonly TargetName[] = ['framer', 'associate', 'refragment', 'command', 'tracker'];

/**
 * Properties that can be left out of a run (`--skip NAME`), to fuzz the rest while a known defect is open:
 * - tiny-limits: refragment draws receiver limits 1..7 too. A PDU of one PDV with data is 8 bytes at least
 *   (6-byte PDV header and 2 data bytes), so such a limit cannot be met by splitting; the re-fragmenter
 *   must refuse it (RangeError from configure) or stay within it.
 * - framer-allocation: the framer's allocation bound (FRAMER_ALLOCATION_SLACK).
 */
export type Skippable = 'tiny-limits' | 'framer-allocation';
export const SKIPPABLE: readonly Skippable[] = ['tiny-limits', 'framer-allocation'];

export interface TargetOptions {
  skip?: ReadonlySet<Skippable>;
}

// ---- framer -----------------------------------------------------------------------------------------

/**
 * A framer may allocate, at any one time, at most this much more than twice the bytes it has been given.
 * A header claiming a 1 MiB association PDU, given as 6 bytes, must not reserve 1 MiB.
 */
export const FRAMER_ALLOCATION_SLACK = 4096;

/**
 * Input: [chunking seed][stream]. Properties: only ProtocolError is thrown, and nothing is delivered after
 * it; what the framer delivers (whole PDUs, P-DATA headers, PDV headers, fragment bytes) put back together
 * is exactly the input, up to the bytes it still holds (decode then encode gives the same bytes); no single
 * allocation exceeds twice the input given so far plus FRAMER_ALLOCATION_SLACK.
 */
export function fuzzFramer(data: Buffer, options: TargetOptions = {}): void {
  const boundAllocations = !options.skip?.has('framer-allocation');
  const input = new InputReader(data);
  const seed = input.u8();
  const stream = input.rest();
  const framer = new PduFramer();
  const out: Buffer[] = [];
  let outLength = 0;
  let failed = false;
  const take = (b: Buffer): void => {
    check(!failed, 'an event was delivered after a ProtocolError');
    out.push(Buffer.from(b));
    outLength += b.length;
  };
  const handler: FrameHandler = {
    onPdu: (type, pdu) => {
      check(pdu[0] === type && type !== PduType.PDataTf, `onPdu type ${type} with first byte ${pdu[0]}`);
      check(pdu.length === PDU_HEADER_LENGTH + pdu.readUInt32BE(2), 'a whole PDU is its length');
      take(pdu);
    },
    onDataStart: (_length, header) => take(header),
    onPdvStart: (_itemLength, _ctx, _mch, header) => take(header),
    onPdvData: (bytes) => {
      check(bytes.length > 0, 'an empty onPdvData');
      take(bytes);
    },
    onPdvEnd: () => check(!failed, 'onPdvEnd after a ProtocolError'),
    onDataEnd: () => check(!failed, 'onDataEnd after a ProtocolError'),
  };
  let pushed = 0;
  meterAllocations((sizes) => {
    for (const chunk of chunksOf(stream, seed)) {
      pushed += chunk.length;
      const before = sizes.length;
      try {
        framer.push(chunk, 0, handler);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        failed = true;
      }
      for (const size of boundAllocations ? sizes.slice(before) : []) {
        check(size <= 2 * pushed + FRAMER_ALLOCATION_SLACK, `the framer allocated ${size} bytes having been given ${pushed}`);
      }
    }
  });
  const delivered = Buffer.concat(out, outLength);
  check(delivered.equals(stream.subarray(0, outLength)), 'what the framer delivered is not the input, byte for byte');
  if (!failed) {
    check(outLength + framer.bufferedBytes === stream.length, () => `delivered ${outLength} + held ${framer.bufferedBytes} bytes of ${stream.length}`);
  }
}

// ---- associate --------------------------------------------------------------------------------------

function withoutMaxLength(items: readonly Item[]): Item[] {
  return items.map((i) => (i.type === ItemType.UserInformation && i.children ? { ...i, children: i.children.filter((c) => c.type !== ItemType.MaximumLength) } : i));
}

/**
 * Input: [Maximum Length to write (4)][an A-ASSOCIATE-RQ/AC]. Properties: decoding throws only
 * ProtocolError and allocates nothing beyond the input; encode(decode(pdu)) is the PDU byte for byte;
 * the accessors throw only ProtocolError; rewriteMaxLength leaves the input untouched and gives a PDU that
 * decodes, carries the new value, and is the input in every other item.
 */
export function fuzzAssociate(data: Buffer): void {
  const input = new InputReader(data);
  const value = input.u32();
  const pdu = input.rest();
  let decoded: AssociatePdu;
  try {
    decoded = meterAllocations((sizes) => {
      const d = decodeAssociate(pdu);
      const allocated = sizes.reduce((a, b) => a + b, 0);
      check(allocated <= pdu.length, `decodeAssociate allocated ${allocated} bytes for a ${pdu.length}-byte PDU`);
      return d;
    });
  } catch (err) {
    if (err instanceof ProtocolError) return;
    throw err;
  }
  check(encodeAssociate(decoded).equals(pdu), 'encode(decode(pdu)) is not the PDU');
  let existing: number | undefined;
  let maxLengthValid = true;
  try {
    calledAe(decoded);
    callingAe(decoded);
    applicationContext(decoded);
    implementationClassUid(decoded);
    implementationVersionName(decoded);
    presentationContextsRq(decoded);
    presentationContextsAc(decoded);
    existing = maxLength(decoded);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    maxLengthValid = false;
  }
  const before = Buffer.from(pdu);
  let rewritten: Buffer;
  try {
    rewritten = rewriteMaxLength(pdu, decoded, value);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    // Allowed only when the user information item has no room for the 8-byte sub-item.
    const info = decoded.items.find((i) => i.type === ItemType.UserInformation);
    check(info !== undefined, `rewriteMaxLength refused a PDU without user information: ${err.message}`);
    const kept = withoutMaxLength([info])[0]!;
    const length = encodeAssociate({ ...decoded, items: [kept] }).length - PDU_HEADER_LENGTH - 68 - 4 + 8;
    check(length > 0xffff, `rewriteMaxLength refused a user information item that would be ${length} bytes: ${err.message}`);
    return;
  }
  check(pdu.equals(before), 'rewriteMaxLength wrote into its input');
  const again = decodeAssociate(rewritten);
  check(maxLength(again) === value, `the rewritten PDU carries Maximum Length ${maxLength(again)}, not ${value}`);
  if (existing !== undefined && maxLengthValid) {
    check(rewritten.length === pdu.length, 'rewriting an existing Maximum Length changed the PDU length');
  }
  const rest = (p: AssociatePdu): Buffer => encodeAssociate({ ...p, items: withoutMaxLength(p.items) });
  const hadUserInfo = decoded.items.some((i) => i.type === ItemType.UserInformation);
  if (hadUserInfo) {
    check(rest(again).equals(rest(decoded)), 'rewriteMaxLength changed something other than the Maximum Length');
  } else {
    const added = again.items.at(-1)!;
    check(added.type === ItemType.UserInformation && added.children?.length === 1, 'the added user information item is not last, or holds more');
    check(rest({ ...again, items: again.items.slice(0, -1) }).equals(pdu), 'rewriteMaxLength changed other items');
  }
}

// ---- refragment -------------------------------------------------------------------------------------

interface Pdv {
  contextId: number;
  command: boolean;
  last: boolean;
  fragment: Buffer;
}

/** Consecutive PDVs of one stream (context id, command/data set) up to a last bit, empty non-final PDVs dropped. */
function runs(pdvs: readonly Pdv[]): Array<{ key: string; bytes: Buffer; last: boolean }> {
  const out: Array<{ key: string; pieces: Buffer[]; last: boolean }> = [];
  for (const p of pdvs) {
    if (p.fragment.length === 0 && !p.last) continue;
    const key = `${p.contextId}/${p.command ? 'cmd' : 'data'}`;
    const open = out.at(-1);
    if (open && open.key === key && !open.last) {
      open.pieces.push(p.fragment);
      open.last = p.last;
    } else {
      out.push({ key, pieces: [p.fragment], last: p.last });
    }
  }
  return out.map((r) => ({ key: r.key, bytes: Buffer.concat(r.pieces), last: r.last }));
}

function pdvsOfPdu(pdu: Buffer): Pdv[] {
  const out: Pdv[] = [];
  for (let pos = PDU_HEADER_LENGTH; pos < pdu.length;) {
    const itemLength = pdu.readUInt32BE(pos);
    const mch = pdu[pos + 5]!;
    out.push({ contextId: pdu[pos + 4]!, command: (mch & MCH_COMMAND) !== 0, last: (mch & MCH_LAST) !== 0, fragment: pdu.subarray(pos + 6, pos + 4 + itemLength) });
    pos += 4 + itemLength;
  }
  return out;
}

/** The receiver limit, policy and P-DATA-TF stream a refragment input describes. */
export function refragmentCase(data: Buffer, options: TargetOptions = {}): { limit: number; policy: FragmentPolicy; seed: number; pdus: Pdv[][] } {
  const tinyLimits = !options.skip?.has('tiny-limits');
  const input = new InputReader(data);
  const selector = input.u8();
  const raw = input.u32();
  let limit: number;
  switch (selector % 5) {
    case 0:
      limit = 0;
      break;
    case 1:
      limit = tinyLimits ? 1 + (raw % 20) : 8 + (raw % 13);
      break;
    case 2:
      limit = 8 + (raw % 400);
      break;
    case 3:
      limit = [4096, 16384, 16390, 65536, 131072][raw % 5]!;
      break;
    default:
      limit = tinyLimits ? raw : Math.max(8, raw);
  }
  const policySelector = input.u8();
  const sizeRaw = input.u32();
  const policy: FragmentPolicy =
    policySelector % 3 === 0 ? { mode: 'fit' } : policySelector % 3 === 1 ? { mode: 'repack' } : { mode: 'size', size: sizeRaw % 3 === 0 ? 0 : 8 + (sizeRaw % 70000) };
  const seed = input.u8();
  // The rest: PDVs, each [flags][length (2)] (flags: bit 0 command, bit 1 last, bit 4 context 3, bits 6-7
  // both set: length x 3, else length mod 600), grouped into P-DATA-TF PDUs of 1-4 PDVs. Fragment bytes
  // count up, so any reordering or loss shows.
  const pdus: Pdv[][] = [];
  let counter = 0;
  while (input.remaining > 0 && pdus.length < 64) {
    const pdvCount = 1 + (input.u8() % 4);
    const pdvs: Pdv[] = [];
    for (let i = 0; i < pdvCount; i++) {
      const flags = input.u8();
      const lengthRaw = input.u16();
      const length = (flags & 0xc0) === 0xc0 ? lengthRaw * 3 : lengthRaw % 600;
      const fragment = Buffer.allocUnsafe(length);
      for (let j = 0; j < length; j++) fragment[j] = (counter++ * 7 + (counter >> 8)) & 0xff;
      pdvs.push({ contextId: flags & 0x10 ? 3 : 1, command: (flags & MCH_COMMAND) !== 0, last: (flags & MCH_LAST) !== 0, fragment });
    }
    pdus.push(pdvs);
  }
  return { limit, policy, seed, pdus };
}

/**
 * Input: [limit selector][limit (4)][policy selector][size (4)][chunking seed][PDVs...]. The P-DATA-TF
 * stream goes through the framer into a re-fragmenter, as a link does. Properties: every output PDU is
 * whole (6 + its PDU-length bytes) and within the receiver's limit; the PDV byte stream, per context id and
 * command/data set, with its last bits, is unchanged; the bytes held back never reach one output fragment,
 * nor does the buffer allocated for them exceed one;
 * fragmentPlan for the same stream length and limit covers it once, in order, within the limit.
 * With tiny limits, configure() may refuse the limit (RangeError) instead: then nothing may be written.
 */
export function fuzzRefragment(
  data: Buffer,
  options: TargetOptions = {},
  makeRefragmenter = (sink: ConstructorParameters<typeof Refragmenter>[0]) => new Refragmenter(sink),
): void {
  const { limit, policy, seed, pdus } = refragmentCase(data, options);
  const output: Buffer[] = [];
  let current: Buffer[] | undefined;
  const sink = {
    pduStart: () => {
      check(current === undefined, 'pduStart inside an output PDU');
      current = [];
    },
    write: (bytes: Buffer) => {
      check(current !== undefined, 'bytes written outside an output PDU');
      current.push(Buffer.from(bytes));
    },
    pduEnd: (length: number) => {
      check(current !== undefined, 'pduEnd with no output PDU');
      const pdu = Buffer.concat(current);
      current = undefined;
      check(pdu.length === PDU_HEADER_LENGTH + length && pdu.readUInt32BE(2) === length, `an output PDU of ${pdu.length} bytes ends with length ${length}`);
      check(limit === 0 || length <= limit, `an output PDU of length ${length} exceeds the receiver's limit ${limit} (${policy.mode})`);
      output.push(pdu);
    },
  };
  const refragmenter = makeRefragmenter(sink);
  try {
    refragmenter.configure(limit, policy);
  } catch (err) {
    if (limit > 0 && limit < 8 && err instanceof RangeError) return;
    throw err;
  }
  const target = policy.mode === 'size' ? (limit === 0 ? policy.size : policy.size === 0 ? limit : Math.min(policy.size, limit)) : limit;
  const fragmentSize = fragmentSizeFor(target);
  const framer = new PduFramer();
  const handler: FrameHandler = {
    onPdu: () => check(false, 'a P-DATA stream gave a whole PDU'),
    onDataStart: (length, header) => refragmenter.dataStart(length, header),
    onPdvStart: (itemLength, ctx, mch, header) => refragmenter.pdvStart(itemLength, ctx, mch, header),
    onPdvData: (bytes) => {
      refragmenter.pdvData(bytes);
      check(refragmenter.pendingBytes < Math.max(1, fragmentSize), `${refragmenter.pendingBytes} bytes held back, fragment size ${fragmentSize}`);
      check(refragmenter.heldBytes <= fragmentSize, `${refragmenter.heldBytes} bytes allocated for merging, fragment size ${fragmentSize}`);
    },
    onPdvEnd() {},
    onDataEnd: () => refragmenter.dataEnd(),
  };
  const input = pdus.map((p) => encodePData(p));
  for (const chunk of chunksOf(Buffer.concat(input), seed)) framer.push(chunk, 0, handler);
  refragmenter.flush();
  check(current === undefined, 'an output PDU left unfinished');
  const expected = runs(pdus.flat());
  const got = runs(output.flatMap(pdvsOfPdu));
  check(got.length === expected.length, () => `${got.length} PDV runs out, ${expected.length} in`);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const g = got[i]!;
    check(
      g.key === e.key && g.last === e.last && g.bytes.equals(e.bytes),
      () => `run ${i}: ${g.key} ${g.bytes.length} bytes last=${g.last}, expected ${e.key} ${e.bytes.length} last=${e.last}`,
    );
  }
  // The built-in peers' sender plans its fragments for the same limit up front (fragmentPlan): the plan
  // covers the stream once, in order, within the limit, with the last bit on its final fragment only.
  const total = pdus.flat().reduce((n, p) => n + p.fragment.length, 0);
  const plan = fragmentPlan(total, limit);
  const headers = planHeaders(plan, 1, false);
  let offset = 0;
  for (const [i, f] of plan.entries()) {
    check(f.offset === offset && f.last === (i === plan.length - 1), `fragment ${i} of the plan at ${f.offset}, expected ${offset}`);
    const length = headers.readUInt32BE(12 * i + 2);
    check(length === 6 + f.length && headers.readUInt32BE(12 * i + 6) === f.length + 2, `planned header ${i}: PDU-length ${length} for ${f.length} bytes`);
    check(limit === 0 || length <= limit, `a planned PDU of length ${length} exceeds the receiver's limit ${limit}`);
    offset += f.length;
  }
  check(offset === total, `the plan covers ${offset} of ${total} bytes`);
}

// ---- command ----------------------------------------------------------------------------------------

/** A second, independent reading of a command set (PS3.7 E.1, implicit VR LE), to compare against. */
function referenceDecode(bytes: Buffer): CommandSet | 'error' {
  const out: CommandSet = {
    commandField: undefined,
    messageId: undefined,
    messageIdBeingRespondedTo: undefined,
    dataSetType: undefined,
    status: undefined,
    affectedSopClassUid: undefined,
    affectedSopInstanceUid: undefined,
  };
  const us: Record<number, keyof CommandSet> = { 0x0100: 'commandField', 0x0110: 'messageId', 0x0120: 'messageIdBeingRespondedTo', 0x0800: 'dataSetType', 0x0900: 'status' };
  const ui: Record<number, keyof CommandSet> = { 0x0002: 'affectedSopClassUid', 0x1000: 'affectedSopInstanceUid' };
  for (let pos = 0; pos < bytes.length;) {
    if (pos + 8 > bytes.length) return 'error';
    const group = bytes.readUInt16LE(pos);
    const element = bytes.readUInt16LE(pos + 2);
    const length = bytes.readUInt32LE(pos + 4);
    if (group !== 0 || pos + 8 + length > bytes.length) return 'error';
    const value = bytes.subarray(pos + 8, pos + 8 + length);
    if (us[element]) {
      if (length !== 2) return 'error';
      (out as unknown as Record<string, unknown>)[us[element]!] = value.readUInt16LE(0);
    } else if (ui[element]) {
      (out as unknown as Record<string, unknown>)[ui[element]!] = value.toString('latin1').replace(/[\0 ]+$/, '');
    }
    pos += 8 + length;
  }
  return out;
}

/** Encode the fields of a decoded command set again (group length first, elements in tag order). */
export function encodeCommandSet(c: CommandSet): Buffer {
  const elements: Array<[number, Buffer]> = [];
  const us = (element: number, v: number | undefined): void => {
    if (v === undefined) return;
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v, 0);
    elements.push([element, b]);
  };
  const ui = (element: number, v: string | undefined): void => {
    if (v === undefined) return;
    elements.push([element, Buffer.from(v.length % 2 ? `${v}\0` : v, 'latin1')]);
  };
  ui(0x0002, c.affectedSopClassUid);
  us(0x0100, c.commandField);
  us(0x0110, c.messageId);
  us(0x0120, c.messageIdBeingRespondedTo);
  us(0x0800, c.dataSetType);
  us(0x0900, c.status);
  ui(0x1000, c.affectedSopInstanceUid);
  const parts = elements.map(([element, v]) => {
    const head = Buffer.alloc(8);
    head.writeUInt16LE(element, 2);
    head.writeUInt32LE(v.length, 4);
    return Buffer.concat([head, v]);
  });
  return Buffer.concat(parts);
}

/**
 * Input: a command set. Properties: decoding throws only CommandSetError, exactly when an independent
 * reading finds the bytes malformed, and otherwise gives the same fields; it allocates nothing; encoding
 * the decoded fields (here, and with the built-in peers' encodeCommandSet) and decoding again gives them back.
 */
export function fuzzCommand(data: Buffer): void {
  let decoded: CommandSet | 'error';
  try {
    decoded = meterAllocations((sizes) => {
      const d = decodeCommandSet(data);
      check(sizes.length === 0, `decodeCommandSet allocated ${sizes.join(', ')} bytes`);
      return d;
    });
  } catch (err) {
    if (!(err instanceof CommandSetError)) throw err;
    decoded = 'error';
  }
  const reference = referenceDecode(data);
  check(JSON.stringify(decoded) === JSON.stringify(reference), () => `decoded ${JSON.stringify(decoded)}, reference ${JSON.stringify(reference)}`);
  if (decoded === 'error') return;
  const again = decodeCommandSet(encodeCommandSet(decoded));
  check(JSON.stringify(again) === JSON.stringify(decoded), () => `re-encoded ${JSON.stringify(again)}, was ${JSON.stringify(decoded)}`);
  // The built-in peers' encoder (src/dimse/command.ts) gives the same fields back, with a true group length.
  if (decoded.commandField !== undefined && decoded.dataSetType !== undefined) {
    const { commandField, dataSetType, ...rest } = decoded;
    const fields = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
    const encoded = encodeCommandFields({ commandField, dataSetType, ...fields });
    check(encoded.readUInt32LE(8) === encoded.length - 12, `CommandGroupLength ${encoded.readUInt32LE(8)} for ${encoded.length - 12} bytes after it`);
    const back = decodeCommandSet(encoded);
    check(JSON.stringify(back) === JSON.stringify(decoded), () => `encodeCommandSet gave ${JSON.stringify(back)}, was ${JSON.stringify(decoded)}`);
  }
}

// ---- tracker ----------------------------------------------------------------------------------------

const COMMANDS = [0x0030, 0x0001, 0x0020, 0x0021, 0x0010, 0x0fff, 0x8030, 0x8001, 0x8020, 0x8021, 0x8010, 0x1234];
const STATUSES = [0x0000, 0xff00, 0xff01, 0xa700, 0xb000];

/**
 * Input: a sequence of operations, each [op][arguments], on both directions: messages (a command set,
 * optionally a data set, cut into random PDVs; some requests without MessageID, some data sets without
 * their last fragment), raw PDV events with any bits, and garbage command
 * bytes. Properties: the tracker never throws; every request it reports is reported once, with no more
 * data set bytes than were sent in its direction; its totals count what it reported; close() reports
 * every request still open and nothing twice; after close nothing more is reported. For the messages it
 * generated itself, the count of reported requests is exactly the count of requests sent.
 */
export function fuzzTracker(data: Buffer): void {
  const input = new InputReader(data);
  const records: MessageRecord[] = [];
  let closed = false;
  const legs = { idleUs: () => 0, blockedUs: () => 0, busyUs: () => 0 };
  const tracker = new MessageTracker(1, { to_scp: legs, to_scu: legs }, 0, {
    message: (r) => {
      check(!closed, 'a message reported after close()');
      records.push(r);
    },
    undecodable: () => undefined,
  });
  tracker.setLimits(16384, 16384);
  let time = 0;
  let seq = 0;
  const datasetSent: Record<Direction, number> = { to_scp: 0, to_scu: 0 };
  // Requests the generated well-formed messages make: by direction and MessageID (a reused ID replaces).
  let wellFormed = true;
  const requestsSent = new Set<string>();
  let requestCount = 0;
  const record = (direction: Direction): PduRecord =>
    ({
      assoc: 1,
      direction,
      seq: ++seq,
      type: 'P-DATA-TF',
      length: 0,
      pdvs: 1,
      contextId: 1,
      kind: 'dataset',
      last: true,
      firstByteUs: time,
      lastByteUs: time,
      forwardedUs: time,
      outPdus: 1,
      outMaxLength: 0,
      violation: false,
    }) satisfies PduRecord;
  const sendPdvs = (direction: Direction, contextId: number, command: boolean, bytes: Buffer, pieces: number, noLast = false): void => {
    const step = Math.max(1, Math.ceil(bytes.length / Math.max(1, pieces)));
    let at = 0;
    do {
      const piece = bytes.subarray(at, at + step);
      at += piece.length;
      const last = at >= bytes.length && !noLast;
      const pdu = record(direction);
      tracker.dataStart(direction, ++time, 0, 0, 0);
      tracker.pdvStart(direction, contextId, (command ? MCH_COMMAND : 0) | (last ? MCH_LAST : 0));
      if (piece.length > 0) tracker.pdvData(direction, piece);
      if (!command) datasetSent[direction] += piece.length;
      tracker.pdvEnd(direction, ++time, pdu);
      tracker.forwarded(pdu);
    } while (at < bytes.length);
  };
  while (input.remaining > 0) {
    const op = input.u8();
    const direction: Direction = op & 0x80 ? 'to_scu' : 'to_scp';
    switch (op & 0x03) {
      case 0:
      case 1: {
        // A whole message: CommandField, IDs, status, data set length, fragmentation.
        const field = COMMANDS[input.u8() % COMMANDS.length]!;
        const id = input.u8() % 8;
        const status = STATUSES[input.u8() % STATUSES.length]!;
        const datasetLength = input.u8() % 4 === 0 ? input.u16() % 3000 : 0;
        const shape = input.u8();
        const pieces = 1 + (shape % 5);
        // Now and then a request without its MessageID (undecodable: no row), or a data set whose last
        // fragment never comes (cut short by the next command, or by close()).
        const noMessageId = (shape & 0xe0) === 0xe0;
        const truncated = (shape & 0x18) === 0x18;
        const isResponse = (field & 0x8000) !== 0;
        const command = encodeCommandSet({
          commandField: field,
          messageId: isResponse || noMessageId ? undefined : id,
          messageIdBeingRespondedTo: isResponse ? id : undefined,
          dataSetType: datasetLength > 0 ? 0x0000 : 0x0101,
          status: isResponse ? status : undefined,
          affectedSopClassUid: '1.2.840.10008.1.1',
          affectedSopInstanceUid: undefined,
        });
        sendPdvs(direction, 1, true, command, pieces);
        if (datasetLength > 0) sendPdvs(direction, 1, false, Buffer.alloc(datasetLength, 0x55), pieces, truncated);
        if (!isResponse && field !== 0x0fff && !noMessageId) {
          requestCount++;
          requestsSent.add(`${direction}/${id}`);
        }
        break;
      }
      case 2: {
        // A raw PDV with any bits and any bytes (garbage command sets, data with no command, ...).
        wellFormed = false;
        const mch = input.u8() & 0x03;
        const bytes = input.bytes(input.u8() % 64);
        const pdu = record(direction);
        tracker.dataStart(direction, ++time, 0, 0, 0);
        tracker.pdvStart(direction, input.u8() & 0x03, mch);
        if (bytes.length > 0) tracker.pdvData(direction, Buffer.from(bytes));
        if (!(mch & MCH_COMMAND)) datasetSent[direction] += bytes.length;
        tracker.pdvEnd(direction, ++time, pdu);
        if (input.u8() & 1) tracker.forwarded(pdu);
        break;
      }
      default: {
        // A command set too long to decode, in one piece per 16 KiB.
        wellFormed = false;
        const big = Buffer.alloc(MAX_COMMAND_SET_LENGTH + 1 + input.u8());
        sendPdvs(direction, 1, true, big, Math.ceil(big.length / 16384));
      }
    }
  }
  const beforeClose = records.length;
  tracker.close();
  closed = true;
  tracker.close();
  const totals = tracker.totals.to_scp.messages + tracker.totals.to_scu.messages;
  check(totals === records.length, `totals count ${totals} messages, ${records.length} reported`);
  check(beforeClose <= records.length, 'close() lost reports');
  for (const r of records) {
    check(r.bytes <= datasetSent[r.direction], `a request with ${r.bytes} data set bytes, ${datasetSent[r.direction]} sent ${r.direction}`);
  }
  if (wellFormed) {
    check(records.length === requestCount, () => `${records.length} requests reported, ${requestCount} sent (${requestsSent.size} distinct IDs)`);
  }
}

export const TARGETS: Readonly<Record<TargetName, (data: Buffer, options?: TargetOptions) => void>> = {
  framer: (data, options) => fuzzFramer(data, options),
  associate: fuzzAssociate,
  refragment: (data, options) => fuzzRefragment(data, options),
  command: fuzzCommand,
  tracker: fuzzTracker,
};
