// The README's settings table (docs/CONFIGURATION.md points to it) against the code: one row per SETTINGS key with its flag, its
// environment variable and its config/default.json value, plus the --config / PDU_PROXY_CONFIG row.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CONFIG_FLAG, DEFAULT_CONFIG_PATH, ENV_CONFIG, ENV_VARIABLES, SETTINGS, envName } from '../../src/config/config.js';
import type { SettingKey } from '../../src/config/config.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'CONFIGURATION.md'), 'utf8');
const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
const defaults = JSON.parse(fs.readFileSync(DEFAULT_CONFIG_PATH, 'utf8')) as Record<string, unknown>;

/** The rows of the README's table under "### Settings", as cells. */
function settingsRows(): string[][] {
  const section = readme.slice(readme.indexOf('### Settings'));
  const lines = section.split('\n').slice(1);
  const start = lines.findIndex((l) => l.startsWith('|'));
  const table = lines.slice(start, start + lines.slice(start).findIndex((l) => !l.startsWith('|')));
  return table.slice(2).map((row) =>
    row
      .slice(1, -1)
      .split(' | ')
      .map((c) => c.trim()),
  );
}

describe('README settings table and docs/CONFIGURATION.md', () => {
  const rows = settingsRows();

  test('one row per setting, plus the config file row', () => {
    assert.equal(rows.length, Object.keys(SETTINGS).length + 1);
  });

  for (const key of Object.keys(SETTINGS) as SettingKey[]) {
    test(`${key}: flag, variable and default`, () => {
      const row = rows.find((r) => r[0] === `\`${key}\``);
      assert.ok(row, `a row for ${key}`);
      assert.equal(row[1], `\`${SETTINGS[key]}\``);
      assert.equal(row[2], `\`${envName(SETTINGS[key])}\``);
      assert.equal(row[3], `\`${JSON.stringify(defaults[key])}\``);
      assert.ok((row[4] ?? '').length > 20, 'a meaning');
    });
  }

  test('the config file row: --config and PDU_PROXY_CONFIG', () => {
    const row = rows.find((r) => r[1] === `\`${CONFIG_FLAG}\``);
    assert.ok(row);
    assert.equal(row[2], `\`${ENV_CONFIG}\``);
  });

  test('every variable the CLI reads is documented', () => {
    for (const name of ENV_VARIABLES.keys()) assert.ok(readme.includes(`\`${name}\``), name);
  });

  test('states the precedence', () => {
    assert.match(doc, /1\. `config\/default\.json`[^]*2\. a JSON config file[^]*3\. environment variables[^]*4\. command-line flags/);
  });
});
