// What glibc's malloc holds inside a running process, read with gdb (no native addon): malloc_info()'s XML,
// and optionally malloc_trim(0), which hands the free pages back to the kernel. Attaching stops the process
// for a fraction of a second (0.3-0.6 s measured on a loaded 2-core machine), so the soak calls this only
// while its load is paused. Linux with glibc only; undefined where gdb is missing or cannot attach.

import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export interface MallocInfo {
  /** Bytes in free chunks, all arenas (malloc_info's <total type="fast"> and <total type="rest">). */
  freeBytes: number;
  /** Bytes the arenas took from the system (<system type="current">), without mmapped chunks. */
  systemBytes: number;
  /** Bytes in chunks served by mmap (<total type="mmap">). */
  mmapBytes: number;
  arenas: number;
}

/** Parse malloc_info(0, ...)'s XML: the totals after the last </heap>. */
export function parseMallocInfo(xml: string): MallocInfo {
  const totals = xml.slice(xml.lastIndexOf('</heap>'));
  const size = (tag: string, type: string): number => {
    const m = new RegExp(`<${tag} type="${type}"(?: count="\\d+")? size="(\\d+)"/>`).exec(totals);
    if (!m) throw new Error(`malloc_info: no <${tag} type="${type}">`);
    return Number(m[1]);
  };
  return {
    freeBytes: size('total', 'fast') + size('total', 'rest'),
    systemBytes: size('system', 'current'),
    mmapBytes: size('total', 'mmap'),
    arenas: (xml.match(/<heap nr=/g) ?? []).length,
  };
}

function gdb(pid: number, commands: string[], timeoutMs: number): Promise<string> {
  const args = ['-p', String(pid), '-batch', '-nx', '--readnever'];
  // Only libc's symbols: reading node's own takes longer, and the process is stopped meanwhile.
  args.push('-iex', 'set auto-load off', '-iex', 'set debuginfod enabled off', '-iex', 'set auto-solib-add off');
  args.push('-ex', 'sharedlibrary libc.so', '-ex', 'set unwindonsignal on');
  for (const c of commands) args.push('-ex', c);
  return new Promise((resolve, reject) => {
    execFile('gdb', args, { timeout: timeoutMs }, (err, stdout, stderr) => (err ? reject(new Error(`gdb: ${err.message} ${stderr.slice(-300)}`)) : resolve(stdout)));
  });
}

/** malloc_info of process `pid`, then malloc_trim(0) if `trim`; undefined (with the reason) when gdb cannot. */
export async function readMalloc(pid: number, o: { trim?: boolean; timeoutMs?: number } = {}): Promise<{ info?: MallocInfo; reason?: string }> {
  const file = path.join(os.tmpdir(), `malloc-info-${pid}-${Date.now()}.xml`);
  const commands = [
    `set $out = ((void*(*)(const char*, const char*))fopen)("${file}", "w")`,
    'print ((int(*)(int, void*))malloc_info)(0, $out)',
    'print ((int(*)(void*))fclose)($out)',
  ];
  if (o.trim) commands.push('print ((int(*)(unsigned long))malloc_trim)(0)');
  try {
    const out = await gdb(pid, commands, o.timeoutMs ?? 30_000);
    if (!/^\$2 = 0$/m.test(out)) return { reason: `gdb did not run malloc_info: ${out.trim().split('\n').slice(-2).join(' | ')}` };
    return { info: parseMallocInfo(await readFile(file, 'utf8')) };
  } catch (err) {
    return { reason: (err as Error).message.split('\n')[0] };
  } finally {
    await rm(file, { force: true });
  }
}
