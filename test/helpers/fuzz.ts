// Random and mutated byte streams against a running proxy: the process must survive any input. Used by
// test/integration/fuzz-proxy.test.ts (a few hundred streams) and scripts/fuzz.ts (`npm run fuzz -- SECONDS`).
//
// Every stream is reproducible from its seed. The upstream is an "auto SCP" that accepts any RQ and answers
// A-RELEASE-RQ, so mutated streams reach every stage of an association. After each stream the client
// sends a FIN; the proxy must then close the connection (with or without an A-ABORT) within a bound.

import net from 'node:net';
import { PduType } from '../../src/pdu/constants.js';
import { encodeReleaseRp, encodeReleaseRq } from '../../src/pdu/control.js';
import { encodePData } from '../../src/pdu/pdata.js';
import { fdCount, rssBytes } from './proc-stats.js';
import { ProxyProcess } from './proxy.js';
import { RawPeer, buildAc, buildRq, splitPdus, withTimeout } from './raw.js';

/** xorshift32: small, fast, reproducible. */
export class Rng {
  private x: number;
  constructor(seed: number) {
    this.x = (seed ^ 0x9e3779b9) >>> 0 || 1;
  }
  next(): number {
    let x = this.x;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.x = x >>> 0;
    return this.x;
  }
  int(n: number): number {
    return this.next() % n;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.next() & 0xff;
    return b;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

const CONTEXTS = [
  { id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] },
  { id: 3, abstractSyntax: '1.2.840.10008.5.1.4.1.1.7', transferSyntaxes: ['1.2.840.10008.1.2.1'] },
];

/** A well-formed association from the SCU's side: RQ, a few P-DATA-TF, A-RELEASE-RQ. */
function validSession(rng: Rng): Buffer {
  const parts = [buildRq({ maxLength: rng.pick([0, 4096, 16384, 65536]), contexts: CONTEXTS })];
  const messages = 1 + rng.int(4);
  for (let m = 0; m < messages; m++) {
    const contextId = rng.pick([1, 3]);
    parts.push(encodePData([{ contextId, command: true, last: true, fragment: rng.bytes(2 * (1 + rng.int(40))) }]));
    const fragments = rng.int(4);
    for (let f = 0; f < fragments; f++) {
      parts.push(encodePData([{ contextId, command: false, last: f === fragments - 1, fragment: rng.bytes(2 * rng.int(20000)) }]));
    }
  }
  parts.push(encodeReleaseRq());
  return Buffer.concat(parts);
}

/** PDU headers with random types and lengths, short random bodies. */
function randomPdus(rng: Rng): Buffer {
  const parts: Buffer[] = [];
  const n = 1 + rng.int(6);
  for (let i = 0; i < n; i++) {
    const header = Buffer.alloc(6);
    header[0] = rng.int(3) === 0 ? rng.int(256) : 1 + rng.int(7);
    header[1] = rng.int(256);
    const body = rng.bytes(rng.int(300));
    header.writeUInt32BE(rng.int(4) === 0 ? rng.next() : body.length, 2);
    parts.push(header, body);
  }
  return Buffer.concat(parts);
}

export type StreamKind = 'random-bytes' | 'random-pdus' | 'flipped' | 'truncated' | 'length-smash' | 'spliced' | 'valid';
export const STREAM_KINDS: readonly StreamKind[] = ['random-bytes', 'random-pdus', 'flipped', 'truncated', 'length-smash', 'spliced', 'valid'];

export interface FuzzStream {
  kind: StreamKind;
  bytes: Buffer;
  /** Where the RQ of the session it was made from ends: the sender waits for an answer there, as SCUs do. */
  pauseAt?: number;
}

const rqLength = (session: Buffer): number => 6 + session.readUInt32BE(2);

/** The bytes of stream `seed`. */
export function makeStream(seed: number): FuzzStream {
  const rng = new Rng(seed);
  const kind = STREAM_KINDS[seed % STREAM_KINDS.length]!;
  switch (kind) {
    case 'random-bytes':
      return { kind, bytes: rng.bytes(1 + rng.int(4096)) };
    case 'random-pdus':
      return { kind, bytes: randomPdus(rng) };
    case 'flipped': {
      const bytes = Buffer.from(validSession(rng));
      const flips = 1 + rng.int(8);
      for (let i = 0; i < flips; i++) bytes[rng.int(Math.min(bytes.length, rng.int(2) ? 200 : bytes.length))] = rng.int(256);
      return { kind, bytes, pauseAt: rqLength(validSession(new Rng(seed))) };
    }
    case 'truncated': {
      const bytes = validSession(rng);
      return { kind, bytes: bytes.subarray(0, rng.int(bytes.length)), pauseAt: rqLength(bytes) };
    }
    case 'length-smash': {
      // Overwrite one PDU length or PDV item length with a random (often huge) value.
      const bytes = Buffer.from(validSession(rng));
      const { pdus } = splitPdus(bytes);
      let at = 0;
      const target = rng.int(pdus.length);
      for (let i = 0; i < target; i++) at += pdus[i]!.length;
      const value = rng.pick([0, 1, 2, 5, 0xffffffff, 0x7fffffff, rng.next(), rng.int(70000)]);
      if (pdus[target]![0] === PduType.PDataTf && rng.int(2)) bytes.writeUInt32BE(value, at + 6);
      else bytes.writeUInt32BE(value, at + 2);
      return { kind, bytes, pauseAt: pdus[0]!.length };
    }
    case 'spliced': {
      const a = validSession(rng);
      const b = randomPdus(rng);
      const cut = rng.int(a.length);
      return { kind, bytes: Buffer.concat([a.subarray(0, cut), b, a.subarray(cut)]), pauseAt: Math.min(cut, rqLength(a)) };
    }
    case 'valid': {
      const bytes = validSession(rng);
      return { kind, bytes, pauseAt: rqLength(bytes) };
    }
  }
}

/** An SCP that accepts every RQ (contexts 1 and 3), answers A-RELEASE-RQ, and closes when told to. */
export class AutoScp {
  readonly server: net.Server;
  readonly port: number;
  private readonly sockets: Set<net.Socket>;

