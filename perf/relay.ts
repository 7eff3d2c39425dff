// npm run bench:relay — DCMTK storescu --repeat N of a 16 MiB image to storescp --ignore, through:
// a direct connection, a plain Node socket.pipe relay, HAProxy (tcp mode) and socat when installed, and
// dicom-pdu-proxy with the chunk CSV off and on, with the messages CSV on (proxy-messages), and with
// --metrics on (proxy-metrics, not in the default targets), with the --pcap capture on (proxy-pcap, and
// proxy-pcap-null writing it to /dev/null; not in the default targets), and with the optional start-up malloc
// tuning (proxy-tuned; proxy-untuned is the default proxy, named for older commands; not in the default targets:
// see docs/PERFORMANCE.md). Rounds are interleaved (every target once per round, in a
// rotating order) so that machine noise hits all targets alike; medians are compared.
//
// Options: --rounds N (default 7), --repeat N images per association (default 20 with one association at a
// time, 4 with several), --pdu 4KB,16KB,128KB, --image-bytes N (default 16 MiB of pixel data),
// --targets direct,pipe,haproxy,socat,proxy,proxy-csv, --warmup N (default 2): untimed runs of every target
// before the rounds. A fresh Node relay spends its first run compiling its hot code (V8's optimising compiler
// took 29% of the proxy's CPU samples in a first 16 KB run): that is a once-per-process cost, not a per-byte
// one, so it is kept out of the medians and shown on its own (the table's last column, "warm-up CPU s": the
// first run's; at 4 KB with the CSV on, V8 was still tiering up in the second and third runs of 336 MB).
//
// --parallel N[,M...] (default 1,8): N associations at once per run (N storescu started together, each with
// its own --repeat), for every N listed; with N > 1 the SCP is `storescp --fork --ignore` (one process per
// association, so it is not serialised). Wall time is from the first start to the last exit. Every table
// also gives each relay's CPU (user + system, from /proc/PID/stat before and after the run, the process, its
// reaped children and its live descendants), that CPU per GB relayed (dataset bytes sent, 1 GB = 1e9 B), its
// ratio to HAProxy's (stunnel's with --tls) and the page faults (minor + major) per run. "machine busy" is the
// share of all cores' time that was not idle during the run (/proc/stat): near 100%, the machine itself is the
// bottleneck (peers and relay share its cores), and a relay using more cores (--workers) cannot go faster.
//
// --peers raw (default dcmtk): cheap peers instead of storescu/storescp, so that the relay is the
// bottleneck, not the SCU or the SCP (perf/raw-peers.ts): one sender process opening N associations at once
// and writing whole P-DATA-TF PDUs from one prebuilt block, and a sink that reads and discards, answering
// only the association, each C-STORE and the release. The time is the sender's own (connect to last
// release). Example, the proxy as the bottleneck at 8 associations:
//   npm run bench:relay -- --peers raw --parallel 8 --pdu 16KB --targets direct,haproxy,proxy,proxy-csv
// --variant 'NAME=BASE --flag value ...' (repeatable): a target NAME that is the proxy target BASE (proxy,
// proxy-csv, proxy-messages, ...) with more flags on its command line, to list in --targets, e.g.
//   --variant 'proxy-csv-w2=proxy-csv --workers 2' --targets haproxy,proxy-csv,proxy-csv-w2
//
// --tls: the same over DICOM TLS, storescu +tls → relay → storescp +tls, with throwaway certificates: direct
// TLS (direct-tls), stunnel re-encrypting (stunnel: one process, a TLS server service chained to a TLS client
// service, when stunnel4 is installed) and the proxy re-encrypting (proxy-tls: --tls-cert + --upstream-tls).
// Ratios are against stunnel. Default targets then: direct-tls,stunnel,proxy-tls.
// --ref DIR: another build of the proxy (a checkout with dist/ built, e.g. of main) as targets proxy-ref,
// proxy-ref-csv and proxy-ref-pcap (and proxy-ref-tls with --tls), to compare a change with its base in the same
// interleaved run.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseSize } from '../src/values/size.js';
import { writeTestDicom } from '../src/dicom/synthetic.js';
import { busyShare, machineTicks } from './machine.js';
import { freePort } from '../test/helpers/ports.js';
import { killAll, runToExit, spawnPeer, waitForPort } from '../test/helpers/procs.js';
import type { PeerProcess } from '../test/helpers/procs.js';
import { REPO_ROOT } from '../test/helpers/proxy.js';
import { dcmtkTls, makeTestPki } from '../test/helpers/certs.js';
import type { TestPki } from '../test/helpers/certs.js';

