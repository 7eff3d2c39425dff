// The Dockerfile, read as text (no Docker engine needed): multi-stage on a slim Node 20 base, built with the
// commands CI runs, production dependencies only at run time, a non-root USER, EXPOSE 11112, a log VOLUME,
// and an exec-form ENTRYPOINT whose script, mapped from the image back to the repository, exists and runs.
// The shell-form ENTRYPOINT that silently dropped `docker run IMAGE --max-pdu ...` arguments must fail here.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { dockerignored, execForm, imageToRepo, last, parseDockerfile } from '../helpers/dockerfile.js';
import type { Stage } from '../helpers/dockerfile.js';
import { assertBuilt } from '../helpers/built.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DOCKERFILE = fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
const BUILT = fs.existsSync(path.join(REPO_ROOT, 'dist', 'cli', 'main.js'));
const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string; scripts: Record<string, string> };

const isDir = (repoPath: string) => fs.statSync(path.join(REPO_ROOT, repoPath), { throwIfNoEntry: false })?.isDirectory() ?? false;
const exists = (repoPath: string) => fs.existsSync(path.join(REPO_ROOT, repoPath));

const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => execForm(i.args)?.join(' ') ?? i.args);
/** `npm ci` proper: not the production-only install. */
const NPM_CI = /\bnpm ci\b(?![^&;|]*--omit=dev)/;
const NPM_CI_PROD = /\bnpm ci\b[^&;|]*--omit=dev/;
const NPM_PRUNE_PROD = /\bnpm prune\b[^&;|]*--omit=dev/;

interface Entry {
  final: Stage;
  /** The script ENTRYPOINT runs, as a path in the image. */
  script: string;
}

/** Everything wrong with a Dockerfile's text, one line each; [] when it is fine. */
function problems(text: string, options: { built: boolean } = { built: BUILT }): string[] {
  const out: string[] = [];
  const stages = parseDockerfile(text);
  const final = stages.at(-1);
  if (!final) return ['no FROM'];

  // Multi-stage, slim Node 20 bases.
  if (stages.length < 2) out.push('not multi-stage: build (with dev dependencies) and runtime (production only) stages expected');
  for (const s of stages) {
    if (!/^node:20(\.\d+)*-(\w+-)?slim\b/.test(s.base)) out.push(`stage ${s.name ?? s.index}: base ${s.base} is not a slim Node 20 image (node:20-slim)`);
  }

  // Built with the commands CI runs: npm ci (its prepare script builds, or an explicit npm run build), then
  // production dependencies only: npm prune --omit=dev in the stage the runtime copies node_modules from,
  // or npm ci --omit=dev in the runtime stage.
  const builders = stages.slice(0, -1);
  const ci = builders.find((s) => runs(s).some((r) => NPM_CI.test(r)));
  if (!ci) out.push('no build stage runs `npm ci` (as CI does)');
  else {
    const ciRun = runs(ci).find((r) => NPM_CI.test(r))!;
    const prepareBuilds = /\bnpm run build\b/.test(pkg.scripts.prepare ?? '') && !/--ignore-scripts/.test(ciRun);
    if (!prepareBuilds && !runs(ci).some((r) => /\bnpm run build\b/.test(r))) out.push('the build stage neither runs `npm run build` nor lets `npm ci` run the prepare script');
  }
  const modulesCopy = [...final.copies].reverse().find((c) => c.dest === path.posix.join(final.workdir, 'node_modules') || c.sources.some((s) => /node_modules\/?$/.test(s)));
  const modulesStage = modulesCopy?.from !== undefined ? stages.find((s) => s.name === modulesCopy.from || String(s.index) === modulesCopy.from) : undefined;
  const prodOnly = runs(final).some((r) => NPM_CI_PROD.test(r)) || (modulesStage !== undefined && runs(modulesStage).some((r) => NPM_PRUNE_PROD.test(r)));
  if (!prodOnly) out.push('the runtime stage has dev dependencies: `npm prune --omit=dev` in the stage node_modules is copied from, or `npm ci --omit=dev` in the runtime stage');

  // Non-root, the DICOM port, a volume for the CSV logs, writable by that user.
  const user = last(final, 'USER')?.args;
  if (user === undefined) out.push('no USER in the runtime stage: the proxy would run as root');
  else if (/^(root|0)$/.test(user.split(':')[0]!.trim())) out.push(`USER ${user} is root`);
  const exposed = final.instructions.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
  if (!exposed.some((p) => /^11112(\/tcp)?$/.test(p))) out.push('EXPOSE 11112 missing');
  const volume = last(final, 'VOLUME');
  if (!volume) out.push('no VOLUME for the CSV logs');
  else {
    const paths = execForm(volume.args) ?? volume.args.split(/\s+/);
    for (const dir of paths) {
      const before = final.instructions.slice(0, final.instructions.indexOf(volume));
      if (!before.some((i) => i.keyword === 'RUN' && i.args.includes('chown') && i.args.includes(dir))) out.push(`VOLUME ${dir} is not chowned to the USER before it is declared`);
    }
  }

  // Exec-form ENTRYPOINT running a script that is in the image, from the repository.
  const entrypoint = last(final, 'ENTRYPOINT');
  const cmd = last(final, 'CMD');
  if (cmd && !execForm(cmd.args)) out.push(`CMD ${cmd.args} is in shell form`);
  if (!entrypoint) return [...out, 'no ENTRYPOINT'];
  const argv = execForm(entrypoint.args);
  if (!argv) return [...out, `ENTRYPOINT ${entrypoint.args} is not in exec form (a JSON array of strings): docker run arguments would be dropped`];
  if (argv[0] !== 'node' || argv.length !== 2) return [...out, `ENTRYPOINT ${entrypoint.args}: expected ["node", "<script>"]`];
  const script = path.posix.resolve(entrypoint.workdir, argv[1]!);
  const repoScript = imageToRepo(stages, final, script, isDir);
  if (repoScript === undefined) return [...out, `ENTRYPOINT script ${script} is not copied into the image`];
  if (!exists(repoScript)) return [...out, `ENTRYPOINT script ${script} is ${repoScript}, which is not in the repository`];
  if (repoScript !== packageBin()) out.push(`ENTRYPOINT script ${script} is ${repoScript}, not the package's bin ${packageBin()}`);

  // What the CLI loads at run time, in the image: the compiled CLI the launcher imports, package.json
  // (--version), config/default.json and the production dependencies.
  const needed = requiredAtRunTime({ final, script });
  for (const [imagePath, why] of needed) {
    const repoPath = imageToRepo(stages, final, imagePath, isDir);
    if (repoPath === undefined) out.push(`${imagePath} (${why}) is not copied into the image`);
    else if (options.built && !exists(repoPath)) out.push(`${imagePath} (${why}) is ${repoPath}, which is not in the repository after npm run build`);
  }
  return out;
}

