// What a process holds, read from /proc (Linux): resident memory and open file descriptors.

import fs from 'node:fs';

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** From /proc/PID/smaps_rollup: anonymous memory and private dirty pages, in bytes (both resident). */
export function smapsRollup(pid: number): { anonymous: number; privateDirty: number } {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kB = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { anonymous: kB('Anonymous'), privateDirty: kB('Private_Dirty') };
}

/** Resident bytes of the [heap] mapping (glibc's main malloc arena, grown with brk); 0 when there is none. */
export function mainHeapRssBytes(pid: number): number {
  const text = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const at = text.search(/ \[heap\]\n/);
  if (at < 0) return 0;
  const m = /^Rss:\s+(\d+) kB$/m.exec(text.slice(at));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Open file descriptors. */
export function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** Open sockets among the file descriptors. */
export function socketCount(pid: number): number {
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
    } catch {
      // closed while listing
    }
  }
  return n;
}

/** Poll `probe` until it returns true; reject with `what` after `timeoutMs`. */
export async function eventually(probe: () => boolean, timeoutMs: number, what: () => string, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
