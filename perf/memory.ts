// npm run bench:memory — peak RSS of the proxy while 8 SCUs each send a 64 MiB C-STORE in parallel, in
// PDUs of 20 MiB (the proxy announced --max-pdu 20MB), to a storescp whose real limit is 16 KB. The proxy
// must cut every 20 MiB PDU into 16 KB ones without holding whole PDUs: its memory must not grow with the
// PDU size. A second run sends 16 KB PDUs (nothing to cut) as the reference.
//
// Options: --parallel N (default 8), --image-bytes SIZE (default 64MB), --pdu SIZE (default 20MB)

import fs from 'node:fs';
import path from 'node:path';
import { parseSize } from '../src/values/size.js';
import { freePort } from '../test/helpers/ports.js';
import { killAll, spawnPeer, waitForPort } from '../test/helpers/procs.js';
import { REPO_ROOT } from '../test/helpers/proxy.js';
import { rawStore } from './raw-store.js';

function arg(flag: string, fallback: string): string {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

/** VmHWM (peak resident set) and VmRSS of a process, in MiB, from /proc. */
function memoryOf(pid: number): { peakMiB: number; rssMiB: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peakMiB: kb('VmHWM') / 1024, rssMiB: kb('VmRSS') / 1024 };
}

async function run(pduBytes: number, parallel: number, imageBytes: number): Promise<void> {
  const scpPort = await freePort();
  const scp = spawnPeer('storescp', ['--ignore', '--max-pdu', '16384', '--aetitle', 'STORESCP', String(scpPort)], { name: 'storescp' });
  await waitForPort(scpPort, 10_000);
  const port = await freePort();
  const proxy = spawnPeer(
    process.execPath,
    [
      path.join(REPO_ROOT, 'bin', 'dicom-pdu-proxy.js'),
      '--listen',
      `127.0.0.1:${port}`,
      '--upstream',
      `127.0.0.1:${scpPort}`,
      '--max-pdu',
      String(pduBytes),
      '--log-level',
      'warn',
    ],
    { name: 'proxy', cwd: REPO_ROOT },
  );
  await waitForPort(port, 10_000);
  const pid = proxy.child.pid!;
  const idle = memoryOf(pid);
  const t0 = performance.now();
  const fragment = pduBytes - 6;
  const results = await Promise.all(Array.from({ length: parallel }, () => rawStore({ port, pixelBytes: imageBytes, fragmentBytes: fragment, maxLength: 16384 })));
  const seconds = (performance.now() - t0) / 1000;
  const after = memoryOf(pid);
  const failed = results.filter((r) => r.status !== 0).length;
  const mb = (parallel * imageBytes) / 1e6;
  console.log(
    `  sender PDU ${String(pduBytes).padStart(9)} B: ${parallel} x ${(imageBytes / 1048576).toFixed(0)} MiB in ${seconds.toFixed(2)} s (${(mb / seconds).toFixed(0)} MB/s), ` +
      `proxy RSS idle ${idle.rssMiB.toFixed(0)} MiB, peak ${after.peakMiB.toFixed(0)} MiB; AC told the SCU ${results[0]?.peerMaxLength}; failures ${failed}`,
  );
  await proxy.kill();
  await scp.kill();
  if (failed > 0) process.exitCode = 1;
}

async function main(): Promise<void> {
  const parallel = Number(arg('--parallel', '8'));
  const imageBytes = parseSize(arg('--image-bytes', '64MB'));
  const pdu = parseSize(arg('--pdu', '20MB'));
  console.log(`bench:memory — ${parallel} parallel raw C-STOREs through the proxy to storescp --ignore (real max 16 KB)`);
  try {
    await run(pdu, parallel, imageBytes);
    await run(16384, parallel, imageBytes);
  } finally {
    await killAll();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
