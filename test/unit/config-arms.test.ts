// --max-pdu as a list of arms, --assign, --assign-seed and --guard (issue 25): from flags, the environment,
// a config file (a JSON array) and routes (max-pdu=16KB/64KB), with one-line errors naming the setting.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadSettings } from '../../src/config/config.js';
import type { RawSettings } from '../../src/config/config.js';
import { rejects } from '../helpers/settings.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-arms-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let files = 0;
function configFile(content: unknown): string {
  const file = path.join(dir, `c${++files}.json`);
  fs.writeFileSync(file, JSON.stringify(content));
  return file;
}

const UP: RawSettings = { upstream: 'pacs:104' };
const labels = (s: ReturnType<typeof loadSettings>, route = 0) => s.routes[route]!.options.arms.map((a) => [a.label, a.maxPdu]);

describe('--max-pdu: arms', () => {
  test('a list makes one arm per size, labelled as written; options.maxPdu is then unset', () => {
    const s = loadSettings({ ...UP, maxPdu: '16KB,64KB,128KB' });
    assert.deepEqual(labels(s), [
      ['16KB', 16384],
      ['64KB', 65536],
      ['128KB', 131072],
    ]);
    assert.equal(s.options.maxPdu, undefined);
  });

  test('one value keeps today’s meaning: one arm, and options.maxPdu', () => {
    const s = loadSettings({ ...UP, maxPdu: '1MB' });
    assert.deepEqual(labels(s), [['1MB', 1048576]]);
    assert.equal(s.options.maxPdu, 1048576);
  });

  test('not set: no arm', () => {
    const s = loadSettings(UP);
    assert.deepEqual(s.options.arms, []);
    assert.equal(s.options.maxPdu, undefined);
  });

  test('the same size twice is an A/A run: two arms, the second labelled #2', () => {
    const s = loadSettings({ ...UP, maxPdu: '16KB, 16KB' });
    assert.deepEqual(labels(s), [
      ['16KB', 16384],
      ['16KB#2', 16384],
    ]);
  });

  test('PDU_PROXY_MAX_PDU=16KB,64KB', () => {
    const s = loadSettings({}, undefined, { env: { PDU_PROXY_UPSTREAM: 'pacs:104', PDU_PROXY_MAX_PDU: '16KB,64KB' } });
    assert.deepEqual(labels(s), [
      ['16KB', 16384],
      ['64KB', 65536],
    ]);
  });

  test('a config file: a JSON array of sizes (strings or numbers), or one size', () => {
    assert.deepEqual(labels(loadSettings({}, configFile({ upstream: 'pacs:104', maxPdu: ['16KB', 65536, '16KB'] }))), [
      ['16KB', 16384],
      ['65536', 65536],
      ['16KB#2', 16384],
    ]);
    assert.deepEqual(labels(loadSettings({}, configFile({ upstream: 'pacs:104', maxPdu: 65536 }))), [['65536', 65536]]);
    assert.deepEqual(labels(loadSettings({}, configFile({ upstream: 'pacs:104', maxPdu: '16KB,1MB' }))), [
      ['16KB', 16384],
      ['1MB', 1048576],
    ]);
  });

  test('a route: max-pdu=16KB/64KB/128KB (commas work too), or an array in a config file route', () => {
    const s = loadSettings({ routes: ['11113=pacs:104,max-pdu=16KB/64KB/128KB,id=ct', '11114=pacs:104,max-pdu=1MB,2MB,id=mr'] });
    assert.deepEqual(labels(s, 0), [
      ['16KB', 16384],
      ['64KB', 65536],
      ['128KB', 131072],
    ]);
    assert.deepEqual(labels(s, 1), [
      ['1MB', 1048576],
      ['2MB', 2097152],
    ]);
    const f = loadSettings({}, configFile({ routes: [{ listen: 11115, upstream: 'pacs:104', maxPdu: ['4MB', '8MB'] }] }));
    assert.deepEqual(labels(f), [
      ['4MB', 4194304],
      ['8MB', 8388608],
    ]);
  });

  test('a route inherits the global arms unless it sets its own', () => {
    const s = loadSettings({ maxPdu: '16KB,64KB', routes: ['11113=pacs:104', '11114=pacs:104,max-pdu=1MB'] });
    assert.deepEqual(labels(s, 0), [
      ['16KB', 16384],
      ['64KB', 65536],
    ]);
    assert.deepEqual(labels(s, 1), [['1MB', 1048576]]);
  });

  test('each size gets the usual warnings, naming the setting', () => {
    const s = loadSettings({ ...UP, maxPdu: '16KB,16383,2KB' });
    assert.deepEqual(s.warnings, [
      '--max-pdu: 16383 is odd: senders that cut PDUs at the limit then send odd-length fragments, which DCMTK rejects',
      "--max-pdu: 2048 is below 4096, the smallest Maximum Length DCMTK's tools accept as a setting",
    ]);
  });

  const bad: Array<[string, () => unknown, RegExp]> = [
    ['a bad size among the arms', () => loadSettings({ ...UP, maxPdu: '16KB,12XB' }), /^--max-pdu: "12XB" is not a size \(bytes, or a number with KB\/MB\/GB\)$/],
    ['an empty item', () => loadSettings({ ...UP, maxPdu: '16KB,' }), /^--max-pdu: "16KB," has an empty item \(sizes separated by commas\)$/],
    [
      'more than 16 arms',
      () => loadSettings({ ...UP, maxPdu: Array.from({ length: 17 }, (_, i) => `${i + 1}KB`).join(',') }),
      /^--max-pdu: 17 sizes; an experiment has at most 16 arms$/,
    ],
    ['--max-pdu-rq stays one value', () => loadSettings({ ...UP, maxPduRq: '16KB,64KB' }), /^--max-pdu-rq: "16KB,64KB" is not a size/],
    ['a route with a bad arm', () => loadSettings({ routes: ['11113=pacs:104,max-pdu=16KB/1XB'] }), /^--route "11113=pacs:104,max-pdu=16KB\/1XB": max-pdu: "1XB" is not a size/],
    ['a config file array item that is not a size', () => loadSettings({}, configFile({ ...UP, maxPdu: ['16KB', false] })), /: maxPdu\[1\]: false must be a size/],
    ['an empty array', () => loadSettings({}, configFile({ ...UP, maxPdu: [] })), /: maxPdu: \[\] holds no size/],
  ];
  for (const [name, run, message] of bad) test(`${name}: one line naming it`, () => rejects(run, message));
});