function packageBin(): string {
  const bin = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin;
  return path.posix.normalize(bin['dicom-pdu-proxy']!);
}

/** Image paths the CLI needs, each with why: the launcher's relative imports and what they read. */
function requiredAtRunTime(entry: Entry): Array<[string, string]> {
  const launcher = fs.readFileSync(path.join(REPO_ROOT, packageBin()), 'utf8');
  const imports = [...launcher.matchAll(/from\s+['"](\.\.?\/[^'"]+)['"]/g)].map((m) => path.posix.resolve(path.posix.dirname(entry.script), m[1]!));
  assert.ok(imports.length > 0, 'the launcher imports the compiled CLI');
  const cliDir = path.posix.dirname(imports[0]!); // .../dist/cli
  const appRoot = path.posix.resolve(cliDir, '..', '..');
  return [
    ...imports.map((p): [string, string] => [p, 'imported by the launcher']),
    [path.posix.join(appRoot, 'package.json'), 'read for --version'],
    [path.posix.join(appRoot, 'config', 'default.json'), 'the default settings'],
    [path.posix.join(appRoot, 'node_modules', 'commander', 'package.json'), 'a production dependency'],
  ];
}

function entry(): Entry & { repoScript: string } {
  const stages = parseDockerfile(DOCKERFILE);
  const final = stages.at(-1)!;
  const ins = last(final, 'ENTRYPOINT')!;
  const script = path.posix.resolve(ins.workdir, execForm(ins.args)![1]!);
  return { final, script, repoScript: imageToRepo(stages, final, script, isDir)! };
}

describe('Dockerfile', () => {
  test('has no problems', () => {
    assert.deepEqual(problems(DOCKERFILE), []);
  });

  test('its ENTRYPOINT is ["node", "<absolute path>"] and runs the package bin', () => {
    const e = entry();
    assert.equal(e.repoScript, 'bin/dicom-pdu-proxy.js');
    assert.match(e.script, /^\/.*\/dicom-pdu-proxy\.js$/);
  });

  test('the build stage runs the same npm commands as .ci/run', () => {
    const ciScript = fs.readFileSync(path.join(REPO_ROOT, '.ci', 'run'), 'utf8');
    assert.match(ciScript, /^npm ci$/m);
    assert.match(DOCKERFILE, /^RUN npm ci$/m);
    assert.equal(pkg.scripts.prepare, 'npm run build', 'npm ci builds through prepare');
  });

  test('the runtime stage does not run as root', () => {
    const { final } = entry();
    const user = last(final, 'USER')!.args;
    assert.doesNotMatch(user, /^(root|0)(:|$)/);
  });

  test('what the CLI loads at run time maps to repository files', () => {
    assertBuilt();
    const stages = parseDockerfile(DOCKERFILE);
    const e = entry();
    const mapped = requiredAtRunTime(e).map(([imagePath]) => [imagePath, imageToRepo(stages, e.final, imagePath, isDir)]);
    assert.deepEqual(mapped, [
      ['/app/dist/cli/main.js', 'dist/cli/main.js'],
      ['/app/package.json', 'package.json'],
      ['/app/config/default.json', 'config/default.json'],
      ['/app/node_modules/commander/package.json', 'node_modules/commander/package.json'],
    ]);
  });
});

