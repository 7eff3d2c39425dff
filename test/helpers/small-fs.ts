// A real file system that fills up and frees again, for tests of what is written to disk: a tmpfs of a few
// hundred KiB mounted on a temporary directory (root or CAP_SYS_ADMIN needed). fill() takes all its free
// space with a filler file, free() deletes it. Where it cannot be mounted, mountSmallFs() resolves with the
// reason, and the test says it skipped (skipWithReason) instead of passing silently.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

export interface SmallFs {
  dir: string;
  /** Write a filler file until the file system is full (ENOSPC). */
  fill(): void;
  /** Delete the filler: its space is free again. */
  free(): void;
  /** Bytes still free (statfs). */
  available(): number;
  unmount(): void;
}

const FILLER = '.filler';

/** Mount a tmpfs of `bytes` on a new temporary directory; a string says why it could not be. */
export function mountSmallFs(bytes: number): SmallFs | string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'small-fs-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0755`, 'tmpfs', dir], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    return `cannot mount a tmpfs here (mount: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}; root or CAP_SYS_ADMIN needed)`;
  }
  const filler = path.join(dir, FILLER);
  return {
    dir,
    fill() {
      const fd = fs.openSync(filler, 'a');
      const block = Buffer.alloc(4096, 0x46);
      try {
        for (;;) fs.writeSync(fd, block);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      } finally {
        fs.closeSync(fd);
      }
    },
    free() {
      fs.rmSync(filler, { force: true });
    },
    available() {
      const s = fs.statfsSync(dir);
      return s.bavail * s.bsize;
    },
    unmount() {
      spawnSync('umount', ['-l', dir], { timeout: 10_000 });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Skip `t` saying why, in the report and on stderr (a skipped test must not pass for a run one). */
export function skipWithReason(t: TestContext, reason: string): void {
  process.stderr.write(`SKIPPED: ${t.name}: ${reason}\n`);
  t.skip(reason);
}
