// The capture's settings (--pcap, --pcap-max-size, --pcap-max-files, --pcap-payload): flag, variable,
// config key and route key; defaults; one ConfigError line per bad value.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadSettings } from '../../src/config/config.js';
import { rejects } from '../helpers/settings.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-pcap-settings-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const UP = { upstream: 'pacs:104' };

describe('capture settings', () => {
  test('off by default: no pcap in the options, and the companions need no --pcap to be checked', () => {
    assert.equal(loadSettings(UP).options.pcap, undefined);
    rejects(() => loadSettings({ ...UP, pcapMaxFiles: '0' }), /^--pcap-max-files: "0" is not a whole number of files \(1\.\.1000\)$/);
  });

  test('--pcap alone: no rotation, 5 files, full payload', () => {
    assert.deepEqual(loadSettings({ ...UP, pcap: 'c.pcapng' }).options.pcap, { file: 'c.pcapng', maxSize: 0, maxFiles: 5, payload: 'full' });
  });

  test('flags, variables and config keys, flags winning', () => {
    const file = path.join(dir, 'c.json');
    fs.writeFileSync(file, JSON.stringify({ pcap: 'from-file.pcapng', pcapMaxSize: '10MB', pcapMaxFiles: 3, pcapPayload: 'headers' }));
    assert.deepEqual(loadSettings(UP, file).options.pcap, { file: 'from-file.pcapng', maxSize: 10 * 1024 * 1024, maxFiles: 3, payload: 'headers' });
    const env = { PDU_PROXY_PCAP: 'env.pcapng', PDU_PROXY_PCAP_MAX_SIZE: '2MB', PDU_PROXY_PCAP_PAYLOAD: 'FULL' };
    assert.deepEqual(loadSettings(UP, file, { env }).options.pcap, { file: 'env.pcapng', maxSize: 2 * 1024 * 1024, maxFiles: 3, payload: 'full' });
    assert.deepEqual(loadSettings({ ...UP, pcap: 'flag.pcapng', pcapMaxFiles: '9' }, file, { env }).options.pcap, {
      file: 'flag.pcapng',
      maxSize: 2 * 1024 * 1024,
      maxFiles: 9,
      payload: 'full',
    });
  });

  test('route keys: a route captures into its own file, or inherits the global one', () => {
    const s = loadSettings({ ...UP, pcap: 'all.pcapng', routes: ['11113=a:104,pcap=ct.pcapng,pcap-payload=headers', '11114=b:104'] });
    assert.deepEqual(
      s.routes.map((r) => [r.id, r.options.pcap?.file, r.options.pcap?.payload]),
      [
        ['default', 'all.pcapng', 'full'],
        ['11113', 'ct.pcapng', 'headers'],
        ['11114', 'all.pcapng', 'full'],
      ],
    );
  });

  test('bad values: one line naming the setting', () => {
    rejects(() => loadSettings({ ...UP, pcap: 'c.pcapng', pcapPayload: 'pixels' }), /^--pcap-payload: "pixels" is not full or headers$/);
    rejects(() => loadSettings({ ...UP, pcap: 'c.pcapng', pcapMaxSize: '64KB' }), /^--pcap-max-size: "64KB" is below 1048576 bytes \(1MB\); 0 = no rotation$/);
    rejects(() => loadSettings({ ...UP, pcapMaxSize: 'lots' }), /^--pcap-max-size: /);
    rejects(() => loadSettings({ ...UP, pcap: '' }), /^--pcap: "" is not a file name$/);
    rejects(() => loadSettings({ ...UP, pcap: 'x.csv', csv: 'x.csv' }), /^--pcap: "x\.csv" is the file of --csv too; give the capture its own file$/);
    rejects(() => loadSettings({ ...UP }, undefined, { env: { PDU_PROXY_PCAP_PAYLOAD: 'all' } }), /^environment PDU_PROXY_PCAP_PAYLOAD: "all" is not full or headers$/);
    rejects(
      () => loadSettings({ ...UP, pcap: 'c.pcapng', routes: ['11113=a:104,pcap-max-size=10MB'] }),
      /^--route "11113=a:104,pcap-max-size=10MB": captures into "c\.pcapng" like --listen, with other --pcap-max-size\/--pcap-max-files; one file rotates one way$/,
    );
  });
});
