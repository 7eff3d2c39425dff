// The layers of src/ (docs/HOW-IT-WORKS.md, rules in .dependency-cruiser.cjs): no file imports from a folder
// above its own, and no import circles. dependency-cruiser reads the real imports (type-only ones included).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cruise } from 'dependency-cruiser';
import type { ICruiseOptions, ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

async function options(baseDir: string): Promise<ICruiseOptions> {
  const o = await extractDepcruiseOptions(path.join(REPO_ROOT, '.dependency-cruiser.cjs'));
  return { ...o, baseDir, validate: true };
}

/** "from → to (rule)" per violation, "circle of a, b (rule)" per circle (reported once, from one of its files); sorted. */
async function violations(baseDir: string, tsConfigFile?: string): Promise<string[]> {
  const tsConfig = tsConfigFile ? extractTSConfig(tsConfigFile) : undefined;
  const result = await cruise(['src'], await options(baseDir), undefined, tsConfig ? { tsConfig } : undefined);
  const output = result.output as ICruiseResult;
  return output.summary.violations
    .map((v) =>
      v.cycle
        ? `circle of ${[v.from, ...v.cycle.map((c) => c.name)]
            .filter((n, i, all) => all.indexOf(n) === i)
            .sort()
            .join(', ')} (${v.rule.name})`
        : `${v.from} → ${v.to} (${v.rule.name})`,
    )
    .sort();
}

test('src/: every import runs to the same folder or a lower one, and none closes a circle', async () => {
  const found = await violations(REPO_ROOT, path.join(REPO_ROOT, 'tsconfig.json'));
  assert.deepEqual(found, [], `layer violations (see docs/HOW-IT-WORKS.md and .dependency-cruiser.cjs):\n${found.join('\n')}`);
});

// The same rules on a small tree with one of each fault: the check must be able to fail.
const fixture = fs.mkdtempSync(path.join(os.tmpdir(), 'pdu-proxy-layers-'));
after(() => fs.rmSync(fixture, { recursive: true, force: true }));

function write(file: string, text: string): void {
  fs.mkdirSync(path.dirname(path.join(fixture, file)), { recursive: true });
  fs.writeFileSync(path.join(fixture, file), text);
}

test('the check names an upward import, a circle and a folder outside the layers', async () => {
  write('src/pdu/framer.ts', "import { main } from '../cli/main';\nexport const framer = main;\n");
  write('src/cli/main.ts', "import { size } from '../values/size';\nexport const main = size;\n");
  write('src/values/size.ts', 'export const size = 1;\n');
  write('src/config/config.ts', "import { route } from './routes';\nexport const config = route;\n");
  write('src/config/routes.ts', "import type { config } from './config';\nexport const route = 2;\nexport type C = typeof config;\n");
  write('src/elsewhere/x.ts', "import { size } from '../values/size';\nexport const x = size;\n");
  const found = await violations(fixture);
  assert.deepEqual(found, [
    'circle of src/config/config.ts, src/config/routes.ts (no-circular)',
    'src/elsewhere/x.ts → src/values/size.ts (unknown-layer)',
    'src/pdu/framer.ts → src/cli/main.ts (layer-pdu)',
  ]);
});
