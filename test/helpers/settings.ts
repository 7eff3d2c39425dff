// Settings in tests: the promise for a bad flag or setting (a ConfigError of one line naming it), and the
// values of the settings a test leaves at their defaults.

import assert from 'node:assert/strict';
import { ConfigError } from '../../src/values/errors.js';

/** `run` throws a ConfigError of one line matching `message`. */
export function rejects(run: () => unknown, message: RegExp): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
    assert.match(err.message, message);
    assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
    return true;
  });
}

/**
 * The resolved options of the settings the precedence tests never set: config/default.json's values, written
 * out here so that a changed default fails the tests. Spread after what a test does set.
 */
export const UNSET_DEFAULTS = {
  artimTimeoutMs: 30000,
  idleTimeoutMs: 600000,
  stallTimeoutMs: 60000,
  drainTimeoutMs: 30000,
  maxAssociations: 0,
  maxPendingConnections: 256,
  allowCallingAet: undefined,
  allowPeer: undefined,
  assign: 'block',
  assignSeed: undefined,
  guard: true,
} as const;