describe('the checks catch the mistakes they exist for', () => {
  const mutations: Array<[string, (text: string) => string, RegExp]> = [
    ['shell-form ENTRYPOINT (drops docker run arguments)', (t) => t.replace(/^ENTRYPOINT .*$/m, 'ENTRYPOINT node /app/bin/dicom-pdu-proxy.js'), /not in exec form/],
    [
      'ENTRYPOINT with single quotes (not JSON: Docker runs it through a shell)',
      (t) => t.replace(/^ENTRYPOINT .*$/m, "ENTRYPOINT ['node', '/app/bin/dicom-pdu-proxy.js']"),
      /not in exec form/,
    ],
    ['ENTRYPOINT script that is not in the image', (t) => t.replace(/^ENTRYPOINT .*$/m, 'ENTRYPOINT ["node", "/srv/cli.js"]'), /not copied into the image/],
    ['ENTRYPOINT script missing from the repository', (t) => t.replace(/^ENTRYPOINT .*$/m, 'ENTRYPOINT ["node", "/app/bin/nope.js"]'), /not in the repository/],
    ['relative ENTRYPOINT script under another WORKDIR', (t) => t.replace(/^ENTRYPOINT .*$/m, 'ENTRYPOINT ["node", "bin/dicom-pdu-proxy.js"]'), /not copied into the image/],
    ['shell-form CMD', (t) => `${t}\nCMD --help\n`, /CMD --help is in shell form/],
    ['no USER', (t) => t.replace(/^USER .*$/m, ''), /no USER/],
    ['USER root', (t) => t.replace(/^USER .*$/m, 'USER root'), /USER root is root/],
    ['USER 0:0', (t) => t.replace(/^USER .*$/m, 'USER 0:0'), /USER 0:0 is root/],
    ['single stage', (t) => t.slice(t.indexOf('FROM node:20-slim AS runtime')), /not multi-stage/],
    ['full Node base', (t) => t.replace('FROM node:20-slim AS runtime', 'FROM node:20 AS runtime'), /base node:20 is not a slim Node 20 image/],
    ['no npm prune', (t) => t.replace(/^RUN npm prune --omit=dev.*$/m, ''), /dev dependencies/],
    ['npm ci without scripts and no build', (t) => t.replace(/^RUN npm ci$/m, 'RUN npm ci --ignore-scripts'), /neither runs `npm run build`/],
    ['no EXPOSE', (t) => t.replace(/^EXPOSE .*$/m, ''), /EXPOSE 11112 missing/],
    ['no VOLUME', (t) => t.replace(/^VOLUME .*$/m, ''), /no VOLUME/],
    ['dist not copied', (t) => t.replace(/^COPY --from=build \/app\/dist .*$/m, ''), /dist\/cli\/main\.js \(imported by the launcher\) is not copied/],
    ['config not copied', (t) => t.replace(/^COPY config .*$/m, ''), /config\/default\.json \(the default settings\) is not copied/],
  ];
  for (const [name, mutate, expected] of mutations) {
    test(name, () => {
      const text = mutate(DOCKERFILE);
      assert.notEqual(text, DOCKERFILE, 'the mutation applies');
      const found = problems(text, { built: false });
      assert.ok(
        found.some((p) => expected.test(p)),
        `expected ${expected}, got ${JSON.stringify(found)}`,
      );
    });
  }
});

describe('docker run IMAGE ARGS: the ENTRYPOINT plus the arguments, run from the repository', () => {
  before(assertBuilt);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-docker-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toUpperCase().startsWith('PDU_PROXY_')));

  /** What `docker run IMAGE ...args` would run: the exec-form ENTRYPOINT with the args appended. */
  function dockerRun(args: string[]) {
    const { repoScript } = entry();
    const r = spawnSync(process.execPath, [path.join(REPO_ROOT, repoScript), ...args], { cwd: dir, env, encoding: 'utf8', timeout: 20_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  test('--version', () => {
    const r = dockerRun(['--version']);
    assert.equal(r.status, 0);
    assert.equal(r.stdout, `${pkg.version}\n`);
  });

  test('arguments reach the CLI: --max-pdu 12XB is rejected by name', () => {
    const r = dockerRun(['--upstream', 'pacs:104', '--max-pdu', '12XB']);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, 'dicom-pdu-proxy: --max-pdu: "12XB" is not a size (bytes, or a number with KB/MB/GB)\n');
  });
});

