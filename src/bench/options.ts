// bench's settings: defaults are the original experiment; every value is validated here (ConfigError:
// one line naming the flag, exit status 2).

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../values/errors.js';
import { formatEndpoint, parseUpstream } from '../values/endpoint.js';
import type { Endpoint } from '../values/endpoint.js';
import { parseSize } from '../values/size.js';
import { formatLatency, formatRate, isShapedLink, parseLatency, parseRate } from '../values/shaping.js';
import type { Latency, LinkSetting } from '../values/shaping.js';
import { parseScpTemplate } from './scp-template.js';
import type { ScpTemplate } from './scp-template.js';

/** The experiment: PACS restarted at these sizes, 4 SCUs, 16MB images, 100 images per setting. */
export const DEFAULT_PDUS = '16KB,100KB,500KB,1MB,10MB,20MB';
export const DEFAULT_IMAGE_SIZE = '16MB';
export const DEFAULT_PARALLEL = 4;
export const DEFAULT_COUNT = 100;
/** --quick: the same six sizes, fewer and smaller images (under 60 s on 2 cores). */
export const QUICK_IMAGE_SIZE = '2MB';
export const QUICK_COUNT = 8;
export const DEFAULT_CALLED_AET = 'ANY-SCP';
/** Seconds a sender waits for a connection, an AC, or a C-STORE's response before giving up (--timeout). */
export const DEFAULT_TIMEOUT_S = 120;
export const DEFAULT_CALLING_AET = 'PDU-BENCH';
/** --scp-command: seconds to wait until the SCP accepts connections. */
export const DEFAULT_SCP_START_TIMEOUT_S = 30;
/** --scp-command behind the proxy: the largest Maximum Length DCMTK storescp and Orthanc accept. */
export const DEFAULT_SCP_PDU = 131072;
/** A Maximum Length must hold one PDV item header (4 + 2) and an even fragment: PS3.8 9.3.5. */
const MIN_PDU = 8;
/** AE titles: 1-16 characters of the default repertoire, no backslash, not all spaces (PS3.5 6.2). */
const AE_TITLE = /^(?=.*\S)[\x20-\x5b\x5d-\x7e]{1,16}$/;

export type ScuKind = 'builtin' | 'dcmjs' | 'dcmtk';
export type ScpKind = 'builtin' | 'dcmjs';
/** The built-in sender: a new association per image (as the original experiment), or one per sender. */
export type AssociationMode = 'per-image' | 'per-sender';
/** direct: the embedded SCP announces the size; native: the --scp-command SCP is started with it. */
export type BenchMode = 'proxy' | 'direct' | 'native';

export interface BenchOptions {
  pdus: number[];
  /** Synthetic image sizes (pixel data bytes); empty when `images` are given. */
  imageSizes: number[];
  /** Real DICOM files (--image), sent round-robin. */
  images: string[];
  parallel: number;
  count: number;
  upstream: Endpoint | undefined;
  calledAet: string;
  callingAet: string;
  scu: ScuKind;
  /** The embedded SCP (without --upstream). */
  scp: ScpKind;
  association: AssociationMode;
  /** Bound on each sender's connect, negotiation and C-STORE (--timeout): a stalled peer is a counted failure. */
  timeoutMs: number;
  modes: BenchMode[];
  out: string;
  storeDir: string | undefined;
  quick: boolean;
  /** Link shaping to sweep (--latency, --bandwidth): every combination with every max PDU. [{0, 0}] / [0] = none. */
  latencies: Latency[];
  /** Bytes per second; 0 = not limited. */
  bandwidths: number[];
  /** --scp-command: the SCP bench starts per setting (undefined: embedded or --upstream). */
  scpCommand: ScpTemplate | undefined;
  scpStartTimeoutMs: number;
  /** {pdu} of the --scp-command SCP behind the proxy (0 = no limit). */
  scpPdu: number;
  /** --tls: TLS on both legs (sender -> proxy -> SCP re-encrypting; sender -> SCP with --direct), throwaway certificates. */
  tls: boolean;
}

/** The proxy's flags for a link: none when unshaped. */
export function linkArgs(l: LinkSetting): string[] {
  const args: string[] = [];
  if (l.latency.ms > 0 || l.latency.jitterMs > 0) args.push('--latency', formatLatency(l.latency));
  if (l.bandwidth > 0) args.push('--bandwidth', formatRate(l.bandwidth));
  return args;
}

/** Every (latency, bandwidth) combination, latencies outermost. */
export function linkSettings(o: Pick<BenchOptions, 'latencies' | 'bandwidths'>): LinkSetting[] {
  return o.latencies.flatMap((latency) => o.bandwidths.map((bandwidth) => ({ latency, bandwidth })));
}

