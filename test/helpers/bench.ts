// Running the real `dicom-pdu-proxy bench` CLI in tests, and reading the results.csv it writes.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { RESULTS_CSV_COLUMNS } from '../../src/bench/results.js';
import type { CsvRow } from '../../src/analysis/csv.js';
import { runToExit } from './procs.js';
import type { RunResult } from './procs.js';
import { BIN } from './proxy.js';

/** `dicom-pdu-proxy bench ARGS` in cwd, to its exit (or killed after timeoutMs). */
export function runBench(args: string[], cwd: string, timeoutMs = 120_000): Promise<RunResult> {
  return runToExit(process.execPath, [BIN, 'bench', ...args], { timeoutMs, cwd, name: 'bench' });
}

/** The rows of OUT/results.csv by column name, after checking that its header is exactly RESULTS_CSV_COLUMNS. */
export async function readResults(out: string): Promise<CsvRow[]> {
  const text = await readFile(path.join(out, 'results.csv'), 'utf8');
  assert.equal(text.split('\n')[0], RESULTS_CSV_COLUMNS.join(','));
  return text
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => Object.fromEntries(line.split(',').map((v, i) => [RESULTS_CSV_COLUMNS[i]!, v])));
}
