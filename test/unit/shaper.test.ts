// The pure link shaper (src/transform/shaper.ts) on a fake clock, and the --latency / --bandwidth parsers.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from '../../src/values/errors.js';
import { formatLatency, formatRate, parseLatency, parseRate } from '../../src/values/shaping.js';
import { loadSettings } from '../../src/config/config.js';
import { shapingFor } from '../../src/config/options.js';
import { LATENCY_ONLY_QUEUE_BYTES, MAX_QUEUE_BYTES, MIN_QUEUE_BYTES, SLICE_BYTES, Shaper, Wire, queueLimit } from '../../src/transform/shaper.js';
import type { LinkShaping } from '../../src/transform/shaper.js';

/** A clock the test moves by hand, and a random source it scripts. */
function fakeClock(randoms: number[] = []): { t: number; now(): number; random(): number } {
  const c = {
    t: 0,
    now: () => c.t,
    random: () => (randoms.length > 0 ? randoms.shift()! : 0.5),
  };
  return c;
}

/** Everything due by `now`, in order. */
function drain<T>(shaper: Shaper<T>, now: number): Array<{ bytes: Buffer; release: number; tag: T | undefined }> {
  const out = [];
  for (let c = shaper.take(now); c; c = shaper.take(now)) out.push(c);
  return out;
}

