import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatEndpoint, parseListen, parseUpstream } from '../../src/values/endpoint.js';
import { ConfigError } from '../../src/values/errors.js';
import type { Endpoint } from '../../src/values/endpoint.js';

function rejects(parse: () => unknown, message: RegExp): void {
  assert.throws(parse, (err: unknown) => {
    assert.ok(err instanceof ConfigError, 'a ConfigError');
    assert.match(err.message, message);
    return true;
  });
}

describe('parseListen: [HOST:]PORT', () => {
  const good: Array<[string, Endpoint]> = [
    ['11112', { host: '0.0.0.0', port: 11112 }],
    ['0', { host: '0.0.0.0', port: 0 }],
    ['65535', { host: '0.0.0.0', port: 65535 }],
    ['127.0.0.1:11112', { host: '127.0.0.1', port: 11112 }],
    ['localhost:104', { host: 'localhost', port: 104 }],
    ['0.0.0.0:0', { host: '0.0.0.0', port: 0 }],
    ['[::1]:104', { host: '::1', port: 104 }],
    ['[::]:11112', { host: '::', port: 11112 }],
    [' 11112 ', { host: '0.0.0.0', port: 11112 }],
  ];
  for (const [text, endpoint] of good) {
    test(`${JSON.stringify(text)}`, () => assert.deepEqual(parseListen(text), endpoint));
  }

  const bad: Array<[string, RegExp]> = [
    ['', /^"" is not \[HOST:\]PORT$/],
    ['65536', /^"65536": port 65536 is not in 0\.\.65535$/],
    ['host:65536', /port 65536 is not in 0\.\.65535/],
    ['-1', /is not \[HOST:\]PORT/],
    ['abc', /^"abc" is not \[HOST:\]PORT$/],
    ['host:', /is not \[HOST:\]PORT/],
    [':104', /is not \[HOST:\]PORT/],
    ['::1:104', /is not \[HOST:\]PORT/],
    ['[pacs]:104', /\[pacs\] is not an IPv6 address/],
    ['[::1]', /is not \[HOST:\]PORT/],
    ['host:1x', /is not \[HOST:\]PORT/],
    ['my host:104', /is not \[HOST:\]PORT/],
  ];
  for (const [text, message] of bad) {
    test(`${JSON.stringify(text)} is rejected`, () => rejects(() => parseListen(text), message));
  }
});

describe('parseUpstream: HOST:PORT', () => {
  const good: Array<[string, Endpoint]> = [
    ['pacs:104', { host: 'pacs', port: 104 }],
    ['10.0.0.5:11112', { host: '10.0.0.5', port: 11112 }],
    ['pacs.example.org:1', { host: 'pacs.example.org', port: 1 }],
    ['pacs:65535', { host: 'pacs', port: 65535 }],
    ['[::1]:104', { host: '::1', port: 104 }],
    ['[fe80::1]:4242', { host: 'fe80::1', port: 4242 }],
  ];
  for (const [text, endpoint] of good) {
    test(`${JSON.stringify(text)}`, () => assert.deepEqual(parseUpstream(text), endpoint));
  }

  const bad: Array<[string, RegExp]> = [
    ['104', /^"104" is not HOST:PORT$/], // the host is required
    ['pacs', /is not HOST:PORT/],
    ['pacs:0', /^"pacs:0": port 0 is not in 1\.\.65535$/],
    ['pacs:70000', /port 70000 is not in 1\.\.65535/],
    ['', /is not HOST:PORT/],
    ['[::1]:0', /port 0 is not in 1\.\.65535/],
    ['::1:104', /is not HOST:PORT/],
  ];
  for (const [text, message] of bad) {
    test(`${JSON.stringify(text)} is rejected`, () => rejects(() => parseUpstream(text), message));
  }
});

test('formatEndpoint brackets IPv6 hosts', () => {
  assert.equal(formatEndpoint({ host: 'pacs', port: 104 }), 'pacs:104');
  assert.equal(formatEndpoint({ host: '::1', port: 104 }), '[::1]:104');
  assert.deepEqual(parseUpstream(formatEndpoint({ host: 'fe80::1', port: 4242 })), { host: 'fe80::1', port: 4242 });
});
