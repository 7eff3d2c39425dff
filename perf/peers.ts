// npm run bench:peers — are bench's own peers fast enough not to be what it measures?
//
// 1. Sender throughput, --direct (no proxy), 4 senders, 16 MiB images, interleaved rounds, medians:
//    - dcmtk:           4 x DCMTK storescu (one association each, --repeat) to `storescp --fork --ignore`
//                       (DCMTK's largest PDU, 128KB: it accepts no more);
//    - builtin->storescp: 4 built-in senders (bench's scu-worker, one association per sender) to the same storescp;
//    - builtin:         4 built-in senders to the built-in SCP announcing 1MB, one association per image (bench's
//                       default) and per sender (builtin-per-sender);
//    - dcmjs->storescp: 4 dcmjs-dimse senders (bench's scu-worker --scu dcmjs, the default before) to that storescp.
//    Aggregate MB/s = all images' bytes / wall time of the round (storescu: process start to exit; built-in:
//    all senders ready to the last response). The ratio to dcmtk is the goal (>= 0.9).
// 2. The built-in SCP's peak RSS (VmHWM) while 4 built-in senders push 64 MiB images in 64 MiB PDUs.
// 3. Every swept size really sent: `bench --pdu 16KB,...,64MB` with 24 MiB images (so 20MB is cut and 64MB
//    is the whole message); the largest P-DATA-TF toward the SCP in each chunk CSV against min(setting, message).
//
// Options: --rounds N (default 5), --repeat N images per sender per round (default 12), --phases 1,2,3,
// --targets dcmtk,builtin->storescp,builtin,builtin-per-sender,dcmjs->storescp (phase 1; dcmtk is the reference)

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { readCsvFile } from '../src/analysis/csv.js';
import { writeTestDicom } from '../src/dicom/synthetic.js';
import { freePort } from '../test/helpers/ports.js';
import { killAll, runToExit, spawnPeer, waitForPort } from '../test/helpers/procs.js';
import type { PeerProcess } from '../test/helpers/procs.js';
import { BIN, REPO_ROOT } from '../test/helpers/proxy.js';

const MB = 1024 * 1024;
const WORKER = path.join(REPO_ROOT, 'dist', 'bench', 'scu-worker.js');
const BUILTIN_SCP = path.join(REPO_ROOT, 'dist', 'bench', 'scp-builtin-process.js');

function arg(flag: string, fallback: string): string {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function startBuiltinScp(maxPdu: number): Promise<{ peer: PeerProcess; port: number }> {
  const peer = spawnPeer(process.execPath, [BUILTIN_SCP, '--port', '0', '--max-pdu', String(maxPdu)], { name: 'builtin scp' });
  const m = await peer.waitForOutput(/^listening (\d+)$/m, 15_000);
  return { peer, port: Number(m[1]) };
}

/** `parallel` built-in senders, `count` images each; resolves with the seconds from all ready to the last response. */
async function builtinSenders(port: number, file: string, parallel: number, count: number, association: string, scu = 'builtin'): Promise<number> {
  let ready = 0;
  let t0 = 0;
  let failures = 0;
  const runs = Array.from({ length: parallel }, async () => {
    const job = { scu, association, host: '127.0.0.1', port, callingAet: 'BENCHPEERS', calledAet: 'ANY-SCP', files: [file], first: 0, count, timeoutMs: 120_000 };
    const w = spawnPeer(process.execPath, [WORKER, JSON.stringify(job)], { name: 'scu-worker' });
    await w.waitForOutput(/"ready":true/, 30_000);
    if (++ready === parallel) t0 = performance.now();
    await w.waitForExit(600_000);
    failures += w.stdout.split('\n').filter((l) => l.includes('"error"') || (l.includes('"status"') && !l.includes('"0000"'))).length;
  });
  // Wait for all to be ready, then time to the last exit.
  await Promise.all(runs);
  if (failures > 0) throw new Error(`${failures} built-in store(s) failed`);
  return (performance.now() - t0) / 1000;
}

async function storescus(port: number, file: string, parallel: number, count: number): Promise<number> {
  const t0 = performance.now();
  const runs = Array.from({ length: parallel }, () =>
    runToExit('storescu', ['-aec', 'STORESCP', '--max-pdu', '131072', '--repeat', String(count), '127.0.0.1', String(port), file], { timeoutMs: 600_000, name: 'storescu' }),
  );
  const results = await Promise.all(runs);
  for (const r of results) if (r.code !== 0) throw new Error(`storescu failed: ${r.stderr.slice(-400)}`);
  return (performance.now() - t0) / 1000;
}

async function throughput(dir: string, rounds: number, repeat: number, targetsWanted: string[]): Promise<void> {
  const parallel = 4;
  const image = await writeTestDicom(path.join(dir, 'image-16MB.dcm'), { pixelBytes: 16 * MB, seed: 11 });
  const bytes = image.datasetLength * parallel * repeat;
  const storescpPort = await freePort();
  const storescp = spawnPeer('storescp', ['--fork', '--ignore', '--max-pdu', '131072', '--aetitle', 'STORESCP', String(storescpPort)], { name: 'storescp' });
  await waitForPort(storescpPort, 10_000);
  const scp = await startBuiltinScp(MB);
  const targets = [
    ['dcmtk', () => storescus(storescpPort, image.path!, parallel, repeat)],
    ['builtin->storescp', () => builtinSenders(storescpPort, image.path!, parallel, repeat, 'per-sender')],
    ['builtin', () => builtinSenders(scp.port, image.path!, parallel, repeat, 'per-image')],
    ['builtin-per-sender', () => builtinSenders(scp.port, image.path!, parallel, repeat, 'per-sender')],
    ['dcmjs->storescp', () => builtinSenders(storescpPort, image.path!, parallel, repeat, 'per-image', 'dcmjs')],
  ].filter(([name]) => targetsWanted.includes(name as string)) as Array<[string, () => Promise<number>]>;
  const rates = new Map<string, number[]>(targets.map(([n]) => [n, []]));
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < targets.length; i++) {
      const [name, run] = targets[(i + round) % targets.length]!;
      rates.get(name)!.push(bytes / MB / (await run()));
    }
    process.stderr.write(`  throughput: round ${round + 1}/${rounds}\r`);
  }
  process.stderr.write('\n');
  const ref = median(rates.get('dcmtk')!);
  console.log(`1. --direct, ${parallel} senders, 16 MiB images, ${repeat} per sender per round, ${rounds} interleaved rounds (aggregate MB/s, MB = 2^20):`);
  console.log('   target                median MB/s   min     max     vs dcmtk');
  for (const [name] of targets) {
    const v = rates.get(name)!;
    console.log(
      `   ${name.padEnd(20)} ${median(v).toFixed(0).padStart(11)} ${Math.min(...v)
        .toFixed(0)
        .padStart(7)} ${Math.max(...v)
        .toFixed(0)
        .padStart(7)} ${(median(v) / ref).toFixed(2).padStart(10)}x`,
    );
  }
  console.log('   (dcmtk: 4 x storescu --repeat to storescp --fork --ignore, 128KB PDUs; builtin->storescp: the built-in sender to that same storescp;');
  console.log('    builtin: the built-in sender to the built-in SCP announcing 1MB, as `bench --direct --pdu 1MB` runs it;');
  console.log('    dcmjs->storescp: the dcmjs-dimse Client, one association per image, to that same storescp)\n');
  await storescp.kill();
  await scp.peer.kill();
}

