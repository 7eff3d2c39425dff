// Wrappers around the DCMTK 3.6.7 command-line tools (storescp, storescu, echoscu, findscu, getscu):
// argument builders, runners, and parsers for the log lines tests rely on. DCMTK logs to stderr
// ("I: ", "D: ", "E: " prefixes); parsers take stdout + stderr.

import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { freePort } from './ports.js';
import { runToExit, spawnPeer, waitForPort } from './procs.js';
import type { PeerProcess, RunResult } from './procs.js';

export const LOOPBACK = '127.0.0.1';
const DEFAULT_RUN_TIMEOUT_MS = 30_000;

/** Options shared by the SCU tools. */
export interface ScuOptions {
  port: number;
  host?: string; // default 127.0.0.1
  aet?: string; // calling AE (-aet)
  calledAet?: string; // called AE (-aec), default ANY-SCP
  maxPdu?: number; // -pdu: our max receive PDU (DCMTK default 16384, range 4096..131072)
  debug?: boolean; // -d (default true: the negotiation dump is what parseDcmtkNegotiation reads)
  acseTimeoutSec?: number; // -ta, default 10
  dimseTimeoutSec?: number; // -td, default 10
  timeoutMs?: number; // hard limit for the process, default 30 s
  extraArgs?: string[];
}

function commonScuArgs(o: ScuOptions): string[] {
  const a: string[] = [];
  a.push(o.debug === false ? '-v' : '-d');
  if (o.aet !== undefined) a.push('-aet', o.aet);
  if (o.calledAet !== undefined) a.push('-aec', o.calledAet);
  if (o.maxPdu !== undefined) a.push('-pdu', String(o.maxPdu));
  a.push('-ta', String(o.acseTimeoutSec ?? 10), '-td', String(o.dimseTimeoutSec ?? 10));
  return a;
}

function run(cmd: string, args: string[], o: ScuOptions): Promise<RunResult> {
  return runToExit(cmd, args, { timeoutMs: o.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS, name: cmd });
}

// ---------------------------------------------------------------------------------------------- storescp

export interface StorescpOptions {
  outDir: string;
  port?: number; // default: a free port
  aet?: string; // default STORESCP
  maxPdu?: number;
  bitPreserving?: boolean; // +B, default true: files hold exactly the received dataset bytes
  logLevel?: 'verbose' | 'debug' | 'quiet'; // default verbose
  readyTimeoutMs?: number; // default 10 s
  extraArgs?: string[];
}

export function storescpArgs(o: StorescpOptions & { port: number }): string[] {
  const a: string[] = [];
  if (o.logLevel === 'debug') a.push('-d');
  else if (o.logLevel !== 'quiet') a.push('-v');
  if (o.bitPreserving !== false) a.push('--bit-preserving');
  a.push('--output-directory', o.outDir, '--aetitle', o.aet ?? 'STORESCP');
  if (o.maxPdu !== undefined) a.push('--max-pdu', String(o.maxPdu));
  a.push('--disable-host-lookup'); // no reverse DNS for the peer address
  a.push(...(o.extraArgs ?? []), String(o.port));
  return a;
}

export interface Storescp {
  peer: PeerProcess;
  port: number;
  aet: string;
  outDir: string;
  /** Regular files in outDir, full paths, sorted. */
  receivedFiles(): string[];
  stop(): Promise<void>;
}

/** Start storescp and wait until its port accepts connections (storescp prints nothing when ready). */
export async function startStorescp(o: StorescpOptions): Promise<Storescp> {
  const port = o.port ?? (await freePort());
  const aet = o.aet ?? 'STORESCP';
  const peer = spawnPeer('storescp', storescpArgs({ ...o, port, aet }), { name: `storescp:${port}` });
  try {
    await Promise.race([
      waitForPort(port, o.readyTimeoutMs ?? 10_000),
      peer.waitForExit(o.readyTimeoutMs ?? 10_000).then((e) => {
        throw new Error(`storescp exited early (${JSON.stringify(e)})\n${peer.describe()}`);
      }),
    ]);
  } catch (err) {
    await peer.kill();
    throw err;
  }
  return {
    peer,
    port,
    aet,
    outDir: o.outDir,
    receivedFiles: () => listFiles(o.outDir),
    stop: async () => {
      await peer.kill();
    },
  };
}

// ---------------------------------------------------------------------------------------------- SCUs

export interface StorescuOptions extends ScuOptions {
  files: string[];
  maxSendPdu?: number; // --max-send-pdu
}

export function storescuArgs(o: StorescuOptions): string[] {
  const a = commonScuArgs(o);
  if (o.maxSendPdu !== undefined) a.push('--max-send-pdu', String(o.maxSendPdu));
  a.push(...(o.extraArgs ?? []), o.host ?? LOOPBACK, String(o.port), ...o.files);
  return a;
}

export function storescu(o: StorescuOptions): Promise<RunResult> {
  return run('storescu', storescuArgs(o), o);
}

export function echoscuArgs(o: ScuOptions): string[] {
  return [...commonScuArgs(o), ...(o.extraArgs ?? []), o.host ?? LOOPBACK, String(o.port)];
}

export function echoscu(o: ScuOptions): Promise<RunResult> {
  return run('echoscu', echoscuArgs(o), o);
}

export type QueryModel = 'patient' | 'study';

export interface QueryOptions extends ScuOptions {
  model?: QueryModel; // default study (-S); patient = -P
  /** -k keys, e.g. 'QueryRetrieveLevel=STUDY', 'PatientName', '0010,0020=PID1'. */
  keys: string[];
}

