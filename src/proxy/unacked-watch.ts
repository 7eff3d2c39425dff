// The stall watch's view into the kernel (--stall-timeout): bytes a receiving socket's kernel took but its
// peer never acknowledged. Node sees a stalled peer only once writes back up into its own buffer; what is
// left of a message often fits in the kernel's send buffer (it grows to several MiB on a fast link), and
// then nothing backs up, 'drain' is never awaited, and an SCU would wait for --idle-timeout (10 minutes)
// behind an SCP whose host stopped answering.
//
// How: Linux lists every TCP socket of the network namespace in /proc/self/net/tcp and tcp6, with its
// tx_queue (bytes written and not yet acknowledged by the peer, unsent ones included). A link that writes
// to its receiver registers it here; while any socket is registered, one read of those files per tick
// (a quarter of --stall-timeout, at most 1 s, off the event loop) serves them all. A socket makes progress
// when what its peer acknowledged (bytes whose write completed, less tx_queue) passes its highest value so
// far; with nothing outstanding (tx_queue 0) it is dropped until its next write. No progress for
// --stall-timeout with bytes outstanding is a stall.
//
// Why this and not TCP_USER_TIMEOUT (the kernel resets the connection itself): Node cannot set that option,
// and the npm packages that can are native addons (a compiler at install, or a prebuilt binary per
// platform and Node ABI). Reading /proc needs no native code, works in any Linux container, and reports a
// stall the way the proxy already does (A-ABORT to the other peer, `peer_stalled`). Where /proc/self/net is
// not there (macOS, a locked-down sandbox) the watch is off, and the watch on Node's own buffer remains.

import { readFile } from 'node:fs/promises';
import os from 'node:os';
import type { Socket } from 'node:net';
import { parseIpAddress } from '../capture/encoding/tcp-ip.js';

/** One tick per this fraction of the stall timeout: a stall is seen at most a quarter late. */
const TICKS_PER_TIMEOUT = 4;
/** Bounds on the time between two reads of the tables. */
const MIN_TICK_MS = 50;
const MAX_TICK_MS = 1000;

export type TcpTable = 'tcp' | 'tcp6';

/** Where a connected socket is listed, and its key there ("LOCAL:PORT REMOTE:PORT" as the file spells them). */
export interface ProcSocket {
  table: TcpTable;
  key: string;
}

/** One address as /proc prints it: each 32-bit word in the machine's byte order, as 8 hex digits. */
function procAddress(bytes: Buffer, littleEndian: boolean): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    const word = littleEndian ? bytes.readUInt32LE(i) : bytes.readUInt32BE(i);
    out += word.toString(16).toUpperCase().padStart(8, '0');
  }
  return out;
}

