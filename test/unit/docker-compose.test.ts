// docker-compose.yml: validated by `docker compose config` / `docker-compose config` when one is installed,
// and always read as YAML: Orthanc behind the proxy, the proxy's port published, CSV logs on a volume, the
// proxy's settings valid for the CLI (it is started with them), and a `bench` profile.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { ENV_VARIABLES } from '../../src/config/config.js';
import { makeTestPki } from '../helpers/certs.js';
import { execForm, last, parseDockerfile } from '../helpers/dockerfile.js';
import { assertBuilt } from '../helpers/built.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const COMPOSE_FILE = path.join(REPO_ROOT, 'docker-compose.yml');
const BIN = path.join(REPO_ROOT, 'bin', 'dicom-pdu-proxy.js');

interface Service {
  image?: string;
  build?: string | { context: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: Array<string | { target: number; published: number | string }>;
  volumes?: Array<string | { source: string; target: string }>;
  depends_on?: string[] | Record<string, unknown>;
  profiles?: string[];
  healthcheck?: { test: string[]; interval?: string };
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const compose = parse(fs.readFileSync(COMPOSE_FILE, 'utf8')) as Compose;
const { orthanc, proxy, bench } = compose.services;
const proxyTls = compose.services['proxy-tls'];

/** The VOLUME of the image's runtime stage (where CSV logs go). */
const IMAGE_VOLUMES = (() => {
  const final = parseDockerfile(fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8')).at(-1)!;
  const volume = last(final, 'VOLUME')!;
  return execForm(volume.args) ?? volume.args.split(/\s+/);
})();

function environment(service: Service): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

function ports(service: Service): Array<{ published: string; target: string }> {
  return (service.ports ?? []).map((p) => {
    if (typeof p !== 'string') return { published: String(p.published), target: String(p.target) };
    const parts = p.replace(/\/(tcp|udp)$/, '').split(':');
    return { published: parts.at(-2) ?? '', target: parts.at(-1)! };
  });
}

function volumes(service: Service): Array<{ source: string; target: string }> {
  return (service.volumes ?? []).map((v) => (typeof v === 'string' ? { source: v.split(':')[0]!, target: v.split(':')[1]! } : v));
}

function dependsOn(service: Service): string[] {
  const d = service.depends_on ?? [];
  return Array.isArray(d) ? d : Object.keys(d);
}

const buildContext = (service: Service) => (typeof service.build === 'string' ? service.build : service.build?.context);

describe('docker-compose.yml as YAML', () => {
  test('Orthanc, the proxy and the bench services', () => {
    assert.ok(orthanc && proxy && bench, `services: ${Object.keys(compose.services).join(', ')}`);
    assert.match(orthanc.image ?? '', /^(orthancteam|jodogne)\/orthanc(:|$)/);
  });

  test('modalities reach Orthanc only through the proxy: the proxy publishes 11112, Orthanc no DICOM port', () => {
    assert.ok(
      ports(proxy!).some((p) => p.published === '11112' && p.target === '11112'),
      `proxy ports: ${JSON.stringify(proxy!.ports)}`,
    );
    assert.ok(!ports(orthanc!).some((p) => p.target === '4242'), 'Orthanc DICOM port not published');
  });

  test('the proxy is built from this repository and forwards to Orthanc', () => {
    assert.equal(buildContext(proxy!), '.');
    assert.ok(dependsOn(proxy!).includes('orthanc'));
    const env = environment(proxy!);
    const orthancJson = JSON.parse(environment(orthanc!).ORTHANC_JSON ?? '{}') as { DicomPort?: number };
    assert.equal(env.PDU_PROXY_UPSTREAM, `orthanc:${orthancJson.DicomPort ?? 4242}`);
  });

  test('every PDU_PROXY_* variable is one the CLI knows (an unknown one would stop it with exit 2)', () => {
    for (const service of [proxy!, bench!, proxyTls!]) {
      for (const name of Object.keys(environment(service))) {
        if (name.toUpperCase().startsWith('PDU_PROXY_')) assert.ok(ENV_VARIABLES.has(name), `${name} is known`);
      }
    }
  });

  test("CSV logs go to a named volume mounted on the image's VOLUME", () => {
    const logs = volumes(proxy!).find((v) => IMAGE_VOLUMES.includes(v.target));
    assert.ok(logs, `a volume on ${IMAGE_VOLUMES.join(', ')}: ${JSON.stringify(proxy!.volumes)}`);
    assert.ok(Object.hasOwn(compose.volumes ?? {}, logs.source), `top-level volume ${logs.source}`);
    for (const name of ['PDU_PROXY_CSV', 'PDU_PROXY_MESSAGES_CSV']) {
      const csv = environment(proxy!)[name] ?? '';
      assert.ok(csv.startsWith(`${logs.target}/`), `${name} ${csv} is on the volume`);
    }
    const command = bench!.command as string[];
    assert.ok(command[command.indexOf('--out') + 1]!.startsWith(`${logs.target}/`), 'bench results on the volume');
    assert.ok(
      volumes(bench!).some((v) => v.target === logs.target),
      'bench mounts the log volume',
    );
  });

  test('command: is a list (exec form), appended to the ENTRYPOINT', () => {
    assert.ok(Array.isArray(proxy!.command), 'proxy command is a list');
    assert.ok(Array.isArray(bench!.command), 'bench command is a list');
  });

  test('bench: under the profile "bench", running `bench --upstream orthanc:4242` from the same image', () => {
    assert.deepEqual(bench!.profiles, ['bench']);
    const command = bench!.command as string[];
    assert.equal(command[0], 'bench');
    assert.deepEqual(command.slice(command.indexOf('--upstream'), command.indexOf('--upstream') + 2), ['--upstream', 'orthanc:4242']);
    assert.equal(bench!.image, proxy!.image);
    assert.equal(buildContext(bench!), '.');
    assert.ok(dependsOn(bench!).includes('orthanc'));
  });
});

describe('health checks and the TLS variant', () => {
  const healthScript = (service: Service) => {
    const t = service.healthcheck?.test ?? [];
    assert.equal(t[0], 'CMD', 'exec form');
    assert.equal(t[1], 'node');
    return t[2]!;
  };

  test("the proxies' healthcheck runs bin/healthcheck.js of the image, which probes /readyz", () => {
    for (const service of [proxy!, proxyTls!]) {
      const script = healthScript(service);
      assert.equal(script, '/app/bin/healthcheck.js');
      assert.ok(fs.existsSync(path.join(REPO_ROOT, 'bin', 'healthcheck.js')));
      assert.match(fs.readFileSync(path.join(REPO_ROOT, 'bin', 'healthcheck.js'), 'utf8'), /\/readyz/);
    }
  });

  test('proxy-tls: profile "tls", the same image, DICOM TLS on 2762 with client certificates required, forwarding to Orthanc', () => {
    assert.ok(proxyTls, 'a proxy-tls service');
    assert.deepEqual(proxyTls.profiles, ['tls']);
    assert.equal(proxyTls.image, proxy!.image);
    const env = environment(proxyTls);
    assert.equal(env.PDU_PROXY_UPSTREAM, environment(proxy!).PDU_PROXY_UPSTREAM);
    assert.equal(env.PDU_PROXY_LISTEN, '0.0.0.0:2762');
    assert.equal(env.PDU_PROXY_TLS_CLIENT_AUTH, 'required');
    assert.ok(ports(proxyTls).some((p) => p.published === '2762' && p.target === '2762'));
  });

  test('proxy-tls: every certificate file is on a read-only mount', () => {
    const env = environment(proxyTls!);
    // SOURCE:TARGET:MODE, where SOURCE may be ${VAR:-default} (with a colon of its own).
    const mounts = (proxyTls!.volumes ?? []).filter((v): v is string => typeof v === 'string').map((v) => /^(.*):(\/[^:]*):(ro|rw)$/.exec(v)?.slice(1) ?? [v]);
    for (const name of ['PDU_PROXY_TLS_CERT', 'PDU_PROXY_TLS_KEY', 'PDU_PROXY_TLS_CA']) {
      const file = env[name]!;
      const mount = mounts.find((m) => m.length === 3 && file.startsWith(`${m[1]}/`));
      assert.ok(mount, `${name} ${file} is on a mounted directory: ${JSON.stringify(proxyTls!.volumes)}`);
      assert.equal(mount[2], 'ro', `${name}'s mount is read-only`);
    }
  });
});

describe("the proxy service's settings start the CLI", () => {
  before(assertBuilt);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-compose-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('environment + command, with the CSV and listen address moved to this machine', async () => {
    const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toUpperCase().startsWith('PDU_PROXY_')));
    const env = environment(proxy!);
    const csv = path.join(dir, path.basename(env.PDU_PROXY_CSV ?? 'chunks.csv'));
    const messagesCsv = path.join(dir, path.basename(env.PDU_PROXY_MESSAGES_CSV ?? 'messages.csv'));
    // A flag wins over the environment: --listen moves the port; the CSV files move off the volume path.
    const args = [...(proxy!.command as string[]), '--listen', '127.0.0.1:0'];
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: dir,
      env: { ...base, ...env, PDU_PROXY_CSV: csv, PDU_PROXY_MESSAGES_CSV: messagesCsv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const status = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      let signalled = false;
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        if (!signalled && stdout.includes('"msg":"listening"')) {
          signalled = true;
          setTimeout(() => child.kill('SIGTERM'), 300); // run.ts installs its handler just after logging
        }
      });
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    assert.equal(stderr, '');
    assert.equal(status, 0);
    const listening = JSON.parse(stdout.split('\n').find((l) => l.includes('"msg":"listening"'))!) as Record<string, unknown>;
    assert.equal(listening.upstream, env.PDU_PROXY_UPSTREAM);
    assert.equal(listening.maxPdu, 1048576); // --max-pdu 1MB from command:
    assert.ok(fs.existsSync(csv));
    assert.ok(fs.existsSync(messagesCsv));
  });

  test('proxy-tls: environment + command, with certificates made here in place of the mounted ones', async () => {
    const pki = makeTestPki();
    try {
      const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toUpperCase().startsWith('PDU_PROXY_')));
      const env = environment(proxyTls!);
      const files: Record<string, string> = { PDU_PROXY_TLS_CERT: pki.proxy.cert, PDU_PROXY_TLS_KEY: pki.proxy.key, PDU_PROXY_TLS_CA: pki.ca };
      const child = spawn(process.execPath, [BIN, ...(proxyTls!.command as string[]), '--listen', '127.0.0.1:0'], {
        cwd: dir,
        env: { ...base, ...env, ...files, PDU_PROXY_MESSAGES_CSV: path.join(dir, 'messages-tls.csv'), PDU_PROXY_HEALTH: '127.0.0.1:0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      const status = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          stdout += chunk;
          if (stdout.includes('"msg":"listening"')) setTimeout(() => child.kill('SIGTERM'), 300);
        });
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
        child.on('close', (code) => {
          clearTimeout(timer);
          resolve(code);
        });
      });
      assert.equal(stderr, '');
      assert.equal(status, 0);
      const listening = JSON.parse(stdout.split('\n').find((l) => l.includes('"msg":"listening"'))!) as Record<string, unknown>;
      assert.deepEqual(listening.tls, { listener: { clientAuth: 'required', clientCa: 'file' } });
      assert.ok(stdout.includes('"msg":"health listening"'));
    } finally {
      pki.remove();
    }
  });
});

