// deploy/prometheus: `promtool check rules` clean, `promtool test rules` passing, every alert tested firing
// and not firing, every recording rule tested, every alert with its summary, description and runbook, and
// every dicom_pdu_proxy_* metric the rules name served by the proxy (promtool cannot know the proxy's names).
// promtool comes from Debian's prometheus package (scripts/ensure-test-deps.sh).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { MetricsRecorder } from '../../src/record/metrics.js';

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'deploy', 'prometheus');
const RULES = 'dicom-pdu-proxy.rules.yml';
const TESTS = 'dicom-pdu-proxy.rules.test.yml';

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  annotations?: Record<string, string>;
}
interface RuleTests {
  tests: Array<{
    alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] | null }>;
    promql_expr_test?: Array<{ expr: string }>;
  }>;
}

const rules = (parse(fs.readFileSync(path.join(DIR, RULES), 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);
const unitTests = (parse(fs.readFileSync(path.join(DIR, TESTS), 'utf8')) as RuleTests).tests;

function promtool(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8', timeout: 60_000 });
  if (r.error) assert.fail(`promtool could not run (${r.error.message}): install Debian's prometheus package (scripts/ensure-test-deps.sh)`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test('promtool check rules: clean', () => {
  const r = promtool('check', 'rules', RULES);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, new RegExp(`SUCCESS: ${rules.length} rules found`));
});

test('promtool check config: the example configurations (their rule files included) are valid', () => {
  for (const file of ['prometheus.example.yml', 'federate.example.yml', 'remote-write.example.yml']) {
    const r = promtool('check', 'config', file);
    assert.equal(r.code, 0, `${file}: ${r.out}`);
  }
});

test('the federation match[] and the remote-write keep regex select every recorded series and the alerts’ inputs', () => {
  const federate = parse(fs.readFileSync(path.join(DIR, 'federate.example.yml'), 'utf8')) as { scrape_configs: Array<{ params: Record<string, string[]> }> };
  const selectors = federate.scrape_configs[0]!.params['match[]']!;
  const recordRegex = new RegExp(`^(?:${/__name__=~"([^"]+)"/.exec(selectors[0]!)![1]!})$`);
  const remote = parse(fs.readFileSync(path.join(DIR, 'remote-write.example.yml'), 'utf8')) as { remote_write: Array<{ write_relabel_configs: Array<{ regex: string }> }> };
  const keep = new RegExp(`^(?:${remote.remote_write[0]!.write_relabel_configs[0]!.regex})$`);
  for (const rule of rules.filter((r) => r.record)) {
    assert.match(rule.record!, recordRegex, 'federated');
    assert.match(rule.record!, keep, 'remote-written');
  }
  for (const name of ['up', 'dicom_pdu_proxy_tls_cert_expiry_timestamp_seconds', 'dicom_pdu_proxy_bytes_total', 'dicom_pdu_proxy_associations_rejected_total'])
    assert.match(name, keep);
  assert.doesNotMatch('dicom_pdu_proxy_message_duration_seconds_bucket', keep, 'the buckets stay at the site');
});

test('promtool test rules: every case passes', () => {
  const r = promtool('test', 'rules', TESTS);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /SUCCESS/);
});

test('every alert has a case where it fires and one where it does not; every recording rule is tested', () => {
  const alerts = rules.filter((r) => r.alert).map((r) => r.alert!);
  assert.ok(alerts.length >= 7, `${alerts.length} alerts`);
  const cases = unitTests.flatMap((t) => t.alert_rule_test ?? []);
  for (const alert of alerts) {
    const mine = cases.filter((c) => c.alertname === alert);
    assert.ok(
      mine.some((c) => (c.exp_alerts ?? []).length > 0),
      `${alert}: a case where it fires`,
    );
    assert.ok(
      mine.some((c) => (c.exp_alerts ?? []).length === 0),
      `${alert}: a case where it does not fire`,
    );
  }
  const tested = unitTests.flatMap((t) => t.promql_expr_test ?? []).map((t) => t.expr);
  for (const rule of rules.filter((r) => r.record)) {
    assert.ok(
      tested.some((expr) => expr.split('{')[0] === rule.record),
      `${rule.record}: a promql_expr_test`,
    );
  }
});

test('every alert says what happened and what to do: summary, description, runbook', () => {
  for (const rule of rules.filter((r) => r.alert)) {
    for (const key of ['summary', 'description', 'runbook']) assert.ok((rule.annotations?.[key] ?? '').length > 20, `${rule.alert}: ${key}`);
  }
});

test('every dicom_pdu_proxy_* metric the rules name is one the proxy serves', async () => {
  // A recorder with every kind of series present: a route, a TLS failure, a certificate, both drop counters, an arm withdrawn.
  const recorder = new MetricsRecorder();
  const view = recorder.forRoute('r');
  view.tlsFailure!({ leg: 'scu', reason: 'plaintext' });
  view.certificate!({ cert: 'listener', notAfterMs: Date.now() });
  recorder.watchDroppedRows('csv', () => 0);
  recorder.watchCaptureDrops(() => 0);
  recorder.armsWithdrawn.labels('r', '1MB').inc(0);
  const served = new Set(
    (await recorder.metrics())
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => /^[a-z_:]+/.exec(l)![0]),
  );
  // Metric names, not the recorded ones (level:dicom_pdu_proxy_...:operation).
  const named = new Set(rules.flatMap((r) => r.expr.match(/(?<![:\w])dicom_pdu_proxy_[a-z_]+(?![:\w])/g) ?? []));
  assert.ok(named.size >= 8);
  for (const name of named) assert.ok(served.has(name), `${name} is served`);
});
