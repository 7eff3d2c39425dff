// deploy/kubernetes and deploy/systemd, checked:
// - every Kubernetes object against the Kubernetes JSON schemas of the kubernetes-models package (npm):
//   types, enums and required fields (its schemas let unknown field names through, so the fields this
//   example relies on are asserted by name below);
// - the proxy sidecar: readiness on /readyz and liveness on /healthz on its --metrics port, a grace period
//   longer than --drain-timeout plus the 2 s abort grace, non-root, read-only root filesystem; the
//   Service's target ports exist;
// - the systemd unit with `systemd-analyze verify` (where it is installed: it is skipped, and says so,
//   elsewhere), its stop timeout longer than the drain;
// - the proxy's arguments of both given to the real CLI: it starts, answers /readyz, and stops on SIGTERM.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Service } from 'kubernetes-models/v1';
import { assertBuilt } from '../helpers/built.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(REPO_ROOT, 'bin', 'dicom-pdu-proxy.js');
const K8S = path.join(REPO_ROOT, 'deploy', 'kubernetes', 'pacs-with-proxy.yaml');
const UNIT = path.join(REPO_ROOT, 'deploy', 'systemd', 'dicom-pdu-proxy.service');
/** How long the proxy waits, after the drain timeout, for aborted peers to close (ABORT_GRACE_MS). */
const ABORT_GRACE_S = 2;

let tmp = '';
before(() => {
  assertBuilt();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deploy-examples-'));
});
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

type Json = Record<string, unknown>;
const objects = parseAllDocuments(fs.readFileSync(K8S, 'utf8')).map((d) => d.toJSON() as Json);
const byKind = (kind: string): Json => {
  const found = objects.find((o) => o.kind === kind);
  assert.ok(found, `a ${kind} in ${K8S}`);
  return found;
};

/** The value after `flag` in an argument list. */
function flagValue(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/**
 * Start the real CLI with `args`, the addresses and files swapped for local ones (127.0.0.1, port 0, a temp
 * dir); wait until /readyz answers 200 on its metrics port; SIGTERM; resolve with the exit status.
 */
async function runArgs(args: readonly string[], name: string): Promise<{ code: number | null; ready: number; stderr: string }> {
  const local = args.map((a, i) => {
    const flag = args[i - 1];
    if (flag === '--listen' || flag === '--metrics') return '127.0.0.1:0';
    if (flag === '--csv' || flag === '--messages-csv') return path.join(tmp, `${name}-${path.basename(a)}`);
    return a;
  });
  const child = spawn(process.execPath, [BIN, ...local], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  let ready = 0;
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
      const m = /"metrics":"(http:[^"]+)\/metrics"/.exec(stdout);
      if (ready === 0 && m && stdout.includes('"msg":"listening"')) {
        ready = -1;
        void fetch(`${m[1]}/readyz`).then(
          (res) => ((ready = res.status), child.kill('SIGTERM')),
          () => child.kill('SIGTERM'),
        );
      }
    });
    child.once('exit', (c) => (clearTimeout(timer), resolve(c)));
  });
  return { code, ready, stderr };
}

