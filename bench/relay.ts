// npm run bench:relay — DCMTK storescu --repeat N of a 16 MiB image to storescp --ignore, through:
// a direct connection, a plain Node socket.pipe relay, HAProxy (tcp mode) and socat when installed, and
// dicom-pdu-proxy with the chunk CSV off and on, with the messages CSV on (proxy-messages), and with
// --metrics on (proxy-metrics, not in the default targets), with the --pcap capture on (proxy-pcap, and
// proxy-pcap-null writing it to /dev/null; not in the default targets), and without its start-up malloc tuning
// (proxy-untuned, not in the default targets: see docs/PERFORMANCE.md). Rounds are interleaved (every target once per round, in a
// rotating order) so that machine noise hits all targets alike; medians are compared.
//
// Options: --rounds N (default 7), --repeat N images per run (default 20), --pdu 4KB,16KB,128KB
// --image-bytes N (default 16 MiB of pixel data), --targets direct,pipe,haproxy,socat,proxy,proxy-csv
//
// --tls: the same over DICOM TLS, storescu +tls → relay → storescp +tls, with throwaway certificates: direct
// TLS (direct-tls), stunnel re-encrypting (stunnel: one process, a TLS server service chained to a TLS client
// service, when stunnel4 is installed) and the proxy re-encrypting (proxy-tls: --tls-cert + --upstream-tls).
// Ratios are against stunnel. Default targets then: direct-tls,stunnel,proxy-tls.
// --ref DIR: another build of the proxy (a checkout with dist/ built, e.g. of main) as targets proxy-ref,
// proxy-ref-csv and proxy-ref-pcap, to compare a change with its base in the same interleaved run.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseSize } from '../src/values/size.js';
import { writeTestDicom } from '../src/dicom/synthetic.js';
import { freePort } from '../test/helpers/ports.js';
import { killAll, runToExit, spawnPeer, waitForPort } from '../test/helpers/procs.js';
import type { PeerProcess } from '../test/helpers/procs.js';
import { REPO_ROOT } from '../test/helpers/proxy.js';
import { dcmtkTls, makeTestPki } from '../test/helpers/certs.js';
import type { TestPki } from '../test/helpers/certs.js';

interface Args {
  rounds: number;
  repeat: number;
  pdus: number[];
  imageBytes: number;
  targets: string[];
  tls: boolean;
  ref: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    rounds: Number(get('--rounds') ?? 7),
    repeat: Number(get('--repeat') ?? 20),
    pdus: (get('--pdu') ?? '16KB,4KB,128KB').split(',').map(parseSize),
    imageBytes: parseSize(get('--image-bytes') ?? '16MB'),
    targets: (get('--targets') ?? (argv.includes('--tls') ? 'direct-tls,stunnel,proxy-tls' : 'direct,pipe,haproxy,socat,proxy,proxy-csv')).split(','),
    tls: argv.includes('--tls'),
    ref: get('--ref'),
  };
}

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

interface Target {
  name: string;
  port: number;
  process?: PeerProcess;
}

