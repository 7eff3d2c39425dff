// A real Prometheus (Debian's prometheus package) for tests: its own temporary configuration and storage,
// listening on 127.0.0.1 on a free port, killed and its directory removed by stop(). PromQL over its HTTP API.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';
import { spawnPeer } from './procs.js';
import type { PeerProcess } from './procs.js';

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export class Prometheus {
  readonly url: string;
  private readonly peer: PeerProcess;
  private readonly dir: string;

  private constructor(peer: PeerProcess, url: string, dir: string) {
    this.peer = peer;
    this.url = url;
    this.dir = dir;
  }

  /**
   * Start Prometheus with `config` (prometheus.yml text; `{{DIR}}` is replaced with its directory) and wait
   * until /-/ready answers 200 (at most `readyMs`).
   */
  static async start(config: string, readyMs = 60_000): Promise<Prometheus> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpp-prometheus-'));
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), config.replaceAll('{{DIR}}', dir));
    const port = await freePort();
    const peer = spawnPeer(
      'prometheus',
      [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { name: `prometheus:${port}`, cwd: dir },
    );
    const prometheus = new Prometheus(peer, `http://127.0.0.1:${port}`, dir);
    const deadline = Date.now() + readyMs;
    try {
      for (;;) {
        if (peer.stderr.includes('[spawn error]'))
          throw new Error(`prometheus could not be started (Debian's prometheus package: scripts/ensure-test-deps.sh)\n${peer.describe()}`);
        if (peer.child.exitCode !== null) throw new Error(`prometheus exited\n${peer.describe()}`);
        if (await prometheus.ready()) return prometheus;
        if (Date.now() > deadline) throw new Error(`prometheus not ready within ${readyMs} ms\n${peer.describe()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } catch (err) {
      await prometheus.stop();
      throw err;
    }
  }

  private async ready(): Promise<boolean> {
    try {
      return (await fetch(`${this.url}/-/ready`)).status === 200;
    } catch {
      return false; // not listening yet
    }
  }

  /** An instant query; throws with Prometheus' error text when the query fails. */
  async query(expr: string): Promise<PromSample[]> {
    const res = await fetch(`${this.url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: PromSample[] } };
    if (body.status !== 'success') throw new Error(`PromQL ${expr}: ${body.error ?? res.status}`);
    if (body.data!.resultType !== 'vector') throw new Error(`PromQL ${expr}: a ${body.data!.resultType}, not an instant vector`);
    return body.data!.result;
  }

  /** Query until `done(result)` holds (every 500 ms, at most `timeoutMs`); returns the last result either way. */
  async until(expr: string, done: (result: PromSample[]) => boolean, timeoutMs: number): Promise<PromSample[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = await this.query(expr);
      if (done(result) || Date.now() > deadline) return result;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  async stop(): Promise<void> {
    await this.peer.kill(5000);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  describe(): string {
    return this.peer.describe();
  }
}