/** `docker compose` (v2 plugin) or `docker-compose` (v1), whichever works; undefined when neither does. */
function composeCommand(): string[] | undefined {
  for (const command of [['docker', 'compose'], ['docker-compose']]) {
    const r = spawnSync(command[0]!, [...command.slice(1), 'version'], { encoding: 'utf8', timeout: 30_000 });
    if (r.status === 0) return command;
  }
  return undefined;
}

const COMPOSE = composeCommand();

describe('docker compose config', { skip: COMPOSE ? false : 'neither `docker compose` nor `docker-compose` is installed' }, () => {
  const run = (args: string[]) => spawnSync(COMPOSE![0]!, [...COMPOSE!.slice(1), '-f', COMPOSE_FILE, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });

  test('validates the file', () => {
    const r = run(['config', '-q']);
    assert.equal(r.status, 0, r.stderr);
  });

  test('the normalized file keeps the services, the bench profile and the published port', () => {
    // (docker-compose v1 lists every service with --services whatever the profiles; v2 only active ones)
    const r = run(['--profile', 'bench', '--profile', 'tls', 'config']);
    assert.equal(r.status, 0, r.stderr);
    const normalized = parse(r.stdout) as Compose;
    assert.deepEqual(Object.keys(normalized.services).sort(), ['bench', 'orthanc', 'proxy', 'proxy-tls']);
    assert.deepEqual(normalized.services['proxy-tls']!.profiles, ['tls']);
    assert.deepEqual(normalized.services.bench!.profiles, ['bench']);
    assert.ok(ports(normalized.services.proxy!).some((p) => p.published === '11112' && p.target === '11112'));
    assert.deepEqual(normalized.services.proxy!.command, proxy!.command);
  });
});
