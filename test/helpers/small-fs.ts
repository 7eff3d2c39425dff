// A real file system that fills up and frees again, for tests of what is written to disk: a tmpfs of a few
// hundred KiB mounted on a temporary directory (mountSmallFs), or a small ext4 in a file mounted through a
// loop device (mountLoopExt4: a block device, where O_DIRECT goes to the disk and a kernel older than 6.6
// accepts it, unlike tmpfs). Root or CAP_SYS_ADMIN needed. fill() takes all its free space with a filler
// file, free() deletes it. Where it cannot be mounted, the mount function returns the reason, and the test
// says it skipped (skipWithReason) instead of passing silently.

import { spawnSync } from 'node:child_process';
import type { SpawnSyncReturns } from 'node:child_process';
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
    return `cannot mount a tmpfs here (mount: ${failure(r)}; root or CAP_SYS_ADMIN needed)`;
  }
  return smallFsAt(dir, () => {
    spawnSync('umount', ['-l', dir], { timeout: 10_000 });
    fs.rmSync(dir, { recursive: true, force: true });
  });
}

/**
 * Make an ext4 file system of `bytes` in a sparse file (no journal, no blocks kept for root: what is free is
 * what a write gets, and space freed is free at once) and mount it through a loop device on a new temporary
 * directory; a string says why it could not be (no mkfs.ext4: e2fsprogs; no loop device; not root).
 * unmount() detaches the loop device and deletes the file, whatever the test left in it.
 */
export function mountLoopExt4(bytes: number): SmallFs | string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'small-ext4-'));
  const image = `${dir}.img`;
  const removeAll = (): void => {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(image, { force: true });
  };
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, bytes);
  const mkfs = spawnSync('mkfs.ext4', ['-q', '-F', '-b', '4096', '-m', '0', '-O', '^has_journal', image], { encoding: 'utf8', timeout: 30_000 });
  if (mkfs.status !== 0) {
    removeAll();
    return `cannot make an ext4 file system here (mkfs.ext4: ${failure(mkfs)}; the e2fsprogs package provides it, scripts/ensure-test-deps.sh installs it)`;
  }
  const mount = spawnSync('mount', ['-t', 'ext4', '-o', 'loop', image, dir], { encoding: 'utf8', timeout: 10_000 });
  if (mount.status !== 0) {
    removeAll();
    return `cannot mount an ext4 image through a loop device here (mount -o loop: ${failure(mount)}; root or CAP_SYS_ADMIN and /dev/loop-control needed)`;
  }
  return smallFsAt(dir, () => {
    // A plain unmount first (the loop device is detached with it); lazy if something still holds a file.
    if (spawnSync('umount', [dir], { timeout: 10_000 }).status !== 0) spawnSync('umount', ['-l', dir], { timeout: 10_000 });
    removeAll();
  });
}

function failure(r: SpawnSyncReturns<string>): string {
  return (r.stderr || r.error?.message || `exit ${r.status}`).trim();
}

function smallFsAt(dir: string, unmount: () => void): SmallFs {
  const filler = path.join(dir, FILLER);
  return {
    dir,
    fill() {
      const fd = fs.openSync(filler, 'a');
      const block = Buffer.alloc(4096, 0x46);
      const untilFull = (): void => {
        try {
          for (;;) fs.writeSync(fd, block);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        }
      };
      try {
        // ext4 reserves room for the metadata of delayed allocations and gives back what it did not need once
        // the blocks are written: a block was free again after the first ENOSPC once. Written out, filled again.
        for (let i = 0; i < 10; i++) {
          untilFull();
          try {
            fs.fsyncSync(fd);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          }
          const s = fs.statfsSync(dir);
          if (s.bavail === 0) break;
        }
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
    unmount,
  };
}

/** Skip `t` saying why, in the report and on stderr (a skipped test must not pass for a run one). */
export function skipWithReason(t: TestContext, reason: string): void {
  process.stderr.write(`SKIPPED: ${t.name}: ${reason}\n`);
  t.skip(reason);
}
