// The image and the compose example, run for real (npm run test:docker; needs a Docker daemon, not part of
// npm test). Builds the image; runs it as its non-root user on the host network in front of storescp and
// relays a C-STORE bit for bit; `docker stop` while a slow store is in flight: the store finishes (drain) and
// the container exits 0. Then docker-compose.yml itself (its ports moved to free ones on 127.0.0.1, the image
// just built): Orthanc with the proxy in front, plain on one port and DICOM TLS with client certificates on
// the other (profile tls, certificates from a mounted directory); stores through both, counted by Orthanc.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { dcmtkTls, makeTestPki } from '../helpers/certs.js';
import type { TestPki } from '../helpers/certs.js';
import { startStorescp, storescu } from '../helpers/dcmtk.js';
import { datasetBytes, writeTestDicom } from '../helpers/dicom-file.js';
import { eventually } from '../helpers/proc-stats.js';
import { killAll, runToExit } from '../helpers/procs.js';
import { REPO_ROOT, freePort } from '../helpers/proxy.js';

const IMAGE = 'dicom-pdu-proxy:test';
const CONTAINER = `dpp-test-${process.pid}`;
const PROJECT = `dpptest${process.pid}`;

function docker(args: string[], timeoutMs = 60_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('docker', args, { encoding: 'utf8', timeout: timeoutMs, cwd: REPO_ROOT });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function must(args: string[], timeoutMs?: number): string {
  const r = docker(args, timeoutMs);
  assert.equal(r.status, 0, `docker ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout.trim();
}

let dir: string;
let pki: TestPki;
let seed = 100;

async function newImage(pixelBytes = 1_000_000): Promise<string> {
  const file = path.join(dir, `image-${++seed}.dcm`);
  await writeTestDicom(file, { pixelBytes, seed });
  return file;
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-docker-test-'));
  pki = makeTestPki();
});

after(async () => {
  docker(['rm', '-f', CONTAINER]);
  await killAll();
  pki?.remove();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('the image', () => {
  test('docker build', () => {
    const started = Date.now();
    must(['build', '--network', 'host', '-t', IMAGE, '.'], 900_000);
    console.log(`# built ${IMAGE} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    assert.equal(must(['inspect', '-f', '{{.Config.User}}', IMAGE]), '1000:1000');
  });

  test('docker run: non-root, healthy, relays a C-STORE bit for bit; docker stop drains a store in flight and exits 0', async () => {
    const scp = await startStorescp({ outDir: fs.mkdtempSync(path.join(dir, 'scp-')) });
    const [listen, health] = [await freePort(), await freePort()];
    must([
      'run',
      '-d',
      '--name',
      CONTAINER,
      '--network',
      'host',
      '--health-interval',
      '1s',
      '--stop-timeout',
      '30',
      '-e',
      `PDU_PROXY_HEALTH=127.0.0.1:${health}`,
      IMAGE,
      '--listen',
      `127.0.0.1:${listen}`,
      '--upstream',
      `127.0.0.1:${scp.port}`,
      '--bandwidth',
      '16Mbit',
      '--drain-timeout',
      '25000',
    ]);
    const logs = (): string => docker(['logs', CONTAINER]).stdout;
    await eventually(
      () => must(['inspect', '-f', '{{.State.Health.Status}}', CONTAINER]) === 'healthy',
      30_000,
      () => `healthy; logs: ${logs()}`,
    );
    assert.equal(must(['exec', CONTAINER, 'id', '-u']), '1000', 'runs as uid 1000');
    const uids = must(['top', CONTAINER, '-eo', 'uid,pid,args'])
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/)[0]);
    assert.ok(uids.length > 0 && uids.every((uid) => uid === '1000'), `every process of the container runs as uid 1000: ${uids.join(', ')}`);
    const ready = await fetch(`http://127.0.0.1:${health}/readyz`);
    assert.equal(ready.status, 200);

    const small = await newImage();
    const r = await storescu({ port: listen, files: [small] });
    assert.equal(r.code, 0, r.stderr);
    const files = scp.receivedFiles();
    assert.equal(files.length, 1);
    assert.ok(datasetBytes(files[0]!).equals(datasetBytes(small)), 'data set bit-identical');

    // 6 MB at 16 Mbit/s: about 3 s in flight when docker stop sends SIGTERM.
    const big = await newImage(6_000_000);
    const inFlight = storescu({ port: listen, files: [big], timeoutMs: 60_000, dimseTimeoutSec: 60, debug: false });
    await eventually(
      () => (logs().match(/"association requested"/g) ?? []).length >= 2,
      10_000,
      () => `second association; logs: ${logs()}`,
    );
    // Not spawnSync: storescu's output must keep flowing into this process while docker stop waits for the drain.
    const stop = await runToExit('docker', ['stop', CONTAINER], { timeoutMs: 60_000, name: 'docker stop' });
    assert.equal(stop.code, 0, stop.stderr);
    const stored = await inFlight;
    assert.equal(stored.code, 0, `the store in flight finished: ${stored.stderr}`);
    assert.equal(must(['inspect', '-f', '{{.State.ExitCode}}', CONTAINER]), '0', `exit 0 after draining; logs: ${logs()}`);
    const text = logs();
    assert.match(text, /"msg":"shutting down: draining associations in flight"/);
    assert.match(text, /"aborted":0,"msg":"stopped"/);
    const got = scp.receivedFiles().find((f) => f !== files[0]);
    assert.ok(got && datasetBytes(got).equals(datasetBytes(big)), 'the drained data set is bit-identical');
    console.log(`# docker stop: exit code 0 after draining (the store took ${stored.durationMs} ms)`);
    docker(['rm', '-f', CONTAINER]);
    await scp.stop();
  });
});