function procEnd(address: string, port: number, v6: boolean, littleEndian: boolean): string | undefined {
  let bytes = parseIpAddress(address);
  if (bytes === undefined) return undefined;
  // An IPv4 peer of a dual-stack socket is listed in tcp6 as ::ffff:a.b.c.d.
  if (v6 && bytes.length === 4) bytes = Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), bytes]);
  return `${procAddress(bytes, littleEndian)}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The /proc table and key of a connected socket; undefined when its addresses are not known (closed). */
export function procSocket(socket: Pick<Socket, 'localAddress' | 'localPort' | 'remoteAddress' | 'remotePort'>, littleEndian = os.endianness() === 'LE'): ProcSocket | undefined {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (localAddress === undefined || localPort === undefined || remoteAddress === undefined || remotePort === undefined) return undefined;
  const v6 = localAddress.includes(':');
  const local = procEnd(localAddress, localPort, v6, littleEndian);
  const remote = procEnd(remoteAddress, remotePort, v6, littleEndian);
  if (local === undefined || remote === undefined) return undefined;
  return { table: v6 ? 'tcp6' : 'tcp', key: `${local} ${remote}` };
}

/**
 * The tx_queue of each socket of `keys` listed in `text` (the contents of /proc/net/tcp or tcp6): lines
 * "sl: LOCAL REMOTE st tx_queue:rx_queue ...", numbers in hex. Sockets not listed are absent. The table
 * has a line per socket of the namespace (thousands on a busy host): each line is looked at by position,
 * with no split.
 */
export function txQueues(text: string, keys: ReadonlySet<string>): Map<string, number> {
  const out = new Map<string, number>();
  if (keys.size === 0) return out;
  const keyLength = keys.values().next().value!.length;
  let at = text.indexOf('\n') + 1; // after the header line
  while (at > 0 && at < text.length && out.size < keys.size) {
    const colon = text.indexOf(':', at);
    if (colon === -1) break;
    const start = colon + 2;
    const key = text.substr(start, keyLength);
    // "KEY st tx_queue:rx_queue": the state is 2 hex digits between single spaces.
    if (keys.has(key)) out.set(key, parseInt(text.substr(start + keyLength + 4, 8), 16));
    at = text.indexOf('\n', start) + 1;
  }
  return out;
}

/** One watched socket. */
interface Watched {
  socket: Socket;
  where: ProcSocket;
  timeoutMs: number;
  onStalled: () => void;
  /** When it last made progress (or was registered). */
  since: number;
  /** The highest count of acknowledged bytes seen (bytes whose write completed, less tx_queue). */
  acked: number | undefined;
}

/** Bytes whose write to `socket` completed: the kernel (or, over TLS, the TLS layer) took them. */
function completed(socket: Socket): number {
  return socket.bytesWritten - socket.writableLength;
}

/** Reads a table's text; undefined when there is none (no /proc/self/net: not Linux); rejects on another failure. */
export type TableReader = (table: TcpTable) => Promise<string | undefined>;

const readProc: TableReader = (table) =>
  readFile(`/proc/self/net/${table}`, 'latin1').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'EACCES') return undefined;
    throw err;
  });

/** Every socket of the process being watched, polled together. */
export class UnackedPoller {
  private readonly watched = new Set<Watched>();
  private timer: NodeJS.Timeout | undefined;
  /** A read of the tables is under way (no other is started meanwhile). */
  private ticking = false;
  /** The tables could not be read: watching is off for good (no /proc). */
  private off = false;

  constructor(
    private readonly read: TableReader = readProc,
    readonly now: () => number = () => performance.now(),
  ) {}

  add(w: Watched): void {
    if (this.off) return;
    this.watched.add(w);
    this.schedule();
  }

  delete(w: Watched): void {
    this.watched.delete(w);
    if (this.watched.size === 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  has(w: Watched): boolean {
    return this.watched.has(w);
  }

  private schedule(): void {
    if (this.timer !== undefined || this.ticking || this.watched.size === 0) return;
    let tick = MAX_TICK_MS;
    for (const w of this.watched) tick = Math.min(tick, w.timeoutMs / TICKS_PER_TIMEOUT);
    this.timer = setTimeout(() => void this.tick(), Math.max(MIN_TICK_MS, tick));
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    this.ticking = true;
    let queues: Map<string, number> | undefined;
    try {
      queues = await this.readQueues();
    } catch {
      // A read that failed for once (the machine out of something): the next tick reads again.
    } finally {
      this.ticking = false;
    }
    if (queues !== undefined) this.check(queues);
    this.schedule();
  }

  /** tx_queue of every watched socket listed; undefined when the tables are not there (watching goes off). */
  private async readQueues(): Promise<Map<string, number> | undefined> {
    const keys: Record<TcpTable, Set<string>> = { tcp: new Set(), tcp6: new Set() };
    for (const w of this.watched) keys[w.where.table].add(w.where.key);
    const queues = new Map<string, number>();
    for (const table of ['tcp', 'tcp6'] as const) {
      if (keys[table].size === 0) continue;
      const text = await this.read(table);
      if (text === undefined) {
        this.off = true;
        this.watched.clear();
        return undefined;
      }
      for (const [key, queue] of txQueues(text, keys[table])) queues.set(key, queue);
    }
    return queues;
  }

  private check(queues: Map<string, number>): void {
    const now = this.now();
    for (const w of this.watched) {
      const queue = queues.get(w.where.key);
      // Gone from the table (closed), or nothing outstanding: watched again from its next write.
      if (queue === undefined || queue === 0 || w.socket.destroyed) {
        this.watched.delete(w);
        continue;
      }
      const acked = completed(w.socket) - queue;
      // The first look counts as progress too: acknowledgements that came between the write and it are
      // only seen there (a stall is then reported at most a tick later, never before its time).
      if (w.acked === undefined || acked > w.acked) {
        w.since = now;
        w.acked = acked;
      } else if (now - w.since >= w.timeoutMs) {
        this.watched.delete(w);
        w.onStalled();
      }
    }
  }
}

/** The poller every link of the process shares. */
const shared = new UnackedPoller();

/** The watch on one receiving socket (a link's): told of each write, it tells `onStalled` once. */
export class UnackedWatch {
  private entry: Watched | undefined;

  constructor(
    private readonly timeoutMs: number,
    private readonly onStalled: () => void,
    private readonly poller: UnackedPoller = shared,
  ) {}

  /** Bytes were written to `socket`: watch it until its peer has acknowledged everything. */
  wrote(socket: Socket): void {
    if (this.timeoutMs <= 0) return;
    let entry = this.entry;
    if (entry === undefined) {
      const where = procSocket(socket);
      if (where === undefined) return;
      entry = { socket, where, timeoutMs: this.timeoutMs, onStalled: () => this.stalled(), since: 0, acked: undefined };
      this.entry = entry;
    }
    if (this.poller.has(entry)) return;
    entry.since = this.poller.now();
    entry.acked = undefined;
    this.poller.add(entry);
  }

  /** The link is done (or the stall was reported). */
  end(): void {
    if (this.entry) this.poller.delete(this.entry);
    this.entry = undefined;
  }

  private stalled(): void {
    this.end();
    this.onStalled();
  }
}
