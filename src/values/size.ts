// SIZE values: bytes, or a number with a 1024-based unit as DICOM tools count (16KB = 16384).

import { UINT32_MAX } from '../pdu/constants.js';
import { ConfigError } from './errors.js';

const KIB = 1024n;
const MIB = 1024n ** 2n;
const GIB = 1024n ** 3n;

/** Unit (lower case) → bytes. KB/MB/GB are 1024-based, as DICOM tools use them. */
const UNITS: ReadonlyMap<string, bigint> = new Map([
  ['', 1n],
  ['b', 1n],
  ['k', KIB],
  ['kb', KIB],
  ['kib', KIB],
  ['m', MIB],
  ['mb', MIB],
  ['mib', MIB],
  ['g', GIB],
  ['gb', GIB],
  ['gib', GIB],
]);

/** Digits, optional decimals, optional space, optional unit letters. Surrounding spaces are ignored. */
const SIZE_PATTERN = /^(\d+)(?:\.(\d+))?\s*([a-z]*)$/i;

const NOT_A_SIZE = 'is not a size (bytes, or a number with KB/MB/GB)';

/**
 * Parse a SIZE: "16384", "16KB", "16 kb", "1.5MB", "4KiB", "0" (no maximum). The result is a whole number of
 * bytes from 0 to 4294967295 (the largest Maximum Length). Throws a ConfigError whose message starts with
 * the quoted text and says what is wrong.
 */
export function parseSize(text: string): number {
  const match = SIZE_PATTERN.exec(text.trim());
  if (!match) throw new ConfigError(`${JSON.stringify(text)} ${NOT_A_SIZE}`);
  const [, whole, fraction = '', unitText] = match;
  const unit = UNITS.get(unitText!.toLowerCase());
  if (unit === undefined) throw new ConfigError(`${JSON.stringify(text)} ${NOT_A_SIZE}`);
  // Exact arithmetic: (whole.fraction × unit) must be a whole number of bytes.
  const scale = 10n ** BigInt(fraction.length);
  const scaled = BigInt(whole! + fraction) * unit;
  if (scaled % scale !== 0n) throw new ConfigError(`${JSON.stringify(text)} is not a whole number of bytes`);
  const bytes = scaled / scale;
  if (bytes > BigInt(UINT32_MAX)) {
    throw new ConfigError(`${JSON.stringify(text)} is over 4294967295 bytes, the largest Maximum Length`);
  }
  return Number(bytes);
}

/** The shortest exact label: 16384 → "16KB", 20971520 → "20MB", 1000 → "1000B", 0 → "0B". */
export function formatSize(bytes: number): string {
  if (bytes > 0 && Number.isInteger(bytes)) {
    for (const [unit, factor] of [
      ['GB', 1024 ** 3],
      ['MB', 1024 ** 2],
      ['KB', 1024],
    ] as const) {
      if (bytes % factor === 0) return `${bytes / factor}${unit}`;
    }
  }
  return `${bytes}B`;
}
