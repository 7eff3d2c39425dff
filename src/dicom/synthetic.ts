// Synthetic DICOM Part 10 files (writer and small readers): Secondary Capture, explicit VR little endian,
// 16-bit MONOCHROME2 pixel data with deterministic pseudo-random content. Written with plain Buffers. Used by
// `bench` (the image it sends) and by the tests (test/helpers/dicom-file.ts re-exports it).

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';

export const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
export const SECONDARY_CAPTURE_STORAGE = '1.2.840.10008.5.1.4.1.1.7';
const IMPLEMENTATION_CLASS_UID = '1.2.826.0.1.3680043.9.7433.1.1';
const IMPLEMENTATION_VERSION = 'PDUPROXY_TEST';

export interface TestDicomOptions {
  /** Exact length of the PixelData value: even, >= 2. */
  pixelBytes: number;
  /** Seeds the pixel content and the default UIDs. Default 1. */
  seed?: number;
  sopInstanceUid?: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  patientName?: string;
  patientId?: string;
}

export interface TestDicomInfo {
  path?: string;
  sopClassUid: string;
  sopInstanceUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  patientName: string;
  patientId: string;
  rows: number;
  columns: number;
  frames: number;
  /** Byte offset of the dataset (after the group-0002 meta information). */
  datasetOffset: number;
  datasetLength: number;
  fileLength: number;
}

/** Deterministic UID under 2.25 from a seed and a label. */
export function testUid(seed: number, label: string): string {
  const h = createHash('sha256').update(`${seed}:${label}`).digest();
  const n = BigInt(`0x${h.subarray(0, 16).toString('hex')}`);
  return `2.25.${n === 0n ? 1n : n}`;
}

/** Pick rows x columns (x frames) with rows*columns*frames == pixels, each <= 65535 (US). */
export function pixelGeometry(pixels: number): { rows: number; columns: number; frames: number } {
  const largestDivisorAtMost = (n: number, max: number): number => {
    for (let d = Math.min(max, n); d > 1; d--) if (n % d === 0) return d;
    return 1;
  };
  // Prefer about 1024 columns so rows stays small enough for a single frame.
  let columns = largestDivisorAtMost(pixels, 1024);
  if (pixels / columns > 65535) columns = largestDivisorAtMost(pixels, 65535);
  const rest = pixels / columns;
  const rows = largestDivisorAtMost(rest, 65535);
  return { rows, columns, frames: rest / rows };
}

/** Fill with xorshift32 output seeded from `seed` (fast: 16 MiB in a few tens of ms). */
export function fillPseudoRandom(buf: Buffer, seed: number): void {
  let x = (seed ^ 0x9e3779b9) >>> 0 || 0x2545f491;
  const words = buf.length >>> 2;
  for (let i = 0; i < words; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf.writeUInt32LE(x, i << 2);
  }
  for (let i = words << 2; i < buf.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf[i] = x & 0xff;
  }
}

type Vr = 'UI' | 'DA' | 'CS' | 'PN' | 'LO' | 'SH' | 'IS' | 'US' | 'UL' | 'OB' | 'OW';
const LONG_VRS = new Set<Vr>(['OB', 'OW']);

function padded(vr: Vr, value: string): Buffer {
  const b = Buffer.from(value, 'latin1');
  if (b.length % 2 === 0) return b;
  return Buffer.concat([b, Buffer.from(vr === 'UI' ? [0] : [0x20])]);
}

/** One explicit VR little endian element (header + value). */
function element(group: number, elem: number, vr: Vr, value: Buffer): Buffer {
  if (value.length % 2 !== 0) throw new Error(`odd value length for (${group.toString(16)},${elem.toString(16)})`);
  const long = LONG_VRS.has(vr);
  const head = Buffer.alloc(long ? 12 : 8);
  head.writeUInt16LE(group, 0);
  head.writeUInt16LE(elem, 2);
  head.write(vr, 4, 'latin1');
  if (long) head.writeUInt32LE(value.length, 8);
  else head.writeUInt16LE(value.length, 6);
  return Buffer.concat([head, value]);
}

const str = (g: number, e: number, vr: Vr, v: string): Buffer => element(g, e, vr, padded(vr, v));
const us = (g: number, e: number, v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v, 0);
  return element(g, e, 'US', b);
};

