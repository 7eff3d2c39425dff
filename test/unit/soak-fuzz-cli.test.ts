// `npm run soak` and `npm run fuzz:cov` refuse a bad argument with one line naming it and exit status 2,
// before starting anything.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from '../helpers/proxy.js';

function run(script: string, args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'scripts', script), ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stderr: r.stderr };
}

for (const [script, args, named] of [
  ['soak.ts', [], '--minutes is required'],
  ['soak.ts', ['--minutes', '1', '--hostile', '1.5'], '--hostile must be a number from 0 to 1'],
  ['soak.ts', ['--minutes', '1', '--probes', 'maybe'], '--probes must be on or off, got maybe'],
  ['fuzz-cov.ts', ['--seconds', '0'], '--seconds must be a positive number'],
  ['fuzz-cov.ts', ['--skip', 'everything'], 'unknown property everything'],
] as const) {
  test(`${script} ${args.join(' ') || '(no arguments)'}: exit 2, "${named}"`, () => {
    const r = run(script, [...args]);
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.match(lines[0]!, new RegExp(named.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')));
    assert.match(lines[1]!, /^usage: npm run /);
  });
}