function queryArgs(o: QueryOptions): string[] {
  const a = [o.model === 'patient' ? '-P' : '-S'];
  for (const k of o.keys) a.push('-k', k);
  return a;
}

/** Study-root STUDY-level query with common return keys. */
export const DEFAULT_FIND_KEYS = ['QueryRetrieveLevel=STUDY', 'PatientName', 'PatientID', 'StudyInstanceUID', 'StudyDate'];

export function findscuArgs(o: QueryOptions): string[] {
  return [...commonScuArgs(o), ...queryArgs(o), ...(o.extraArgs ?? []), o.host ?? LOOPBACK, String(o.port)];
}

export function findscu(o: QueryOptions): Promise<RunResult> {
  return run('findscu', findscuArgs(o), o);
}

export interface GetscuOptions extends QueryOptions {
  outDir: string;
  /**
   * +B: receive directly to disk. Default false (-B): DCMTK 3.6.7 getscu in +B mode does not log the
   * underlying DUL error when a PDU is rejected (only "Bad presentation context ID"), -B logs
   * "DUL Illegal PDU Length ...". Dataset bytes are identical in both modes for the test files.
   */
  bitPreserving?: boolean;
}

export function getscuArgs(o: GetscuOptions): string[] {
  return [...commonScuArgs(o), ...queryArgs(o), o.bitPreserving ? '+B' : '-B', '-od', o.outDir, ...(o.extraArgs ?? []), o.host ?? LOOPBACK, String(o.port)];
}

/**
 * Note: getscu 3.6.7 can exit 0 even when sub-operations failed (seen with -B and an oversized PDU);
 * check parseGetSummary / dcmtkErrors / the received files, not just the exit code.
 */
export function getscu(o: GetscuOptions): Promise<RunResult> {
  return run('getscu', getscuArgs(o), o);
}

// ---------------------------------------------------------------------------------------------- parsers

const allOutput = (r: RunResult | string): string => (typeof r === 'string' ? r : r.stdout + r.stderr);

export interface DcmtkNegotiation {
  /** "Our Max PDU Receive Size" from the last parameter dump (our -pdu value). */
  ourMaxPdu?: number;
  /** "Their Max PDU Receive Size" from the last dump: the peer's announced Maximum Length (0 if none). */
  theirMaxPdu?: number;
  /** "Max Send PDV: N" (= their max - 12), from "Association Accepted/Acknowledged (Max Send PDV: N)". */
  maxSendPdv?: number;
}

const lastNumber = (text: string, re: RegExp): number | undefined => {
  let value: number | undefined;
  for (const m of text.matchAll(re)) value = Number(m[1]);
  return value;
};

/**
 * Read the negotiated sizes from DCMTK -d output. An SCU's -d output has two dumps: the RQ before
 * sending ("Their Max PDU Receive Size:  0") and the AC after parsing it (the peer's real value), so the
 * last occurrence wins. The "Max Send PDV" line is printed at -v level too.
 */
export function parseDcmtkNegotiation(output: RunResult | string): DcmtkNegotiation {
  const text = allOutput(output);
  const n: DcmtkNegotiation = {};
  const our = lastNumber(text, /Our Max PDU Receive Size:\s+(\d+)/g);
  const their = lastNumber(text, /Their Max PDU Receive Size:\s+(\d+)/g);
  const pdv = lastNumber(text, /\(Max Send PDV: (\d+)\)/g);
  if (our !== undefined) n.ourMaxPdu = our;
  if (their !== undefined) n.theirMaxPdu = their;
  if (pdv !== undefined) n.maxSendPdv = pdv;
  return n;
}

/** The peer's max PDU receive size as DCMTK reports it ("D: Their Max PDU Receive Size:  16384"). */
export function parseDcmtkMaxPdu(output: RunResult | string): number | undefined {
  return parseDcmtkNegotiation(output).theirMaxPdu;
}

/** Lines DCMTK logged at error or fatal level ("E: ...", "F: ..."). */
export function dcmtkErrors(output: RunResult | string): string[] {
  return allOutput(output)
    .split('\n')
    .filter((l) => /^[EF]: /.test(l));
}

/**
 * Number of pending C-FIND responses. findscu -v prints "I: Find Response: N (Pending)", findscu -d
 * prints "I: Received Find Response N" (and "Received Final Find Response" for the last one).
 */
export function parseFindResponses(output: RunResult | string): number {
  return [...allOutput(output).matchAll(/Find Response: \d+ \(Pending\)|Received Find Response \d+/g)].length;
}

/** Values of one attribute in findscu's response dumps, e.g. findValues(out, '0010,0010'). */
export function findValues(output: RunResult | string, tag: string): string[] {
  const re = new RegExp(`\\(${tag}\\) [A-Z]{2} \\[([^\\]]*)\\]`, 'gi');
  return [...allOutput(output).matchAll(re)].map((m) => m[1]!.trim());
}

export interface GetSummary {
  remaining: number;
  completed: number;
  failed: number;
  warning: number;
}

/** getscu's "Final status report from last C-GET message" block, if present. */
export function parseGetSummary(output: RunResult | string): GetSummary | undefined {
  const text = allOutput(output);
  const num = (label: string): number | undefined => {
    const m = text.match(new RegExp(`Number of ${label} Suboperations\\s*:\\s*(\\d+)`));
    return m ? Number(m[1]) : undefined;
  };
  const completed = num('Completed');
  if (completed === undefined) return undefined;
  return { remaining: num('Remaining') ?? 0, completed, failed: num('Failed') ?? 0, warning: num('Warning') ?? 0 };
}

/** Regular files directly in `dir`, full paths, sorted. */
export function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .map((f) => path.join(dir, f))
    .filter((f) => statSync(f).isFile())
    .sort();
}