interface Args {
  rounds: number;
  /** Untimed runs of every target before the rounds (the proxy's JIT compiles its hot code in the first). */
  warmup: number;
  repeat: number;
  pdus: number[];
  imageBytes: number;
  targets: string[];
  tls: boolean;
  ref: string | undefined;
  /** Associations at once, one table each. */
  parallel: number[];
  /** Images per association when --repeat is not given: with one association, and with several. */
  repeatGiven: boolean;
  peers: 'dcmtk' | 'raw';
  /** Target name → [base target, extra proxy flags]. */
  variants: Map<string, { base: string; extra: string[] }>;
}

function parseArgs(argv: string[]): Args {
  const get = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const all = (flag: string): string[] => argv.flatMap((a, i) => (a === flag && argv[i + 1] !== undefined ? [argv[i + 1]!] : []));
  const variants = new Map<string, { base: string; extra: string[] }>();
  for (const v of all('--variant')) {
    const m = /^([\w.-]+)=(\S+)\s*(.*)$/.exec(v);
    if (!m) throw new Error(`--variant ${v}: expected 'NAME=BASE --flag ...'`);
    variants.set(m[1]!, { base: m[2]!, extra: m[3]!.split(/\s+/).filter((x) => x !== '') });
  }
  const peers = get('--peers') ?? 'dcmtk';
  if (peers !== 'dcmtk' && peers !== 'raw') throw new Error(`--peers ${peers}: expected dcmtk or raw`);
  if (peers === 'raw' && argv.includes('--tls')) throw new Error('--peers raw does not speak TLS');
  const parallel = (get('--parallel') ?? '1,8').split(',').map(Number);
  if (parallel.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--parallel ${get('--parallel')}: expected counts of 1 or more`);
  const warmup = get('--warmup');
  if (warmup !== undefined && !/^\d+$/.test(warmup)) throw new Error(`--warmup ${warmup}: expected a count of 0 or more`);
  return {
    rounds: Number(get('--rounds') ?? 7),
    warmup: Number(get('--warmup') ?? 2),
    repeat: Number(get('--repeat') ?? 20),
    repeatGiven: get('--repeat') !== undefined,
    parallel,
    peers,
    variants,
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

async function startTarget(
  name: string,
  scpPort: number,
  dir: string,
  ref: string | undefined,
  pki?: TestPki,
  variant?: { base: string; extra: string[] },
): Promise<Target | undefined> {
  const kind = variant?.base ?? name;
  if (kind === 'direct' || kind === 'direct-tls') return { name, port: scpPort };
  if (variant && !kind.startsWith('proxy')) throw new Error(`--variant ${name}: ${kind} is not a proxy target`);
  const port = await freePort();
  let proc: PeerProcess;
  switch (kind) {
    case 'pipe':
      proc = spawnPeer(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'perf', 'pipe-relay.ts'), String(port), String(scpPort)], { name, cwd: REPO_ROOT });
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
    case 'proxy-tuned':
    case 'proxy-ref':
    case 'proxy-ref-csv':
    case 'proxy-ref-pcap': {
      const isRef = kind.startsWith('proxy-ref');
      if (isRef && ref === undefined) throw new Error(`${name} needs --ref DIR`);
      const root = isRef ? path.resolve(ref!) : REPO_ROOT;
      const args = [path.join(root, 'bin', 'dicom-pdu-proxy.js'), '--listen', `127.0.0.1:${port}`, '--upstream', `127.0.0.1:${scpPort}`, '--log-level', 'warn'];
      if (kind === 'proxy-csv' || kind === 'proxy-ref-csv') args.push('--csv', path.join(dir, `${name}.csv`));
      if (kind === 'proxy-messages') args.push('--messages-csv', path.join(dir, `${name}-messages.csv`));
      if (kind === 'proxy-metrics') args.push('--metrics', '127.0.0.1:0');
      // Rotation bounds the disk a long benchmark fills (640 MiB per run of 20 16 MiB images, both legs).
      if (kind === 'proxy-pcap' || kind === 'proxy-ref-pcap') args.push('--pcap', path.join(dir, `${name}.pcapng`), '--pcap-max-size', '256MB', '--pcap-max-files', '2');
      // proxy-pcap-null: all of the capture's work but the disk (the kernel's page-cache writes).
      if (kind === 'proxy-pcap-null') args.push('--pcap', '/dev/null');
      if (variant) args.push(...variant.extra);
      // proxy-tuned: the same proxy with the start-up malloc tuning (src/proxy/malloc-threshold.ts), which is off by default.
      const tuning = kind === 'proxy-tuned' ? 'on' : kind === 'proxy-untuned' ? 'off' : undefined;
      const env = tuning ? { ...process.env, DICOM_PDU_PROXY_MALLOC_TUNING: tuning } : process.env;
      proc = spawnPeer(process.execPath, args, { name, cwd: root, env });
      break;
    }
    case 'proxy-tls':
    case 'proxy-ref-tls': {
      if (!pki) throw new Error(`${name} needs --tls`);
      if (kind === 'proxy-ref-tls' && ref === undefined) throw new Error(`${name} needs --ref DIR`);
      const root = kind === 'proxy-ref-tls' ? path.resolve(ref!) : REPO_ROOT;
      const args = [path.join(root, 'bin', 'dicom-pdu-proxy.js'), '--listen', `127.0.0.1:${port}`, '--upstream', `127.0.0.1:${scpPort}`, '--log-level', 'warn'];
      args.push('--tls-cert', pki.proxy.cert, '--tls-key', pki.proxy.key, '--upstream-tls', '--upstream-tls-ca', pki.ca);
      if (variant) args.push(...variant.extra);
      proc = spawnPeer(process.execPath, args, { name, cwd: root });
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
  /** Page faults, minor + major (a minor one: a page the kernel had to map in again). */
  faults: number;
}

/** /proc/<pid>/stat fields after "(comm) ", or undefined when it is gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(') ') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Live descendants of `pid` (children of children included), from /proc. */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f) parent.set(Number(entry), Number(f[1]));
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const [child, pp] of parent) {
      if (pp === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

/**
 * What a relay has used so far, from /proc/<pid>/stat: the process, its children it has reaped (cutime,
 * cstime: socat's per-connection forks) and its live descendants (cluster workers); undefined elsewhere.
 */
function procUsage(pid: number | undefined): ProcUsage | undefined {
  if (pid === undefined) return undefined;
  // Fields after "(comm) ": state is [0], ppid [1], minflt [7], majflt [9], utime [11], stime [12], cutime [13],
  // cstime [14] (clock ticks, USER_HZ = 100).
  const own = statFields(pid);
  if (!own) return undefined;
  let user = Number(own[11]) + Number(own[13]);
  let sys = Number(own[12]) + Number(own[14]);
  let faults = Number(own[7]) + Number(own[9]);
  for (const child of descendants(pid)) {
    const f = statFields(child);
    if (!f) continue;
    user += Number(f[11]);
    sys += Number(f[12]);
    faults += Number(f[7]) + Number(f[9]);
  }
  return { cpu: (user + sys) / 100, sys: sys / 100, faults };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Start the SCP (storescp, forking per association when several come at once, or the raw sink). */
async function startScp(args: Args, pdu: number, parallel: number, scpTls: string[]): Promise<{ port: number; process: PeerProcess }> {
  const port = await freePort();
  const proc =
    args.peers === 'raw'
      ? spawnPeer(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'perf', 'raw-peers.ts'), 'sink', String(port), String(pdu)], { name: 'raw-sink', cwd: REPO_ROOT })
      : spawnPeer('storescp', [...scpTls, ...(parallel > 1 ? ['--fork'] : []), '--ignore', '--max-pdu', String(pdu), '--aetitle', 'STORESCP', String(port)], {
          name: 'storescp',
        });
  await waitForPort(port, 15_000);
  return { port, process: proc };
}

/** One run through a target, `parallel` associations at once, `repeat` images each: its time in seconds, and how busy the machine's cores were meanwhile (0-1). */
async function runOnce(
  args: Args,
  pdu: number,
  parallel: number,
  repeat: number,
  port: number,
  image: string,
  scuTls: string[],
): Promise<{ seconds: number; busy: number | undefined }> {
  if (args.peers === 'raw') {
    const r = await runToExit(
      process.execPath,
      ['--import', 'tsx', path.join(REPO_ROOT, 'perf', 'raw-peers.ts'), 'send', String(port), String(parallel), String(repeat), String(args.imageBytes)],
      { timeoutMs: 300_000, name: 'raw-send', cwd: REPO_ROOT },
    );
    if (r.code !== 0) throw new Error(`raw sender failed: ${r.stderr.slice(-500)}`);
    // The sender measures from its first connect to its last release, leaving out its own start-up.
    const result = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ms: number; busy?: number };
    return { seconds: result.ms / 1000, busy: result.busy };
  }
  const machineBefore = machineTicks();
  const t0 = performance.now();
  const runs = await Promise.all(
    Array.from({ length: parallel }, () =>
      runToExit('storescu', [...scuTls, '-aec', 'STORESCP', '--max-pdu', String(pdu), '--repeat', String(repeat), '127.0.0.1', String(port), image], {
        timeoutMs: 300_000,
        name: 'storescu',
      }),
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  const busy = busyShare(machineBefore, machineTicks());
  const failed = runs.find((r) => r.code !== 0);
  if (failed) throw new Error(`storescu failed: ${failed.stderr.slice(-500)}`);
  return { seconds, busy };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-relay-'));
  const image = path.join(dir, 'image.dcm');
  if (args.peers === 'dcmtk') await writeTestDicom(image, { pixelBytes: args.imageBytes, seed: 7 });
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const pki = args.tls ? makeTestPki() : undefined;
  // storescu +tls verifies the relay's certificate (CN/SAN 127.0.0.1) against the throwaway CA; the SCP asks for no client certificate.
  const scuTls = pki ? dcmtkTls(pki.modality, pki.ca) : [];
  const scpTls = pki ? ['+tls', pki.scp.key, pki.scp.cert, '-pw', '-ic'] : [];
  const repeatFor = (parallel: number): number => (args.repeatGiven || parallel === 1 ? args.repeat : 4);
  const mib = (args.imageBytes / 1048576).toFixed(0);
  if (args.peers === 'raw') {
    console.log(`bench:relay --peers raw — N associations at once (perf/raw-peers.ts), each storing a ${mib} MiB dataset R times, to a discarding sink`);
  } else {
    console.log(`bench:relay — N storescu${pki ? ' +tls' : ''} at once, each --repeat R of a ${mib} MiB image, to storescp${pki ? ' +tls' : ''} --ignore (--fork when N > 1)`);
  }
  console.log(
    `machine: ${os.cpus().length} x ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `${args.warmup > 0 ? `${args.warmup} untimed warm-up run(s) of every target (the first one's relay CPU is the last column: a fresh Node process compiles its hot code then), then ` : ''}${args.rounds} interleaved rounds, medians\n`,
  );
  try {
    for (const pdu of args.pdus) {
      for (const parallel of args.parallel) {
        const repeat = repeatFor(parallel);
        const scp = await startScp(args, pdu, parallel, scpTls);
        const targets: Target[] = [];
        for (const name of args.targets) {
          const t = await startTarget(name, scp.port, dir, args.ref, pki, args.variants.get(name));
          if (t) targets.push(t);
          else console.log(`(${name} not installed: skipped)`);
        }
        const times = new Map<string, number[]>(targets.map((t) => [t.name, []]));
        const usage = new Map<string, ProcUsage[]>(targets.map((t) => [t.name, []]));
        const warm = new Map<string, ProcUsage>();
        const busy = new Map<string, number[]>(targets.map((t) => [t.name, []]));
        for (let w = 0; w < args.warmup; w++) {
          for (const t of targets) {
            const before = procUsage(t.process?.child.pid);
            await runOnce(args, pdu, parallel, repeat, t.port, image, scuTls).catch((err: Error) => {
              throw new Error(`via ${t.name} (warm-up): ${err.message}`);
            });
            const after = procUsage(t.process?.child.pid);
            if (w === 0 && before !== undefined && after !== undefined)
              warm.set(t.name, { cpu: after.cpu - before.cpu, sys: after.sys - before.sys, faults: after.faults - before.faults });
          }
          process.stderr.write(`  ${pdu} B x ${parallel}: warm-up ${w + 1}/${args.warmup}\r`);
        }
        for (let round = 0; round < args.rounds; round++) {
          const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
          for (const t of order) {
            const before = procUsage(t.process?.child.pid);
            const { seconds, busy: machineBusy } = await runOnce(args, pdu, parallel, repeat, t.port, image, scuTls).catch((err: Error) => {
              throw new Error(`via ${t.name}: ${err.message}`);
            });
            times.get(t.name)!.push(seconds);
            if (machineBusy !== undefined) busy.get(t.name)!.push(machineBusy);
            const after = procUsage(t.process?.child.pid);
            if (before !== undefined && after !== undefined) {
              usage.get(t.name)!.push({ cpu: after.cpu - before.cpu, sys: after.sys - before.sys, faults: after.faults - before.faults });
            }
          }
          process.stderr.write(`  ${pdu} B x ${parallel}: round ${round + 1}/${args.rounds}\r`);
        }
        process.stderr.write('\n');
        printTable(args, pdu, parallel, repeat, targets, times, usage, warm, busy);
        for (const t of targets) await t.process?.kill();
        await scp.process.kill();
      }
    }
  } finally {
    await killAll();
    pki?.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function printTable(
  args: Args,
  pdu: number,
  parallel: number,
  repeat: number,
  targets: Target[],
  times: Map<string, number[]>,
  usage: Map<string, ProcUsage[]>,
  warm: Map<string, ProcUsage>,
  busy: Map<string, number[]>,
): void {
  const refName = args.tls ? 'stunnel' : 'haproxy';
  const ref = times.has(refName) ? median(times.get(refName)!) : undefined;
  const directName = args.tls ? 'direct-tls' : 'direct';
  const direct = times.has(directName) ? median(times.get(directName)!) : undefined;
  const bytes = parallel * repeat * args.imageBytes;
  const mb = bytes / 1e6;
  const cpuPerGb = (name: string): number | undefined => {
    const u = usage.get(name);
    return u && u.length ? median(u.map((x) => x.cpu)) / (bytes / 1e9) : undefined;
  };
  const refCpu = cpuPerGb(refName);
  const scp = args.peers === 'raw' ? 'raw sink' : `storescp${parallel > 1 ? ' --fork' : ''}`;
  console.log(
    `PDU ${pdu} bytes, ${parallel} association(s) at once, ${repeat} x ${(args.imageBytes / 1048576).toFixed(0)} MiB each (${scp} --max-pdu ${pdu}; ${mb.toFixed(0)} MB per run):`,
  );
  console.log(
    `  target           median s   min s   max s    MB/s   speed vs ${refName.padEnd(8)}   vs direct   relay CPU s/run   of it sys   CPU s/GB   CPU/GB vs ${refName.padEnd(8)}   page faults/run   warm-up CPU s   machine busy`,
  );
  for (const t of targets) {
    const v = times.get(t.name)!;
    const m = median(v);
    const vsRef = ref ? (ref / m).toFixed(2) + 'x' : '-';
    const vsDirect = direct ? (direct / m).toFixed(2) + 'x' : '-';
    const u = usage.get(t.name)!;
    const med = (pick: (x: ProcUsage) => number, digits: number): string => (u.length ? median(u.map(pick)).toFixed(digits) : '-');
    const perGb = cpuPerGb(t.name);
    const perGbVsRef = perGb !== undefined && refCpu ? (perGb / refCpu).toFixed(2) + 'x' : '-';
    console.log(
      [
        `  ${t.name.padEnd(14)}`,
        m.toFixed(3).padStart(9),
        Math.min(...v)
          .toFixed(3)
          .padStart(7),
        Math.max(...v)
          .toFixed(3)
          .padStart(7),
        (mb / m).toFixed(0).padStart(7),
        vsRef.padStart(18),
        vsDirect.padStart(11),
        med((x) => x.cpu, 2).padStart(17),
        med((x) => x.sys, 2).padStart(11),
        (perGb === undefined ? '-' : perGb.toFixed(3)).padStart(10),
        perGbVsRef.padStart(20),
        med((x) => x.faults, 0).padStart(17),
        (warm.has(t.name) ? warm.get(t.name)!.cpu.toFixed(2) : '-').padStart(15),
        (busy.get(t.name)!.length ? `${(median(busy.get(t.name)!) * 100).toFixed(0)}%` : '-').padStart(14),
      ].join(' '),
    );
  }
  console.log('');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