/** Build the whole file in memory. */
export function buildTestDicom(opts: TestDicomOptions): { bytes: Buffer; info: TestDicomInfo } {
  const { pixelBytes } = opts;
  if (!Number.isInteger(pixelBytes) || pixelBytes < 2 || pixelBytes % 2 !== 0) {
    throw new Error(`pixelBytes must be an even integer >= 2, got ${pixelBytes}`);
  }
  const seed = opts.seed ?? 1;
  const sopInstanceUid = opts.sopInstanceUid ?? testUid(seed, 'sop');
  const studyInstanceUid = opts.studyInstanceUid ?? testUid(seed, 'study');
  const seriesInstanceUid = opts.seriesInstanceUid ?? testUid(seed, 'series');
  const patientName = opts.patientName ?? `TEST^PATIENT${seed}`;
  const patientId = opts.patientId ?? `PID${seed}`;
  const { rows, columns, frames } = pixelGeometry(pixelBytes / 2);

  const metaBody = Buffer.concat([
    element(0x0002, 0x0001, 'OB', Buffer.from([0x00, 0x01])),
    str(0x0002, 0x0002, 'UI', SECONDARY_CAPTURE_STORAGE),
    str(0x0002, 0x0003, 'UI', sopInstanceUid),
    str(0x0002, 0x0010, 'UI', EXPLICIT_VR_LE),
    str(0x0002, 0x0012, 'UI', IMPLEMENTATION_CLASS_UID),
    str(0x0002, 0x0013, 'SH', IMPLEMENTATION_VERSION),
  ]);
  const groupLength = Buffer.alloc(4);
  groupLength.writeUInt32LE(metaBody.length, 0);
  const meta = Buffer.concat([element(0x0002, 0x0000, 'UL', groupLength), metaBody]);

  // Elements in ascending tag order.
  const parts: Buffer[] = [
    str(0x0008, 0x0016, 'UI', SECONDARY_CAPTURE_STORAGE),
    str(0x0008, 0x0018, 'UI', sopInstanceUid),
    str(0x0008, 0x0020, 'DA', '20240101'),
    str(0x0008, 0x0060, 'CS', 'OT'),
    str(0x0008, 0x0064, 'CS', 'WSD'),
    str(0x0010, 0x0010, 'PN', patientName),
    str(0x0010, 0x0020, 'LO', patientId),
    str(0x0020, 0x000d, 'UI', studyInstanceUid),
    str(0x0020, 0x000e, 'UI', seriesInstanceUid),
    str(0x0020, 0x0011, 'IS', '1'),
    str(0x0020, 0x0013, 'IS', '1'),
    us(0x0028, 0x0002, 1),
    str(0x0028, 0x0004, 'CS', 'MONOCHROME2'),
  ];
  if (frames > 1) parts.push(str(0x0028, 0x0008, 'IS', String(frames)));
  parts.push(us(0x0028, 0x0010, rows), us(0x0028, 0x0011, columns), us(0x0028, 0x0100, 16), us(0x0028, 0x0101, 16), us(0x0028, 0x0102, 15), us(0x0028, 0x0103, 0));
  const pixelHead = Buffer.alloc(12);
  pixelHead.writeUInt16LE(0x7fe0, 0);
  pixelHead.writeUInt16LE(0x0010, 2);
  pixelHead.write('OW', 4, 'latin1');
  pixelHead.writeUInt32LE(pixelBytes, 8);
  parts.push(pixelHead);
  const headerLength = 132 + meta.length + parts.reduce((n, b) => n + b.length, 0);

  // One allocation; pixel data generated in place.
  const bytes = Buffer.alloc(headerLength + pixelBytes);
  bytes.write('DICM', 128, 'latin1');
  let off = 132;
  for (const b of [meta, ...parts]) off += b.copy(bytes, off);
  fillPseudoRandom(bytes.subarray(off), seed);

  const datasetOffset = 132 + meta.length;
  return {
    bytes,
    info: {
      sopClassUid: SECONDARY_CAPTURE_STORAGE,
      sopInstanceUid,
      studyInstanceUid,
      seriesInstanceUid,
      patientName,
      patientId,
      rows,
      columns,
      frames,
      datasetOffset,
      datasetLength: bytes.length - datasetOffset,
      fileLength: bytes.length,
    },
  };
}

/** Write a valid Part 10 test file; returns its UIDs and layout. */
export async function writeTestDicom(path: string, opts: TestDicomOptions): Promise<TestDicomInfo> {
  const { bytes, info } = buildTestDicom(opts);
  await writeFile(path, bytes);
  return { ...info, path };
}

/** Offset where the dataset starts in a Part 10 file (after the group-0002 meta information). */
export function datasetOffset(file: Buffer): number {
  if (file.length < 132 || file.toString('latin1', 128, 132) !== 'DICM') throw new Error('not a DICOM Part 10 file (no DICM)');
  // Preferred: (0002,0000) UL group length right after DICM.
  if (file.readUInt16LE(132) === 0x0002 && file.readUInt16LE(134) === 0x0000 && file.toString('latin1', 136, 138) === 'UL') {
    return 144 + file.readUInt32LE(140);
  }
  // Fallback: walk explicit VR meta elements until the group changes.
  let off = 132;
  while (off + 8 <= file.length && file.readUInt16LE(off) === 0x0002) {
    const vr = file.toString('latin1', off + 4, off + 6);
    if (['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr)) off += 12 + file.readUInt32LE(off + 8);
    else off += 8 + file.readUInt16LE(off + 6);
  }
  return off;
}

/** The bytes after the group-0002 meta information of a Part 10 file. */
export function datasetBytes(path: string): Buffer {
  const file = readFileSync(path);
  return file.subarray(datasetOffset(file));
}
