// bench --scp-command: the template split into argv (shell-like words, no shell), placeholders
// substituted inside words, and the one-line errors (exit status 2) for templates that cannot run.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseScpTemplate, scpArgv } from '../../src/bench/scp-template.js';
import { benchOptions, DEFAULT_SCP_PDU } from '../../src/bench/options.js';
import { ConfigError } from '../../src/values/errors.js';

const values = { port: '11112', pdu: '16384', out: '/tmp/a dir/x' };
const argv = (t: string, v = values): string[] => scpArgv(parseScpTemplate(t), v);

describe('--scp-command template', () => {
  test('words split on blanks; placeholders substituted inside a word', () => {
    assert.deepEqual(argv('storescp --max-pdu {pdu} --ignore {port}'), ['storescp', '--max-pdu', '16384', '--ignore', '11112']);
    assert.deepEqual(argv('  srv   --listen=127.0.0.1:{port}\t--dir {out}/db '), ['srv', '--listen=127.0.0.1:11112', '--dir', '/tmp/a dir/x/db']);
  });

  test('a substituted value stays one word, whatever it holds (no shell reads it)', () => {
    const hostile = { port: '1', pdu: '2', out: '/tmp/x\'; rm -rf / #$(id) `id` "q" {pdu}' };
    assert.deepEqual(argv('prog {out} {port}', hostile), ['prog', hostile.out, '1']);
    assert.deepEqual(argv('sh -c \'exec srv --port "$1" --dir "$3"\' sh {port} {pdu} {out}', hostile), [
      'sh',
      '-c',
      'exec srv --port "$1" --dir "$3"',
      'sh',
      '1',
      '2',
      hostile.out,
    ]);
  });

  test('quotes and backslashes as in a POSIX shell; {{ and }} are literal braces', () => {
    assert.deepEqual(argv(`a 'b c' "d \\"e\\" f" g\\ h '' "" x{{y}}z '{port}'`), ['a', 'b c', 'd "e" f', 'g h', '', '', 'x{y}z', '11112']);
    // # and ~ are only shell syntax at the start of a word.
    assert.deepEqual(argv(`srv --opt='{pdu} bytes' a#b a~x {port}`), ['srv', '--opt=16384 bytes', 'a#b', 'a~x', '11112']);
  });

  for (const [template, why] of [
    ['storescp --max-pdu {pdu} --ignore {prot}', /unknown placeholder \{prot\}/],
    ['storescp {pdu} {port', /unclosed "\{"/],
    ['storescp {pdu} port} {port}', /unmatched "\}"/],
    ['storescp --ignore 104', /no \{port\}/],
    ['', /empty/],
    ['{out}/srv {port}', /first word/],
    ["storescp 'abc {port}", /unclosed single quote/],
    ['storescp "abc {port}', /unclosed double quote/],
    ['storescp {port} > log', /">" is shell syntax/],
    ['storescp {port} | tee', /"\|" is shell syntax/],
    ['storescp {port}; echo', /";" is shell syntax/],
    ['storescp $HOME {port}', /"\$" is shell syntax/],
    ['storescp "$HOME" {port}', /inside double quotes/],
    ['storescp *.cfg {port}', /"\*" is shell syntax/],
    ['storescp {port} \\', /trailing backslash/],
  ] as const) {
    test(`refused in one line naming the flag: ${JSON.stringify(template)}`, () => {
      assert.throws(
        () => parseScpTemplate(template),
        (err: Error) => err instanceof ConfigError && err.message.startsWith('--scp-command: ') && why.test(err.message) && !err.message.includes('\n'),
      );
    });
  }
});

describe('bench options with --scp-command', () => {
  const t = 'storescp --max-pdu {pdu} --ignore {port}';
  test('--direct is native, --both is proxy and native; --scp-pdu defaults to 131072', () => {
    assert.deepEqual(benchOptions({ scpCommand: t, direct: true }).modes, ['native']);
    const both = benchOptions({ scpCommand: t, both: true });
    assert.deepEqual(both.modes, ['proxy', 'native']);
    assert.equal(both.scpPdu, DEFAULT_SCP_PDU);
    assert.equal(both.scpStartTimeoutMs, 30_000);
    assert.equal(benchOptions({ scpCommand: t, scpPdu: '0', scpStartTimeout: '5' }).scpPdu, 0);
    assert.equal(benchOptions({ scpCommand: t, scpPdu: '64KB' }).scpPdu, 65536);
    assert.deepEqual(benchOptions({ both: true }).modes, ['proxy', 'direct']);
  });

  for (const [flags, why] of [
    [{ scpCommand: t, upstream: 'pacs:104' }, /--scp-command and --upstream/],
    [{ scpCommand: t, scp: 'dcmjs' }, /^--scp chooses/],
    [{ scpCommand: t, storeDir: 'x' }, /^--store-dir/],
    [{ scpPdu: '16KB' }, /^--scp-pdu .* needs --scp-command/],
    [{ scpStartTimeout: '5' }, /^--scp-start-timeout needs --scp-command/],
    [{ scpCommand: t, scpPdu: '7' }, /^--scp-pdu: 7 bytes/],
    [{ scpCommand: t, scpPdu: 'big' }, /^--scp-pdu: /],
    [{ scpCommand: t, scpStartTimeout: '0' }, /^--scp-start-timeout: /],
    [{ scpCommand: 'x {port} {bad}' }, /^--scp-command: unknown placeholder \{bad\}/],
  ] as const) {
    test(`refused: ${JSON.stringify(flags)}`, () => {
      assert.throws(
        () => benchOptions(flags),
        (err: Error) => err instanceof ConfigError && why.test(err.message),
      );
    });
  }
});