describe('.dockerignore', () => {
  const patterns = fs.readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n');
  const stages = parseDockerfile(DOCKERFILE);

  test('sends every file the Dockerfile copies from the build context', () => {
    const sources = stages.flatMap((s) => s.copies.filter((c) => c.from === undefined).flatMap((c) => c.sources));
    assert.ok(sources.length > 0);
    for (const source of sources) {
      const files = isDir(source) ? walk(source) : [source];
      assert.ok(files.length > 0, `${source} has files`);
      for (const file of files) assert.equal(dockerignored(patterns, file), false, `${file} reaches the build`);
    }
  });

  test("keeps the host's builds, dependencies, history and logs out", () => {
    for (const file of ['node_modules/commander/package.json', 'dist/cli/main.js', '.git/HEAD', 'chunks.csv', 'results/run.csv', 'test/unit/cli.test.ts', '.tmp/x.ts']) {
      assert.equal(dockerignored(patterns, file), true, `${file} is left out of the build context`);
    }
  });
});

function walk(dir: string): string[] {
  return fs.readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true }).flatMap((d) => {
    const rel = path.posix.join(dir, d.name);
    return d.isDirectory() ? walk(rel) : [rel];
  });
}

describe('HEALTHCHECK', () => {
  const stages = parseDockerfile(DOCKERFILE);
  const final = stages.at(-1)!;

  /** The HEALTHCHECK's command (exec form), or a problem. */
  function healthcheck(text: string): string[] | string {
    const f = parseDockerfile(text).at(-1)!;
    const hc = last(f, 'HEALTHCHECK');
    if (!hc) return 'no HEALTHCHECK';
    const cmd = /\bCMD\s+(.*)$/.exec(hc.args)?.[1];
    if (cmd === undefined) return `HEALTHCHECK ${hc.args} has no CMD`;
    return execForm(cmd) ?? `HEALTHCHECK CMD ${cmd} is in shell form`;
  }

  test('runs bin/healthcheck.js of the image with node, in exec form', () => {
    const argv = healthcheck(DOCKERFILE);
    assert.ok(Array.isArray(argv), String(argv));
    assert.equal(argv[0], 'node');
    assert.equal(imageToRepo(stages, final, argv[1]!, isDir), 'bin/healthcheck.js');
  });

  test('the image sets PDU_PROXY_HEALTH (the probe reads it) and exposes its port', () => {
    const env = final.instructions
      .filter((i) => i.keyword === 'ENV')
      .map((i) => i.args)
      .join(' ');
    const port = /\bPDU_PROXY_HEALTH=(?:[^\s:]*:)?(\d+)\b/.exec(env)?.[1];
    assert.ok(port, `ENV PDU_PROXY_HEALTH=[HOST:]PORT in ${env}`);
    const exposed = final.instructions.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
    assert.ok(exposed.includes(port), `EXPOSE ${port}`);
  });

  test('a shell-form or missing HEALTHCHECK is caught', () => {
    assert.match(String(healthcheck(DOCKERFILE.replace(/CMD \[.*\]$/m, 'CMD node /app/bin/healthcheck.js'))), /shell form/);
    assert.equal(healthcheck(DOCKERFILE.replace(/^HEALTHCHECK .*$/m, '')), 'no HEALTHCHECK');
  });

  test('bin/healthcheck.js: exit 0 against a ready proxy, 1 when nothing answers', async () => {
    assertBuilt();
    const { freePort } = await import('../helpers/ports.js');
    const { spawn } = await import('node:child_process');
    const [listen, health] = [await freePort(), await freePort()];
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toUpperCase().startsWith('PDU_PROXY_')));
    const proxy = spawn(
      process.execPath,
      [path.join(REPO_ROOT, 'bin', 'dicom-pdu-proxy.js'), '--listen', `127.0.0.1:${listen}`, '--upstream', '127.0.0.1:9', '--health', `127.0.0.1:${health}`],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        let out = '';
        proxy.stdout.setEncoding('utf8').on('data', (c: string) => {
          out += c;
          if (out.includes('"msg":"listening"')) resolve();
        });
        proxy.once('exit', () => reject(new Error(`proxy exited: ${out}`)));
      });
      const probe = (value: string) =>
        spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin', 'healthcheck.js')], { env: { ...env, PDU_PROXY_HEALTH: value }, encoding: 'utf8', timeout: 10_000 });
      const ok = probe(`0.0.0.0:${health}`);
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(ok.stdout, /\/readyz: 200 ready/);
      const down = probe(`127.0.0.1:${listen === 1 ? 2 : 1}`);
      assert.equal(down.status, 1);
    } finally {
      proxy.kill('SIGTERM');
    }
  });
});