describe('Shaper: latency', () => {
  test('each chunk is released latency ms after it was pushed, not before', () => {
    const clock = fakeClock();
    const s = new Shaper<string>({ latency: { ms: 20, jitterMs: 0 } }, clock);
    s.push(Buffer.from('a'), 'A');
    clock.t = 5;
    s.push(Buffer.from('b'), 'B');
    assert.equal(s.nextRelease(), 20);
    assert.deepEqual(drain(s, 19.9), []);
    assert.deepEqual(
      drain(s, 20).map((c) => c.tag),
      ['A'],
    );
    assert.deepEqual(drain(s, 24.9), []);
    assert.deepEqual(
      drain(s, 25).map((c) => c.tag),
      ['B'],
    );
    assert.ok(s.empty);
    assert.equal(s.nextRelease(), undefined);
  });

  test('jitter stays within ±JITTER of the latency and never goes below 0', () => {
    const clock = fakeClock([0, 0.999999, 0.5]);
    const s = new Shaper({ latency: { ms: 20, jitterMs: 5 } }, clock);
    s.push(Buffer.from('x'));
    assert.ok(Math.abs(s.nextRelease()! - 15) < 1e-3, `${s.nextRelease()}`);
    drain(s, 100);
    clock.t = 100;
    s.push(Buffer.from('y'));
    assert.ok(Math.abs(s.nextRelease()! - 125) < 1e-3);
    drain(s, 200);
    const big = new Shaper({ latency: { ms: 1, jitterMs: 50 } }, fakeClock([0]));
    big.push(Buffer.from('z'));
    assert.equal(big.nextRelease(), 0, 'a negative delay is clamped to 0');
  });

  test('property: with any jitter, chunks come out in order, each within [push + latency - jitter, …] and never early', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 100 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 1, max: 50_000 }), fc.double({ min: 0, max: 0.999, noNaN: true })), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 0, max: 20_000_000 }),
        (latency, jitter, pushes, rate) => {
          const randoms = pushes.map((p) => p[2]);
          const clock = fakeClock(randoms);
          const s = new Shaper<number>({ latency: { ms: latency, jitterMs: jitter }, bytesPerSecond: rate }, clock);
          const pushedAt: number[] = [];
          const out: Array<{ tag: number; release: number; at: number; bytes: number }> = [];
          let sent = 0;
          for (const [i, [gap, size]] of pushes.entries()) {
            clock.t += gap;
            pushedAt.push(clock.t);
            s.push(Buffer.alloc(size, i & 0xff), i);
            sent += size;
            for (const c of drain(s, clock.t)) out.push({ tag: c.tag ?? -1, release: c.release, at: clock.t, bytes: c.bytes.length });
          }
          for (const c of drain(s, Infinity)) out.push({ tag: c.tag ?? -1, release: c.release, at: Infinity, bytes: c.bytes.length });
          assert.equal(
            out.reduce((n, c) => n + c.bytes, 0),
            sent,
            'every byte once',
          );
          const tags = out.filter((c) => c.tag >= 0).map((c) => c.tag);
          assert.deepEqual(
            tags,
            pushes.map((_, i) => i),
            'in order',
          );
          for (let i = 1; i < out.length; i++) assert.ok(out[i]!.release >= out[i - 1]!.release, 'release times never go back');
          for (const c of out) if (c.tag >= 0) assert.ok(c.release >= pushedAt[c.tag]! + Math.max(0, latency - jitter) - 1e-9, 'no chunk before its minimum delay');
          assert.equal(s.queuedBytes, 0);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('Shaper: bandwidth', () => {
  test('10 MB at 50 Mbit/s: the last byte goes out at 1.6 s, in views of at most SLICE_BYTES', () => {
    const clock = fakeClock();
    const s = new Shaper({ bytesPerSecond: 50e6 / 8 }, clock, Infinity);
    const chunk = Buffer.alloc(65536);
    let pushed = 0;
    while (pushed < 10_000_000) {
      const n = Math.min(chunk.length, 10_000_000 - pushed);
      s.push(chunk.subarray(0, n));
      pushed += n;
    }
    let last = 0;
    let bytes = 0;
    let views = 0;
    for (let c = s.take(Infinity); c; c = s.take(Infinity)) {
      assert.ok(c.bytes.length <= SLICE_BYTES);
      assert.equal(c.bytes.buffer, chunk.buffer, 'a view of the pushed buffer, not a copy');
      last = c.release;
      bytes += c.bytes.length;
      views++;
    }
    assert.equal(bytes, 10_000_000);
    assert.ok(Math.abs(last - 1600) < 1e-6, `last release ${last} ms`);
    assert.ok(views >= 10_000_000 / SLICE_BYTES);
  });

  test('no credit builds up while idle: a chunk after a pause still takes its serialization time', () => {
    const clock = fakeClock();
    const s = new Shaper({ bytesPerSecond: 1000 }, clock); // 1 byte per ms
    s.push(Buffer.alloc(100));
    assert.equal(s.nextRelease(), 100);
    drain(s, 100);
    clock.t = 10_000;
    s.push(Buffer.alloc(10));
    assert.equal(s.nextRelease(), 10_010);
  });

  test('shapers sharing a Wire share its bandwidth: two 1000-byte chunks at 1000 B/s end at 1 s and 2 s', () => {
    const clock = fakeClock();
    const wire = new Wire();
    const a = new Shaper({ bytesPerSecond: 1000 }, clock, undefined, wire);
    const b = new Shaper({ bytesPerSecond: 1000 }, clock, undefined, wire);
    a.push(Buffer.alloc(1000));
    b.push(Buffer.alloc(1000));
    assert.equal(a.nextRelease(), 1000);
    assert.equal(b.nextRelease(), 2000);
    // Latency alone does not use the wire: a latency-only shaper is not held up by it.
    const c = new Shaper({ latency: { ms: 5, jitterMs: 0 } }, clock, undefined, wire);
    c.push(Buffer.alloc(10));
    assert.equal(c.nextRelease(), 5);
  });

  test('bandwidth then latency: a 1000-byte chunk at 1000 B/s and 50 ms arrives at 1050 ms', () => {
    const clock = fakeClock();
    const s = new Shaper({ bytesPerSecond: 1000, latency: { ms: 50, jitterMs: 0 } }, clock);
    s.push(Buffer.alloc(1000), 'end');
    assert.equal(s.nextRelease(), 1050);
    assert.equal(drain(s, 1050).at(-1)!.tag, 'end', 'the tag rides on the last view');
  });
});

describe('Shaper: bounded queue', () => {
  test('full once `limit` bytes wait; not full once they are taken', () => {
    const clock = fakeClock();
    const s = new Shaper({ latency: { ms: 10, jitterMs: 0 } }, clock, 100_000);
    for (let i = 0; i < 6; i++) s.push(Buffer.alloc(16_384));
    assert.ok(!s.full);
    s.push(Buffer.alloc(16_384));
    assert.ok(s.full);
    assert.equal(s.queuedBytes, 7 * 16_384);
    drain(s, 10);
    assert.ok(!s.full);
    assert.equal(s.queuedBytes, 0);
  });

  test('queueLimit: 2 × rate × delay + 1 MiB within [1 MiB, 16 MiB]; 8 MiB for latency alone', () => {
    assert.equal(queueLimit({ bytesPerSecond: 50e6 / 8 }), MIN_QUEUE_BYTES);
    assert.equal(queueLimit({ bytesPerSecond: 100e6 / 8, latency: { ms: 20, jitterMs: 0 } }), Math.round(2 * 12.5e6 * 0.02 + MIN_QUEUE_BYTES));
    assert.equal(queueLimit({ bytesPerSecond: 10e9 / 8, latency: { ms: 200, jitterMs: 0 } }), MAX_QUEUE_BYTES);
    assert.equal(queueLimit({ latency: { ms: 20, jitterMs: 0 } }), LATENCY_ONLY_QUEUE_BYTES);
  });

  test('clear() drops everything and hands back the tags', () => {
    const s = new Shaper<string>({ latency: { ms: 10, jitterMs: 0 } }, fakeClock());
    s.push(Buffer.alloc(10), 'a');
    s.push(Buffer.alloc(0), 'marker');
    s.push(Buffer.alloc(10));
    assert.deepEqual(s.clear(), ['a', 'marker']);
    assert.ok(s.empty);
    assert.equal(s.queuedBytes, 0);
  });
});

describe('parseLatency / parseRate', () => {
  const latencies: Array<[string, number, number]> = [
    ['20', 20, 0],
    ['20:5', 20, 5],
    ['20ms', 20, 0],
    ['20ms:5ms', 20, 5],
    [' 0.5 ', 0.5, 0],
    ['0', 0, 0],
  ];
  for (const [text, ms, jitterMs] of latencies) {
    test(`latency ${JSON.stringify(text)}`, () => assert.deepEqual(parseLatency(text), { ms, jitterMs }));
  }
  for (const bad of ['', '-5', '20:', 'fast', '20s', '1e3', '700000']) {
    test(`latency ${JSON.stringify(bad)} is refused`, () => assert.throws(() => parseLatency(bad), ConfigError));
  }
  test('formatLatency reads back', () => {
    assert.equal(formatLatency({ ms: 20, jitterMs: 0 }), '20');
    assert.equal(formatLatency({ ms: 20, jitterMs: 5 }), '20:5');
  });

  const rates: Array<[string, number]> = [
    ['100Mbit', 100e6 / 8],
    ['100Mbit/s', 100e6 / 8],
    ['100mbit', 100e6 / 8],
    ['100Mbps', 100e6 / 8],
    ['100Mb/s', 100e6 / 8],
    ['50Mbit', 6_250_000],
    ['1Gbit', 125_000_000],
    ['1.5Gbit', 187_500_000],
    ['512kbit', 64_000],
    ['8000bit', 1000],
    ['10MB/s', 10 * 1048576],
    ['10MiB/s', 10 * 1048576],
    ['500KB/s', 512_000],
    ['1GB/s', 1024 ** 3],
    ['100B/s', 100],
    ['10MBps', 10 * 1048576],
    ['10mb/s', 10e6 / 8], // lower-case b: bits
    ['0', 0],
    ['off', 0],
  ];
  for (const [text, bytesPerSecond] of rates) {
    test(`rate ${JSON.stringify(text)} = ${bytesPerSecond} B/s`, () => assert.equal(parseRate(text), bytesPerSecond));
  }
  for (const [bad, why] of [
    ['100', /no unit/],
    ['fast', /is not a rate/],
    ['-1Mbit', /is not a rate/],
    ['2Tbit', /is not a rate/],
    ['1bit', /under 8 bit\/s/],
  ] as const) {
    test(`rate ${JSON.stringify(bad)} is refused`, () =>
      assert.throws(
        () => parseRate(bad),
        (e: unknown) => e instanceof ConfigError && why.test(e.message),
      ));
  }
  test('formatRate reads back', () => {
    for (const text of ['50Mbit', '1Gbit', '512kbit', '10MB/s', '0']) assert.equal(formatRate(parseRate(text)), text);
    for (const text of ['100B/s', '1.5KB/s', '1001bit', '12345B/s']) assert.equal(parseRate(formatRate(parseRate(text))), parseRate(text), text);
  });
});

describe('settings: --latency, --bandwidth and the per-direction overrides', () => {
  test('flags become ProxyOptions fields; overrides win per direction', () => {
    const s = loadSettings({ upstream: 'pacs:104', latency: '20:2', bandwidth: '100Mbit', latencyToScu: '5', bandwidthToScp: '10MB/s' });
    assert.deepEqual(s.options.latency, { ms: 20, jitterMs: 2 });
    assert.equal(s.options.bandwidth, 12_500_000);
    const toScp: LinkShaping | undefined = shapingFor(s.options, 'to_scp');
    const toScu: LinkShaping | undefined = shapingFor(s.options, 'to_scu');
    assert.deepEqual(toScp, { latency: { ms: 20, jitterMs: 2 }, bytesPerSecond: 10 * 1048576 });
    assert.deepEqual(toScu, { latency: { ms: 5, jitterMs: 0 }, bytesPerSecond: 12_500_000 });
  });

  test('nothing set, or 0 / off: no shaping at all (the unshaped fast path)', () => {
    const plain = loadSettings({ upstream: 'pacs:104' });
    assert.equal(shapingFor(plain.options, 'to_scp'), undefined);
    assert.ok(!('latency' in plain.options));
    const zero = loadSettings({ upstream: 'pacs:104', latency: '0', bandwidth: 'off' });
    assert.equal(shapingFor(zero.options, 'to_scu'), undefined);
    const oneWay = loadSettings({ upstream: 'pacs:104', latencyToScp: '10' });
    assert.equal(shapingFor(oneWay.options, 'to_scu'), undefined);
    assert.deepEqual(shapingFor(oneWay.options, 'to_scp'), { latency: { ms: 10, jitterMs: 0 }, bytesPerSecond: undefined });
  });

  test('from the environment and a config file, errors naming the variable or the key', () => {
    const env = loadSettings({ upstream: 'pacs:104' }, undefined, { env: { PDU_PROXY_LATENCY: '20:5', PDU_PROXY_BANDWIDTH_TO_SCU: '1Gbit' } });
    assert.deepEqual(env.options.latency, { ms: 20, jitterMs: 5 });
    assert.equal(env.options.bandwidthToScu, 125_000_000);
    assert.throws(
      () => loadSettings({ upstream: 'pacs:104' }, undefined, { env: { PDU_PROXY_BANDWIDTH: 'lots' } }),
      (e: unknown) => e instanceof ConfigError && /^environment PDU_PROXY_BANDWIDTH: "lots" is not a rate/.test(e.message),
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-shaping-'));
    try {
      const file = path.join(dir, 'c.json');
      fs.writeFileSync(file, JSON.stringify({ upstream: 'pacs:104', latency: 15, bandwidth: '10MB/s' }));
      const fromFile = loadSettings({}, file);
      assert.deepEqual(fromFile.options.latency, { ms: 15, jitterMs: 0 });
      assert.equal(fromFile.options.bandwidth, 10 * 1048576);
      fs.writeFileSync(file, JSON.stringify({ upstream: 'pacs:104', bandwidth: 100 }));
      assert.throws(
        () => loadSettings({}, file),
        (e: unknown) => e instanceof ConfigError && /c\.json: bandwidth: "100" has no unit/.test(e.message),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('per route: latency= and bandwidth= keys, a route inheriting the global values otherwise', () => {
    const s = loadSettings({ upstream: 'pacs:104', latency: '5', routes: ['11113=remote:104,latency=20:5,bandwidth=10MB/s', '11114=local:104'] });
    const byPort = new Map(s.routes.map((r) => [r.options.listen.port, r.options]));
    assert.deepEqual(shapingFor(byPort.get(11113)!, 'to_scp'), { latency: { ms: 20, jitterMs: 5 }, bytesPerSecond: 10 * 1048576 });
    assert.deepEqual(shapingFor(byPort.get(11114)!, 'to_scu'), { latency: { ms: 5, jitterMs: 0 }, bytesPerSecond: undefined });
    assert.throws(
      () => loadSettings({ routes: ['11113=remote:104,bandwidth=100'] }),
      (e: unknown) => e instanceof ConfigError && /^--route "11113=remote:104,bandwidth=100": bandwidth: "100" has no unit/.test(e.message),
    );
  });

  for (const [flags, message] of [
    [{ latency: 'soon' }, /^--latency: "soon" is not a latency/],
    [{ bandwidth: '100' }, /^--bandwidth: "100" has no unit/],
    [{ bandwidthToScu: 'x' }, /^--bandwidth-to-scu: "x" is not a rate/],
    [{ latencyToScp: '-1' }, /^--latency-to-scp: "-1" is not a latency/],
  ] as const) {
    test(`bad value: ${JSON.stringify(flags)} → one line naming the flag`, () => {
      assert.throws(
        () => loadSettings({ upstream: 'pacs:104', ...flags }),
        (e: unknown) => e instanceof ConfigError && message.test(e.message) && !e.message.includes('\n'),
      );
    });
  }
});
