// Tests that run the built CLI (bin/dicom-pdu-proxy.js → dist/) fail, never skip, when dist/ is missing:
// a skipped test looks green. `npm test` and `npm run test:unit` build first.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './proxy.js';

export const BUILT_MAIN = path.join(REPO_ROOT, 'dist', 'cli', 'main.js');

/** Throw (failing the test or hook) unless `npm run build` has produced dist/. */
export function assertBuilt(): void {
  assert.ok(fs.existsSync(BUILT_MAIN), `${path.relative(REPO_ROOT, BUILT_MAIN)} is missing: run \`npm run build\` first (npm test and npm run test:unit do)`);
}
