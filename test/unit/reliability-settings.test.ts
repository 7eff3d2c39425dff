// The reliability settings: --artim-timeout, --idle-timeout, --drain-timeout, --max-associations,
// --allow-calling-aet, --allow-peer. Parsing, access-list matching, the admission decisions, and the CLI's
// one-line exit-2 answer to bad values.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { aeAllowed, parseAeTitle, parsePeerRule, peerMatcher } from '../../src/config/access.js';
import { loadSettings } from '../../src/config/config.js';
import { ConfigError } from '../../src/values/errors.js';
import { AdmissionRules } from '../../src/proxy/admission.js';
import { rejects } from '../helpers/settings.js';
import { assertBuilt } from '../helpers/built.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(REPO_ROOT, 'bin', 'dicom-pdu-proxy.js');
const BASE_ENV = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toUpperCase().startsWith('PDU_PROXY_')));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-rel-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const UP = { upstream: 'pacs:104' };

describe('settings', () => {
  test('defaults: ARTIM 30 s, idle 10 min, drain 30 s, no association limit, no access lists, connect 3 s', () => {
    const o = loadSettings(UP).options;
    assert.equal(o.artimTimeoutMs, 30_000);
    assert.equal(o.idleTimeoutMs, 600_000);
    assert.equal(o.drainTimeoutMs, 30_000);
    assert.equal(o.maxAssociations, 0);
    assert.equal(o.maxPendingConnections, 256);
    assert.equal(o.allowCallingAet, undefined);
    assert.equal(o.allowPeer, undefined);
    assert.equal(o.connectTimeoutMs, 3000);
  });

  test('flags, environment and config file all set them', () => {
    const file = path.join(dir, 'c.json');
    fs.writeFileSync(file, JSON.stringify({ allowCallingAet: ['CT1', ' MR 2 '], allowPeer: '10.0.0.0/8', maxAssociations: 50 }));
    const s = loadSettings({ ...UP, idleTimeoutMs: '0', drainTimeoutMs: '0', maxPendingConnections: '8' }, file, {
      env: { PDU_PROXY_ARTIM_TIMEOUT: '5000', PDU_PROXY_MAX_ASSOCIATIONS: '20' },
    });
    assert.equal(s.options.maxPendingConnections, 8);
    assert.equal(s.options.idleTimeoutMs, 0, '0 = off is allowed');
    assert.equal(s.options.drainTimeoutMs, 0);
    assert.equal(s.options.artimTimeoutMs, 5000);
    assert.equal(s.options.maxAssociations, 20, 'the environment beats the file');
    assert.deepEqual(s.options.allowCallingAet, ['CT1', 'MR 2']);
    assert.deepEqual(s.options.allowPeer, [{ address: '10.0.0.0', family: 'ipv4', prefix: 8 }]);
  });

  test('a comma-separated list; blanks are dropped; an empty list is no list', () => {
    const s = loadSettings({ ...UP, allowCallingAet: ' CT1 ,, MR2', allowPeer: '::1, 192.168.0.0/16' });
    assert.deepEqual(s.options.allowCallingAet, ['CT1', 'MR2']);
    assert.deepEqual(s.options.allowPeer, [
      { address: '::1', family: 'ipv6', prefix: undefined },
      { address: '192.168.0.0', family: 'ipv4', prefix: 16 },
    ]);
    assert.equal(loadSettings({ ...UP, allowPeer: ' , ' }).options.allowPeer, undefined);
  });

  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ artimTimeoutMs: '0' }, /^--artim-timeout: "0" is not a whole number of milliseconds \(1\.\./],
    [{ idleTimeoutMs: '-5' }, /^--idle-timeout: "-5" is not a whole number of milliseconds \(0\.\./],
    [{ drainTimeoutMs: '30s' }, /^--drain-timeout: "30s" is not a whole number of milliseconds/],
    [{ maxAssociations: 'lots' }, /^--max-associations: "lots" is not a whole number of associations \(0\.\.1000000\)$/],
    [{ maxPendingConnections: '0' }, /^--max-pending: "0" is not a whole number of connections \(1\.\.100000\)$/],
    [{ allowCallingAet: 'CT1,THIS_IS_TOO_LONG_AE' }, /^--allow-calling-aet: "THIS_IS_TOO_LONG_AE" is not an AE title/],
    [{ allowCallingAet: 'A\\B' }, /^--allow-calling-aet: "A\\\\B" is not an AE title/],
    [{ allowPeer: 'pacs.example.org' }, /^--allow-peer: "pacs\.example\.org" is not an IP address or CIDR block/],
    [{ allowPeer: '10.0.0.0/33' }, /^--allow-peer: "10\.0\.0\.0\/33": the prefix length must be 0\.\.32$/],
    [{ allowPeer: 'fd00::/129' }, /^--allow-peer: "fd00::\/129": the prefix length must be 0\.\.128$/],
  ];
  for (const [flags, message] of bad) {
    test(`rejects ${JSON.stringify(flags)}`, () => rejects(() => loadSettings({ ...UP, ...flags }), message));
  }

  test('a config file list must be strings', () => {
    const file = path.join(dir, 'bad-list.json');
    fs.writeFileSync(file, JSON.stringify({ upstream: 'pacs:104', allowPeer: [10, 11] }));
    rejects(() => loadSettings({}, file), /: allowPeer: \[10,11\] must be a comma-separated string or an array of strings$/);
  });
});

