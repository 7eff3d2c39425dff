// bench --tls: the setting, and the combinations it refuses (one ConfigError naming the flag, exit status 2).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchOptions } from '../../src/bench/options.js';
import { ConfigError } from '../../src/values/errors.js';

test('--tls: off by default; on with the built-in peers, storescu, --direct and --both', () => {
  assert.equal(benchOptions({}).tls, false);
  assert.equal(benchOptions({ tls: true }).tls, true);
  assert.equal(benchOptions({ tls: true, scu: 'dcmtk' }).tls, true);
  assert.deepEqual(benchOptions({ tls: true, direct: true }).modes, ['direct']);
  assert.deepEqual(benchOptions({ tls: true, both: true }).modes, ['proxy', 'direct']);
});

test('--tls refuses the peers it does not run with TLS and SCPs it made no certificate for', () => {
  const bad: Array<[Parameters<typeof benchOptions>[0], RegExp]> = [
    [{ tls: true, scu: 'dcmjs' }, /^--tls: the dcmjs-dimse Client/],
    [{ tls: true, scp: 'dcmjs' }, /^--tls: the embedded dcmjs-dimse SCP/],
    [{ tls: true, upstream: 'pacs:104' }, /^--tls makes throwaway certificates.*--upstream-tls/],
    [{ tls: true, scpCommand: 'storescp {port}' }, /^--tls and --scp-command exclude each other/],
  ];
  for (const [flags, message] of bad)
    assert.throws(
      () => benchOptions(flags),
      (e: Error) => e instanceof ConfigError && message.test(e.message),
      JSON.stringify(flags),
    );
});
