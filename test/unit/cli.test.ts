// The built CLI (bin/dicom-pdu-proxy.js → dist/, built by `npm run build`, which `npm test` runs first):
// every bad flag or value exits 2 with exactly one line on stderr, naming the flag and the value.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { assertBuilt } from '../helpers/built.js';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(REPO_ROOT, 'bin', 'dicom-pdu-proxy.js');
// Every test here runs dist/: without it they fail, loudly, rather than skip.
before(assertBuilt);

const { version } = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-cli-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** This process's environment without PDU_PROXY_* variables (a developer's shell may set some). */
const BASE_ENV = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toUpperCase().startsWith('PDU_PROXY_')));

function cli(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 20_000, env: { ...BASE_ENV, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function oneLineError(r: { status: number | null; stdout: string; stderr: string }, message: RegExp): void {
  assert.equal(r.status, 2, `exit status; stderr: ${r.stderr}`);
  assert.equal(r.stdout, '');
  assert.ok(r.stderr.endsWith('\n'), 'stderr ends with a newline');
  const lines = r.stderr.slice(0, -1).split('\n');
  assert.equal(lines.length, 1, `exactly one stderr line, got: ${r.stderr}`);
  assert.match(lines[0]!, message);
}

const UP = ['--upstream', '127.0.0.1:104'];

describe('bad flags and values: exit 2, one stderr line naming flag and value, nothing on stdout', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['--max-pdu 12XB', [...UP, '--max-pdu', '12XB'], /^dicom-pdu-proxy: --max-pdu: "12XB" is not a size \(bytes, or a number with KB\/MB\/GB\)$/],
    ['--max-pdu -1', [...UP, '--max-pdu', '-1'], /^dicom-pdu-proxy: --max-pdu: "-1" is not a size/],
    ['--max-pdu=-1', [...UP, '--max-pdu=-1'], /^dicom-pdu-proxy: --max-pdu: "-1" is not a size/],
    ['--max-pdu 4294967296', [...UP, '--max-pdu', '4294967296'], /^dicom-pdu-proxy: --max-pdu: "4294967296" is over 4294967295 bytes/],
    ['--max-pdu 1.1B', [...UP, '--max-pdu', '1.1B'], /^dicom-pdu-proxy: --max-pdu: "1.1B" is not a whole number of bytes$/],
    ['--max-pdu-rq abc', [...UP, '--max-pdu-rq', 'abc'], /^dicom-pdu-proxy: --max-pdu-rq: "abc" is not a size/],
    ['--max-pdu 16KB,12XB (an arm)', [...UP, '--max-pdu', '16KB,12XB'], /^dicom-pdu-proxy: --max-pdu: "12XB" is not a size \(bytes, or a number with KB\/MB\/GB\)$/],
    ['--max-pdu 16KB,,64KB', [...UP, '--max-pdu', '16KB,,64KB'], /^dicom-pdu-proxy: --max-pdu: "16KB,,64KB" has an empty item/],
    ['--max-pdu-rq 16KB,64KB (one value only)', [...UP, '--max-pdu-rq', '16KB,64KB'], /^dicom-pdu-proxy: --max-pdu-rq: "16KB,64KB" is not a size/],
    ['--assign blocks', [...UP, '--assign', 'blocks'], /^dicom-pdu-proxy: --assign: "blocks" is not block, rotate or random$/],
    ['--assign-seed -1', [...UP, '--assign-seed', '-1'], /^dicom-pdu-proxy: --assign-seed: "-1" is not a seed \(a whole number 0\.\.4294967295\)$/],
    ['--assign-seed 4294967296', [...UP, '--assign-seed', '4294967296'], /^dicom-pdu-proxy: --assign-seed: "4294967296" is not a seed/],
    ['--guard maybe', [...UP, '--guard', 'maybe'], /^dicom-pdu-proxy: --guard: "maybe" is not on or off$/],
    ['missing --upstream', ['--max-pdu', '1MB'], /^dicom-pdu-proxy: --upstream HOST:PORT is required/],
    ['--upstream without host', ['--upstream', '104'], /^dicom-pdu-proxy: --upstream: "104" is not HOST:PORT$/],
    ['--upstream port 0', ['--upstream', 'pacs:0'], /^dicom-pdu-proxy: --upstream: "pacs:0": port 0 is not in 1\.\.65535$/],
    ['--listen 70000', [...UP, '--listen', '70000'], /^dicom-pdu-proxy: --listen: "70000": port 70000 is not in 0\.\.65535$/],
    ['--fragment weird', [...UP, '--fragment', 'weird'], /^dicom-pdu-proxy: --fragment: "weird" is not fit, repack or a size$/],
    ['--log-level loud', [...UP, '--log-level', 'loud'], /^dicom-pdu-proxy: --log-level: "loud" is not a log level/],
    ['--connect-timeout 10s', [...UP, '--connect-timeout', '10s'], /^dicom-pdu-proxy: --connect-timeout: "10s" is not a whole number of milliseconds/],
    ['--close-timeout 0', [...UP, '--close-timeout', '0'], /^dicom-pdu-proxy: --close-timeout: "0" is not a whole number of milliseconds/],
    ['unknown flag --nope', [...UP, '--nope'], /^dicom-pdu-proxy: unknown option '--nope'$/],
    ['misspelt flag (commander suggestion kept on the same line)', [...UP, '--max-pd', '1MB'], /^dicom-pdu-proxy: unknown option '--max-pd' \(Did you mean --max-pdu\?\)$/],
    ['flag without its value', [...UP, '--max-pdu'], /^dicom-pdu-proxy: option '--max-pdu <SIZE\[,SIZE...\]>' argument missing$/],
    ['stray argument', [...UP, 'extra'], /^dicom-pdu-proxy: too many arguments/],
    ['--config missing file', [...UP, '--config', path.join(dir, 'missing.json')], /^dicom-pdu-proxy: config file .*missing\.json: cannot read it \(ENOENT\)$/],
  ];
  for (const [name, args, message] of cases) {
    test(name, () => {
      const r = cli(args);
      assert.equal(r.status, 2, `exit status; stderr: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.ok(r.stderr.endsWith('\n'), 'stderr ends with a newline');
      const lines = r.stderr.slice(0, -1).split('\n');
      assert.equal(lines.length, 1, `exactly one stderr line, got: ${r.stderr}`);
      assert.match(lines[0]!, message);
    });
  }

  test('a bad value in the --config file names the file and the key', () => {
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(file, JSON.stringify({ upstream: 'pacs:104', maxPdu: '12XB' }));
    const r = cli(['--config', file]);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `dicom-pdu-proxy: config file ${file}: maxPdu: "12XB" is not a size (bytes, or a number with KB/MB/GB)\n`);
  });

  test('an unknown key in the --config file is named', () => {
    const file = path.join(dir, 'unknown.json');
    fs.writeFileSync(file, JSON.stringify({ upstream: 'pacs:104', maxPDU: 1 }));
    const r = cli(['--config', file]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`^dicom-pdu-proxy: config file .*unknown\\.json: unknown key "maxPDU"[^\\n]*\\n$`));
  });
});

describe('environment variables: bad ones exit 2 with one line naming the variable', () => {
  const cases: Array<[string, Record<string, string>, string[], RegExp]> = [
    ['PDU_PROXY_MAX_PDU=12XB', { PDU_PROXY_MAX_PDU: '12XB' }, UP, /^dicom-pdu-proxy: environment PDU_PROXY_MAX_PDU: "12XB" is not a size \(bytes, or a number with KB\/MB\/GB\)$/],
    ['PDU_PROXY_UPSTREAM=pacs', { PDU_PROXY_UPSTREAM: 'pacs' }, [], /^dicom-pdu-proxy: environment PDU_PROXY_UPSTREAM: "pacs" is not HOST:PORT$/],
    ['PDU_PROXY_MAX_PDU=16KB,1XB', { PDU_PROXY_MAX_PDU: '16KB,1XB' }, UP, /^dicom-pdu-proxy: environment PDU_PROXY_MAX_PDU: "1XB" is not a size/],
    ['PDU_PROXY_GUARD=maybe', { PDU_PROXY_GUARD: 'maybe' }, UP, /^dicom-pdu-proxy: environment PDU_PROXY_GUARD: "maybe" is not on or off$/],
    ['PDU_PROXY_LOG_LEVEL=loud', { PDU_PROXY_LOG_LEVEL: 'loud' }, UP, /^dicom-pdu-proxy: environment PDU_PROXY_LOG_LEVEL: "loud" is not a log level/],
    [
      'PDU_PROXY_CLOSE_TIMEOUT=soon',
      { PDU_PROXY_CLOSE_TIMEOUT: 'soon' },
      UP,
      /^dicom-pdu-proxy: environment PDU_PROXY_CLOSE_TIMEOUT: "soon" is not a whole number of milliseconds/,
    ],
    [
      'typo PDU_PROXY_MAXPDU',
      { PDU_PROXY_MAXPDU: '1MB' },
      UP,
      /^dicom-pdu-proxy: environment PDU_PROXY_MAXPDU: unknown variable; did you mean PDU_PROXY_MAX_PDU\? \(known: PDU_PROXY_LISTEN, /,
    ],
    [
      'PDU_PROXY_CONFIG missing file',
      { PDU_PROXY_CONFIG: path.join(dir, 'missing.json') },
      UP,
      /^dicom-pdu-proxy: config file .*missing\.json \(from PDU_PROXY_CONFIG\): cannot read it \(ENOENT\)$/,
    ],
    ['no upstream anywhere', {}, [], /^dicom-pdu-proxy: --upstream HOST:PORT is required \(the SCP to forward to; or set PDU_PROXY_UPSTREAM, or "upstream" in a --config file\)$/],
  ];
  for (const [name, env, args, message] of cases) {
    test(name, () => oneLineError(cli(args, env), message));
  }

  test('a bad value in the PDU_PROXY_CONFIG file names the file and the key', () => {
    const file = path.join(dir, 'env-bad.json');
    fs.writeFileSync(file, JSON.stringify({ upstream: 'pacs:104', maxPdu: '12XB' }));
    const r = cli([], { PDU_PROXY_CONFIG: file });
    assert.equal(r.status, 2);
    assert.equal(r.stderr, `dicom-pdu-proxy: config file ${file} (from PDU_PROXY_CONFIG): maxPdu: "12XB" is not a size (bytes, or a number with KB/MB/GB)\n`);
  });

  test('warnings name the variable, and the proxy runs on', async () => {
    const r = await runUntilListening([], { PDU_PROXY_UPSTREAM: '127.0.0.1:9', PDU_PROXY_LISTEN: '127.0.0.1:0', PDU_PROXY_MAX_PDU: '16383' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^dicom-pdu-proxy: warning: environment PDU_PROXY_MAX_PDU: 16383 is odd/);
  });
});

describe('the proxy runs from the environment alone; flags > environment > config file', () => {
  test('upstream, sizes, fragment and CSV from the layers', async () => {
    const file = path.join(dir, 'layers.json');
    const csv = path.join(dir, 'env-chunks.csv');
    fs.writeFileSync(file, JSON.stringify({ upstream: 'filepacs:104', maxPdu: '16KB', maxPduRq: '8KB', fragment: 'repack' }));
    const r = await runUntilListening(['--max-pdu-rq', '64KB'], {
      PDU_PROXY_CONFIG: file,
      PDU_PROXY_LISTEN: '127.0.0.1:0',
      PDU_PROXY_UPSTREAM: '127.0.0.1:9',
      PDU_PROXY_MAX_PDU: '1MB',
      PDU_PROXY_MAX_PDU_RQ: '32KB',
      PDU_PROXY_CSV: csv,
    });
    assert.equal(r.status, 0, r.stderr);
    const listening = r.stdout
      .split('\n')
      .map((line) => (line ? (JSON.parse(line) as Record<string, unknown>) : {}))
      .find((o) => o.msg === 'listening');
    assert.ok(listening, `a "listening" log line, got: ${r.stdout}`);
    assert.equal(listening.upstream, '127.0.0.1:9'); // environment over file
    assert.equal(listening.maxPdu, 1048576); // environment over file
    assert.equal(listening.maxPduRq, 65536); // flag over environment and file
    assert.equal(listening.fragment, 'repack'); // file
    assert.ok(fs.existsSync(csv), 'PDU_PROXY_CSV file created');
  });
});

/** Start the built CLI, wait for its "listening" log line, then SIGTERM it and collect its output. */
function runUntilListening(args: string[], env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: { ...BASE_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let signalled = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      // run.ts installs its SIGTERM handler just after "listening" is logged: give it a moment.
      if (!signalled && stdout.includes('"msg":"listening"')) {
        signalled = true;
        setTimeout(() => child.kill('SIGTERM'), 300);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

describe('--help and --version', () => {
  test('--version prints the package version', () => {
    const r = cli(['--version']);
    assert.equal(r.status, 0);
    assert.equal(r.stdout, `${version}\n`);
    assert.equal(r.stderr, '');
  });

  for (const args of [['--help'], ['-h'], ['proxy', '--help']]) {
    test(`${args.join(' ')} shows the proxy's flags and examples`, () => {
      const r = cli(args);
      assert.equal(r.status, 0);
      assert.equal(r.stderr, '');
      assert.match(r.stdout, /^Usage: dicom-pdu-proxy --upstream HOST:PORT \[options\]/);
      for (const flag of ['--listen', '--upstream', '--max-pdu', '--max-pdu-rq', '--fragment', '--csv', '--log-level', '--config', '--connect-timeout', '--close-timeout']) {
        assert.ok(r.stdout.includes(`${flag} <`), `help lists ${flag}`);
      }
      assert.match(r.stdout, /Examples:\n {2}# .*\n {2}\$ dicom-pdu-proxy --listen 11112 --upstream pacs:104 --max-pdu 1MB --csv chunks\.csv/);
      assert.match(r.stdout, /PDU_PROXY_MAX_PDU for --max-pdu, PDU_PROXY_CONFIG for --config/);
      assert.match(r.stdout, /\$ docker run .*-e PDU_PROXY_UPSTREAM=pacs:104 .*\\\n +dicom-pdu-proxy --max-pdu 1MB/);
    });
  }

  test('`help` lists the commands', () => {
    const r = cli(['help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Commands:\n {2}proxy \[options\]/);
  });
});

describe('TLS certificate files: one line naming the setting, exit status 2', () => {
  test('--tls-cert that cannot be read', () => {
    oneLineError(
      cli([...UP, '--tls-cert', path.join(dir, 'missing.crt'), '--tls-key', path.join(dir, 'missing.key')]),
      /^dicom-pdu-proxy: --tls-cert: cannot read ".*missing\.crt" \(ENOENT\)$/,
    );
  });

  test('PDU_PROXY_UPSTREAM_TLS_CA that is not PEM', () => {
    const notPem = path.join(dir, 'not-pem.crt');
    fs.writeFileSync(notPem, 'hello\n');
    oneLineError(
      cli([...UP, '--upstream-tls'], { PDU_PROXY_UPSTREAM_TLS_CA: notPem }),
      /^dicom-pdu-proxy: environment PDU_PROXY_UPSTREAM_TLS_CA: ".*not-pem\.crt" holds no PEM certificate/,
    );
  });
});