describe('access lists', () => {
  test('AE titles: trimmed, case-sensitive, 1-16 printable characters', () => {
    assert.equal(parseAeTitle('  CT 1 '), 'CT 1');
    assert.throws(() => parseAeTitle(''), ConfigError);
    assert.throws(() => parseAeTitle('\u00e9CHO'), ConfigError);
    assert.ok(aeAllowed(['CT1'], 'CT1'));
    assert.ok(aeAllowed(['CT1'], ' CT1  '));
    assert.ok(!aeAllowed(['CT1'], 'ct1'));
    assert.ok(!aeAllowed(['CT1'], 'CT11'));
  });

  test('peers: single addresses and CIDR blocks, IPv4, IPv6 and IPv4-mapped IPv6', () => {
    const allowed = peerMatcher(['10.1.0.0/16', '192.168.5.7', 'fd00::/8'].map(parsePeerRule));
    assert.ok(allowed('10.1.200.3'));
    assert.ok(!allowed('10.2.0.1'));
    assert.ok(allowed('192.168.5.7'));
    assert.ok(!allowed('192.168.5.8'));
    assert.ok(allowed('::ffff:10.1.0.9'), 'an IPv4 peer on a dual-stack listener');
    assert.ok(allowed('fd12:3456::1'));
    assert.ok(!allowed('fe80::1'));
    assert.ok(!allowed(undefined));
  });
});

describe('admission decisions', () => {
  const req = { peerAddress: '10.0.0.5', callingAe: 'CT1' };
  const idle = { draining: false, associations: 0 };
  const rj = (r: { reject: Buffer } | undefined) => (r ? [...r.reject.subarray(7)] : undefined);

  test('no policy: everything admitted', () => {
    assert.equal(new AdmissionRules({ maxAssociations: 0 }).decide(req, { draining: false, associations: 10_000 }), undefined);
  });

  test('peer and AE refusals: permanent, service-user, calling AE not recognized (1, 1, 3)', () => {
    const rules = new AdmissionRules({ maxAssociations: 0, allowPeer: [parsePeerRule('10.9.0.0/16')], allowCallingAet: ['MR1'] });
    const peer = rules.decide(req, idle);
    assert.equal(peer?.code, 'peer-not-allowed');
    assert.deepEqual(rj(peer), [1, 1, 3]);
    const ae = rules.decide({ ...req, peerAddress: '10.9.1.1' }, idle);
    assert.equal(ae?.code, 'calling-ae-not-allowed');
    assert.deepEqual(rj(ae), [1, 1, 3]);
    assert.equal(rules.decide({ peerAddress: '10.9.1.1', callingAe: 'MR1' }, idle), undefined);
  });

  test('draining: transient, provider, temporary congestion (2, 3, 1); the limit: transient, provider, local limit exceeded (2, 3, 2)', () => {
    const rules = new AdmissionRules({ maxAssociations: 2 });
    assert.deepEqual(rj(rules.decide(req, { draining: true, associations: 0 })), [2, 3, 1]);
    assert.equal(rules.decide(req, { draining: false, associations: 1 }), undefined);
    const full = rules.decide(req, { draining: false, associations: 2 });
    assert.equal(full?.code, 'max-associations');
    assert.deepEqual(rj(full), [2, 3, 2]);
  });

  test('access is checked before the limit: a stranger is told "not recognized", not "try later"', () => {
    const rules = new AdmissionRules({ maxAssociations: 1, allowCallingAet: ['MR1'] });
    assert.equal(rules.decide(req, { draining: true, associations: 5 })?.code, 'calling-ae-not-allowed');
  });
});

describe('docker-compose.yml', () => {
  test('the proxy service gets more time to stop than the default --drain-timeout', () => {
    const compose = YAML.parse(fs.readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as {
      services: Record<string, { stop_grace_period?: string }>;
    };
    const grace = compose.services.proxy?.stop_grace_period ?? '10s'; // docker's default
    const m = /^(\d+)s$/.exec(grace);
    assert.ok(m, `stop_grace_period ${grace} in seconds`);
    assert.ok(Number(m[1]) * 1000 > loadSettings(UP).options.drainTimeoutMs, `${grace} is longer than the drain`);
  });
});

describe('CLI', () => {
  before(assertBuilt);
  function cli(args: string[]) {
    const r = spawnSync(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 20_000, env: BASE_ENV });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }
  const cases: Array<[string[], RegExp]> = [
    [['--artim-timeout', '0'], /^dicom-pdu-proxy: --artim-timeout: "0" is not a whole number of milliseconds/],
    [['--idle-timeout', 'never'], /^dicom-pdu-proxy: --idle-timeout: "never" is not a whole number of milliseconds/],
    [['--drain-timeout', '1e3'], /^dicom-pdu-proxy: --drain-timeout: "1e3" is not a whole number of milliseconds/],
    [['--max-associations', '-1'], /^dicom-pdu-proxy: --max-associations: "-1" is not a whole number of associations/],
    [['--max-pending', '0'], /^dicom-pdu-proxy: --max-pending: "0" is not a whole number of connections/],
    [['--allow-calling-aet', 'OK,WAY_TOO_LONG_AE_TITLE'], /^dicom-pdu-proxy: --allow-calling-aet: "WAY_TOO_LONG_AE_TITLE" is not an AE title/],
    [['--allow-peer', '300.1.1.1'], /^dicom-pdu-proxy: --allow-peer: "300\.1\.1\.1" is not an IP address or CIDR block/],
  ];
  for (const [args, message] of cases) {
    test(args.join(' '), () => {
      const r = cli(['--upstream', '127.0.0.1:104', ...args]);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`);
      assert.match(r.stderr, message);
    });
  }

  test('--help lists every new option', () => {
    const r = cli(['--help']);
    assert.equal(r.status, 0);
    for (const flag of ['--artim-timeout', '--idle-timeout', '--drain-timeout', '--max-associations', '--max-pending', '--allow-calling-aet', '--allow-peer']) {
      assert.ok(r.stdout.includes(flag), flag);
    }
  });
});