describe('--assign, --assign-seed, --guard', () => {
  test('defaults: block, no seed (one is chosen when the experiment starts), guard on', () => {
    const o = loadSettings(UP).options;
    assert.equal(o.assign, 'block');
    assert.equal(o.assignSeed, undefined);
    assert.equal(o.guard, true);
  });

  test('flags', () => {
    const o = loadSettings({ ...UP, assign: 'Rotate', assignSeed: '42', guard: 'off' }).options;
    assert.equal(o.assign, 'rotate');
    assert.equal(o.assignSeed, 42);
    assert.equal(o.guard, false);
    assert.equal(loadSettings({ ...UP, assign: 'random', assignSeed: '4294967295' }).options.assignSeed, 4294967295);
  });

  test('environment: PDU_PROXY_ASSIGN, PDU_PROXY_ASSIGN_SEED, PDU_PROXY_GUARD', () => {
    const o = loadSettings(UP, undefined, { env: { PDU_PROXY_ASSIGN: 'random', PDU_PROXY_ASSIGN_SEED: '7', PDU_PROXY_GUARD: 'OFF' } }).options;
    assert.deepEqual([o.assign, o.assignSeed, o.guard], ['random', 7, false]);
  });

  test('config file: assign, assignSeed (a number), guard ("off" or false)', () => {
    const o = loadSettings({}, configFile({ ...UP, assign: 'rotate', assignSeed: 0, guard: false })).options;
    assert.deepEqual([o.assign, o.assignSeed, o.guard], ['rotate', 0, false]);
    assert.equal(loadSettings({}, configFile({ ...UP, guard: 'off' })).options.guard, false);
  });

  test('per route: assign=rotate,assign-seed=3,guard=off', () => {
    const s = loadSettings({ routes: ['11113=pacs:104,max-pdu=16KB/64KB,assign=rotate,assign-seed=3,guard=off', '11114=pacs:104'] });
    const [a, b] = s.routes.map((r) => r.options);
    assert.deepEqual([a!.assign, a!.assignSeed, a!.guard], ['rotate', 3, false]);
    assert.deepEqual([b!.assign, b!.assignSeed, b!.guard], ['block', undefined, true]);
  });

  const bad: Array<[string, () => unknown, RegExp]> = [
    ['--assign blocks', () => loadSettings({ ...UP, assign: 'blocks' }), /^--assign: "blocks" is not block, rotate or random$/],
    ['--assign-seed -1', () => loadSettings({ ...UP, assignSeed: '-1' }), /^--assign-seed: "-1" is not a seed \(a whole number 0\.\.4294967295\)$/],
    ['--assign-seed 1.5', () => loadSettings({ ...UP, assignSeed: '1.5' }), /^--assign-seed: "1\.5" is not a seed/],
    ['--assign-seed 2^32', () => loadSettings({ ...UP, assignSeed: '4294967296' }), /^--assign-seed: "4294967296" is not a seed/],
    ['--guard yes', () => loadSettings({ ...UP, guard: 'yes' }), /^--guard: "yes" is not on or off$/],
    ['config file assign: 5', () => loadSettings({}, configFile({ ...UP, assign: 5 })), /: assign: 5 must be a string \(block, rotate, random\)$/],
    ['config file guard: 1', () => loadSettings({}, configFile({ ...UP, guard: 1 })), /: guard: 1 must be a string \(on or off\)$/],
    ['environment PDU_PROXY_ASSIGN_SEED=x', () => loadSettings(UP, undefined, { env: { PDU_PROXY_ASSIGN_SEED: 'x' } }), /^environment PDU_PROXY_ASSIGN_SEED: "x" is not a seed/],
    ['a route guard=maybe', () => loadSettings({ routes: ['11113=pacs:104,guard=maybe'] }), /^--route "11113=pacs:104,guard=maybe": guard: "maybe" is not on or off$/],
  ];
  for (const [name, run, message] of bad) test(`${name}: one line naming it`, () => rejects(run, message));
});
