// Link shaping values: --latency MS[:JITTER] and --bandwidth RATE, for the proxy's settings, for
// bench's sweep lists and for per-route settings. Each parser throws a ConfigError whose message starts
// with the quoted text; the caller prefixes the flag or key.

import { ConfigError } from './errors.js';

/** One-way delay added to every chunk, in milliseconds (fractions allowed). */
export interface Latency {
  ms: number;
  jitterMs: number;
}

/** Latency and jitter are at most 10 minutes (setTimeout and common sense). */
const MAX_LATENCY_MS = 600_000;

const MS = String.raw`(\d+(?:\.\d+)?)\s*(?:ms)?`;
const LATENCY_PATTERN = new RegExp(`^${MS}(?:\\s*:\\s*${MS})?$`, 'i');

/**
 * `MS[:JITTER]`: a one-way delay in milliseconds, optionally ± a jitter ("20", "20:5", "20ms:5ms", "0.5").
 * The delay of one chunk is uniform in [MS - JITTER, MS + JITTER], never below 0.
 */
export function parseLatency(text: string): Latency {
  const m = LATENCY_PATTERN.exec(text.trim());
  if (!m) throw new ConfigError(`${JSON.stringify(text)} is not a latency (MS or MS:JITTER, in milliseconds, e.g. 20 or 20:5)`);
  const ms = Number(m[1]);
  const jitterMs = m[2] === undefined ? 0 : Number(m[2]);
  if (ms > MAX_LATENCY_MS || jitterMs > MAX_LATENCY_MS) throw new ConfigError(`${JSON.stringify(text)} is over ${MAX_LATENCY_MS} ms`);
  return { ms, jitterMs };
}

/** "20", "20:5" (what parseLatency reads back). */
export function formatLatency(l: Latency): string {
  return l.jitterMs > 0 ? `${l.ms}:${l.jitterMs}` : `${l.ms}`;
}

/** Bit-rate units (decimal, as networks count): bits per second each. Case of the prefix is ignored. */
const BIT_UNITS: ReadonlyMap<string, number> = new Map([
  ['', 1],
  ['k', 1e3],
  ['m', 1e6],
  ['g', 1e9],
]);
/** Byte-rate units: 1024-based, as SIZE values (size.ts): 1MB/s = 1048576 bytes per second. */
const BYTE_UNITS: ReadonlyMap<string, number> = new Map([
  ['', 1],
  ['k', 1024],
  ['ki', 1024],
  ['m', 1024 ** 2],
  ['mi', 1024 ** 2],
  ['g', 1024 ** 3],
  ['gi', 1024 ** 3],
]);

// "100Mbit", "100 Mbit/s", "100Mbps", "100Mb/s" (lower-case b: bits) | "10MB/s", "10MBps", "10MiB/s", "500KB/s", "1B/s"
// (upper-case B: bytes).
const BIT_PATTERN = /^(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:[bB][iI][tT][sS]?(?:\/s)?|bps|b\/s)$/;
const BYTE_PATTERN = /^(\d+(?:\.\d+)?)\s*([kKmMgG]i?)?B(?:\/s|ps)$/;

const NOT_A_RATE = 'is not a rate (bits per second like 100Mbit, 1.5Gbit, 512kbit; or bytes per second like 10MB/s; 0 = not limited)';

/** The most any rate may be: 1 Tbit/s. */
const MAX_BYTES_PER_SECOND = 1e12 / 8;

/**
 * A bandwidth, in bytes per second; 0 = not limited ("0", "off"). Bit rates are decimal (100Mbit =
 * 100,000,000 bit/s; kbit, Mbit, Gbit; also Mbps and Mb/s); byte rates are 1024-based like every SIZE of this
 * tool (10MB/s = 10 × 1048576 bytes per second; KB/s, MB/s, GB/s, KiB/s …; the B must be upper case).
 * A bare number other than 0 is refused: bits or bytes would be a guess.
 */
export function parseRate(text: string): number {
  const t = text.trim();
  if (/^0+(?:\.0+)?$/.test(t) || /^off$/i.test(t)) return 0;
  let bytesPerSecond: number;
  const bits = BIT_PATTERN.exec(t);
  const bytes = bits ? null : BYTE_PATTERN.exec(t);
  if (bits) bytesPerSecond = (Number(bits[1]) * BIT_UNITS.get(bits[2]!.toLowerCase())!) / 8;
  else if (bytes) bytesPerSecond = Number(bytes[1]) * BYTE_UNITS.get((bytes[2] ?? '').toLowerCase())!;
  else if (/^\d+(?:\.\d+)?$/.test(t)) throw new ConfigError(`${JSON.stringify(text)} has no unit: say 100Mbit (bits per second) or 10MB/s (bytes per second)`);
  else throw new ConfigError(`${JSON.stringify(text)} ${NOT_A_RATE}`);
  if (bytesPerSecond > MAX_BYTES_PER_SECOND) throw new ConfigError(`${JSON.stringify(text)} is over 1Tbit/s`);
  if (bytesPerSecond > 0 && bytesPerSecond < 1) throw new ConfigError(`${JSON.stringify(text)} is under 8 bit/s`);
  return bytesPerSecond;
}

/** A short label parseRate reads back: 6250000 → "50Mbit", 10485760 → "10MB/s": decimal bit rates first, then byte rates. */
export function formatRate(bytesPerSecond: number): string {
  if (bytesPerSecond <= 0) return '0';
  const bitsPerSecond = bytesPerSecond * 8;
  if (Number.isInteger(bitsPerSecond)) {
    for (const [unit, factor] of [
      ['Gbit', 1e9],
      ['Mbit', 1e6],
      ['kbit', 1e3],
    ] as const) {
      if (bitsPerSecond % factor === 0) return `${bitsPerSecond / factor}${unit}`;
    }
  }
  for (const [unit, factor] of [
    ['GB/s', 1024 ** 3],
    ['MB/s', 1024 ** 2],
    ['KB/s', 1024],
  ] as const) {
    if (bytesPerSecond % factor === 0) return `${bytesPerSecond / factor}${unit}`;
  }
  return Number.isInteger(bitsPerSecond) ? `${bitsPerSecond}bit` : `${bytesPerSecond}B/s`;
}

/** A link: the latency and bandwidth of each direction (what bench sweeps and its report labels). */
export interface LinkSetting {
  latency: Latency;
  /** Bytes per second; 0 = not limited. */
  bandwidth: number;
}

export function isShapedLink(l: LinkSetting): boolean {
  return l.latency.ms > 0 || l.latency.jitterMs > 0 || l.bandwidth > 0;
}

/** "20ms 100Mbit", "20±5ms", "0ms 1Gbit"…; "unshaped" for a link without shaping. */
export function linkLabel(l: LinkSetting): string {
  if (!isShapedLink(l)) return 'unshaped';
  const latency = l.latency.jitterMs > 0 ? `${l.latency.ms}±${l.latency.jitterMs}ms` : `${l.latency.ms}ms`;
  return l.bandwidth > 0 ? `${latency} ${formatRate(l.bandwidth)}` : latency;
}
