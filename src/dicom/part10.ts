// DICOM Part 10 files for the built-in peers (PS3.10 7.1, PS3.5 7.1): what a sender needs from a file (SOP
// class, transfer syntax, the data set's bytes) and the file meta information a receiver writes before the
// data set it stores. Pure: bytes in, bytes out.

import { datasetOffset } from './synthetic.js';

export const PREAMBLE_LENGTH = 128;
const MAGIC = 'DICM';
export const IMPLEMENTATION_CLASS_UID = '1.2.826.0.1.3680043.9.7433.1.2';
export const IMPLEMENTATION_VERSION_NAME = 'DICOM_PDU_PROXY';
export const EXPLICIT_VR_BIG_ENDIAN = '1.2.840.10008.1.2.2';
export const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';
export const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1.99';

/** VRs with a reserved 2 bytes and a 4-byte length in explicit VR (PS3.5 7.1.2). */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const UNDEFINED_LENGTH = 0xffffffff;
/** (0008,0018) SOP Instance UID as one number: group << 16 | element. */
const SOP_INSTANCE_UID_TAG = 0x00080018;

export interface Part10 {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntax: string;
  /** The data set: a view of the file's bytes after the meta information. */
  dataset: Buffer;
}

/** One explicit VR LE meta element's value by element number, walking group 0002 (PS3.10 7.1). */
function metaValues(file: Buffer, end: number): Map<number, Buffer> {
  const values = new Map<number, Buffer>();
  let off = PREAMBLE_LENGTH + MAGIC.length;
  while (off + 8 <= end && file.readUInt16LE(off) === 0x0002) {
    const elem = file.readUInt16LE(off + 2);
    const vr = file.toString('latin1', off + 4, off + 6);
    const long = LONG_VRS.has(vr);
    const length = long ? file.readUInt32LE(off + 8) : file.readUInt16LE(off + 6);
    const at = off + (long ? 12 : 8);
    if (at + length > end) throw new Error(`meta element (0002,${elem.toString(16).padStart(4, '0')}) overruns the meta information`);
    values.set(elem, file.subarray(at, at + length));
    off = at + length;
  }
  return values;
}

function uidText(value: Buffer | undefined): string {
  return value ? value.toString('latin1').replace(/[\0 ]+$/, '') : '';
}

/** Read a Part 10 file's SOP class, SOP instance, transfer syntax and data set. Throws when it is not one. */
export function readPart10(file: Buffer): Part10 {
  const start = datasetOffset(file);
  const meta = metaValues(file, start);
  const sopClassUid = uidText(meta.get(0x0002));
  const transferSyntax = uidText(meta.get(0x0010));
  if (!sopClassUid || !transferSyntax) throw new Error('the file meta information has no Media Storage SOP Class UID or Transfer Syntax UID');
  return { sopClassUid, sopInstanceUid: uidText(meta.get(0x0003)), transferSyntax, dataset: file.subarray(start) };
}

/** Where a top-level element's value lies in a data set. */
export interface ValueSlot {
  /** Offset of the element's header. */
  header: number;
  headerLength: number;
  /** Offset and length of the value. */
  value: number;
  length: number;
}

/**
 * Find a top-level element by tag in a little endian data set (explicit VR unless `implicit`), walking the
 * elements before it by their lengths. undefined when it is absent, or when an element before it has an
 * undefined length (a sequence to be parsed item by item: not worth it for (0008,0018)).
 */
export function findTopLevel(dataset: Buffer, tag: number, implicit: boolean): ValueSlot | undefined {
  let off = 0;
  while (off + 8 <= dataset.length) {
    const t = ((dataset.readUInt16LE(off) << 16) | dataset.readUInt16LE(off + 2)) >>> 0;
    if (t > tag) return undefined;
    let headerLength = 8;
    let length: number;
    if (implicit) length = dataset.readUInt32LE(off + 4);
    else if (LONG_VRS.has(dataset.toString('latin1', off + 4, off + 6))) {
      if (off + 12 > dataset.length) return undefined;
      headerLength = 12;
      length = dataset.readUInt32LE(off + 8);
    } else length = dataset.readUInt16LE(off + 6);
    if (length === UNDEFINED_LENGTH || off + headerLength + length > dataset.length) return undefined;
    if (t === tag) return { header: off, headerLength, value: off + headerLength, length };
    off += headerLength + length;
  }
  return undefined;
}