describe('docker-compose.yml: the sidecar in front of Orthanc, plain and TLS', () => {
  let composeFile: string;
  let ports: { dicom: number; tls: number; web: number };
  const compose = (args: string[], timeoutMs = 180_000) => {
    const r = spawnSync('docker-compose', ['-p', PROJECT, '-f', composeFile, '--profile', 'tls', ...args], {
      encoding: 'utf8',
      timeout: timeoutMs,
      cwd: REPO_ROOT,
      env: { ...process.env, DPP_CERTS_DIR: path.join(dir, 'certs') },
    });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };

  before(async () => {
    ports = { dicom: await freePort(), tls: await freePort(), web: await freePort() };
    // The file as it is, but with the image just built and the published ports moved to free ones on the loopback.
    const doc = parse(fs.readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Record<string, unknown>> };
    const { orthanc, proxy } = doc.services;
    const proxyTls = doc.services['proxy-tls']!;
    orthanc!.ports = [`127.0.0.1:${ports.web}:8042`];
    proxy!.ports = [`127.0.0.1:${ports.dicom}:11112`];
    proxyTls.ports = [`127.0.0.1:${ports.tls}:2762`];
    for (const s of [proxy!, proxyTls]) {
      s.image = IMAGE;
      delete s.build;
    }
    delete doc.services.bench;
    composeFile = path.join(dir, 'docker-compose.yml');
    fs.writeFileSync(composeFile, stringify(doc));
    // The mounted certificate directory, with the names the compose file uses, readable by the image's uid 1000.
    const certs = path.join(dir, 'certs');
    fs.mkdirSync(certs);
    fs.copyFileSync(pki.ca, path.join(certs, 'ca.crt'));
    fs.copyFileSync(pki.proxy.cert, path.join(certs, 'proxy.crt'));
    fs.copyFileSync(pki.proxy.key, path.join(certs, 'proxy.key'));
    for (const f of fs.readdirSync(certs)) {
      try {
        fs.chownSync(path.join(certs, f), 1000, 1000);
      } catch {
        fs.chmodSync(path.join(certs, f), 0o644); // not root: let uid 1000 read the throwaway files
      }
    }
  });

  after(() => {
    if (composeFile) compose(['down', '-v', '--remove-orphans']);
  });

  test('docker-compose up: both proxies healthy; C-STORE through each reaches Orthanc', async () => {
    const up = compose(['up', '-d', '--no-build']);
    assert.equal(up.status, 0, up.stderr);
    const id = (service: string) => compose(['ps', '-q', service]).stdout.trim();
    const health = (service: string) => docker(['inspect', '-f', '{{.State.Health.Status}}', id(service)]).stdout.trim();
    const logs = () => compose(['logs', '--no-color', '--tail', '20']).stdout;
    await eventually(
      () => health('proxy') === 'healthy' && health('proxy-tls') === 'healthy',
      90_000,
      () => `both healthy (${health('proxy')}, ${health('proxy-tls')}); logs: ${logs()}`,
    );

    const instances = async (): Promise<number> => {
      try {
        const res = await fetch(`http://127.0.0.1:${ports.web}/instances`);
        return res.ok ? ((await res.json()) as unknown[]).length : -1;
      } catch {
        return -1;
      }
    };
    let orthancUp = false;
    const deadline = Date.now() + 60_000;
    while (!orthancUp && Date.now() < deadline) {
      orthancUp = (await instances()) >= 0;
      if (!orthancUp) await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(orthancUp, `Orthanc's REST API answers; logs: ${logs()}`);
    const before = await instances();

    const plain = await storescu({ port: ports.dicom, calledAet: 'ORTHANC', files: [await newImage()] });
    assert.equal(plain.code, 0, `plain C-STORE through the sidecar: ${plain.stderr}`);
    const secure = await storescu({ port: ports.tls, calledAet: 'ORTHANC', files: [await newImage()], extraArgs: dcmtkTls(pki.modality, pki.ca) });
    assert.equal(secure.code, 0, `TLS C-STORE through proxy-tls: ${secure.stderr}`);
    const refused = await storescu({ port: ports.tls, calledAet: 'ORTHANC', files: [await newImage()], extraArgs: dcmtkTls(pki.stranger, pki.ca) });
    assert.notEqual(refused.code, 0, 'a certificate from another CA is refused');
    assert.equal(await instances(), before + 2, 'Orthanc stored both');
    const tlsLogs = compose(['logs', '--no-color', 'proxy-tls']).stdout;
    assert.match(tlsLogs, /"peerSubject":"CN=modality"/);
    assert.match(tlsLogs, /"reason":"unknown_ca"/);
    console.log(`# compose: plain and TLS C-STORE stored by Orthanc (${before} -> ${before + 2} instances); the stranger's certificate refused`);
  });
});
