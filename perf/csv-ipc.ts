// --workers: what it would cost to send the CSV rows to the primary over node's IPC channel (one process
// writing the file), against what each worker does instead (one O_APPEND write() per batch of whole lines).
// A child sends BATCHES batches of 256 KiB of chunk-CSV rows either way; CPU of both processes
// (process.cpuUsage), three interleaved rounds each. See docs/WORKERS.md.
//   npm run bench:csv-ipc

import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BATCHES = 400;
const ROW = '12,to_scp,345,P-DATA-TF,16378,1,1,data,0,123456789,123456999,123457111,1,16384,0,default\n';
const batch = ROW.repeat(Math.floor(262144 / ROW.length));
const dir = process.env.CSV_IPC_DIR ?? os.tmpdir();
const cpuSeconds = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1e6;

type Done = { done: number };

if (process.argv[2] === 'child') {
  const t0 = process.cpuUsage();
  if (process.argv[3] === 'ipc') {
    let i = 0;
    const next = (): void => {
      if (i++ < BATCHES) process.send!(batch, undefined, {}, next);
      else process.send!({ done: cpuSeconds(process.cpuUsage(t0)) } satisfies Done);
    };
    next();
  } else {
    const fd = fs.openSync(process.argv[4]!, 'a');
    const buffer = Buffer.from(batch);
    for (let i = 0; i < BATCHES; i++) fs.writeSync(fd, buffer);
    fs.closeSync(fd);
    process.send!({ done: cpuSeconds(process.cpuUsage(t0)) } satisfies Done);
  }
} else {
  const mib = (BATCHES * batch.length) / 1048576;
  console.log(
    `bench:csv-ipc — ${mib.toFixed(0)} MiB of chunk-CSV rows in 256 KiB batches; load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const primaryFile = path.join(dir, `csv-ipc-primary-${process.pid}.csv`);
  const appended = path.join(dir, `csv-ipc-append-${process.pid}.csv`);
  for (const mode of ['ipc', 'append', 'ipc', 'append', 'ipc', 'append']) {
    fs.rmSync(appended, { force: true });
    const fd = fs.openSync(primaryFile, 'w');
    const p0 = process.cpuUsage();
    const child = fork(fileURLToPath(import.meta.url), ['child', mode, appended], { execArgv: process.execArgv });
    const worker = await new Promise<number>((resolve) =>
      child.on('message', (m: unknown) => {
        if (typeof m === 'string') fs.writeSync(fd, m);
        else resolve((m as Done).done);
      }),
    );
    const primary = cpuSeconds(process.cpuUsage(p0));
    fs.closeSync(fd);
    child.kill();
    const total = worker + primary;
    console.log(`${mode.padEnd(6)}  worker ${worker.toFixed(3)} s  primary ${primary.toFixed(3)} s  = ${((total / mib) * 1000).toFixed(2)} ms CPU per MiB of CSV`);
  }
  fs.rmSync(primaryFile, { force: true });
  fs.rmSync(appended, { force: true });
}
