// The environment layer: PDU_PROXY_* variables derived from the SETTINGS flag table, between the config file
// and the flags. Precedence: flags > environment > config file (--config, else PDU_PROXY_CONFIG) > defaults.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ENV_CONFIG, ENV_VARIABLES, SETTINGS, environmentSettings, envName, loadSettings } from '../../src/config/config.js';
import type { Environment, RawSettings, SettingKey } from '../../src/config/config.js';
import { rejects, UNSET_DEFAULTS } from '../helpers/settings.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-env-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let counter = 0;
function configFile(content: unknown): string {
  const file = path.join(dir, `c${++counter}.json`);
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

const load = (flags: RawSettings, env: Environment, configPath?: string) => loadSettings(flags, configPath, { env });

const ALL_VARIABLES = [
  'PDU_PROXY_LISTEN',
  'PDU_PROXY_UPSTREAM',
  'PDU_PROXY_MAX_PDU',
  'PDU_PROXY_MAX_PDU_RQ',
  'PDU_PROXY_FRAGMENT',
  'PDU_PROXY_CSV',
  'PDU_PROXY_MESSAGES_CSV',
  'PDU_PROXY_LOG_LEVEL',
  'PDU_PROXY_CONNECT_TIMEOUT',
  'PDU_PROXY_CLOSE_TIMEOUT',
  'PDU_PROXY_ARTIM_TIMEOUT',
  'PDU_PROXY_IDLE_TIMEOUT',
  'PDU_PROXY_STALL_TIMEOUT',
  'PDU_PROXY_DRAIN_TIMEOUT',
  'PDU_PROXY_MAX_ASSOCIATIONS',
  'PDU_PROXY_MAX_PENDING',
  'PDU_PROXY_ALLOW_CALLING_AET',
  'PDU_PROXY_ALLOW_PEER',
  'PDU_PROXY_LATENCY',
  'PDU_PROXY_BANDWIDTH',
  'PDU_PROXY_LATENCY_TO_SCP',
  'PDU_PROXY_LATENCY_TO_SCU',
  'PDU_PROXY_BANDWIDTH_TO_SCP',
  'PDU_PROXY_BANDWIDTH_TO_SCU',
  'PDU_PROXY_ROUTE',
  'PDU_PROXY_METRICS',
  'PDU_PROXY_PCAP',
  'PDU_PROXY_PCAP_MAX_SIZE',
  'PDU_PROXY_PCAP_MAX_FILES',
  'PDU_PROXY_PCAP_PAYLOAD',
  'PDU_PROXY_HEALTH',
  'PDU_PROXY_WORKERS',
  'PDU_PROXY_TLS_CERT',
  'PDU_PROXY_TLS_KEY',
  'PDU_PROXY_TLS_CA',
  'PDU_PROXY_TLS_CLIENT_AUTH',
  'PDU_PROXY_UPSTREAM_TLS',
  'PDU_PROXY_UPSTREAM_TLS_CA',
  'PDU_PROXY_UPSTREAM_TLS_CERT',
  'PDU_PROXY_UPSTREAM_TLS_KEY',
  'PDU_PROXY_UPSTREAM_TLS_SERVERNAME',
  'PDU_PROXY_UPSTREAM_TLS_INSECURE',
  'PDU_PROXY_ASSIGN',
  'PDU_PROXY_ASSIGN_SEED',
  'PDU_PROXY_GUARD',
  'PDU_PROXY_CONFIG',
];

describe('variable names', () => {
  test('PDU_PROXY_ + the flag in upper snake case, for every flag of SETTINGS and --config', () => {
    assert.deepEqual([...ENV_VARIABLES.keys()], ALL_VARIABLES);
    for (const key of Object.keys(SETTINGS) as SettingKey[]) {
      assert.equal(ENV_VARIABLES.get(envName(SETTINGS[key])), key);
    }
    assert.equal(ENV_CONFIG, 'PDU_PROXY_CONFIG');
    assert.equal(ENV_VARIABLES.get(ENV_CONFIG), 'config');
  });

  test('derived, so a new flag gets its variable: --some-new-option → PDU_PROXY_SOME_NEW_OPTION', () => {
    assert.equal(envName('--some-new-option'), 'PDU_PROXY_SOME_NEW_OPTION');
  });

  test('other variables are ignored, PDU_PROXY_* ones are read', () => {
    const { layer, configFile } = environmentSettings({ PATH: '/bin', HOME: '/root', PDU_PROXYX: '1', PDU_PROXY_MAX_PDU: '1MB' });
    assert.deepEqual(layer.values, { maxPdu: '1MB' });
    assert.equal(layer.name('maxPdu'), 'environment PDU_PROXY_MAX_PDU');
    assert.equal(configFile, undefined);
  });

  test('loadSettings reads no environment unless given one', () => {
    const saved = process.env.PDU_PROXY_UPSTREAM;
    process.env.PDU_PROXY_UPSTREAM = 'fromprocess:104';
    try {
      rejects(() => loadSettings({}), /^--upstream HOST:PORT is required/);
    } finally {
      if (saved === undefined) delete process.env.PDU_PROXY_UPSTREAM;
      else process.env.PDU_PROXY_UPSTREAM = saved;
    }
  });
});

describe('precedence: flags > environment > config file > config/default.json', () => {
  const file = configFile({
    listen: '127.0.0.1:2000',
    upstream: 'filepacs:104',
    maxPdu: '1MB',
    maxPduRq: 65536,
    fragment: 'repack',
    csv: 'file.csv',
    logLevel: 'debug',
    connectTimeoutMs: 5000,
    closeTimeoutMs: 7000,
    ...UNSET_DEFAULTS,
  });
  const env: Environment = {
    PDU_PROXY_LISTEN: '127.0.0.2:3000',
    PDU_PROXY_UPSTREAM: 'envpacs:11112',
    PDU_PROXY_MAX_PDU: '2MB',
    PDU_PROXY_MAX_PDU_RQ: '32KB',
    PDU_PROXY_FRAGMENT: '64KB',
    PDU_PROXY_CSV: 'env.csv',
    PDU_PROXY_LOG_LEVEL: 'warn',
    PDU_PROXY_CONNECT_TIMEOUT: '600',
    PDU_PROXY_CLOSE_TIMEOUT: '700',
  };
  const envOptions = {
    listen: { host: '127.0.0.2', port: 3000 },
    upstream: { host: 'envpacs', port: 11112 },
    arms: [{ index: 0, label: '2MB', maxPdu: 2 * 1048576 }],
    maxPdu: 2 * 1048576,
    maxPduRq: 32768,
    fragment: { mode: 'size', size: 65536 },
    csv: 'env.csv',
    connectTimeoutMs: 600,
    closeTimeoutMs: 700,
    ...UNSET_DEFAULTS,
  };

  test('the environment beats the defaults', () => {
    const s = load({}, env);
    assert.deepEqual(s.options, envOptions);
    assert.equal(s.logLevel, 'warn');
  });

  test('the environment beats the config file', () => {
    const s = load({}, env, file);
    assert.deepEqual(s.options, envOptions);
    assert.equal(s.logLevel, 'warn');
  });

  test('flags beat the environment', () => {
    const s = load(
      {
        listen: '4000',
        upstream: 'flagpacs:104',
        maxPdu: '16KB',
        maxPduRq: '0',
        fragment: 'fit',
        csv: 'flag.csv',
        logLevel: 'error',
        connectTimeoutMs: '100',
        closeTimeoutMs: '200',
      },
      env,
      file,
    );
    assert.deepEqual(s.options, {
      listen: { host: '0.0.0.0', port: 4000 },
      upstream: { host: 'flagpacs', port: 104 },
      arms: [{ index: 0, label: '16KB', maxPdu: 16384 }],
      maxPdu: 16384,
      maxPduRq: 0,
      fragment: { mode: 'fit' },
      csv: 'flag.csv',
      connectTimeoutMs: 100,
      closeTimeoutMs: 200,
      ...UNSET_DEFAULTS,
    });
    assert.equal(s.logLevel, 'error');
  });

  test('key by key: each value comes from the highest layer that sets it', () => {
    const s = load({ maxPdu: '4MB' }, { PDU_PROXY_MAX_PDU: '2MB', PDU_PROXY_MAX_PDU_RQ: '8KB', PDU_PROXY_UPSTREAM: 'envpacs:104' }, file);
    assert.equal(s.options.maxPdu, 4 * 1048576); // flag
    assert.equal(s.options.maxPduRq, 8192); // environment
    assert.deepEqual(s.options.upstream, { host: 'envpacs', port: 104 }); // environment
    assert.deepEqual(s.options.fragment, { mode: 'repack' }); // file
    assert.equal(s.options.closeTimeoutMs, 7000); // file
  });

  test('an empty (or blank) variable is not set: the layer below decides', () => {
    const s = load({}, { PDU_PROXY_MAX_PDU: '', PDU_PROXY_LOG_LEVEL: '  ', PDU_PROXY_CSV: '', PDU_PROXY_UPSTREAM: 'envpacs:104' }, file);
    assert.equal(s.options.maxPdu, 1048576); // file
    assert.equal(s.logLevel, 'debug'); // file
    assert.equal(s.options.csv, 'file.csv'); // file
    const d = load({}, { PDU_PROXY_FRAGMENT: '', PDU_PROXY_UPSTREAM: 'envpacs:104' });
    assert.deepEqual(d.options.fragment, { mode: 'fit' }); // default
  });

  test('PDU_PROXY_CONFIG names the config file when --config is not given', () => {
    const s = load({}, { PDU_PROXY_CONFIG: file });
    assert.deepEqual(s.options.upstream, { host: 'filepacs', port: 104 });
    assert.equal(s.options.maxPdu, 1048576);
    // ... and the environment still beats it
    assert.equal(load({}, { PDU_PROXY_CONFIG: file, PDU_PROXY_MAX_PDU: '2MB' }).options.maxPdu, 2 * 1048576);
  });

  test('--config wins over PDU_PROXY_CONFIG, whose file is then not read at all', () => {
    const other = configFile({ upstream: 'otherpacs:104' });
    const s = load({}, { PDU_PROXY_CONFIG: path.join(dir, 'missing.json') }, other);
    assert.deepEqual(s.options.upstream, { host: 'otherpacs', port: 104 });
    assert.equal(s.options.maxPdu, undefined);
  });

  test('an empty PDU_PROXY_CONFIG is not set', () => {
    rejects(() => load({}, { PDU_PROXY_CONFIG: '' }), /^--upstream HOST:PORT is required .*PDU_PROXY_UPSTREAM/);
  });

  test('warnings name the variable', () => {
    const s = load({}, { PDU_PROXY_UPSTREAM: 'pacs:104', PDU_PROXY_MAX_PDU: '16383', PDU_PROXY_MAX_PDU_RQ: '1000' });
    assert.match(s.warnings[0]!, /^environment PDU_PROXY_MAX_PDU: 16383 is odd/);
    assert.match(s.warnings[1]!, /^environment PDU_PROXY_MAX_PDU_RQ: 1000 is below 4096/);
  });
});

describe('bad values in the environment name the variable', () => {
  const UP = { PDU_PROXY_UPSTREAM: 'pacs:104' };
  const cases: Array<[Environment, RegExp]> = [
    [{ PDU_PROXY_MAX_PDU: '12XB' }, /^environment PDU_PROXY_MAX_PDU: "12XB" is not a size \(bytes, or a number with KB\/MB\/GB\)$/],
    [{ PDU_PROXY_MAX_PDU_RQ: '4294967296' }, /^environment PDU_PROXY_MAX_PDU_RQ: "4294967296" is over 4294967295 bytes/],
    [{ PDU_PROXY_UPSTREAM: 'pacs' }, /^environment PDU_PROXY_UPSTREAM: "pacs" is not HOST:PORT$/],
    [{ PDU_PROXY_LISTEN: '70000' }, /^environment PDU_PROXY_LISTEN: "70000": port 70000 is not in 0\.\.65535$/],
    [{ PDU_PROXY_FRAGMENT: 'weird' }, /^environment PDU_PROXY_FRAGMENT: "weird" is not fit, repack or a size$/],
    [{ PDU_PROXY_LOG_LEVEL: 'loud' }, /^environment PDU_PROXY_LOG_LEVEL: "loud" is not a log level \(fatal, error, warn, info, debug, trace, silent\)$/],
    [{ PDU_PROXY_CONNECT_TIMEOUT: '10s' }, /^environment PDU_PROXY_CONNECT_TIMEOUT: "10s" is not a whole number of milliseconds/],
    [{ PDU_PROXY_CLOSE_TIMEOUT: '0' }, /^environment PDU_PROXY_CLOSE_TIMEOUT: "0" is not a whole number of milliseconds/],
  ];
  for (const [env, message] of cases) {
    test(JSON.stringify(env), () => rejects(() => load({}, { ...UP, ...env }), message));
  }

  test('a bad variable is named even when the config file sets the key too', () => {
    const file = configFile({ upstream: 'pacs:104', maxPdu: '1MB' });
    rejects(() => load({}, { PDU_PROXY_MAX_PDU: '-1' }, file), /^environment PDU_PROXY_MAX_PDU: "-1" is not a size/);
  });

  test('a bad flag is named by its flag even when the variable is fine', () => {
    rejects(() => load({ maxPdu: '12XB' }, { ...UP, PDU_PROXY_MAX_PDU: '1MB' }), /^--max-pdu: "12XB" is not a size/);
  });

  test('a bad value in the PDU_PROXY_CONFIG file names the file and where its name came from', () => {
    const file = configFile({ upstream: 'pacs:104', maxPdu: '12XB' });
    rejects(() => load({}, { PDU_PROXY_CONFIG: file }), new RegExp(`^config file ${escape(file)} \\(from PDU_PROXY_CONFIG\\): maxPdu: "12XB" is not a size`));
    const missing = path.join(dir, 'missing.json');
    rejects(() => load({}, { PDU_PROXY_CONFIG: missing }), new RegExp(`^config file ${escape(missing)} \\(from PDU_PROXY_CONFIG\\): cannot read it \\(ENOENT\\)$`));
  });
});

describe('unknown PDU_PROXY_* variables are errors, never ignored', () => {
  const UP = { PDU_PROXY_UPSTREAM: 'pacs:104' };
  const known = ALL_VARIABLES.join(', ');
  const cases: Array<[string, RegExp]> = [
    ['PDU_PROXY_MAXPDU', /^environment PDU_PROXY_MAXPDU: unknown variable; did you mean PDU_PROXY_MAX_PDU\? \(known: /],
    ['PDU_PROXY_MAX_PDU_RG', /^environment PDU_PROXY_MAX_PDU_RG: unknown variable; did you mean PDU_PROXY_MAX_PDU_RQ\?/],
    ['PDU_PROXY_CONNECT_TIMEOUT_MS', /^environment PDU_PROXY_CONNECT_TIMEOUT_MS: unknown variable; did you mean PDU_PROXY_CONNECT_TIMEOUT\?/],
    ['pdu_proxy_max_pdu', /^environment pdu_proxy_max_pdu: unknown variable; did you mean PDU_PROXY_MAX_PDU\?/],
    ['PDU_PROXY_VERBOSE', new RegExp(`^environment PDU_PROXY_VERBOSE: unknown variable \\(known: ${known}\\)$`)],
    ['PDU_PROXY_', /^environment PDU_PROXY_: unknown variable/],
  ];
  for (const [name, message] of cases) {
    test(name, () => rejects(() => load({}, { ...UP, [name]: '1MB' }), message));
  }

  test('even with an empty value, and even when flags set everything', () => {
    rejects(() => load({ upstream: 'pacs:104', maxPdu: '1MB' }, { PDU_PROXY_MAXPDU: '' }), /^environment PDU_PROXY_MAXPDU: unknown variable/);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
