// Proxy versus native per setting: the ratio of means with its interval, and whether the settings rank
// the same both ways where their 95% intervals are apart.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fidelity, rankingVerdict, renderFidelityTable } from '../../src/analysis/fidelity.js';
import { ci95, sampleSummary } from '../../src/analysis/inference.js';

const s = (values: number[]) => sampleSummary(values);

describe('fidelity', () => {
  test('pairs native and proxy rows by setting; the ratio and an interval that contains it', () => {
    const native = [1.0, 1.1, 0.9, 1.0];
    const proxy = [1.05, 1.15, 0.95, 1.05];
    const f = fidelity([
      { setting: '16KB', mode: 'native', seconds: s(native) },
      { setting: '16KB', mode: 'proxy', seconds: s(proxy) },
      { setting: '1MB', mode: 'proxy', seconds: s([2, 2]) }, // no native row: not compared
    ])!;
    assert.equal(f.rows.length, 1);
    const r = f.rows[0]!;
    assert.equal(r.setting, '16KB');
    assert.ok(Math.abs(r.ratio - 1.05 / 1.0) < 1e-12);
    assert.deepEqual(r.nativeCi, ci95(native));
    // Delta method: ratio · (1 ± hypot(relative half-widths)).
    const rel = Math.hypot(ci95(proxy)!.halfWidth / 1.05, ci95(native)!.halfWidth / 1.0);
    assert.ok(Math.abs(r.ratioCi!.high - r.ratio * (1 + rel)) < 1e-12);
    assert.ok(r.ratioCi!.low < r.ratio && r.ratio < r.ratioCi!.high);
    assert.equal(fidelity([{ setting: 'x', mode: 'proxy', seconds: s([1, 2]) }]), undefined);
    // Few, spread values: the approximate interval would reach below 0; a ratio of times cannot.
    const wide = fidelity([
      { setting: 'w', mode: 'native', seconds: s([0.01, 1]) },
      { setting: 'w', mode: 'proxy', seconds: s([0.5, 0.6]) },
    ])!;
    assert.equal(wide.rows[0]!.ratioCi!.low, 0);
  });

  test("told minus the proxy's share: the proxy mean less its proxy_busy_ms mean, and its ratio to native", () => {
    const f = fidelity([
      { setting: '16KB', mode: 'native', seconds: s([0.2, 0.22, 0.24]) }, // mean 0.22 s
      { setting: '16KB', mode: 'proxy', seconds: s([0.25, 0.26, 0.27]), proxyBusyMs: 30 }, // 0.26 s less 30 ms
      { setting: '1MB', mode: 'native', seconds: s([0.1, 0.1]), proxyBusyMs: 99 }, // a native row's value is not used
      { setting: '1MB', mode: 'proxy', seconds: s([0.12, 0.12]) }, // no proxy_busy_ms (older results.csv)
      { setting: '20MB', mode: 'native', seconds: s([0.1, 0.1]) },
      { setting: '20MB', mode: 'proxy', seconds: s([0.12, 0.12]), proxyBusyMs: 500 }, // the bound exceeds the mean
    ])!;
    const [a, b, c] = f.rows;
    assert.ok(Math.abs(a!.proxyLessBusy! - 0.23) < 1e-12);
    assert.ok(Math.abs(a!.lessBusyRatio! - 0.23 / 0.22) < 1e-12);
    assert.equal(b!.proxyLessBusy, undefined);
    assert.equal(b!.lessBusyRatio, undefined);
    assert.equal(c!.proxyLessBusy, 0, 'never below 0');
    const text = renderFidelityTable(f);
    assert.match(text, /\n16KB\s.*\s0\.230\s+1\.045\n/);
    assert.match(text, /\n1MB\s.*\s-\s+-\n/);
  });

  test('direct (embedded SCP) counts as native', () => {
    const f = fidelity([
      { setting: 'a', mode: 'direct', seconds: s([1, 1.2]) },
      { setting: 'a', mode: 'proxy', seconds: s([1, 1.2]) },
    ])!;
    assert.equal(f.rows[0]!.ratio, 1);
  });

  test('the same ranking where intervals are apart; overlapping pairs decide nothing', () => {
    const rows = [
      { setting: '16KB', mode: 'native', seconds: s([2.0, 2.1, 1.9, 2.0]) },
      { setting: '16KB', mode: 'proxy', seconds: s([2.1, 2.2, 2.0, 2.1]) },
      { setting: '1MB', mode: 'native', seconds: s([1.0, 1.1, 0.9, 1.0]) },
      { setting: '1MB', mode: 'proxy', seconds: s([1.05, 1.15, 0.95, 1.05]) },
      // 10MB overlaps 1MB both ways, with its mean on the other side of 1MB's through the proxy.
      { setting: '10MB', mode: 'native', seconds: s([1.02, 1.12, 0.92, 1.02]) },
      { setting: '10MB', mode: 'proxy', seconds: s([1.0, 1.1, 0.9, 1.0]) },
    ];
    const f = fidelity(rows)!;
    assert.deepEqual(
      f.decided.map((p) => `${p.a}-${p.b}`),
      ['16KB-1MB', '16KB-10MB'],
    );
    assert.equal(f.reversed.length, 0);
    assert.match(rankingVerdict(f), /^ranking: the same both ways \(2 pairs/);
    const text = renderFidelityTable(f);
    assert.match(text, /^max_pdu\s+native_s\s+native_ci95\s+proxy_s\s+proxy_ci95\s+proxy\/native\s+ratio_ci95\s+proxy-busy_s\s+\(proxy-busy\)\/native\n16KB\s+2\.000\s+\[/);
    assert.equal(text.trim().split('\n').length, 5);
  });

  test('a reversed pair is named', () => {
    const f = fidelity([
      { setting: '16KB', mode: 'native', seconds: s([2.0, 2.1, 1.9, 2.0]) },
      { setting: '16KB', mode: 'proxy', seconds: s([1.0, 1.1, 0.9, 1.0]) },
      { setting: '1MB', mode: 'native', seconds: s([1.0, 1.1, 0.9, 1.0]) },
      { setting: '1MB', mode: 'proxy', seconds: s([2.0, 2.1, 1.9, 2.0]) },
    ])!;
    assert.equal(f.reversed.length, 1);
    assert.equal(rankingVerdict(f), 'ranking: NOT the same: 16KB > 1MB natively but < through the proxy (apart both ways) (of 1 pairs apart beyond their intervals)');
  });

  test('no pair apart: nothing to compare', () => {
    const f = fidelity([
      { setting: 'a', mode: 'native', seconds: s([1, 2]) },
      { setting: 'a', mode: 'proxy', seconds: s([1, 2]) },
      { setting: 'b', mode: 'native', seconds: s([1.1, 2]) },
      { setting: 'b', mode: 'proxy', seconds: s([1.1, 2]) },
    ])!;
    assert.match(rankingVerdict(f), /nothing to compare/);
  });
});
