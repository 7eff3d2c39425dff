import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatSize, parseSize } from '../../src/values/size.js';
import { ConfigError } from '../../src/values/errors.js';

describe('parseSize', () => {
  const good: Array<[string, number]> = [
    ['0', 0],
    ['0B', 0],
    ['1', 1],
    ['16384', 16384],
    ['1000B', 1000],
    ['16KB', 16384],
    ['100KB', 102400],
    ['500KB', 512000],
    ['1MB', 1048576],
    ['10MB', 10485760],
    ['20MB', 20971520],
    ['1GB', 1073741824],
    ['4KiB', 4096],
    ['2MiB', 2097152],
    ['1GiB', 1073741824],
    ['16K', 16384],
    ['1M', 1048576],
    ['1G', 1073741824],
    ['16kb', 16384],
    ['1mb', 1048576],
    ['16Kb', 16384],
    ['1.5MB', 1572864],
    ['0.5KB', 512],
    ['0.125KB', 128],
    ['2.0B', 2],
    ['16 KB', 16384], // a space between number and unit is allowed
    [' 16 KB ', 16384], // and surrounding spaces are ignored
    ['4294967295', 4294967295],
    ['4294967295B', 4294967295],
    ['3.999999999068677425384521484375GB', 4294967295], // exact decimal arithmetic, no float rounding
  ];
  for (const [text, bytes] of good) {
    test(`${JSON.stringify(text)} = ${bytes}`, () => assert.equal(parseSize(text), bytes));
  }

  const bad: Array<[string, RegExp]> = [
    ['', /^"" is not a size/],
    ['   ', /is not a size/],
    ['abc', /^"abc" is not a size \(bytes, or a number with KB\/MB\/GB\)$/],
    ['-1', /^"-1" is not a size/],
    ['-16KB', /is not a size/],
    ['+16KB', /is not a size/],
    ['12XB', /^"12XB" is not a size \(bytes, or a number with KB\/MB\/GB\)$/],
    ['12 TB', /is not a size/],
    ['KB', /is not a size/],
    ['1e3', /is not a size/],
    ['.5MB', /is not a size/],
    ['1.MB', /is not a size/],
    ['0x10', /is not a size/],
    ['16 K B', /is not a size/],
    ['1.1B', /^"1.1B" is not a whole number of bytes$/],
    ['1.5', /is not a whole number of bytes/],
    ['0.1KB', /is not a whole number of bytes/],
    ['4294967296', /^"4294967296" is over 4294967295 bytes/],
    ['4GB', /is over 4294967295 bytes/],
    ['4294967295.5', /is not a whole number of bytes/],
    ['4294967295.0000000000001', /is not a whole number of bytes/],
    ['99999999999999999999999999', /is over 4294967295 bytes/],
  ];
  for (const [text, message] of bad) {
    test(`${JSON.stringify(text)} is rejected`, () => {
      assert.throws(
        () => parseSize(text),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError, 'a ConfigError');
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }
});

describe('formatSize', () => {
  const labels: Array<[number, string]> = [
    [0, '0B'],
    [1, '1B'],
    [1000, '1000B'],
    [1023, '1023B'],
    [4096, '4KB'],
    [16384, '16KB'],
    [102400, '100KB'],
    [512000, '500KB'],
    [1048576, '1MB'],
    [1572864, '1536KB'],
    [10485760, '10MB'],
    [20971520, '20MB'],
    [1073741824, '1GB'],
    [4294967295, '4294967295B'],
  ];
  for (const [bytes, label] of labels) {
    test(`${bytes} → ${label}, and back`, () => {
      assert.equal(formatSize(bytes), label);
      assert.equal(parseSize(label), bytes);
    });
  }

  test('labels of the documented sizes round-trip', () => {
    for (const label of ['16KB', '100KB', '500KB', '1MB', '10MB', '20MB', '1000B']) {
      assert.equal(formatSize(parseSize(label)), label);
    }
  });
});