async function startTarget(name: string, scpPort: number, dir: string, ref: string | undefined, pki?: TestPki): Promise<Target | undefined> {
  if (name === 'direct' || name === 'direct-tls') return { name, port: scpPort };
  const port = await freePort();
  let proc: PeerProcess;
  switch (name) {
    case 'pipe':
      proc = spawnPeer(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bench', 'pipe-relay.ts'), String(port), String(scpPort)], { name, cwd: REPO_ROOT });
      break;
    case 'haproxy': {
      if (!has('haproxy')) return undefined;
      const cfg = path.join(dir, 'haproxy.cfg');
      fs.writeFileSync(
        cfg,
        [
          'global',
          '  maxconn 256',
          'defaults',
          '  mode tcp',
          '  timeout connect 5s',
          '  timeout client 60s',
          '  timeout server 60s',
          'frontend dicom',
          `  bind 127.0.0.1:${port}`,
          '  default_backend pacs',
          'backend pacs',
          `  server scp 127.0.0.1:${scpPort}`,
          '',
        ].join('\n'),
      );
      proc = spawnPeer('haproxy', ['-db', '-f', cfg], { name });
      break;
    }
    case 'socat':
      if (!has('socat')) return undefined;
      proc = spawnPeer('socat', [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${scpPort}`], { name });
      break;
    case 'proxy':
    case 'proxy-csv':
    case 'proxy-messages':
    case 'proxy-metrics':
    case 'proxy-pcap':
    case 'proxy-pcap-null':
    case 'proxy-untuned':
    case 'proxy-ref':
    case 'proxy-ref-csv':
    case 'proxy-ref-pcap': {
      const isRef = name.startsWith('proxy-ref');
      if (isRef && ref === undefined) throw new Error(`${name} needs --ref DIR`);
      const root = isRef ? path.resolve(ref!) : REPO_ROOT;
      const args = [path.join(root, 'bin', 'dicom-pdu-proxy.js'), '--listen', `127.0.0.1:${port}`, '--upstream', `127.0.0.1:${scpPort}`, '--log-level', 'warn'];
      if (name === 'proxy-csv' || name === 'proxy-ref-csv') args.push('--csv', path.join(dir, `${name}.csv`));
      if (name === 'proxy-messages') args.push('--messages-csv', path.join(dir, 'messages.csv'));
      if (name === 'proxy-metrics') args.push('--metrics', '127.0.0.1:0');
      // Rotation bounds the disk a long benchmark fills (640 MiB per run of 20 16 MiB images, both legs).
      if (name === 'proxy-pcap' || name === 'proxy-ref-pcap') args.push('--pcap', path.join(dir, `${name}.pcapng`), '--pcap-max-size', '256MB', '--pcap-max-files', '2');
      // proxy-pcap-null: all of the capture's work but the disk (the kernel's page-cache writes).
      if (name === 'proxy-pcap-null') args.push('--pcap', '/dev/null');
      // proxy-untuned: the same proxy without its start-up malloc tuning (src/proxy/malloc-threshold.ts).
      const env = name === 'proxy-untuned' ? { ...process.env, DICOM_PDU_PROXY_MALLOC_TUNING: 'off' } : process.env;
      proc = spawnPeer(process.execPath, args, { name, cwd: root, env });
      break;
    }
    case 'proxy-tls': {
      if (!pki) throw new Error('proxy-tls needs --tls');
      const args = [path.join(REPO_ROOT, 'bin', 'dicom-pdu-proxy.js'), '--listen', `127.0.0.1:${port}`, '--upstream', `127.0.0.1:${scpPort}`, '--log-level', 'warn'];
      args.push('--tls-cert', pki.proxy.cert, '--tls-key', pki.proxy.key, '--upstream-tls', '--upstream-tls-ca', pki.ca);
      proc = spawnPeer(process.execPath, args, { name, cwd: REPO_ROOT });
      break;
    }
    case 'stunnel': {
      if (!pki) throw new Error('stunnel needs --tls');
      const stunnel = has('stunnel4') ? 'stunnel4' : has('stunnel') ? 'stunnel' : undefined;
      if (!stunnel) return undefined;
      // TLS in (server), clear over the loopback to the second service, TLS out (client, verifying the SCP).
      const mid = await freePort();
      const cfg = path.join(dir, 'stunnel.conf');
      fs.writeFileSync(
        cfg,
        [
          'foreground = yes',
          'pid =',
          'debug = 3',
          '[tls-in]',
          `accept = 127.0.0.1:${port}`,
          `connect = 127.0.0.1:${mid}`,
          `cert = ${pki.proxy.cert}`,
          `key = ${pki.proxy.key}`,
          'sslVersionMin = TLSv1.2',
          '[tls-out]',
          'client = yes',
          `accept = 127.0.0.1:${mid}`,
          `connect = 127.0.0.1:${scpPort}`,
          `CAfile = ${pki.ca}`,
          'verifyChain = yes',
          'checkIP = 127.0.0.1',
          'sslVersionMin = TLSv1.2',
          '',
        ].join('\n'),
      );
      proc = spawnPeer(stunnel, [cfg], { name });
      break;
    }
    default:
      throw new Error(`unknown target ${name}`);
  }
  await waitForPort(port, 15_000);
  return { name, port, process: proc };
}

interface ProcUsage {
  /** User + system CPU seconds. */
  cpu: number;
  /** System CPU seconds alone. */
  sys: number;
  /** Minor page faults (pages the kernel had to map in again). */
  minflt: number;
}

/** What a process has used so far, from /proc/<pid>/stat; undefined elsewhere. */
function procUsage(pid: number | undefined): ProcUsage | undefined {
  if (pid === undefined) return undefined;
  try {
    // Fields after "(comm) ": state is [0], minflt [7], utime [11], stime [12] (clock ticks, USER_HZ = 100).
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const sys = Number(fields[12]) / 100;
    return { cpu: Number(fields[11]) / 100 + sys, sys, minflt: Number(fields[7]) };
  } catch {
    return undefined;
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-relay-'));
  const image = path.join(dir, 'image.dcm');
  await writeTestDicom(image, { pixelBytes: args.imageBytes, seed: 7 });
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const pki = args.tls ? makeTestPki() : undefined;
  // storescu +tls verifies the relay's certificate (CN/SAN 127.0.0.1) against the throwaway CA; the SCP asks for no client certificate.
  const scuTls = pki ? dcmtkTls(pki.modality, pki.ca) : [];
  const scpTls = pki ? ['+tls', pki.scp.key, pki.scp.cert, '-pw', '-ic'] : [];
  console.log(
    `bench:relay — storescu${pki ? ' +tls' : ''} --repeat ${args.repeat} of a ${(args.imageBytes / 1048576).toFixed(0)} MiB image to storescp${pki ? ' +tls' : ''} --ignore`,
  );
  console.log(`machine: ${os.cpus().length} x ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; ${args.rounds} interleaved rounds, medians\n`);
  try {
    for (const pdu of args.pdus) {
      const scpPort = await freePort();
      const scp = spawnPeer('storescp', [...scpTls, '--ignore', '--max-pdu', String(pdu), '--aetitle', 'STORESCP', String(scpPort)], { name: 'storescp' });
      await waitForPort(scpPort, 10_000);
      const targets: Target[] = [];
      for (const name of args.targets) {
        const t = await startTarget(name, scpPort, dir, args.ref, pki);
        if (t) targets.push(t);
        else console.log(`(${name} not installed: skipped)`);
      }
      const times = new Map<string, number[]>(targets.map((t) => [t.name, []]));
      const usage = new Map<string, ProcUsage[]>(targets.map((t) => [t.name, []]));
      for (let round = 0; round < args.rounds; round++) {
        const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
        for (const t of order) {
          const before = procUsage(t.process?.child.pid);
          const r = await runToExit('storescu', [...scuTls, '-aec', 'STORESCP', '--max-pdu', String(pdu), '--repeat', String(args.repeat), '127.0.0.1', String(t.port), image], {
            timeoutMs: 300_000,
            name: 'storescu',
          });
          if (r.code !== 0) throw new Error(`storescu via ${t.name} failed: ${r.stderr.slice(-500)}`);
          times.get(t.name)!.push(r.durationMs / 1000);
          const after = procUsage(t.process?.child.pid);
          if (before !== undefined && after !== undefined) {
            usage.get(t.name)!.push({ cpu: after.cpu - before.cpu, sys: after.sys - before.sys, minflt: after.minflt - before.minflt });
          }
        }
        process.stderr.write(`  ${pdu} B: round ${round + 1}/${args.rounds}\r`);
      }
      process.stderr.write('\n');
      const refName = args.tls ? 'stunnel' : 'haproxy';
      const ref = times.has(refName) ? median(times.get(refName)!) : undefined;
      const directName = args.tls ? 'direct-tls' : 'direct';
      const direct = times.has(directName) ? median(times.get(directName)!) : undefined;
      const mb = (args.repeat * args.imageBytes) / 1e6;
      console.log(`PDU ${pdu} bytes (storescp --max-pdu ${pdu}):`);
      console.log(`  target           median s   min s   max s    MB/s   speed vs ${refName.padEnd(8)}   vs direct   relay CPU s/run   of it sys   page faults/run`);
      for (const t of targets) {
        const v = times.get(t.name)!;
        const m = median(v);
        const vsRef = ref ? (ref / m).toFixed(2) + 'x' : '-';
        const vsDirect = direct ? (direct / m).toFixed(2) + 'x' : '-';
        const u = usage.get(t.name)!;
        const med = (pick: (x: ProcUsage) => number, digits: number): string => (u.length ? median(u.map(pick)).toFixed(digits) : '-');
        console.log(
          `  ${t.name.padEnd(14)} ${m.toFixed(3).padStart(9)} ${Math.min(...v)
            .toFixed(3)
            .padStart(7)} ${Math.max(...v)
            .toFixed(3)
            .padStart(
              7,
            )} ${(mb / m).toFixed(0).padStart(7)} ${vsRef.padStart(18)} ${vsDirect.padStart(11)} ${med((x) => x.cpu, 2).padStart(17)} ${med((x) => x.sys, 2).padStart(11)} ${med((x) => x.minflt, 0).padStart(17)}`,
        );
      }
      console.log('');
      for (const t of targets) await t.process?.kill();
      await scp.kill();
    }
  } finally {
    await killAll();
    pki?.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
