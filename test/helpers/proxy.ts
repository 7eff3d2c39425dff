// Start the real CLI (bin/dicom-pdu-proxy.js, built by `npm run build`) as a child process on a free port,
// collect its pino JSON log lines, and stop it with SIGTERM.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { freePort } from './ports.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = path.join(REPO_ROOT, 'bin', 'dicom-pdu-proxy.js');

/**
 * How long a wait for a log line (and a start, which waits for 'listening') may take before it is called a
 * hang. Not a speed requirement: a proxy that exits first fails the wait at once (with its stderr). 10 s was
 * not enough on the shared 2-core machine: at load 10, with the tests under `nice -n 10`, a proxy's start
 * (loading its modules) took over 10 s twice, and the test failed with no log line at all (workers.test.ts,
 * messages.test.ts); the same start takes 3.7 s at load 7 and 0.4 s on a quiet machine.
 */
export const LOG_WAIT_MS = 30_000;

export interface LogLine {
  level: number;
  msg: string;
  assoc?: number;
  [key: string]: unknown;
}

export class ProxyProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly logs: LogLine[] = [];
  stderr = '';
  private stdoutRest = '';
  private waiters: Array<{ test: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];

  private constructor(child: ChildProcess, port: number) {
    this.child = child;
    this.port = port;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (text: string) => {
      const lines = (this.stdoutRest + text).split('\n');
      this.stdoutRest = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        let parsed: LogLine;
        try {
          parsed = JSON.parse(line) as LogLine;
        } catch {
          parsed = { level: 0, msg: `unparsed: ${line}` };
        }
        this.logs.push(parsed);
        this.waiters = this.waiters.filter((w) => {
          if (!w.test(parsed)) return true;
          w.resolve(parsed);
          return false;
        });
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => (this.stderr += text));
  }

  /** Spawn the proxy listening on 127.0.0.1:<free port>; resolves once it logged 'listening'. */
  static async start(args: string[], timeoutMs = LOG_WAIT_MS): Promise<ProxyProcess> {
    const port = await freePort();
    const child = spawn(process.execPath, [BIN, '--listen', `127.0.0.1:${port}`, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: REPO_ROOT,
    });
    const proxy = new ProxyProcess(child, port);
    running.add(proxy);
    child.once('exit', () => running.delete(proxy));
    await proxy.waitForLog((l) => l.msg === 'listening', timeoutMs);
    return proxy;
  }

  /**
   * Spawn the proxy with exactly `args` (no --listen added: routes carry their own); resolves once every
   * route in `routes` logged 'listening' (and 'metrics listening' too when --metrics is given).
   */
  static async startRoutes(args: string[], routes: readonly string[], timeoutMs = LOG_WAIT_MS): Promise<ProxyProcess> {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO_ROOT });
    const proxy = new ProxyProcess(child, 0);
    running.add(proxy);
    child.once('exit', () => running.delete(proxy));
    for (const route of routes) await proxy.waitForLog((l) => l.msg === 'listening' && l.route === route, timeoutMs);
    if (args.includes('--metrics')) await proxy.waitForLog((l) => l.msg === 'metrics listening', timeoutMs);
    return proxy;
  }

  /** The port a route listens on, from its 'listening' line. */
  routePort(route: string): number {
    const line = this.logs.find((l) => l.msg === 'listening' && l.route === route);
    if (!line) throw new Error(`no 'listening' line for route ${route}`);
    const listen = String(line.listen);
    return Number(listen.slice(listen.lastIndexOf(':') + 1));
  }

  /** http://HOST:PORT/metrics, from the 'metrics listening' line. */
  get metricsUrl(): string {
    const line = this.logs.find((l) => l.msg === 'metrics listening');
    if (!line) throw new Error("no 'metrics listening' line");
    return String(line.metrics);
  }

  /** Resolve with the first log line (past or future) that passes `test`. */
  waitForLog(test: (l: LogLine) => boolean, timeoutMs = LOG_WAIT_MS): Promise<LogLine> {
    const seen = this.logs.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const onExit = (): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`proxy exited; stderr: ${this.stderr}`));
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        this.child.off('exit', onExit);
        reject(new Error(`no matching proxy log line within ${timeoutMs} ms; stderr: ${this.stderr}\nlogs: ${JSON.stringify(this.logs.slice(-10))}`));
      }, timeoutMs);
      const done = (l: LogLine): void => {
        clearTimeout(timer);
        this.child.off('exit', onExit);
        resolve(l);
      };
      this.waiters.push({ test, resolve: done });
      this.child.once('exit', onExit);
    });
  }

  /**
   * SIGTERM (the proxy drains: associations in flight may finish); if it has not exited after `drainMs`, a
   * second SIGTERM (it aborts what is left); SIGKILL after `timeoutMs`. Resolves with the exit code: 0 when
   * nothing was in flight, 1 when the second signal had to abort associations a test left open.
   */
  async stop(timeoutMs = 10_000, drainMs = 1000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    const exited = new Promise<number | null>((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.kill('SIGTERM');
    const second = setTimeout(() => this.child.kill('SIGTERM'), drainMs);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await exited;
    clearTimeout(second);
    clearTimeout(timer);
    return code;
  }
}

const running = new Set<ProxyProcess>();

/** Kill every proxy still running (for test teardown). */
export async function stopAllProxies(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop()));
}

export { freePort };