  private constructor(server: net.Server, port: number, sockets: Set<net.Socket>) {
    this.server = server;
    this.port = port;
    this.sockets = sockets;
  }

  static listen(): Promise<AutoScp> {
    return new Promise((resolve) => {
      const sockets = new Set<net.Socket>();
      const server = net.createServer({ allowHalfOpen: false }, (socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
        let pending: Buffer = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => {
          pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
          // Whole PDUs only (the proxy forwards nothing over 1 MiB whole: P-DATA is cut to 16 KB).
          for (;;) {
            if (pending.length < 6) return;
            const length = pending.readUInt32BE(2);
            if (pending.length < 6 + length) return;
            const type = pending[0];
            pending = pending.subarray(6 + length);
            if (type === PduType.AssociateRq) {
              socket.write(
                buildAc({
                  maxLength: 16384,
                  contexts: [
                    { id: 1, transferSyntax: '1.2.840.10008.1.2' },
                    { id: 3, transferSyntax: '1.2.840.10008.1.2.1' },
                  ],
                }),
              );
            } else if (type === PduType.ReleaseRq) {
              socket.write(encodeReleaseRp());
            } else if (type === PduType.Abort) {
              socket.end();
            }
          }
        });
      });
      server.listen(0, '127.0.0.1', () => {
        resolve(new AutoScp(server, (server.address() as net.AddressInfo).port, sockets));
      });
    });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export interface StreamResult {
  seed: number;
  kind: StreamKind;
  bytes: number;
  /** What the SCU saw: the proxy closed (FIN or reset) within the bound. */
  closed: boolean;
}

/**
 * Send stream `seed` to the proxy in random chunk sizes, then a FIN (or, for some seeds, a reset), and wait
 * for the proxy to close its side. `closed` false means the proxy held the connection past `closeWithinMs`.
 */
export async function runStream(port: number, seed: number, closeWithinMs: number): Promise<StreamResult> {
  const { kind, bytes, pauseAt } = makeStream(seed);
  const rng = new Rng(seed * 7 + 1);
  const peer = await RawPeer.connect(port);
  peer.socket.setMaxListeners(0);
  let at = 0;
  let paused = pauseAt === undefined;
  while (at < bytes.length && !peer.socket.destroyed) {
    if (!paused && at >= pauseAt!) {
      paused = true;
      // Like an SCU: wait for the answer to the RQ (AC, RJ, A-ABORT) or a close, briefly.
      await peer.waitForPdus(1, 2000).catch(() => undefined);
    }
    let n = rng.pick([1, 2, 5, 6, 7, 64, 1000, 16384, 65536]);
    if (!paused) n = Math.min(n, pauseAt! - at);
    const ok = peer.socket.write(bytes.subarray(at, at + n));
    at += n;
    if (!ok) await withTimeout(new Promise((r) => peer.socket.once('drain', r)), 5000, 'drain').catch(() => peer.destroy());
    if (rng.int(8) === 0) await new Promise((r) => setImmediate(r));
  }
  if (rng.int(10) === 0) {
    peer.socket.resetAndDestroy();
    return { seed, kind, bytes: bytes.length, closed: true };
  }
  peer.socket.end();
  let closed = true;
  try {
    await withTimeout(Promise.race([peer.ended, peer.closed]), closeWithinMs, `proxy to close stream ${seed}`);
  } catch {
    closed = false;
  }
  peer.destroy();
  return { seed, kind, bytes: bytes.length, closed };
}

/** A full, well-formed association through the proxy to the auto SCP: the proxy still serves. */
export async function healthCheck(port: number): Promise<void> {
  const peer = await RawPeer.connect(port);
  try {
    peer.send(buildRq({ maxLength: 16384, contexts: CONTEXTS }));
    const [ac] = await peer.waitForPdus(1);
    if (ac![0] !== PduType.AssociateAc) throw new Error(`health check: got PDU type ${ac![0]}, not an AC`);
    const data = encodePData([{ contextId: 1, command: true, last: true, fragment: Buffer.alloc(20, 1) }]);
    peer.send(data);
    peer.send(encodeReleaseRq());
    const [, rp] = await peer.waitForPdus(2);
    if (rp![0] !== PduType.ReleaseRp) throw new Error(`health check: got PDU type ${rp![0]}, not a RELEASE-RP`);
    peer.socket.end();
    await Promise.race([peer.ended, peer.closed]);
  } finally {
    peer.destroy();
  }
}

/** Run `count` streams from `firstSeed`, `parallel` at a time. */
export async function runStreams(port: number, firstSeed: number, count: number, parallel: number, closeWithinMs: number): Promise<StreamResult[]> {
  const results: StreamResult[] = [];
  let next = firstSeed;
  const end = firstSeed + count;
  const worker = async (): Promise<void> => {
    while (next < end) {
      const seed = next++;
      results.push(await runStream(port, seed, closeWithinMs));
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return results;
}

/** A proxy (short timers, so abandoned streams end quickly) in front of an AutoScp, with its baseline. */
export interface FuzzTarget {
  proxy: ProxyProcess;
  pid: number;
  /** Open file descriptors and RSS once one well-formed association has come and gone. */
  baselineFds: number;
  baselineRss: number;
  stop(): Promise<void>;
}

/** Start the target of the fuzz test and of `npm run fuzz`, and take its baseline after a health check. */
export async function startFuzzTarget(): Promise<FuzzTarget> {
  const scp = await AutoScp.listen();
  const timers = ['--artim-timeout', '1000', '--idle-timeout', '1000', '--close-timeout', '1000'];
  const proxy = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, ...timers]);
  const stop = async (): Promise<void> => {
    await proxy.stop();
    await scp.close();
  };
  try {
    const pid = proxy.child.pid!;
    await healthCheck(proxy.port);
    // The baseline once the health check's association is fully closed (both legs).
    await proxy.waitForLog((l) => l.msg === 'association closed' && l.assoc === 1);
    return { proxy, pid, baselineFds: fdCount(pid), baselineRss: rssBytes(pid), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Log lines no input may cause: error level and above, or an internal error turned into an abort. */
export function errorLogLines(logs: ReadonlyArray<Record<string, unknown>>): Array<Record<string, unknown>> {
  return logs.filter((l) => Number(l.level) >= 50 || String(l.reason ?? '').includes('internal error'));
}
