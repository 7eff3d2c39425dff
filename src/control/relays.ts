// The relays the control plane drives, behind one interface: the relay host in this process (LocalRelay,
// one process) or in a worker process (WorkerRelay, --workers N). The supervisor does not know which it has.

import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { AdmissionRequest, Decision, OutcomeWire } from '../proxy/admission.js';
import { decisionToWire, isToPrimary } from './ipc.js';
import type { GenerationWire, ToPrimary, ToWorker } from './ipc.js';
import { RelayHost } from './relay-host.js';
import type { HostOptions } from './relay-host.js';

/** What a relay asks of the control plane. */
export interface ControlCalls {
  admit(relay: Relay, assoc: number, request: AdmissionRequest): Decision;
  /** A connection is gone; `outcome`: how its association ended on its arm (the guard's input). */
  done(relay: Relay, assoc: number, outcome?: OutcomeWire): void;
  /** The relay can take connections (again). */
  ready(relay: Relay): void;
  /** The relay's process died unexpectedly: its connections are lost. */
  died(relay: Relay, why: string): void;
}

export interface Relay {
  readonly index: number;
  /** Takes connections now. */
  readonly ready: boolean;
  /** Has stopped for good (drained or aborted, recorders closed). */
  readonly stopped: Promise<void>;
  /** Associations cut short by abort(). */
  readonly aborted: number;
  start(settings: GenerationWire, ids: string[]): Promise<void>;
  settings(settings: GenerationWire, ids: string[]): void;
  hand(socket: Socket, generation: number, route: number, assoc: number): void;
  closePending(assoc: number, why: string): void;
  /** For the metrics: the generation in force and the reloads that failed so far. */
  configState(generation: number, reloadFailures: number): void;
  drain(): void;
  abort(why: string): void;
  /** Stop at once, whatever it holds (the last resort of a bounded shutdown). */
  kill(): void;
}

/** After a second signal (or the drain timeout), how long aborted peers get to close before they are cut off. */
export const ABORT_GRACE_MS = 1000;

// ---- One process --------------------------------------------------------------------------------------

export class LocalRelay implements Relay {
  readonly index = 0;
  ready = false;
  aborted = 0;
  host: RelayHost | undefined;
  readonly stopped: Promise<void>;
  private finish!: () => void;
  private stopping = false;

  constructor(
    private readonly calls: ControlCalls,
    private readonly options: HostOptions,
  ) {
    this.stopped = new Promise((resolve) => (this.finish = resolve));
  }

  async start(settings: GenerationWire, ids: string[]): Promise<void> {
    this.host = await RelayHost.open(
      settings,
      ids,
      this.options,
      // A microtask later, as an answer over IPC would be: the session is in the state that waits for it.
      { admit: async (assoc, request) => this.calls.admit(this, assoc, request), done: (assoc, outcome) => this.calls.done(this, assoc, outcome) },
    );
    this.ready = true;
    this.calls.ready(this);
  }

  settings(settings: GenerationWire, ids: string[]): void {
    this.host?.settings(settings, ids);
  }

  hand(socket: Socket, generation: number, route: number, assoc: number): void {
    this.host!.adopt(socket, generation, route, assoc);
  }

  closePending(assoc: number, why: string): void {
    this.host?.closePending(assoc, why);
  }

  configState(generation: number, reloadFailures: number): void {
    this.host?.metrics?.configState(generation, reloadFailures);
  }

  drain(): void {
    if (this.stopping) return;
    this.stopping = true;
    if (!this.host) return this.finish();
    const host = this.host;
    host.drain();
    void host
      .whenIdle()
      .then(() => host.close())
      .then(() => this.finish());
  }

  abort(why: string): void {
    if (!this.host) return;
    this.drain();
    void this.host.abortAll(why, ABORT_GRACE_MS).then((n) => (this.aborted += n));
  }

  kill(): void {
    // Whatever is left is cut off now (no grace), and the recorders flushed.
    const host = this.host;
    if (host) void host.abortAll('the proxy is stopping', 0).then(() => host.close());
    this.finish();
  }
}

// ---- A worker process -------------------------------------------------------------------------------

/** A worker that dies sooner than this after its start is replaced only after this long (no crash loop). */
const RESTART_DELAY_MS = 1000;

