// Child processes for real-peer tests: long-running peers (spawnPeer, with a registry and killAll for
// teardown), one-shot tools (runToExit), and TCP readiness polling (waitForPort). Every wait is bounded.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  name: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

const running = new Set<PeerProcess>();

export class PeerProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly command: string;
  stdout = '';
  stderr = '';
  private exitInfo: ExitInfo | undefined;
  private readonly exited: Promise<ExitInfo>;
  private outputListeners = new Set<() => void>();

  constructor(cmd: string, args: readonly string[], opts: SpawnOptions) {
    this.name = opts.name;
    this.command = [cmd, ...args].join(' ');
    this.child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    this.child.stdout!.on('data', (s: string) => {
      this.stdout += s;
      for (const l of [...this.outputListeners]) l();
    });
    this.child.stderr!.on('data', (s: string) => {
      this.stderr += s;
      for (const l of [...this.outputListeners]) l();
    });
    this.exited = new Promise<ExitInfo>((resolve) => {
      // 'close' fires after stdio is drained, so the collected output is complete.
      this.child.once('close', (code, signal) => {
        this.exitInfo = { code, signal };
        running.delete(this);
        for (const l of [...this.outputListeners]) l();
        resolve(this.exitInfo);
      });
      this.child.once('error', (err) => {
        this.stderr += `\n[spawn error] ${err.message}`;
        this.exitInfo = { code: null, signal: null };
        running.delete(this);
        resolve(this.exitInfo);
      });
    });
    running.add(this);
  }

  /** stdout followed by stderr. */
  get output(): string {
    return this.stdout + this.stderr;
  }

  get hasExited(): boolean {
    return this.exitInfo !== undefined;
  }

  /** Resolve with the first match of `re` in stdout or stderr (past or future); reject on timeout or exit. */
  waitForOutput(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = this.stdout.match(re) ?? this.stderr.match(re);
        if (m) {
          finish();
          resolve(m);
          return true;
        }
        if (this.exitInfo) {
          finish();
          reject(new Error(`${this.name} exited (${JSON.stringify(this.exitInfo)}) before printing ${re}\n${this.describe()}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${this.name}: no output matching ${re} within ${timeoutMs} ms\n${this.describe()}`));
      }, timeoutMs);
      const listener = (): void => {
        check();
      };
      const finish = (): void => {
        clearTimeout(timer);
        this.outputListeners.delete(listener);
      };
      this.outputListeners.add(listener);
      check();
    });
  }

  /** Resolve with the exit code/signal; reject if it does not exit within `timeoutMs`. */
  waitForExit(timeoutMs: number): Promise<ExitInfo> {
    if (this.exitInfo) return Promise.resolve(this.exitInfo);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} did not exit within ${timeoutMs} ms\n${this.describe()}`)), timeoutMs);
      void this.exited.then((info) => {
        clearTimeout(timer);
        resolve(info);
      });
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async kill(graceMs = 2000): Promise<ExitInfo> {
    if (this.exitInfo) return this.exitInfo;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    const info = await this.exited;
    clearTimeout(timer);
    return info;
  }

  describe(): string {
    return `[${this.name}] ${this.command}\n--- stdout ---\n${tail(this.stdout)}\n--- stderr ---\n${tail(this.stderr)}`;
  }
}

function tail(s: string, max = 8000): string {
  return s.length > max ? `...${s.slice(-max)}` : s;
}

export function spawnPeer(cmd: string, args: readonly string[], opts: SpawnOptions): PeerProcess {
  return new PeerProcess(cmd, args, opts);
}

/** Kill every peer spawned with spawnPeer that is still running. */
export async function killAll(graceMs = 2000): Promise<void> {
  await Promise.all([...running].map((p) => p.kill(graceMs)));
}

/** Peers still running (for assertions in teardown). */
export function runningPeers(): PeerProcess[] {
  return [...running];
}

// Safety net: never leave children behind if the test process exits abruptly.
process.once('exit', () => {
  for (const p of running) p.child.kill('SIGKILL');
});

/** Poll a TCP connect to 127.0.0.1:port until it succeeds; reject after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs: number, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      const timer = setTimeout(
        () => {
          sock.destroy();
          resolve(false);
        },
        Math.max(100, Math.min(1000, deadline - Date.now())),
      );
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.destroy();
        resolve(true);
      });
      sock.once('error', (err) => {
        clearTimeout(timer);
        lastError = err.message;
        resolve(false);
      });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`port 127.0.0.1:${port} not accepting connections within ${timeoutMs} ms (${lastError})`);
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface RunOptions {
  timeoutMs: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  name?: string;
}

/** Run a command to completion. Non-zero exits resolve; a timeout kills it and rejects with its output. */
export async function runToExit(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  const started = Date.now();
  const peer = spawnPeer(cmd, args, { name: opts.name ?? cmd, cwd: opts.cwd, env: opts.env });
  try {
    const { code, signal } = await peer.waitForExit(opts.timeoutMs);
    return { code, signal, stdout: peer.stdout, stderr: peer.stderr, durationMs: Date.now() - started };
  } catch (err) {
    await peer.kill(500);
    throw new Error(`${(err as Error).message.split('\n')[0]} (killed)\n${peer.describe()}`, { cause: err });
  }
}