/** Characters of the UIDs `fixedLengthUid` makes: "2.25." and a 39-digit number (PS3.5 B.2). */
export const FIXED_UID_LENGTH = 44;

/**
 * A UID of exactly FIXED_UID_LENGTH characters from 16 random bytes: 2.25.<n> with the top bit of n set, so
 * that n always has 39 decimal digits (2^127 > 10^38). Same length every time: it can be overwritten in place.
 */
export function fixedLengthUid(random16: Buffer): string {
  const hex = random16.toString('hex');
  const n = BigInt(`0x${hex}`) | (1n << 127n);
  return `2.25.${n}`;
}

/**
 * A copy of `dataset` whose SOP Instance UID (0008,0018) value is `uid` (even length, so no padding), and
 * where that value now lies: the sender then writes each image's UID into the same bytes. undefined when the
 * data set cannot be walked to it (big endian, deflated, or a sequence of undefined length before it).
 */
export function withUidSlot(dataset: Buffer, transferSyntax: string, uid: string): { dataset: Buffer; slot: ValueSlot } | undefined {
  if (transferSyntax === EXPLICIT_VR_BIG_ENDIAN || transferSyntax === DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN) return undefined;
  if (uid.length % 2 !== 0) throw new RangeError(`UID slot must be even, got ${uid.length}`);
  const implicit = transferSyntax === IMPLICIT_VR_LITTLE_ENDIAN;
  const found = findTopLevel(dataset, SOP_INSTANCE_UID_TAG, implicit);
  if (!found || found.headerLength !== 8) return undefined;
  const out = Buffer.allocUnsafe(dataset.length - found.length + uid.length);
  dataset.copy(out, 0, 0, found.value);
  if (implicit) out.writeUInt32LE(uid.length, found.header + 4);
  else out.writeUInt16LE(uid.length, found.header + 6);
  out.write(uid, found.value, 'latin1');
  dataset.copy(out, found.value + uid.length, found.value + found.length);
  return { dataset: out, slot: { ...found, length: uid.length } };
}

export interface FileMetaFields {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntax: string;
  implementationClassUid?: string;
  implementationVersionName?: string;
}

/**
 * The 128-byte preamble, "DICM" and the file meta information group (PS3.10 7.1), explicit VR little endian:
 * (0002,0000) UL group length, (0002,0001) OB 00 01, (0002,0002) SOP class, (0002,0003) SOP instance,
 * (0002,0010) transfer syntax, (0002,0012) implementation class UID, (0002,0013) version name. The data set
 * follows it unchanged.
 */
export function encodeFileMeta(f: FileMetaFields): Buffer {
  const short = (elem: number, vr: string, text: string, pad: number): Buffer => {
    const value = Buffer.from(text.length % 2 ? text + String.fromCharCode(pad) : text, 'latin1');
    const b = Buffer.alloc(8 + value.length);
    b.writeUInt16LE(0x0002, 0);
    b.writeUInt16LE(elem, 2);
    b.write(vr, 4, 'latin1');
    b.writeUInt16LE(value.length, 6);
    value.copy(b, 8);
    return b;
  };
  const version = Buffer.from([0x02, 0x00, 0x01, 0x00, 0x4f, 0x42, 0, 0, 2, 0, 0, 0, 0x00, 0x01]); // (0002,0001) OB, length 2, 00 01
  const body = Buffer.concat([
    version,
    short(0x0002, 'UI', f.sopClassUid, 0),
    short(0x0003, 'UI', f.sopInstanceUid, 0),
    short(0x0010, 'UI', f.transferSyntax, 0),
    short(0x0012, 'UI', f.implementationClassUid ?? IMPLEMENTATION_CLASS_UID, 0),
    short(0x0013, 'SH', f.implementationVersionName ?? IMPLEMENTATION_VERSION_NAME, 0x20),
  ]);
  const head = Buffer.alloc(PREAMBLE_LENGTH + MAGIC.length + 12);
  head.write(MAGIC, PREAMBLE_LENGTH, 'latin1');
  const g = PREAMBLE_LENGTH + MAGIC.length;
  head.writeUInt16LE(0x0002, g);
  head.writeUInt16LE(0x0000, g + 2);
  head.write('UL', g + 4, 'latin1');
  head.writeUInt16LE(4, g + 6);
  head.writeUInt32LE(body.length, g + 8);
  return Buffer.concat([head, body]);
}
