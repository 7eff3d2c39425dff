// Routes (--route, PDU_PROXY_ROUTE, "routes" in a config file): the parser, inheritance of the global
// settings, how --listen/--upstream combine with routes, and one clear ConfigError line per mistake.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { SETTINGS, loadSettings } from '../../src/config/config.js';
import type { RawSettings, SettingKey } from '../../src/config/config.js';
import { GLOBAL_ONLY, parseRoute, routeKeyName, routeKeys } from '../../src/config/routes.js';
import { rejects } from '../helpers/settings.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-routes-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let counter = 0;
function configFile(content: unknown): string {
  const file = path.join(dir, `r${++counter}.json`);
  fs.writeFileSync(file, JSON.stringify(content));
  return file;
}

const routes = (...r: string[]): RawSettings => ({ routes: r });

describe('parseRoute', () => {
  test('listen, upstream and per-route keys as written', () => {
    const spec = parseRoute('127.0.0.1:11113=pacs:104,max-pdu=1MB,id=ct,connect-timeout=500');
    assert.equal(spec.id, 'ct');
    assert.deepEqual(spec.values, { listen: '127.0.0.1:11113', upstream: 'pacs:104', maxPdu: '1MB', connectTimeoutMs: '500' });
    assert.equal(spec.label, '--route "127.0.0.1:11113=pacs:104,max-pdu=1MB,id=ct,connect-timeout=500"');
  });

  test('a port alone, IPv6 in brackets, and a list value keeps its commas', () => {
    const spec = parseRoute('[::1]:11113=[fe80::1]:104,allow-calling-aet=CT01,MR01,max-pdu=64KB');
    assert.deepEqual(spec.values, { listen: '[::1]:11113', upstream: '[fe80::1]:104', allowCallingAet: 'CT01,MR01', maxPdu: '64KB' });
    assert.deepEqual(parseRoute('11113=pacs:104').values, { listen: '11113', upstream: 'pacs:104' });
  });

  test('the route keys are the SETTINGS keys that are not process-wide, by their flag names', () => {
    const keys = routeKeys();
    for (const key of Object.keys(SETTINGS) as SettingKey[]) assert.equal(keys.includes(key), !GLOBAL_ONLY.has(key), key);
    assert.ok(keys.includes('maxPdu') && keys.includes('fragment') && keys.includes('idleTimeoutMs'));
    for (const key of keys) assert.ok(parseRoute(`1=h:1,${routeKeyName(key)}=1`).values[key] === '1', key);
  });

  const bad: Array<[string, RegExp]> = [
    ['11113', /^--route "11113": not \[HOST:\]PORT=UPSTREAM_HOST:PORT\[,KEY=VALUE\.\.\.\]$/],
    ['=pacs:104', /^--route "=pacs:104": not \[HOST:\]PORT=UPSTREAM_HOST:PORT/],
    ['11113=', /^--route "11113=": no UPSTREAM_HOST:PORT after "11113="$/],
    ['11113=,max-pdu=1MB', /no UPSTREAM_HOST:PORT/],
    ['11113=pacs:104,1MB', /^--route "11113=pacs:104,1MB": "1MB" is not KEY=VALUE$/],
    ['11113=pacs:104,max-pdu=1MB,max-pdu=2MB', /: max-pdu given twice$/],
    ['11113=pacs:104,max-pdu=', /: max-pdu has no value$/],
    ['11113=pacs:104,maxpdu=1MB', /: unknown key "maxpdu" \(route keys: id, max-pdu, max-pdu-rq, fragment, /],
    ['11113=pacs:104,maxPdu=1MB', /: unknown key "maxPdu"/],
    ['11113=pacs:104,csv=x.csv', /: csv applies to the whole process, not to one route \(set it as --csv\)$/],
    ['11113=pacs:104,drain-timeout=5', /: drain-timeout applies to the whole process/],
    ['11113=pacs:104,upstream=x:1', /: upstream is set by the route itself/],
    ['11113=pacs:104,id=a b', /: id "a b" is not a route id/],
    ['11113=pacs:104,id=x,id=y', /: id given twice$/],
  ];
  for (const [text, message] of bad) {
    test(`refused: ${text}`, () => rejects(() => parseRoute(text), message));
  }
});

describe('routes in the settings', () => {
  test('a route inherits what it does not set; its own values win; ids are the port or id=NAME', () => {
    const s = loadSettings({ ...routes('127.0.0.1:11113=a:104,max-pdu=1MB', '11114=b:105,id=ct,fragment=repack'), maxPdu: '64KB', connectTimeoutMs: '500' });
    assert.equal(s.routes.length, 2);
    const [one, two] = s.routes as [(typeof s.routes)[0], (typeof s.routes)[0]];
    assert.equal(one.id, '11113');
    assert.deepEqual(one.options.listen, { host: '127.0.0.1', port: 11113 });
    assert.deepEqual(one.options.upstream, { host: 'a', port: 104 });
    assert.equal(one.options.maxPdu, 1048576);
    assert.equal(one.options.connectTimeoutMs, 500);
    assert.equal(two.id, 'ct');
    assert.deepEqual(two.options.listen, { host: '0.0.0.0', port: 11114 });
    assert.equal(two.options.maxPdu, 65536);
    assert.deepEqual(two.options.fragment, { mode: 'repack' });
    assert.equal(s.options, one.options);
  });

  test('--listen/--upstream are the route "default", first, next to the --route ones', () => {
    const s = loadSettings({ upstream: 'pacs:104', listen: '11112', ...routes('11113=b:105') });
    assert.deepEqual(
      s.routes.map((r) => [r.id, r.options.listen.port, r.options.upstream.host]),
      [
        ['default', 11112, 'pacs'],
        ['11113', 11113, 'b'],
      ],
    );
    assert.deepEqual(
      loadSettings({ upstream: 'pacs:104' }).routes.map((r) => r.id),
      ['default'],
    );
  });

  test('a route on port 0 gets its id when it listens (the bound port)', () => {
    assert.equal(loadSettings(routes('127.0.0.1:0=a:1', '127.0.0.1:0=b:2')).routes[0]!.id, undefined);
  });

  test('--listen without --upstream next to --route is refused', () => {
    rejects(() => loadSettings({ listen: '11112', ...routes('11113=b:105') }), /^--listen: needs --upstream/);
  });

  test('bad values name the route and its key', () => {
    rejects(() => loadSettings(routes('11113=b:105,max-pdu=12XB')), /^--route "11113=b:105,max-pdu=12XB": max-pdu: "12XB" is not a size/);
    rejects(() => loadSettings(routes('11113=b')), /^--route "11113=b": upstream: "b" is not HOST:PORT$/);
    rejects(() => loadSettings(routes('99999=b:1')), /^--route "99999=b:1": listen: "99999": port 99999 is not in 0\.\.65535$/);
  });

  test('two routes with one id, or on one address, are refused', () => {
    rejects(() => loadSettings(routes('11113=a:1,id=x', '11114=b:1,id=x')), /^--route "11114=b:1,id=x": route id "x" is also the id of --route "11113=a:1,id=x"/);
    rejects(() => loadSettings(routes('11113=a:1', '11113=b:1')), /listens on 0\.0\.0\.0:11113 like --route "11113=a:1"$/);
    rejects(() => loadSettings({ upstream: 'a:1', ...routes('11112=b:1') }), /listens on 0\.0\.0\.0:11112 like --listen$/);
  });

  test('PDU_PROXY_ROUTE holds routes separated by ";"; flags replace it', () => {
    const env = { PDU_PROXY_ROUTE: '11113=a:1,max-pdu=1MB; 11114=b:2' };
    assert.deepEqual(
      loadSettings({}, undefined, { env }).routes.map((r) => r.id),
      ['11113', '11114'],
    );
    assert.deepEqual(
      loadSettings(routes('11115=c:3'), undefined, { env }).routes.map((r) => r.id),
      ['11115'],
    );
    rejects(() => loadSettings({}, undefined, { env: { PDU_PROXY_ROUTE: '11113=a:1,nope=1' } }), /^environment PDU_PROXY_ROUTE: "11113=a:1,nope=1": unknown key "nope"/);
  });

  test('a config file: objects with listen, upstream, id and settings (file or flag names), or route strings', () => {
    const file = configFile({
      maxPdu: '16KB',
      routes: [{ listen: 11113, upstream: 'a:1', id: 'ct', maxPdu: '1MB', 'connect-timeout': 700 }, { listen: '127.0.0.1:11114', upstream: 'b:2' }, '11115=c:3,fragment=repack'],
    });
    const s = loadSettings({}, file);
    assert.deepEqual(
      s.routes.map((r) => [r.id, r.options.maxPdu, r.options.connectTimeoutMs, r.options.fragment.mode]),
      [
        ['ct', 1048576, 700, 'fit'],
        ['11114', 16384, 3000, 'fit'],
        ['11115', 16384, 3000, 'repack'],
      ],
    );
  });

  test('config file mistakes name the file, the route and the key', () => {
    const name = (content: unknown): [string, string] => {
      const f = configFile(content);
      return [f, `config file ${f}: routes`];
    };
    let [f, label] = name({ routes: [{ listen: 11113 }] });
    rejects(() => loadSettings({}, f), new RegExp(`^${esc(label)}\\[0\\]: no "upstream"$`));
    [f, label] = name({ routes: [{ listen: 11113, upstream: 'a:1', maxPdu: 'x' }] });
    rejects(() => loadSettings({}, f), new RegExp(`^${esc(label)}\\[0\\]: maxPdu: "x" is not a size`));
    [f] = name({ routes: [{ listen: 11113, upstream: 'a:1', maxPdu: 1, 'max-pdu': 2 }] });
    rejects(() => loadSettings({}, f), /: maxPdu and max-pdu are the same setting$/);
    [f] = name({ routes: [{ listen: 11113, upstream: 'a:1', csv: 'x' }] });
    rejects(() => loadSettings({}, f), /\[0\]: csv applies to the whole process/);
    [f] = name({ routes: 5 });
    rejects(() => loadSettings({}, f), /: routes: 5 must be an array of routes$/);
    [f] = name({ routes: [7] });
    rejects(() => loadSettings({}, f), /routes\[0\]: 7 must be an object/);
  });

  test('--metrics: [HOST:]PORT, host 0.0.0.0 when only a port is given', () => {
    assert.deepEqual(loadSettings({ upstream: 'a:1', metrics: '9464' }).metrics, { host: '0.0.0.0', port: 9464 });
    assert.deepEqual(loadSettings({ upstream: 'a:1', metrics: '127.0.0.1:0' }).metrics, { host: '127.0.0.1', port: 0 });
    assert.equal(loadSettings({ upstream: 'a:1' }).metrics, undefined);
    rejects(() => loadSettings({ upstream: 'a:1', metrics: 'x' }), /^--metrics: "x" is not \[HOST:\]PORT$/);
  });
});

function esc(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
