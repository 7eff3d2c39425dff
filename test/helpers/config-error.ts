// The project's promise for a bad flag or setting: a ConfigError whose message is one line naming it.

import assert from 'node:assert/strict';
import { ConfigError } from '../../src/config/errors.js';

/** `run` throws a ConfigError of one line matching `message`. */
export function rejects(run: () => unknown, message: RegExp): void {
  assert.throws(run, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`);
    assert.match(err.message, message);
    assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
    return true;
  });
}
