// Fuzzing of the pure code with its line coverage: `npm run fuzz:cov -- --seconds N [--target NAME,...]
// [--seed S] [--skip PROPERTY,...]` runs each target (test/fuzz/targets.ts) for N seconds with fast-check,
// starting from the kept corpus (test/fuzz/corpus/) and mutating it, and prints how many inputs each ran.
// A failing input is shrunk by fast-check, written to test/fuzz/crashes/<target>/, and the run exits 1.
// `npm run fuzz:cov` runs this under c8, which prints the line coverage of src/pdu, src/transform and
// src/dimse afterwards.
//
// Jazzer.js was the first choice; its native part does not load here (its prebuilt addon needs glibc
// 2.38, Debian 12 has 2.36; older releases download their addon from outside the npm registry). The
// targets take plain bytes, so they can be handed to Jazzer.js where it installs.

import fc from 'fast-check';
import { inputsFor } from '../test/fuzz/arbitraries.js';
import { CRASH_DIR, loadCorpus, saveInput } from '../test/fuzz/corpus.js';
import { SKIPPABLE, TARGETS, TARGET_NAMES } from '../test/fuzz/targets.js';
import type { Skippable, TargetName } from '../test/fuzz/targets.js';

function usage(message: string): never {
  process.stderr.write(`fuzz:cov: ${message}\nusage: npm run fuzz:cov -- --seconds N [--target ${TARGET_NAMES.join(',')}] [--seed S] [--skip ${SKIPPABLE.join(',')}]\n`);
  process.exit(2);
}

let seconds = 10;
let targets: TargetName[] = [...TARGET_NAMES];
let seed: number | undefined;
const skip = new Set<Skippable>();
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const arg = args[i]!;
  const value = (): string => args[++i] ?? usage(`${arg} needs a value`);
  if (arg === '--seconds') {
    seconds = Number(value());
    if (!Number.isFinite(seconds) || seconds <= 0) usage(`--seconds must be a positive number, got ${args[i]}`);
  } else if (arg === '--target') {
    targets = value().split(',') as TargetName[];
    const unknown = targets.filter((t) => !TARGET_NAMES.includes(t));
    if (unknown.length > 0) usage(`unknown target ${unknown.join(', ')}`);
  } else if (arg === '--seed') {
    seed = Number(value());
    if (!Number.isInteger(seed)) usage(`--seed must be an integer, got ${args[i]}`);
  } else if (arg === '--skip') {
    for (const name of value().split(',')) {
      if (!SKIPPABLE.includes(name as Skippable)) usage(`unknown property ${name} for --skip (${SKIPPABLE.join(', ')})`);
      skip.add(name as Skippable);
    }
  } else {
    usage(`unknown argument ${arg}`);
  }
}

let failed = false;
for (const target of targets) {
  const corpus = loadCorpus(target);
  const fuzz = TARGETS[target];
  if (skip.size > 0) process.stdout.write(`${target}: leaving out ${[...skip].join(', ')}\n`);
  let runs = 0;
  const started = Date.now();
  // The corpus first, as it is (fast-check's examples); then generated and mutated inputs until the time is up.
  const details = fc.check(
    fc.property(
      inputsFor(
        target,
        corpus.map((e) => e.data),
      ),
      (data) => {
        runs++;
        fuzz(data, { skip });
      },
    ),
    {
      numRuns: Number.MAX_SAFE_INTEGER,
      interruptAfterTimeLimit: seconds * 1000,
      markInterruptAsFailure: false,
      seed,
      examples: corpus.map((e) => [e.data] as [Buffer]),
    },
  );
  const took = (Date.now() - started) / 1000;
  if (details.failed && details.counterexample) {
    failed = true;
    const input = details.counterexample[0];
    const file = saveInput(CRASH_DIR, target, input, 'crash');
    process.stdout.write(
      `${target}: FAILED after ${runs} inputs (seed ${details.seed}, shrunk ${details.numShrinks} times): ${String(details.errorInstance)}\n  input (${input.length} bytes) written to ${file}\n`,
    );
  } else {
    process.stdout.write(
      `${target}: ${runs} inputs in ${took.toFixed(0)} s (${(runs / took).toFixed(0)}/s), ${corpus.length} corpus files, seed ${details.seed}: no crash, no property violation\n`,
    );
  }
}
process.exitCode = failed ? 1 : 0;
