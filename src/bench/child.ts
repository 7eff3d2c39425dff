// Child processes of bench (SCP, proxy, SCU workers): spawned with piped output read line by line, waits
// bounded in time, stopped with SIGTERM then SIGKILL. Every child is tracked so none outlives bench.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(import.meta.url);
/** .ts when run from the sources under tsx (tests), .js from dist/ (the installed CLI). */
const EXT = path.extname(HERE);
/** The package root: src/bench/ and dist/bench/ are both two levels down. */
export const PACKAGE_ROOT = path.resolve(path.dirname(HERE), '..', '..');
export const PROXY_BIN = path.join(PACKAGE_ROOT, 'bin', 'dicom-pdu-proxy.js');

/** node arguments that run a sibling module of this file (`scp-process`, `scu-worker`). */
export function nodeScript(name: string): string[] {
  const script = path.join(path.dirname(HERE), `${name}${EXT}`);
  return EXT === '.ts' ? ['--import', 'tsx', script] : [script];
}

const live = new Set<Child>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

export interface ChildOptions {
  /** Run in its own process group and signal the whole group: a command that forks (sh -c '…') stops whole. */
  group?: boolean;
}

export class Child {
  readonly process: ChildProcess;
  /** The last lines of stderr, for error messages. */
  private stderrTail = '';
  private readonly lineListeners = new Set<(line: string) => void>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private done = false;

  constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
    private readonly options: ChildOptions = {},
  ) {
    this.process = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: options.group === true });
    live.add(this);
    let rest = '';
    const onText = (text: string): void => {
      const lines = (rest + text).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) for (const l of [...this.lineListeners]) l(line);
    };
    this.process.stdout!.setEncoding('utf8').on('data', onText);
    this.process.stderr!.setEncoding('utf8').on('data', (text: string) => {
      this.stderrTail = (this.stderrTail + text).slice(-4000);
      onText(text);
    });
    this.exited = new Promise((resolve) => {
      this.process.once('error', (err) => {
        this.stderrTail += `\n${err.message}`;
        this.done = true;
        live.delete(this);
        resolve({ code: null, signal: null });
      });
      this.process.once('close', (code, signal) => {
        if (rest) for (const l of [...this.lineListeners]) l(rest);
        this.done = true;
        live.delete(this);
        resolve({ code, signal });
      });
    });
  }

  /** Every line of stdout and stderr, as it arrives. */
  onLine(listener: (line: string) => void): void {
    this.lineListeners.add(listener);
  }

  get stderr(): string {
    return this.stderrTail.trim();
  }

  /** Resolve with the first future line matching `re`; reject when the child exits first or on timeout. */
  waitForLine(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`${this.name}: not ready within ${timeoutMs} ms ${this.stderr}`)), timeoutMs);
      const listener = (line: string): void => {
        const m = re.exec(line);
        if (m) finish(undefined, m);
      };
      const finish = (err?: Error, m?: RegExpMatchArray): void => {
        clearTimeout(timer);
        this.lineListeners.delete(listener);
        if (err) reject(err);
        else resolve(m!);
      };
      this.lineListeners.add(listener);
      void this.exited.then(({ code, signal }) => finish(new Error(`${this.name} exited (${signal ?? code}) ${this.stderr}`)));
    });
  }

  /** Whether the process has exited (and its output ended). */
  get ended(): boolean {
    return this.done;
  }

  /** Signal the process (its whole group with `group`); never throws for a process already gone. */
  kill(signal: NodeJS.Signals): void {
    const pid = this.process.pid;
    if (this.options.group && pid !== undefined) {
      try {
        process.kill(-pid, signal);
      } catch {
        // the group is gone already
      }
    } else this.process.kill(signal);
  }

  async stop(graceMs = 5000): Promise<void> {
    if (this.done) return;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
