// A real Prometheus (Debian 2.42) scraping two proxies, one of them --workers 2, with deploy/prometheus's
// rules loaded, while DCMTK storescu sends (issue 28 items 4, 5):
// - the PromQL totals equal the bytes on the wire, measured by counting relays outside the proxies: proxy A
//   (one process, a TLS listener, --pcap) between its SCUs and a relay to the SCP, proxy B (--workers 2)
//   behind a relay its SCUs connect to;
// - every recording rule returns data, and every panel expression of the Grafana dashboard
//   (deploy/grafana/dicom-pdu-proxy.json) runs without error and returns data; a central Prometheus with
//   deploy/prometheus/federate.example.yml's job, pointed at this one, gets every recorded series;
// - a worker of B killed with SIGKILL mid-run: no dicom_pdu_proxy_* counter or histogram series resets
//   (PromQL resets() over the whole run), nothing is lower than before the kill.
// Everything on 127.0.0.1 with free ports; Prometheus' storage in a temporary directory. Every wait polls
// against a deadline.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { dcmtkTls, makeTestPki } from '../helpers/certs.js';
import type { TestPki } from '../helpers/certs.js';
import { CountingRelay } from '../helpers/counting-relay.js';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import type { Storescp } from '../helpers/dcmtk.js';
import { writeTestDicom } from '../helpers/dicom-file.js';
import type { TestDicomInfo } from '../helpers/dicom-file.js';
import { parseExposition } from '../helpers/exposition.js';
import { eventually } from '../helpers/proc-stats.js';
import { killAll } from '../helpers/procs.js';
import type { RunResult } from '../helpers/procs.js';
import { Prometheus } from '../helpers/prometheus.js';
import type { PromSample } from '../helpers/prometheus.js';
import { ProxyProcess, REPO_ROOT, stopAllProxies } from '../helpers/proxy.js';
import { RawPeer, buildRq } from '../helpers/raw.js';

const RULES = path.join(REPO_ROOT, 'deploy', 'prometheus', 'dicom-pdu-proxy.rules.yml');
const DASHBOARD = path.join(REPO_ROOT, 'deploy', 'grafana', 'dicom-pdu-proxy.json');
const FEDERATE = path.join(REPO_ROOT, 'deploy', 'prometheus', 'federate.example.yml');
/** How long Prometheus may take to show what happened (scrapes and rule evaluations every 2 s). */
const SETTLE_MS = 60_000;
/** Starting a proxy (B: a primary and two workers) on a loaded machine: only an upper bound. */
const START_MS = 60_000;

let tmp = '';
let pki: TestPki;
let scp: Storescp;
let toScp: CountingRelay; // proxy A -> relay -> storescp
let toB: CountingRelay; // storescu -> relay -> proxy B
let a: ProxyProcess;
let b: ProxyProcess;
let prometheus: Prometheus;
const images: TestDicomInfo[] = [];

const hostPort = (url: string): string => new URL(url).host;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'fleet-'));
  pki = makeTestPki();
  for (let i = 0; i < 3; i++) images.push(await writeTestDicom(path.join(tmp, `image-${i}.dcm`), { pixelBytes: 1536 * 1024 + i * 1024, seed: 110 + i }));
  await mkdir(path.join(tmp, 'out'));
  scp = await startStorescp({ outDir: path.join(tmp, 'out'), logLevel: 'quiet' });
  toScp = await CountingRelay.listen(scp.port);
  a = await ProxyProcess.start(
    [
      '--upstream',
      `127.0.0.1:${toScp.port}`,
      '--tls-cert',
      pki.proxy.cert,
      '--tls-key',
      pki.proxy.key,
      '--csv',
      path.join(tmp, 'a.csv'),
      '--pcap',
      path.join(tmp, 'a.pcapng'),
      '--metrics',
      '127.0.0.1:0',
    ],
    START_MS,
  );
  b = await ProxyProcess.start(['--upstream', `127.0.0.1:${scp.port}`, '--workers', '2', '--csv', path.join(tmp, 'b.csv'), '--metrics', '127.0.0.1:0'], START_MS);
  await Promise.all([a, b].map((p) => p.waitForLog((l) => l.msg === 'metrics listening', START_MS)));
  toB = await CountingRelay.listen(b.port);
  prometheus = await Prometheus.start(
    [
      'global:',
      '  scrape_interval: 2s',
      '  scrape_timeout: 2s',
      '  evaluation_interval: 2s',
      'rule_files:',
      `  - ${JSON.stringify(RULES)}`,
      'scrape_configs:',
      '  - job_name: dicom-pdu-proxy',
      '    static_configs:',
      `      - targets: [${JSON.stringify(hostPort(a.metricsUrl))}, ${JSON.stringify(hostPort(b.metricsUrl))}]`,
      '',
    ].join('\n'),
  );
});

