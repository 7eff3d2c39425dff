// The kept corpus: test/fuzz/corpus/<target>/<name>.bin, one input per file (small files, in the repo).
// Inputs that made a target fail are written to test/fuzz/crashes/ (not kept) for replay.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TargetName } from './targets.js';

export const FUZZ_DIR = path.dirname(fileURLToPath(import.meta.url));
export const CORPUS_DIR = path.join(FUZZ_DIR, 'corpus');
export const CRASH_DIR = path.join(FUZZ_DIR, 'crashes');

export interface CorpusEntry {
  name: string;
  data: Buffer;
}

export function loadCorpus(target: TargetName): CorpusEntry[] {
  const dir = path.join(CORPUS_DIR, target);
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.bin'));
  } catch {
    return [];
  }
  return names.sort().map((name) => ({ name, data: readFileSync(path.join(dir, name)) }));
}

/** Write `data` under `dir/target/`, named by its content hash (`prefix-<hash>.bin`); returns the path. */
export function saveInput(dir: string, target: TargetName, data: Buffer, prefix: string): string {
  const folder = path.join(dir, target);
  mkdirSync(folder, { recursive: true });
  const file = path.join(folder, `${prefix}-${createHash('sha256').update(data).digest('hex').slice(0, 12)}.bin`);
  writeFileSync(file, data);
  return file;
}