describe('deploy/kubernetes/pacs-with-proxy.yaml', () => {
  test('every object is valid against the Kubernetes schemas (kubernetes-models)', () => {
    assert.deepEqual(objects.map((o) => `${String(o.apiVersion)} ${String(o.kind)}`).sort(), ['apps/v1 Deployment', 'v1 Service']);
    new Deployment(byKind('Deployment') as never).validate();
    new Service(byKind('Service') as never).validate();
    // The validator does reject a wrong type (the check is not a no-op).
    const broken = structuredClone(byKind('Deployment')) as { spec: { template: { spec: Json } } };
    broken.spec.template.spec.terminationGracePeriodSeconds = '45s';
    assert.throws(() => new Deployment(broken as never).validate(), /terminationGracePeriodSeconds must be integer/);
  });

  const pod = (byKind('Deployment') as { spec: { template: { spec: Json } } }).spec.template.spec as {
    terminationGracePeriodSeconds: number;
    containers: Array<{
      name: string;
      args: string[];
      ports: Array<{ name: string; containerPort: number }>;
      readinessProbe?: { httpGet?: { path: string; port: string | number } };
      livenessProbe?: { httpGet?: { path: string; port: string | number } };
      securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
      volumeMounts?: Array<{ mountPath: string }>;
    }>;
  };
  const proxy = pod.containers.find((c) => c.name === 'dicom-pdu-proxy')!;

  test('the proxy sidecar: probes on its metrics port, grace period over the drain, non-root, read-only root', () => {
    assert.ok(proxy, 'a dicom-pdu-proxy container');
    const metricsPort = Number(flagValue(proxy.args, '--metrics')!.split(':').pop());
    const port = (p: string | number): number => (typeof p === 'number' ? p : proxy.ports.find((x) => x.name === p)!.containerPort);
    assert.equal(proxy.readinessProbe?.httpGet?.path, '/readyz');
    assert.equal(port(proxy.readinessProbe!.httpGet!.port), metricsPort);
    assert.equal(proxy.livenessProbe?.httpGet?.path, '/healthz');
    assert.equal(port(proxy.livenessProbe!.httpGet!.port), metricsPort);
    const drainS = Number(flagValue(proxy.args, '--drain-timeout')) / 1000;
    assert.ok(pod.terminationGracePeriodSeconds > drainS + ABORT_GRACE_S, `grace ${pod.terminationGracePeriodSeconds} s > drain ${drainS} s + ${ABORT_GRACE_S} s`);
    assert.equal(proxy.securityContext?.runAsNonRoot, true);
    assert.ok((proxy.securityContext?.runAsUser ?? 0) > 0);
    assert.equal(proxy.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(proxy.securityContext?.allowPrivilegeEscalation, false);
    // Its CSV files are on a mounted volume, the one place it can write.
    for (const flag of ['--csv', '--messages-csv']) {
      const file = flagValue(proxy.args, flag)!;
      assert.ok(
        proxy.volumeMounts?.some((m) => file.startsWith(`${m.mountPath}/`)),
        `${flag} ${file} on a volume`,
      );
    }
    const service = byKind('Service') as { spec: { ports: Array<{ targetPort: string }> } };
    for (const p of service.spec.ports)
      assert.ok(
        proxy.ports.some((x) => x.name === p.targetPort),
        `Service target ${p.targetPort}`,
      );
  });

  test("the proxy's arguments start the real CLI, which answers /readyz and stops on SIGTERM", async () => {
    const r = await runArgs(proxy.args, 'k8s');
    assert.equal(r.ready, 200, r.stderr);
    assert.equal(r.code, 0, r.stderr);
  });
});

describe('deploy/systemd/dicom-pdu-proxy.service', () => {
  const unit = fs.readFileSync(UNIT, 'utf8');
  const execStart = /^ExecStart=(\S+) (.*)$/m.exec(unit)!;
  const args = execStart[2]!.split(/\s+/);

  test('systemd-analyze verify: no error, no warning (ExecStart pointed at this build)', (t) => {
    const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    if (probe.error) {
      t.skip('systemd-analyze is not installed here: the unit is not verified');
      return;
    }
    // The unit names the installed CLI (/usr/local/bin); here it is this repository's build.
    const file = path.join(tmp, 'dicom-pdu-proxy.service');
    fs.writeFileSync(file, unit.replace(execStart[0], `ExecStart=${process.execPath} ${BIN} ${execStart[2]}`));
    const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    // Unknown keys and bad values are warnings with status 0: none may name the file.
    assert.doesNotMatch(`${r.stdout}${r.stderr}`, /dicom-pdu-proxy\.service/);
  });

  test('the stop timeout is longer than --drain-timeout plus the abort grace; SIGTERM drains', () => {
    const stopS = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)![1]);
    const drainS = Number(flagValue(args, '--drain-timeout')) / 1000;
    assert.ok(stopS > drainS + ABORT_GRACE_S, `${stopS} s > ${drainS} s + ${ABORT_GRACE_S} s`);
    assert.match(unit, /^KillSignal=SIGTERM$/m);
    assert.match(unit, /^RestartPreventExitStatus=2$/m);
  });

  test('its arguments start the real CLI, which answers /readyz and stops on SIGTERM', async () => {
    // The unit's settings file would give the upstream; here a local one that is never connected to.
    const r = await runArgs([...args, '--upstream', '127.0.0.1:104'], 'systemd');
    assert.equal(r.ready, 200, r.stderr);
    assert.equal(r.code, 0, r.stderr);
  });
});