export interface BenchFlags {
  pdu?: string;
  imageSize?: string;
  image?: string[];
  parallel?: string;
  count?: string;
  upstream?: string;
  calledAet?: string;
  callingAet?: string;
  scu?: string;
  scp?: string;
  association?: string;
  timeout?: string;
  direct?: boolean;
  both?: boolean;
  out?: string;
  storeDir?: string;
  quick?: boolean;
  latency?: string;
  bandwidth?: string;
  scpCommand?: string;
  scpStartTimeout?: string;
  scpPdu?: string;
  tls?: boolean;
}

/** A comma-separated list of values read by `parse`; its ConfigError gets the flag's name. */
function valueList<T>(flag: string, text: string, parse: (item: string) => T, what: string): T[] {
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new ConfigError(`${flag}: ${JSON.stringify(text)} is not a comma-separated list of ${what}`);
  return items.map((s) => {
    try {
      return parse(s);
    } catch (err) {
      throw new ConfigError(`${flag}: ${(err as Error).message}`);
    }
  });
}

function pduSize(flag: string, text: string): number {
  let p: number;
  try {
    p = parseSize(text);
  } catch (err) {
    throw new ConfigError(`${flag}: ${(err as Error).message}`);
  }
  if (p !== 0 && (p < MIN_PDU || p % 2 !== 0)) throw new ConfigError(`${flag}: ${p} bytes is not an even Maximum Length of at least ${MIN_PDU} (or 0)`);
  return p;
}

function sizeList(flag: string, text: string): number[] {
  const items = text.split(',').map((s) => s.trim());
  if (items.length === 0 || items.some((s) => s === '')) throw new ConfigError(`${flag}: ${JSON.stringify(text)} is not a comma-separated list of sizes`);
  return items.map((s) => {
    try {
      return parseSize(s);
    } catch (err) {
      throw new ConfigError(`${flag}: ${(err as Error).message}`);
    }
  });
}

function positiveInt(flag: string, text: string, max: number): number {
  const n = Number(text.trim());
  if (!/^\d+$/.test(text.trim()) || n < 1 || n > max) throw new ConfigError(`${flag}: ${JSON.stringify(text)} is not a whole number in 1..${max}`);
  return n;
}

function aeTitle(flag: string, text: string): string {
  if (!AE_TITLE.test(text)) throw new ConfigError(`${flag}: ${JSON.stringify(text)} is not an AE title (1-16 characters, no backslash)`);
  return text;
}

/** "2026-11-25T10-20-03" (UTC, no colons: a portable directory name). */
export function timestampName(d = new Date()): string {
  return d.toISOString().slice(0, 19).replace(/:/g, '-');
}

