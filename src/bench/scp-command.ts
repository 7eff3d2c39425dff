// `bench --scp-command`: the user's SCP started from its template for one setting. A free port is picked
// on 127.0.0.1, the template's words get {port}, {pdu} and {out}, the program runs without a shell in its
// own process group (so `sh -c '…'` stops whole), its stdout and stderr go to a log file, and the start is
// over when the port accepts a TCP connection. Stopping: SIGTERM to the group, SIGKILL after a grace.

import { createWriteStream, mkdirSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Child } from './child.js';
import { scpArgv } from './scp-template.js';
import type { ScpTemplate } from './scp-template.js';

/** How long a stopped SCP gets between SIGTERM and SIGKILL. */
export const SCP_STOP_GRACE_MS = 5000;
const POLL_MS = 100;

/** A port nobody listens on at 127.0.0.1 right now (bound, read, released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Whether host:port accepts a TCP connection now (closed at once). */
function accepts(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export interface ScpStart {
  pdu: number;
  /** Scratch directory for {out} (created). */
  scratch: string;
  /** Where its stdout and stderr go. */
  logFile: string;
  timeoutMs: number;
}

export interface RunningScp {
  child: Child;
  port: number;
  argv: string[];
  logFile: string;
  scratch: string;
}

/** Why a start failed, in one line (without the flag's name). */
export class ScpStartError extends Error {}

function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.length > 0 ? `: ${lines[lines.length - 1]!.slice(0, 300)}` : '';
}

/** Start the SCP of a setting and wait until it accepts connections; an ScpStartError when it does not. */
export async function startScpCommand(template: ScpTemplate, start: ScpStart, host = '127.0.0.1'): Promise<RunningScp> {
  mkdirSync(start.scratch, { recursive: true });
  const port = await freePort();
  const argv = scpArgv(template, { port: String(port), pdu: String(start.pdu), out: start.scratch });
  const log = createWriteStream(start.logFile);
  log.write(`# ${JSON.stringify(argv)}\n`);
  const child = new Child('SCP', argv[0]!, argv.slice(1), { group: true });
  child.process.stdout!.on('data', (d: string) => log.write(d));
  child.process.stderr!.on('data', (d: string) => log.write(d));
  void child.exited.then(({ code, signal }) => log.end(`# exited (${signal ?? `status ${code}`})\n`));
  const deadline = Date.now() + start.timeoutMs;
  const fail = async (why: string): Promise<never> => {
    await child.stop(SCP_STOP_GRACE_MS);
    throw new ScpStartError(`${why}; its output is in ${start.logFile}`);
  };
  for (;;) {
    if (child.ended) {
      const { code, signal } = await child.exited;
      const spawnError = child.process.pid === undefined;
      return fail(
        spawnError
          ? `${argv[0]} could not be started${lastLine(child.stderr)}`
          : `the SCP exited (${signal ?? `status ${code}`}) before listening on port ${port}${lastLine(child.stderr)}`,
      );
    }
    if (await accepts(host, port, 1000)) return { child, port, argv, logFile: start.logFile, scratch: start.scratch };
    if (Date.now() >= deadline) return fail(`the SCP did not listen on port ${port} within ${start.timeoutMs / 1000} s`);
    await Promise.race([sleep(POLL_MS), child.exited]);
  }
}
