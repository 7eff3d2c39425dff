// The relay side of the control plane: what runs associations in one process, the same code whether that
// process is the only one (LocalRelay) or a --workers worker (worker.ts). It holds the recorders of the
// process and one RouteRelay per route and settings generation; the control plane hands it connections
// (with their association id, generation and route) and answers its admission questions.

import path from 'node:path';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Recorder } from '../events/events.js';
import type { RouteConfig } from '../config/options.js';
import type { AdmissionRequest, Decision, OutcomeWire } from '../proxy/admission.js';
import { RouteRelay } from '../proxy/route-relay.js';
import { openRowRecorders } from '../proxy/row-recorders.js';
import type { RowRecorders } from '../proxy/row-recorders.js';
import { PcapRecorder } from '../capture/recorder.js';
import type { MetricsRecorder } from '../record/metrics.js';
import type { GenerationWire } from './ipc.js';

/** What a host asks of the control plane. */
export interface HostCalls {
  /** Once per A-ASSOCIATE-RQ: admitted (with its arm and generation) or refused. */
  admit(assoc: number, request: AdmissionRequest): Promise<Decision>;
  /** A connection handed over is gone; `outcome`: how its association ended on its arm, if it had one. */
  done(assoc: number, outcome?: OutcomeWire): void;
}

export interface HostOptions {
  log: Logger;
  /** Serve metrics: a MetricsRecorder is made (and returned by `metrics`). */
  metrics: boolean;
  /** --pcap is possible only where one process relays everything. */
  capture: boolean;
  /**
   * The row files already open (one process: the control plane created them and hands its recorders over,
   * so a file is never open twice in one process); undefined: append to the files the control plane made.
   */
  rows?: RowRecorders | undefined;
}

/** A --pcap file that could not be created: the message names the flag and the file. */
export class CaptureFileError extends Error {}

export class RelayHost {
  private readonly log: Logger;
  private readonly calls: HostCalls;
  private readonly recorders: Recorder[] = [];
  /** --pcap files by absolute path: routes naming the same file share it (process-wide: opened at start). */
  private readonly captures = new Map<string, PcapRecorder>();
  private readonly generations = new Map<number, RouteRelay[]>();
  private newest = 0;
  private draining = false;
  /** The process's metrics recorder, when metrics are on. */
  metrics: MetricsRecorder | undefined;

  private constructor(log: Logger, calls: HostCalls) {
    this.log = log;
    this.calls = calls;
  }

  /**
   * Open the recorders (the row files are appended to: the control plane created them) and take the first
   * settings. Rejects with a RowFileError or CaptureFileError naming the flag; nothing stays open then.
   */
  static async open(first: GenerationWire, ids: readonly string[], o: HostOptions, calls: HostCalls): Promise<RelayHost> {
    const host = new RelayHost(o.log, calls);
    const options = first.routes[0]!.options;
    try {
      const rows = o.rows ?? (await openRowRecorders(options, o.log, 'append'));
      host.recorders.push(...rows.recorders);
      if (o.capture) {
        for (const route of first.routes) {
          const capture = route.options.pcap;
          if (!capture || host.captures.has(path.resolve(capture.file))) continue;
          try {
            const recorder = await PcapRecorder.open(capture.file, { ...capture, log: o.log.child({ recorder: '--pcap', file: capture.file }) });
            host.captures.set(path.resolve(capture.file), recorder);
          } catch (err) {
            const e = err as NodeJS.ErrnoException;
            throw new CaptureFileError(`--pcap ${capture.file}: ${e.code ? `${e.code} (cannot create the capture file)` : e.message}`);
          }
        }
      }
      if (o.metrics) {
        // prom-client is loaded only when metrics are asked for: start-up without them stays fast.
        const { MetricsRecorder } = await import('../record/metrics.js');
        const metrics = new MetricsRecorder();
        for (const [file, count] of rows.dropCounts) metrics.watchDroppedRows(file, count);
        const captureList = [...host.captures.values()];
        if (captureList.length > 0) metrics.watchCaptureDrops(() => captureList.reduce((n, c) => n + c.dropped, 0));
        host.recorders.push(metrics);
        host.metrics = metrics;
      }
    } catch (err) {
      await host.close();
      throw err;
    }
    host.settings(first, ids);
    return host;
  }

  /** New settings: connections handed over from now on may name this generation; older ones keep theirs. */
  settings(settings: GenerationWire, ids: readonly string[]): void {
    const relays = settings.routes.map((route: RouteConfig, i: number) => {
      const capture = route.options.pcap;
      const recorder = capture && this.captures.get(path.resolve(capture.file));
      const recorders = recorder ? [...this.recorders, recorder.view(capture.payload)] : this.recorders;
      return new RouteRelay(route.options, this.log, recorders, {
        route: ids[i]!,
        generation: settings.generation,
        admission: (request, assoc) => this.calls.admit(assoc, request),
        connectionDone: (assoc, outcome) => this.calls.done(assoc, outcome),
      });
    });
    this.generations.set(settings.generation, relays);
    this.newest = Math.max(this.newest, settings.generation);
    this.retire();
  }

  /** A connection the control plane accepted. */
  adopt(socket: Socket, generation: number, route: number, assoc: number): void {
    const relay = this.generations.get(generation)?.[route];
    if (!relay || this.draining) {
      socket.destroy();
      this.calls.done(assoc);
      return;
    }
    relay.adopt(socket, assoc);
  }

  /** The --max-pending bound chose this connection to be closed. */
  closePending(assoc: number, why: string): void {
    for (const relay of this.relays()) relay.closePending(assoc, why);
  }

  /** Close connections that have sent nothing; associations in flight carry on. */
  drain(): void {
    this.draining = true;
    for (const relay of this.relays()) relay.drain();
  }

  /** Abort every association in flight; resolves with how many live ones were cut short. */
  async abortAll(why: string, graceMs: number): Promise<number> {
    const counts = await Promise.all(this.relays().map((r) => r.abortAll(why, graceMs)));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Resolves once no connection is left. */
  async whenIdle(): Promise<void> {
    await Promise.all(this.relays().map((r) => r.whenIdle()));
  }

  /** Flush and close the recorders (rows that come after are dropped by them). */
  async close(): Promise<void> {
    await Promise.all([...this.recorders, ...this.captures.values()].map((r) => r.close()));
  }

  private relays(): RouteRelay[] {
    return [...this.generations.values()].flat();
  }

  /** Generations older than the newest are let go once they have no connection left. */
  private retire(): void {
    for (const [generation, relays] of this.generations) {
      if (generation === this.newest) continue;
      void Promise.all(relays.map((r) => r.whenIdle())).then(() => {
        if (generation !== this.newest) this.generations.delete(generation);
      });
    }
  }
}