export function benchOptions(flags: BenchFlags, cwd = process.cwd()): BenchOptions {
  const pdus = sizeList('--pdu', flags.pdu ?? DEFAULT_PDUS);
  for (const p of pdus) {
    if (p !== 0 && (p < MIN_PDU || p % 2 !== 0)) throw new ConfigError(`--pdu: ${p} bytes is not an even Maximum Length of at least ${MIN_PDU} (or 0)`);
  }
  const images = (flags.image ?? []).map((f) => path.resolve(cwd, f));
  if (images.length > 0 && flags.imageSize !== undefined) throw new ConfigError('--image and --image-size exclude each other');
  for (const f of images) {
    if (!existsSync(f)) throw new ConfigError(`--image: ${f}: no such file`);
    const head = readFileSync(f).subarray(128, 132).toString('latin1');
    if (head !== 'DICM') throw new ConfigError(`--image: ${f} is not a DICOM Part 10 file (no DICM at offset 128)`);
  }
  const quick = flags.quick === true;
  const imageSizes = images.length > 0 ? [] : sizeList('--image-size', flags.imageSize ?? (quick ? QUICK_IMAGE_SIZE : DEFAULT_IMAGE_SIZE));
  for (const s of imageSizes) {
    if (s < 2 || s % 2 !== 0) throw new ConfigError(`--image-size: ${s} bytes is not an even number of pixel bytes >= 2`);
  }
  const parallel = positiveInt('--parallel', flags.parallel ?? String(DEFAULT_PARALLEL), 64);
  const count = positiveInt('--count', flags.count ?? String(quick ? QUICK_COUNT : DEFAULT_COUNT), 1_000_000);
  const upstream = flags.upstream !== undefined ? parseUpstreamFlag(flags.upstream) : undefined;
  const scu = flags.scu ?? 'builtin';
  if (scu !== 'builtin' && scu !== 'dcmjs' && scu !== 'dcmtk') throw new ConfigError(`--scu: ${JSON.stringify(scu)} is not builtin, dcmjs or dcmtk`);
  const scp = flags.scp ?? 'builtin';
  if (scp !== 'builtin' && scp !== 'dcmjs') throw new ConfigError(`--scp: ${JSON.stringify(scp)} is not builtin or dcmjs`);
  if (flags.scp !== undefined && flags.upstream !== undefined) throw new ConfigError('--scp chooses the embedded SCP; with --upstream the SCP is yours');
  const association = flags.association ?? 'per-image';
  if (association !== 'per-image' && association !== 'per-sender') throw new ConfigError(`--association: ${JSON.stringify(association)} is not per-image or per-sender`);
  if (association === 'per-sender' && scu !== 'builtin') {
    throw new ConfigError(`--association per-sender is for --scu builtin (dcmjs-dimse opens one association per image, storescu one per sender)`);
  }
  if (flags.direct && flags.both) throw new ConfigError('--direct and --both exclude each other');
  const scpCommand = flags.scpCommand !== undefined ? parseScpTemplate(flags.scpCommand) : undefined;
  if (scpCommand) {
    if (flags.upstream !== undefined) throw new ConfigError('--scp-command and --upstream exclude each other (bench starts the SCP of --scp-command itself)');
    if (flags.scp !== undefined) throw new ConfigError('--scp chooses the embedded SCP; with --scp-command the SCP is yours');
    if (flags.storeDir !== undefined) throw new ConfigError('--store-dir is for the embedded SCP; with --scp-command use {out} in the template');
  } else {
    if (flags.scpPdu !== undefined) throw new ConfigError('--scp-pdu is what the SCP of --scp-command is started with behind the proxy: it needs --scp-command');
    if (flags.scpStartTimeout !== undefined) throw new ConfigError('--scp-start-timeout needs --scp-command');
  }
  const direct: BenchMode = scpCommand ? 'native' : 'direct';
  const modes: BenchMode[] = flags.both ? ['proxy', direct] : flags.direct ? [direct] : ['proxy'];
  if (upstream && modes.includes('direct')) {
    throw new ConfigError('--direct/--both need the embedded SCP: a real SCP (--upstream) cannot be told which maximum to announce');
  }
  const latencies = flags.latency !== undefined ? valueList('--latency', flags.latency, parseLatency, 'latencies (MS or MS:JITTER)') : [{ ms: 0, jitterMs: 0 }];
  const bandwidths = flags.bandwidth !== undefined ? valueList('--bandwidth', flags.bandwidth, parseRate, 'rates (100Mbit, 10MB/s, 0)') : [0];
  if (modes.includes(direct) && linkSettings({ latencies, bandwidths }).some(isShapedLink)) {
    throw new ConfigError(
      `${flags.latency !== undefined ? '--latency' : '--bandwidth'}: links are shaped by the proxy; --direct/--both have no proxy in the direct rows (sweep shaping without them)`,
    );
  }
  const tls = flags.tls === true;
  if (tls) {
    if (scu === 'dcmjs') throw new ConfigError('--tls: the dcmjs-dimse Client is not run with TLS here; use --scu builtin (default) or --scu dcmtk');
    if (scp !== 'builtin') throw new ConfigError('--tls: the embedded dcmjs-dimse SCP is not run with TLS here; use --scp builtin (default)');
    if (upstream)
      throw new ConfigError('--tls makes throwaway certificates for the embedded SCP; a real SCP (--upstream) has its own: run the proxy with --upstream-tls against it');
    if (scpCommand) throw new ConfigError('--tls and --scp-command exclude each other (the certificates are made for the embedded SCP)');
  }
  if (upstream && flags.storeDir !== undefined) throw new ConfigError('--store-dir is for the embedded SCP; with --upstream the SCP keeps what it keeps');
  return {
    pdus,
    imageSizes,
    images,
    parallel,
    count,
    upstream,
    calledAet: aeTitle('--called-aet', flags.calledAet ?? DEFAULT_CALLED_AET),
    callingAet: aeTitle('--calling-aet', flags.callingAet ?? DEFAULT_CALLING_AET),
    scu,
    scp,
    association,
    timeoutMs: 1000 * positiveInt('--timeout', flags.timeout ?? String(DEFAULT_TIMEOUT_S), 86_400),
    modes,
    out: path.resolve(cwd, flags.out ?? path.join('results', timestampName())),
    storeDir: flags.storeDir !== undefined ? path.resolve(cwd, flags.storeDir) : undefined,
    quick,
    latencies,
    bandwidths,
    scpCommand,
    scpStartTimeoutMs: 1000 * positiveInt('--scp-start-timeout', flags.scpStartTimeout ?? String(DEFAULT_SCP_START_TIMEOUT_S), 3600),
    scpPdu: flags.scpPdu !== undefined ? pduSize('--scp-pdu', flags.scpPdu) : DEFAULT_SCP_PDU,
    tls,
  };
}

function parseUpstreamFlag(text: string): Endpoint {
  try {
    return parseUpstream(text);
  } catch (err) {
    throw new ConfigError(`--upstream: ${(err as Error).message}`);
  }
}

export { formatEndpoint };
