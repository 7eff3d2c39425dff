import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { DEFAULT_CONFIG_PATH, SETTINGS, fileLayer, flagLayer, loadSettings, parseFragment, resolveSettings } from '../../src/config/config.js';
import type { RawSettings } from '../../src/config/config.js';
import { rejects, UNSET_DEFAULTS } from '../helpers/settings.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-config-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let counter = 0;
/** Write a config file (an object is JSON-encoded, a string written as is) and return its path. */
function configFile(content: unknown): string {
  const file = path.join(dir, `c${++counter}.json`);
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

const UPSTREAM: RawSettings = { upstream: 'pacs:104' };

describe('config/default.json', () => {
  test('is found next to the package and holds every key with the documented defaults', () => {
    assert.equal(DEFAULT_CONFIG_PATH, path.resolve(import.meta.dirname, '..', '..', 'config', 'default.json'));
    const defaults = JSON.parse(fs.readFileSync(DEFAULT_CONFIG_PATH, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(defaults).sort(), Object.keys(SETTINGS).sort());
  });

  test('defaults alone (plus the required upstream) give the documented options', () => {
    const s = loadSettings(UPSTREAM);
    assert.deepEqual(s.options, {
      listen: { host: '0.0.0.0', port: 11112 },
      upstream: { host: 'pacs', port: 104 },
      arms: [],
      maxPdu: undefined,
      maxPduRq: undefined,
      fragment: { mode: 'fit' },
      csv: undefined,
      connectTimeoutMs: 3000,
      closeTimeoutMs: 30000,
      ...UNSET_DEFAULTS,
    });
    assert.equal(s.logLevel, 'info');
    assert.deepEqual(s.warnings, []);
  });

  test('upstream is required', () => {
    rejects(() => loadSettings({}), /^--upstream HOST:PORT is required/);
  });
});

describe('precedence: flags > --config file > config/default.json', () => {
  const file = configFile({
    listen: '127.0.0.1:2000',
    upstream: 'filepacs:104',
    maxPdu: '1MB',
    maxPduRq: 65536,
    fragment: 'repack',
    csv: 'file.csv',
    logLevel: 'debug',
    connectTimeoutMs: 5000,
    closeTimeoutMs: '7000',
  });

  test('the file beats the defaults', () => {
    const s = loadSettings({}, file);
    assert.deepEqual(s.options, {
      listen: { host: '127.0.0.1', port: 2000 },
      upstream: { host: 'filepacs', port: 104 },
      arms: [{ index: 0, label: '1MB', maxPdu: 1048576 }],
      maxPdu: 1048576,
      maxPduRq: 65536,
      fragment: { mode: 'repack' },
      csv: 'file.csv',
      connectTimeoutMs: 5000,
      closeTimeoutMs: 7000,
      ...UNSET_DEFAULTS,
    });
    assert.equal(s.logLevel, 'debug');
  });

  test('flags beat the file', () => {
    const s = loadSettings(
      {
        listen: '3000',
        upstream: 'flagpacs:11112',
        maxPdu: '16KB',
        maxPduRq: '0',
        fragment: '100KB',
        csv: 'flag.csv',
        logLevel: 'warn',
        connectTimeoutMs: '100',
        closeTimeoutMs: '200',
      },
      file,
    );
    assert.deepEqual(s.options, {
      listen: { host: '0.0.0.0', port: 3000 },
      upstream: { host: 'flagpacs', port: 11112 },
      arms: [{ index: 0, label: '16KB', maxPdu: 16384 }],
      maxPdu: 16384,
      maxPduRq: 0,
      fragment: { mode: 'size', size: 102400 },
      csv: 'flag.csv',
      connectTimeoutMs: 100,
      closeTimeoutMs: 200,
      ...UNSET_DEFAULTS,
    });
    assert.equal(s.logLevel, 'warn');
  });

  test('absent (undefined) flags and null file values fall through to the layer below', () => {
    const partial = configFile({ maxPdu: null, logLevel: 'error', upstream: 'filepacs:104' });
    const s = loadSettings({ maxPdu: undefined, maxPduRq: '32KB' }, partial);
    assert.equal(s.options.maxPdu, undefined);
    assert.equal(s.options.maxPduRq, 32768);
    assert.equal(s.logLevel, 'error');
    assert.deepEqual(s.options.upstream, { host: 'filepacs', port: 104 });
    assert.deepEqual(s.options.listen, { host: '0.0.0.0', port: 11112 }); // from default.json
    assert.equal(s.options.connectTimeoutMs, 3000); // from default.json
  });

  test('a layer is just values + a namer: the last layer that sets a key wins', () => {
    const defaults = fileLayer(DEFAULT_CONFIG_PATH);
    const middle = { values: { maxPdu: '2MB', upstream: 'env:104' }, name: (k: string) => `ENV ${k}` };
    const s = resolveSettings([defaults, middle, flagLayer({ maxPdu: '4MB' })]);
    assert.equal(s.options.maxPdu, 4 * 1048576);
    assert.deepEqual(s.options.upstream, { host: 'env', port: 104 });
    rejects(() => resolveSettings([defaults, { values: { upstream: 'env' }, name: (k) => `ENV ${k}` }]), /^ENV upstream: "env" is not HOST:PORT$/);
  });
});

describe('config file errors name the file and the key', () => {
  test('unknown key', () => {
    const file = configFile({ upstream: 'pacs:104', maxPDU: '1MB' });
    rejects(() => loadSettings({}, file), new RegExp(`^config file ${escape(file)}: unknown key "maxPDU" \\(known: listen, upstream, maxPdu,`));
  });

  test('keys inherited from Object.prototype are unknown too', () => {
    const file = configFile('{"upstream": "pacs:104", "constructor": 1}');
    rejects(() => loadSettings({}, file), /unknown key "constructor"/);
  });

  test('bad size', () => {
    const file = configFile({ upstream: 'pacs:104', maxPdu: '12XB' });
    rejects(() => loadSettings({}, file), new RegExp(`^config file ${escape(file)}: maxPdu: "12XB" is not a size \\(bytes, or a number with KB/MB/GB\\)$`));
  });

  test('size over the maximum, given as a number', () => {
    const file = configFile({ upstream: 'pacs:104', maxPduRq: 4294967296 });
    rejects(() => loadSettings({}, file), new RegExp(`^config file ${escape(file)}: maxPduRq: "4294967296" is over 4294967295 bytes`));
  });

  const wrongTypes: Array<[RawSettings, RegExp]> = [
    [{ maxPdu: true }, /: maxPdu: true must be a size/],
    [{ maxPdu: [true] }, /: maxPdu\[0\]: true must be a size/],
    [{ maxPdu: [] }, /: maxPdu: \[\] holds no size/],
    [{ upstream: 104 }, /: upstream: 104 must be a string/],
    [{ csv: 5 }, /: csv: 5 must be a string \(a file name\)$/],
    [{ csv: '' }, /: csv: "" is not a file name$/],
    [{ logLevel: 'loud' }, /: logLevel: "loud" is not a log level \(fatal, error, warn, info, debug, trace, silent\)$/],
    [{ fragment: 'weird' }, /: fragment: "weird" is not fit, repack or a size$/],
    [{ fragment: {} }, /: fragment: \{\} must be "fit", "repack" or a size$/],
    [{ fragment: 6 }, /: fragment: 6 is below 8, the smallest P-DATA-TF that carries an even fragment \(6-byte PDV header \+ 2 bytes\)$/],
    [{ listen: 'nowhere' }, /: listen: "nowhere" is not \[HOST:\]PORT$/],
    [{ connectTimeoutMs: '10s' }, /: connectTimeoutMs: "10s" is not a whole number of milliseconds/],
    [{ closeTimeoutMs: 0 }, /: closeTimeoutMs: 0 is not a whole number of milliseconds/],
    [{ closeTimeoutMs: 1.5 }, /: closeTimeoutMs: 1\.5 is not a whole number of milliseconds/],
  ];
  for (const [values, message] of wrongTypes) {
    test(`${JSON.stringify(values)}`, () => {
      const file = configFile({ upstream: 'pacs:104', ...values });
      rejects(() => loadSettings({}, file), new RegExp(`^config file ${escape(file)}${message.source}`));
    });
  }

  test('not JSON, not an object, missing file', () => {
    const notJson = configFile('{ upstream: pacs }');
    rejects(() => loadSettings({}, notJson), new RegExp(`^config file ${escape(notJson)}: not valid JSON`));
    const array = configFile([]);
    rejects(() => loadSettings({}, array), new RegExp(`^config file ${escape(array)}: must hold a JSON object$`));
    const missing = path.join(dir, 'missing.json');
    rejects(() => loadSettings({}, missing), new RegExp(`^config file ${escape(missing)}: cannot read it \\(ENOENT\\)$`));
  });

  test('a bad flag value is named by its flag even when the file sets the key too', () => {
    const file = configFile({ upstream: 'pacs:104', maxPdu: '1MB' });
    rejects(() => loadSettings({ maxPdu: '-1' }, file), /^--max-pdu: "-1" is not a size/);
    rejects(() => loadSettings({ connectTimeoutMs: 'soon' }, file), /^--connect-timeout: "soon" is not a whole number of milliseconds/);
    rejects(() => loadSettings({ logLevel: 'loud' }, file), /^--log-level: "loud" is not a log level/);
  });
});

describe('values', () => {
  test('fragment: fit, repack, SIZE', () => {
    assert.deepEqual(parseFragment('fit'), { mode: 'fit' });
    assert.deepEqual(parseFragment('REPACK'), { mode: 'repack' });
    assert.deepEqual(parseFragment('16KB'), { mode: 'size', size: 16384 });
    assert.deepEqual(parseFragment('0'), { mode: 'size', size: 0 });
    rejects(() => parseFragment('12XB'), /^"12XB" is not a size/);
    rejects(() => parseFragment('4294967296'), /is over 4294967295/);
    rejects(() => parseFragment(''), /^"" is not fit, repack or a size$/);
  });

  test('a fragment size may be a number in the file', () => {
    const file = configFile({ upstream: 'pacs:104', fragment: 16384 });
    assert.deepEqual(loadSettings({}, file).options.fragment, { mode: 'size', size: 16384 });
  });

  test('log level is case-insensitive', () => {
    assert.equal(loadSettings({ ...UPSTREAM, logLevel: 'DEBUG' }).logLevel, 'debug');
  });

  test('IPv6 endpoints', () => {
    const s = loadSettings({ listen: '[::1]:0', upstream: '[::1]:104' });
    assert.deepEqual(s.options.listen, { host: '::1', port: 0 });
    assert.deepEqual(s.options.upstream, { host: '::1', port: 104 });
  });

  test('a port number as listen in the file', () => {
    const file = configFile({ upstream: 'pacs:104', listen: 4242 });
    assert.deepEqual(loadSettings({}, file).options.listen, { host: '0.0.0.0', port: 4242 });
  });
});

describe('warnings', () => {
  test('odd Maximum Lengths, named by flag or file key', () => {
    const file = configFile({ upstream: 'pacs:104', maxPduRq: 16385 });
    const s = loadSettings({ maxPdu: '16383' }, file);
    assert.equal(s.warnings.length, 2);
    assert.match(s.warnings[0]!, /^--max-pdu: 16383 is odd: .*DCMTK rejects/);
    assert.match(s.warnings[1]!, new RegExp(`^config file ${escape(file)}: maxPduRq: 16385 is odd`));
  });

  test('small but even: below 4096', () => {
    assert.match(loadSettings({ ...UPSTREAM, maxPdu: '1000' }).warnings[0]!, /^--max-pdu: 1000 is below 4096/);
  });

  test('none for 0 (no maximum) or ordinary sizes', () => {
    assert.deepEqual(loadSettings({ ...UPSTREAM, maxPdu: '0', maxPduRq: '4KB' }).warnings, []);
  });
});

describe('workers (--workers, PDU_PROXY_WORKERS, config key workers)', () => {
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'workers-config-'));
  after(() => fs.rmSync(tmpDir, { recursive: true, force: true }));

  test('default 1; a number; auto = the cores available', () => {
    assert.equal(loadSettings(UPSTREAM).workers, 1);
    assert.equal(loadSettings({ ...UPSTREAM, workers: '3' }).workers, 3);
    assert.equal(loadSettings({ ...UPSTREAM, workers: 'auto' }).workers, os.availableParallelism());
  });

  test('from a config file (a number or "auto") and the environment; flags win', () => {
    const file = path.join(tmpDir, 'w.json');
    fs.writeFileSync(file, JSON.stringify({ upstream: 'pacs:104', workers: 4 }));
    assert.equal(loadSettings({}, file).workers, 4);
    assert.equal(loadSettings({}, file, { env: { PDU_PROXY_WORKERS: '2' } }).workers, 2);
    assert.equal(loadSettings({ workers: '5' }, file, { env: { PDU_PROXY_WORKERS: '2' } }).workers, 5);
  });

  test('bad values name the setting', () => {
    rejects(() => loadSettings({ ...UPSTREAM, workers: '0' }), /^--workers: "0" is not a number of workers \(1\.\.256\) or "auto"$/);
    rejects(() => loadSettings({ ...UPSTREAM, workers: 'x' }), /^--workers: "x" is not a number of workers/);
    rejects(() => loadSettings({ ...UPSTREAM, workers: '257' }), /^--workers: "257" is not a number of workers/);
    const file = path.join(tmpDir, 'bad.json');
    fs.writeFileSync(file, JSON.stringify({ upstream: 'pacs:104', workers: 1.5 }));
    rejects(() => loadSettings({}, file), /workers: 1\.5 is not a number of workers/);
  });

  test('applies to the whole process, not to one route', () => {
    rejects(() => loadSettings({ ...UPSTREAM, routes: ['2000=pacs:104,workers=2'] }), /workers/);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