function vmHwmKb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function scpMemory(dir: string): Promise<void> {
  const image = await writeTestDicom(path.join(dir, 'image-64MB.dcm'), { pixelBytes: 64 * MB, seed: 12 });
  const scp = await startBuiltinScp(64 * MB);
  const before = vmHwmKb(scp.peer.child.pid!);
  const seconds = await builtinSenders(scp.port, image.path!, 4, 4, 'per-image');
  const peak = vmHwmKb(scp.peer.child.pid!);
  console.log(`2. built-in SCP, 4 built-in senders x 4 images of 64 MiB in 64 MiB PDUs (one PDV per data set): peak RSS (VmHWM) ${(peak / 1024).toFixed(1)} MiB`);
  console.log(`   (${(before / 1024).toFixed(1)} MiB before the first image; ${((4 * 4 * image.datasetLength) / MB / seconds).toFixed(0)} MB/s aggregate)\n`);
  await scp.peer.kill();
}

async function sizes(dir: string): Promise<void> {
  const out = path.join(dir, 'sizes');
  const list = ['16KB', '100KB', '500KB', '1MB', '10MB', '20MB', '64MB'];
  const r = await runToExit(process.execPath, [BIN, 'bench', '--pdu', list.join(','), '--image-size', '24MB', '--count', '4', '--parallel', '2', '--out', out], {
    timeoutMs: 600_000,
    cwd: dir,
    name: 'bench',
  });
  if (r.code !== 0) throw new Error(`bench failed: ${r.stderr.slice(-800)}`);
  const results = (await readCsvFile(path.join(out, 'results.csv'))).rows;
  const whole = 6 + Number(results[0]!.image_bytes);
  console.log('3. every swept size really sent (built-in SCU -> proxy -> built-in SCP, 24 MiB images; largest P-DATA-TF toward the SCP):');
  console.log('   setting   expected = min(setting, 6 + data set)   largest received   largest sent on   ok');
  for (const [i, label] of list.entries()) {
    const setting = Number(results[i]!.pdu_bytes);
    const { rows } = await readCsvFile(path.join(out, `chunks-${label}-24MB.csv`));
    const pdata = rows.filter((x) => x.direction === 'to_scp' && x.type === 'P-DATA-TF');
    const received = Math.max(...pdata.map((x) => Number(x.length)));
    const sent = Math.max(...pdata.map((x) => Number(x.out_max_length)));
    const expected = Math.min(setting, whole);
    console.log(
      `   ${label.padEnd(8)} ${String(expected).padStart(26)} ${String(received).padStart(30)} ${String(sent).padStart(17)}   ${received === expected && sent === expected ? 'yes' : 'NO'}`,
    );
  }
  console.log('');
}

async function main(): Promise<void> {
  const rounds = Number(arg('--rounds', '5'));
  const repeat = Number(arg('--repeat', '12'));
  const phases = arg('--phases', '1,2,3').split(',');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-peers-'));
  console.log(
    `bench:peers — machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}\n`,
  );
  try {
    if (phases.includes('1')) await throughput(dir, rounds, repeat, arg('--targets', 'dcmtk,builtin->storescp,builtin,builtin-per-sender,dcmjs->storescp').split(','));
    if (phases.includes('2')) await scpMemory(dir);
    if (phases.includes('3')) await sizes(dir);
  } finally {
    await killAll();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