after(async () => {
  await prometheus?.stop();
  await stopAllProxies();
  await toScp?.close();
  await toB?.close();
  await killAll();
  pki?.remove();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

/** `value` of each sample, keyed by the labels named. */
function byLabels(samples: PromSample[], ...labels: string[]): Record<string, number> {
  return Object.fromEntries(samples.map((s) => [labels.map((l) => s.metric[l] ?? '').join(' '), Number(s.value[1])]));
}

const sendTls = (i: number): Promise<RunResult> =>
  storescu({ port: a.port, calledAet: scp.aet, aet: `TLS${i}`, files: [images[i % 3]!.path!], debug: false, extraArgs: dcmtkTls(pki.modality, pki.ca) });
const sendPlain = (i: number, files = [images[i % 3]!.path!]): Promise<RunResult> => storescu({ port: toB.port, calledAet: scp.aet, aet: `PLAIN${i}`, files, debug: false });
const closedCount = (p: ProxyProcess): number => p.logs.filter((l) => l.msg === 'association closed').length;

describe('a real Prometheus scraping two proxies (one --workers 2) with the rules loaded', { timeout: 300_000 }, () => {
  test('PromQL totals equal the bytes on the wire, across both instances and both workers', async () => {
    const results = await Promise.all([sendTls(0), sendTls(1), ...[0, 1, 2, 3].map((i) => sendPlain(i))]);
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(new Set(b.logs.filter((l) => l.msg === 'association negotiated').map((l) => l.worker)), new Set([0, 1]), 'both workers of B relayed');
    // A plaintext client on A's TLS port: one TLS handshake failure (the TLS recording rule's data).
    const plain = await RawPeer.connect(a.port);
    plain.send(buildRq({ maxLength: 16384 }));
    await eventually(
      () => closedCount(a) >= 2 && closedCount(b) >= 4 && toScp.closed >= 2 && toB.closed >= 4,
      30_000,
      () => `associations closed: A ${closedCount(a)}/2, B ${closedCount(b)}/4; relays ${toScp.closed}/2, ${toB.closed}/4`,
    );
    plain.destroy();
    const [ia, ib] = [hostPort(a.metricsUrl), hostPort(b.metricsUrl)];
    const want = {
      [`${ia} to_scp`]: toScp.forward,
      [`${ia} to_scu`]: toScp.backward,
      [`${ib} to_scp`]: toB.forward,
      [`${ib} to_scu`]: toB.backward,
    };
    assert.ok(Object.values(want).every((n) => n > 0));
    const expr = 'sum by (instance, direction) (dicom_pdu_proxy_bytes_total{job="dicom-pdu-proxy"})';
    const got = byLabels(await prometheus.until(expr, (r) => sameTotals(byLabels(r, 'instance', 'direction'), want), SETTLE_MS), 'instance', 'direction');
    assert.deepEqual(got, want, 'bytes_total per proxy and direction = the bytes the counting relays carried');
    const fleet = byLabels(await prometheus.query('sum by (direction) (dicom_pdu_proxy_bytes_total{job="dicom-pdu-proxy"})'), 'direction');
    assert.deepEqual(fleet, { to_scp: toScp.forward + toB.forward, to_scu: toScp.backward + toB.backward }, 'the fleet total');
    const associations = await prometheus.query('sum(dicom_pdu_proxy_associations_ended_total{job="dicom-pdu-proxy",outcome="released"})');
    assert.equal(Number(associations[0]!.value[1]), 6);
  });

  test('every recording rule returns data', async () => {
    const records = (parse(fs.readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ record?: string }> }> }).groups.flatMap((g) =>
      g.rules.flatMap((r) => (r.record ? [r.record] : [])),
    );
    assert.ok(records.length >= 10);
    for (const record of records) {
      const result = await prometheus.until(record, (r) => r.length > 0, SETTLE_MS);
      assert.ok(result.length > 0, `${record}: no data`);
    }
    // Only A has a TLS listener, and its one failure was on that leg.
    const tls = byLabels(await prometheus.query('instance_route_leg:dicom_pdu_proxy_tls_handshake_failures:rate5m'), 'instance', 'leg');
    assert.deepEqual(Object.keys(tls), [`${hostPort(a.metricsUrl)} scu`]);
  });

  test('every panel expression of the Grafana dashboard runs and returns data', async () => {
    const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ title: p.title, expr: t.expr })));
    assert.ok(exprs.length >= dashboard.panels.length && dashboard.panels.length >= 12);
    for (const { title, expr } of exprs) {
      // The dashboard's variables, as Grafana sends them with "All" selected.
      const promql = expr.replaceAll('$instance', '.*').replaceAll('$route', '.*');
      assert.doesNotMatch(promql, /\$/, `${title}: a variable the test does not know`);
      const result = await prometheus.until(promql, (r) => r.length > 0, SETTLE_MS);
      assert.ok(result.length > 0, `${title}: ${promql} returned no data`);
    }
  });

  test('a central Prometheus federating this one (federate.example.yml) gets every recorded series', async () => {
    const example = parse(fs.readFileSync(FEDERATE, 'utf8')) as { scrape_configs: Array<Record<string, unknown>> };
    const job = { ...example.scrape_configs[0]!, scrape_interval: '2s', scrape_timeout: '2s', static_configs: [{ targets: [new URL(prometheus.url).host] }] };
    const central = await Prometheus.start(stringify({ global: { scrape_interval: '2s' }, scrape_configs: [job] }));
    try {
      const records = (parse(fs.readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ record?: string }> }> }).groups.flatMap((g) =>
        g.rules.flatMap((r) => (r.record ? [r.record] : [])),
      );
      for (const name of [...records, 'dicom_pdu_proxy_tls_cert_expiry_timestamp_seconds', 'up{job="dicom-pdu-proxy"}']) {
        const result = await central.until(name, (r) => r.length > 0, SETTLE_MS);
        assert.ok(result.length > 0, `${name}: not federated`);
      }
      // Only what the match[] selects: no raw counter or histogram comes along.
      assert.deepEqual(await central.query('dicom_pdu_proxy_bytes_total'), []);
      assert.deepEqual(await central.query('dicom_pdu_proxy_message_duration_seconds_bucket'), []);
    } finally {
      await central.stop();
    }
  });

  test('a worker of B killed with SIGKILL mid-run: no counter or histogram series resets, none goes down', async () => {
    const series = '{job="dicom-pdu-proxy",__name__=~"dicom_pdu_proxy_.+(_total|_bucket|_count|_sum)"}';
    const before = new Map((await prometheus.query(series)).map((s) => [JSON.stringify(s.metric), Number(s.value[1])]));
    assert.ok(before.size > 50, `${before.size} series`);
    const negotiatedBefore = b.logs.filter((l) => l.msg === 'association negotiated').length;
    const victim = b.logs.find((l) => l.msg === 'worker ready' && l.worker === 0)!.pid as number;
    // Load: 4 storescu with 3 images each; worker 0 is killed as soon as it has taken one of them.
    const load = Promise.all(
      [0, 1, 2, 3].map((i) =>
        sendPlain(
          10 + i,
          images.map((im) => im.path!),
        ),
      ),
    );
    const negotiated = (): unknown[] => b.logs.filter((l) => l.msg === 'association negotiated');
    await b.waitForLog((l) => l.msg === 'association negotiated' && l.worker === 0 && negotiated().indexOf(l) >= negotiatedBefore, 30_000);
    process.kill(victim, 'SIGKILL');
    await b.waitForLog((l) => l.msg === 'worker died: its connections are lost; starting a new one', 30_000);
    await b.waitForLog((l) => l.msg === 'worker ready' && l.worker === 0 && l.pid !== victim, 30_000);
    const loaded = await load;
    assert.ok(
      loaded.some((r) => r.code === 0),
      'the associations of the other worker went through',
    );
    // After the restart, every new association works, the new worker's too.
    const later = await Promise.all([20, 21, 22, 23].map((i) => sendPlain(i)));
    for (const r of later) assert.equal(r.code, 0, r.stderr);
    // Prometheus has scraped B's final values: its bytes_total equals what B serves now.
    const direct = parseExposition(await (await fetch(b.metricsUrl)).text()).get('dicom_pdu_proxy_bytes_total{route="default",direction="to_scp",arm="none"}')!;
    const ib = hostPort(b.metricsUrl);
    const seen = await prometheus.until(`dicom_pdu_proxy_bytes_total{instance="${ib}",direction="to_scp"}`, (r) => Number(r[0]?.value[1]) === direct, SETTLE_MS);
    assert.equal(Number(seen[0]!.value[1]), direct);

    // resets() drops the metric name: one query per name.
    const names = new Set([...before.keys()].map((key) => (JSON.parse(key) as Record<string, string>).__name__!));
    for (const name of names) {
      const resets = await prometheus.query(`resets(${name}{job="dicom-pdu-proxy"}[1h]) > 0`);
      assert.deepEqual(
        resets.map((s) => s.metric),
        [],
        `${name}: no series reset over the whole run`,
      );
    }
    const now = new Map((await prometheus.query(series)).map((s) => [JSON.stringify(s.metric), Number(s.value[1])]));
    const down = [...before].filter(([key, value]) => !(now.get(key)! >= value)).map(([key, value]) => `${key}: ${value} -> ${now.get(key)}`);
    assert.deepEqual(down, [], 'nothing lower than before the kill');
  });
});

function sameTotals(got: Record<string, number>, want: Record<string, number>): boolean {
  return Object.keys(want).every((k) => got[k] === want[k]) && Object.keys(got).length === Object.keys(want).length;
}