export class WorkerRelay implements Relay {
  ready = false;
  aborted = 0;
  readonly stopped: Promise<void>;
  private finish!: () => void;
  private worker: Worker | undefined;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private phase: 'running' | 'draining' | 'stopped' = 'running';
  private current: { settings: GenerationWire; ids: string[] } | undefined;
  private config = { generation: 1, reloadFailures: 0 };
  /** The generation the worker was started with ('dpp:start'). */
  private startedWith = 0;
  private started: { resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(
    readonly index: number,
    private readonly calls: ControlCalls,
    private readonly log: Logger,
  ) {
    this.stopped = new Promise((resolve) => (this.finish = resolve));
  }

  start(settings: GenerationWire, ids: string[]): Promise<void> {
    this.current = { settings, ids };
    return new Promise((resolve, reject) => {
      this.started = { resolve, reject };
      this.fork();
    });
  }

  settings(settings: GenerationWire, ids: string[]): void {
    this.current = { settings, ids };
    if (this.ready) this.send({ type: 'dpp:settings', settings, ids });
  }

  hand(socket: Socket, generation: number, route: number, assoc: number): void {
    const worker = this.worker;
    if (!worker) {
      socket.destroy();
      this.calls.done(this, assoc);
      return;
    }
    worker.send({ type: 'dpp:conn', generation, route, assoc } satisfies ToWorker, socket, (err: Error | null) => {
      if (!err) return;
      this.log.warn({ worker: this.index, assoc, err: err.message }, 'connection could not be handed to its worker: closed');
      socket.destroy();
      this.calls.done(this, assoc);
    });
  }

  closePending(assoc: number, why: string): void {
    this.send({ type: 'dpp:close-pending', assoc, why });
  }

  configState(generation: number, reloadFailures: number): void {
    this.config = { generation, reloadFailures };
    if (this.ready) this.send({ type: 'dpp:config-state', ...this.config });
  }

  drain(): void {
    if (this.phase !== 'running') return;
    this.phase = 'draining';
    // A restart that was waiting never happens now; a worker still starting has no connection: let it go.
    clearTimeout(this.restartTimer);
    if (!this.worker) return this.stop();
    if (!this.ready) {
      this.worker.kill('SIGKILL');
      return;
    }
    this.send({ type: 'dpp:drain' });
  }

  abort(why: string): void {
    this.drain();
    this.send({ type: 'dpp:abort', why });
  }

  kill(): void {
    if (this.worker && !this.worker.isDead()) this.worker.kill('SIGKILL');
    this.stop();
  }

  private stop(): void {
    this.phase = 'stopped';
    this.ready = false;
    this.finish();
  }

  private send(message: ToWorker): void {
    const worker = this.worker;
    if (worker && !worker.isDead() && worker.isConnected()) worker.send(message);
  }

  private fork(): void {
    const worker = cluster.fork();
    this.worker = worker;
    this.ready = false;
    this.startedAt = Date.now();
    // A message to a worker that is going away fails: it is gone, its exit handler cleans up (never a crash here).
    worker.on('error', (err: Error) => this.log.debug({ worker: this.index, err: err.message }, 'message to a worker failed'));
    worker.on('message', (message: unknown) => {
      if (isToPrimary(message)) this.onMessage(message);
    });
    worker.once('exit', (code, signal) => this.onExit(worker, code, signal));
  }

  private onMessage(message: ToPrimary): void {
    switch (message.type) {
      case 'dpp:hello':
        // The worker listens for messages now (one sent before would be lost): tell it who it is and what to run.
        this.startedWith = this.current!.settings.generation;
        this.send({ type: 'dpp:start', index: this.index, ids: this.current!.ids, settings: this.current!.settings });
        return;
      case 'dpp:ready':
        if (this.phase !== 'running') {
          // Ready after a drain began (it started just before): it has nothing to finish.
          this.send({ type: 'dpp:drain' });
          return;
        }
        this.ready = true;
        // A reload while it started: it has the settings it was started with, not the newest yet.
        if (this.current!.settings.generation !== this.startedWith) this.send({ type: 'dpp:settings', ...this.current! });
        this.send({ type: 'dpp:config-state', ...this.config });
        this.started?.resolve();
        this.started = undefined;
        this.calls.ready(this);
        return;
      case 'dpp:admit': {
        const decision = this.calls.admit(this, message.assoc, message.request);
        this.send({ type: 'dpp:admitted', assoc: message.assoc, decision: decisionToWire(decision) });
        return;
      }
      case 'dpp:done':
        this.calls.done(this, message.assoc, message.outcome);
        return;
      case 'dpp:stopped':
        this.aborted = message.aborted;
        return;
      case 'dpp:failed':
        this.log.error({ worker: this.index, reason: message.message }, 'worker could not start');
        this.started?.reject(new Error(message.message));
        this.started = undefined;
        return;
    }
  }

  private onExit(worker: Worker, code: number | null, signal: string | null): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    const wasReady = this.ready;
    this.ready = false;
    if (this.phase !== 'running') return this.stop();
    if (this.started) {
      this.started.reject(new Error(`worker ${this.index} exited before it was ready (${signal ?? `status ${code}`})`));
      this.started = undefined;
      return this.stop();
    }
    const lived = Date.now() - this.startedAt;
    this.calls.died(this, `${signal ?? `status ${code}`}`);
    this.log.error({ worker: this.index, pid: worker.process.pid, code, signal, wasReady }, 'worker died: its connections are lost; starting a new one');
    this.restartTimer = setTimeout(() => this.fork(), lived < RESTART_DELAY_MS ? RESTART_DELAY_MS : 0);
    this.restartTimer.unref();
  }
}
