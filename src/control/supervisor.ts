// The control plane: one per proxy, whatever the number of relay processes. It owns what must be one:
// the listeners (listeners.ts), the association ids, admission (--allow-*, --max-associations) and the
// --max-pending bound, the settings generations and their reloads on SIGHUP (generations.ts), the drain and
// the signals, the health and metrics endpoints. The relays (relays.ts) run the associations, in this
// process or in --workers processes: one process is the N = 1 case of the same code. Every connection is
// accepted here, given an id and handed to a relay; the relay asks once per A-ASSOCIATE-RQ whether to admit
// it (in-process: a call; a worker: one IPC round trip per association, none per PDU). Nothing else of a
// connection passes through the control plane.

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { RouteConfig } from '../config/options.js';
import { shapingFor } from '../config/options.js';
import { AdmissionRules } from '../proxy/admission.js';
import type { AdmissionRequest, Decision, OutcomeWire } from '../proxy/admission.js';
import { sameArms } from '../experiment/arms.js';
import type { ControlMetrics } from '../record/metrics.js';
import { installMemoryProbe } from '../proxy/memory-probe.js';
import { raiseMallocThresholds } from '../proxy/malloc-threshold.js';
import { describeRoute } from '../proxy/route-relay.js';
import { RowFileError, openRowRecorders } from '../proxy/row-recorders.js';
import type { RowRecorders } from '../proxy/row-recorders.js';
import { serveHealth } from './health.js';
import type { HealthState, HttpEndpoint, Readiness } from './health.js';
import { formatEndpoint } from '../values/endpoint.js';
import type { Endpoint } from '../values/endpoint.js';
import { Generations } from './generations.js';
import type { Generation, ReloadHost } from './generations.js';
import { Listeners, listenLabel } from './listeners.js';
import { createLogger } from './logger.js';
import { CaptureFileError } from './relay-host.js';
import { ABORT_GRACE_MS, LocalRelay, WorkerRelay } from './relays.js';
import type { ControlCalls, Relay } from './relays.js';
import { catchControlSignals } from './signals.js';

export interface SupervisorOptions {
  logLevel: string;
  /** --metrics: serve Prometheus metrics there; undefined = off. */
  metrics?: Endpoint | undefined;
  /** --health: serve /healthz and /readyz there (they are on the metrics port too); undefined = off. */
  health?: Endpoint | undefined;
  /** --workers: relay processes (1 = the relay runs in this process). */
  workers: number;
  /**
   * SIGHUP: the settings read again (the --config file, under the same environment and flags); throws a
   * ConfigError naming the key when they do not validate. undefined: there is no file to re-read.
   */
  reload?: (() => RouteConfig[]) | undefined;
  /** The file reload() reads, for the log lines. */
  configFile?: string | undefined;
}

interface Connection {
  relay: Relay | undefined;
  generation: number;
  route: number;
  key: string;
  /** Accepted, no A-ASSOCIATE-RQ yet (what --max-pending bounds); TLS handshakes included. */
  pending: boolean;
  /** Admitted: counted against --max-associations until it is done. */
  admitted: boolean;
  /** The A-ASSOCIATE-RQ's calling AE title, once admitted: the device of the experiment. */
  callingAe?: string | undefined;
}

/**
 * Run the proxy until SIGINT/SIGTERM: listen on every route, relay in this process or in `workers`
 * processes, reload on SIGHUP. On a signal: stop listening, let associations in flight finish (at most
 * --drain-timeout), flush the recorders, resolve with exit status 0. A second signal, or the drain timeout,
 * aborts what is left (A-ABORT to both peers; exit status 1 when a live association was cut short); the whole
 * stop is bounded. A route that cannot listen stops the whole process (exit status 1); a row or capture file
 * that cannot be created, exit status 2.
 */
export async function runSupervisor(first: readonly RouteConfig[], run: SupervisorOptions): Promise<number> {
  const count = Math.max(1, run.workers);
  const log = createLogger(run.logLevel, count > 1 ? { worker: 'primary' } : undefined);
  raiseMallocThresholds();
  installMemoryProbe(log);
  // Handlers first: a signal that arrives while starting up still gets a clean shutdown.
  const signals = catchControlSignals();
  const supervisor = new Supervisor(log, run, count);
  // The handlers stay installed after the stop: a signal that comes while the process exits (a supervisor's
  // second SIGTERM, a loaded machine's slow exit) is ignored instead of killing it with status null.
  return supervisor.serve([...first], signals.first, signals.second, signals.onReload);
}

class Supervisor implements ControlCalls {
  private readonly log: Logger;
  private readonly run: SupervisorOptions;
  private readonly count: number;
  private phase: 'starting' | 'running' | 'draining' | 'stopping' = 'starting';
  private readonly listeners: Listeners;
  private readonly relays: Relay[] = [];
  private readonly generations: Generations;
  private readonly connections = new Map<number, Connection>();
  private readonly load = new Map<Relay, number>();
  private readonly admitted = new Map<string, number>();
  /** Connections accepted while no relay could take them (all starting or restarting). */
  private waiting: Array<{ socket: Socket; key: string; assoc: number }> = [];
  /** --bandwidth routes always go to one relay (their one wire per direction lives there), by listener. */
  private readonly pinned = new Map<string, Relay>();
  private nextAssoc = 1;
  private turn = 0;
  private endpoints: HttpEndpoint[] = [];
  /** dicom_pdu_proxy_experiment_arm_withdrawn_total, when metrics are served. */
  private armsWithdrawn: ControlMetrics['armsWithdrawn'] | undefined;

  constructor(log: Logger, run: SupervisorOptions, count: number) {
    this.log = log;
    this.run = run;
    this.count = count;
    this.listeners = new Listeners(log, count > 1, (socket, key) => this.dispatch(socket, key));
    this.generations = new Generations(log, this.listeners, run.reload, run.configFile);
  }

  /** The settings new connections get. */
  private get current(): Generation {
    return this.generations.current;
  }

  /** What /readyz reports: ready while running and at least one relay takes connections (one worker restarting is not a stop). */
  private readonly health: HealthState = Object.defineProperty({ state: 'starting' } as HealthState, 'state', {
    get: (): Readiness => {
      if (this.phase === 'draining' || this.phase === 'stopping') return 'draining';
      return this.phase === 'running' && this.relays.some((r) => r.ready) ? 'ready' : 'starting';
    },
    set: () => undefined,
  });

  async serve(routes: RouteConfig[], firstSignal: Promise<NodeJS.Signals>, secondSignal: () => Promise<NodeJS.Signals>, onReload: (handler: () => void) => void): Promise<number> {
    const options = routes[0]!.options;
    if (this.count > 1 && routes.some((r) => r.options.pcap)) {
      process.stderr.write(`dicom-pdu-proxy: --pcap cannot be used with --workers ${this.count} (one capture per process is not supported): use --workers 1\n`);
      return 2;
    }
    // The row files: created (the chunk CSV truncated and its header written) here, once. Worker processes
    // append to them; one process goes on with these recorders.
    let rows: RowRecorders;
    try {
      rows = await openRowRecorders(options, this.log, 'create');
      if (this.count > 1) await Promise.all(rows.recorders.map((r) => r.close()));
    } catch (err) {
      if (!(err instanceof RowFileError)) throw err;
      process.stderr.write(`dicom-pdu-proxy: ${err.message}\n`);
      return 2;
    }
    // Listen first (a route that cannot listen stops everything), then start the relays.
    for (const [i, route] of routes.entries()) {
      const failed = await this.listeners.listen(route, i);
      if (failed) {
        process.stderr.write(`dicom-pdu-proxy: ${listenLabel(route)}: ${failed}\n`);
        if (this.count === 1) await Promise.all(rows.recorders.map((r) => r.close()));
        await this.release();
        return 1;
      }
    }
    this.generations.first(routes);
    const local = this.count === 1 ? new LocalRelay(this, { log: this.log, metrics: this.run.metrics !== undefined, capture: true, rows }) : undefined;
    if (local) this.relays.push(local);
    else for (let i = 0; i < this.count; i++) this.relays.push(new WorkerRelay(i, this, this.log));
    for (const relay of this.relays) this.load.set(relay, 0);
    const started = await Promise.race([
      Promise.all(this.relays.map((r) => r.start(this.current.wire, this.current.ids))).then(
        () => undefined,
        (err: Error) => err,
      ),
      firstSignal.then(() => 'signal' as const),
    ]);
    if (started instanceof Error) {
      process.stderr.write(`dicom-pdu-proxy: ${started.message}\n`);
      this.phase = 'stopping';
      for (const relay of this.relays) relay.kill();
      await this.release();
      return started instanceof RowFileError || started instanceof CaptureFileError ? 2 : 1;
    }
    const endpointFailure = await this.serveEndpoints(local);
    if (endpointFailure) {
      process.stderr.write(`dicom-pdu-proxy: ${endpointFailure}\n`);
      this.phase = 'stopping';
      for (const relay of this.relays) relay.abort('the proxy could not start');
      for (const relay of this.relays) relay.kill();
      await this.release();
      return 1;
    }
    if (started !== 'signal') this.phase = 'running';
    for (const i of routes.keys()) this.logListening(this.current, i);
    this.logExperiments(this.current);
    onReload(() => void this.generations.reload(this.reloadHost));
    return this.shutdown(await firstSignal, secondSignal, options.drainTimeoutMs);
  }

  // ---- Connections ----------------------------------------------------------------------------------

  private dispatch(socket: Socket, key: string): void {
    const route = this.generations.routeOf(key);
    if ((this.phase !== 'running' && this.phase !== 'starting') || route < 0) {
      socket.destroy();
      return;
    }
    const assoc = this.nextAssoc++;
    this.boundPending(key, this.current.wire.routes[route]!.options.maxPendingConnections);
    const relay = this.pick(key, route);
    this.log.debug(
      { assoc, route: this.current.ids[route], worker: this.count > 1 ? relay?.index : undefined, peer: `${socket.remoteAddress}:${socket.remotePort}` },
      'connection accepted',
    );
    this.connections.set(assoc, { relay, generation: this.current.wire.generation, route, key, pending: true, admitted: false });
    if (!relay) {
      this.waiting.push({ socket, key, assoc });
      return;
    }
    this.load.set(relay, this.load.get(relay)! + 1);
    relay.hand(socket, this.current.wire.generation, route, assoc);
  }

  /** The relay for a new connection: a --bandwidth route's own; else the ready one with the fewest connections (ties go round). */
  private pick(key: string, route: number): Relay | undefined {
    const options = this.current.wire.routes[route]!.options;
    if (shapingFor(options, 'to_scp')?.bytesPerSecond || shapingFor(options, 'to_scu')?.bytesPerSecond) {
      let relay = this.pinned.get(key);
      if (!relay) this.pinned.set(key, (relay = this.relays[this.pinned.size % this.relays.length]!));
      return relay.ready ? relay : undefined;
    }
    let best: Relay | undefined;
    for (let k = 0; k < this.relays.length; k++) {
      const r = this.relays[(this.turn + k) % this.relays.length]!;
      if (r.ready && (!best || this.load.get(r)! < this.load.get(best)!)) best = r;
    }
    this.turn = (this.turn + 1) % this.relays.length;
    return best;
  }

  /** --max-pending: make room for one more connection without an RQ on this listener (the oldest goes). */
  private boundPending(key: string, max: number): void {
    let pending = 0;
    let oldest: number | undefined;
    for (const [assoc, c] of this.connections) {
      if (c.key !== key || !c.pending) continue;
      pending++;
      oldest ??= assoc; // a Map iterates in insertion order: the first is the oldest
    }
    // A real SCU sends its RQ within milliseconds of connecting; connections that do not only hold file
    // descriptors until ARTIM closes them, so a flood of them must not exhaust the process.
    if (pending < max || oldest === undefined) return;
    const c = this.connections.get(oldest)!;
    c.pending = false;
    const why = `${pending} connections without an A-ASSOCIATE-RQ: the oldest is closed to make room`;
    if (c.relay) c.relay.closePending(oldest, why);
    else {
      const at = this.waiting.findIndex((w) => w.assoc === oldest);
      if (at >= 0) this.waiting.splice(at, 1)[0]!.socket.destroy();
      this.forget(oldest);
    }
  }

  private forget(assoc: number): void {
    const c = this.connections.get(assoc);
    if (!c) return;
    this.connections.delete(assoc);
    if (c.relay) this.load.set(c.relay, this.load.get(c.relay)! - 1);
    if (c.admitted) this.admitted.set(c.key, this.admitted.get(c.key)! - 1);
  }

  // ---- What relays ask (ControlCalls) -------------------------------------------------------------

  admit(_relay: Relay, assoc: number, request: AdmissionRequest): Decision {
    const c = this.connections.get(assoc);
    const draining = this.phase === 'draining' || this.phase === 'stopping';
    if (!c) return { refusal: new AdmissionRules({ maxAssociations: 0 }).decide(request, { draining: true, associations: 0 })! };
    c.pending = false;
    const generation = this.generations.get(c.generation)!;
    const refusal = generation.rules[c.route]!.decide(request, { draining, associations: this.admitted.get(c.key) ?? 0 });
    if (refusal) return { refusal };
    c.admitted = true;
    c.callingAe = request.callingAe;
    this.admitted.set(c.key, (this.admitted.get(c.key) ?? 0) + 1);
    // The arm: decided here, once, whichever relay runs the association (--assign, per calling AE title).
    return { arm: generation.experiments.experiments[c.route]!.assign(request.callingAe), generation: c.generation };
  }

  done(_relay: Relay, assoc: number, outcome?: OutcomeWire): void {
    const c = this.connections.get(assoc);
    if (c?.admitted && c.callingAe !== undefined && outcome) this.guard(c, c.callingAe, outcome);
    this.forget(assoc);
  }

  /**
   * An association on an arm ended: tell the route's guard. The experiment of the current generation when it
   * carried on the association's (same route id, same arms), else the association's own.
   */
  private guard(c: Connection, callingAe: string, outcome: OutcomeWire): void {
    const own = this.generations.get(c.generation);
    if (!own) return;
    const route = own.ids[c.route]!;
    const at = this.current.ids.indexOf(route);
    const mine = own.experiments.experiments[c.route]!;
    const current = at >= 0 ? this.current.experiments.experiments[at]! : undefined;
    const experiment = current && sameArms(current.settings.arms, mine.settings.arms) ? current : mine;
    const arm = experiment.settings.arms[outcome.arm];
    if (!arm) return;
    for (const w of experiment.outcome(callingAe, arm, outcome.result)) {
      this.log.warn(
        {
          route,
          callingAe: w.device,
          arm: w.arm.label,
          reason: w.reason,
          associations: w.associations,
          failures: w.failures,
          run: w.run,
          ...(w.best ? { best: { arm: w.best.arm.label, associations: w.best.associations, failures: w.best.failures }, p: w.p } : {}),
          inPlay: w.inPlay.map((a) => a.label),
        },
        'experiment arm withdrawn for a calling AE',
      );
      this.armsWithdrawn?.labels(route, w.arm.label).inc();
    }
  }

  /** One line per route with an experiment (several arms): its arms, assignment, seed and guard. */
  private logExperiments(g: Generation): void {
    for (const d of g.experiments.descriptions) {
      if (d.arms.length < 2) continue;
      this.log.info(
        { route: d.route, generation: g.wire.generation, arms: d.arms, assign: d.assign, seed: d.seed, seedGiven: d.seedGiven, guard: d.guard, carriedOver: d.carriedOver },
        'experiment',
      );
    }
  }

  ready(_relay: Relay): void {
    // Connections that waited for a relay: each to the relay it may go to now.
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) {
      const c = this.connections.get(w.assoc);
      // Its settings are the current ones: an older generation may be gone from the relay by now.
      const route = this.generations.routeOf(w.key);
      if (!c || route < 0) {
        w.socket.destroy();
        this.forget(w.assoc);
        continue;
      }
      const target = this.pick(w.key, route);
      if (!target) {
        this.waiting.push(w);
        continue;
      }
      c.relay = target;
      c.generation = this.current.wire.generation;
      c.route = route;
      this.load.set(target, this.load.get(target)! + 1);
      target.hand(w.socket, c.generation, route, w.assoc);
    }
  }

  died(relay: Relay): void {
    for (const [assoc, c] of [...this.connections]) if (c.relay === relay) this.forget(assoc);
  }

  // ---- Endpoints ---------------------------------------------------------------------------------

  /** The metrics and health endpoints; an error line when one cannot listen. */
  private async serveEndpoints(local: LocalRelay | undefined): Promise<string | undefined> {
    const { metrics, health } = this.run;
    const base = (e: HttpEndpoint): string => `http://${formatEndpoint({ host: e.address.address, port: e.address.port })}`;
    if (metrics) {
      try {
        const endpoint = await import('./metrics-endpoint.js');
        let served: HttpEndpoint;
        if (local) {
          served = await endpoint.serveMetrics(metrics, local.host!.metrics!, this.health);
          this.armsWithdrawn = local.host!.metrics!.armsWithdrawn;
        } else {
          // What the control plane counts itself, beside the workers' sum.
          const { ControlMetrics } = await import('../record/metrics.js');
          const own = new ControlMetrics();
          served = await endpoint.serveClusterMetrics(metrics, this.health, own.registry);
          this.armsWithdrawn = own.armsWithdrawn;
        }
        this.endpoints.push(served);
        this.log.info({ metrics: `${base(served)}/metrics` }, 'metrics listening');
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        return `--metrics ${formatEndpoint(metrics)}: ${e.code ?? e.message}`;
      }
    }
    if (health) {
      try {
        const served = await serveHealth(health, this.health);
        this.endpoints.push(served);
        this.log.info({ healthz: `${base(served)}/healthz`, readyz: `${base(served)}/readyz` }, 'health listening');
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        return `--health ${formatEndpoint(health)}: ${e.code ?? e.message}`;
      }
    }
    return undefined;
  }

  /** The 'listening' line of the route at `index` of generation `g` (and the warning of an unverified upstream). */
  private logListening(g: Generation, index: number): void {
    const route = g.wire.routes[index]!;
    const id = g.ids[index]!;
    const address = this.listeners.address(g.keys[index]!)!;
    this.log.info(
      {
        route: id,
        listen: `${address.address}:${address.port}`,
        ...describeRoute(route.options),
        ...(this.count > 1 ? { workers: this.count } : {}),
        generation: g.wire.generation,
      },
      'listening',
    );
    if (route.options.upstreamTls?.insecure) {
      this.log.warn(
        { route: id, upstream: `${route.options.upstream.host}:${route.options.upstream.port}` },
        'upstream TLS certificate is NOT verified (--upstream-tls-insecure): anyone on the path can pose as the SCP',
      );
    }
  }

  // ---- Reload (SIGHUP): generations.ts ---------------------------------------------------------------

  private readonly reloadHost: ReloadHost = {
    phase: () => this.phase,
    settings: (next) => {
      for (const relay of this.relays) relay.settings(next.wire, next.ids);
    },
    configState: (generation, failures) => {
      for (const relay of this.relays) relay.configState(generation, failures);
    },
    logExperiments: (g) => this.logExperiments(g),
    logListening: (g, index) => this.logListening(g, index),
  };

  // ---- Shutdown -------------------------------------------------------------------------------------

  private async shutdown(signal: NodeJS.Signals, secondSignal: () => Promise<NodeJS.Signals>, drainTimeoutMs: number): Promise<number> {
    this.phase = 'draining';
    const second = secondSignal();
    const listenersClosed = this.listeners.closeAll();
    // Connections still waiting for a relay never reached one: close them.
    for (const w of this.waiting.splice(0)) {
      w.socket.destroy();
      this.forget(w.assoc);
    }
    for (const relay of this.relays) relay.drain();
    const active = (): number => [...this.admitted.values()].reduce((a, b) => a + b, 0);
    this.log.info({ signal, active: active(), ...(this.count > 1 ? { workers: this.count } : {}), drainTimeoutMs }, 'shutting down: draining associations in flight');
    const allStopped = Promise.all(this.relays.map((r) => r.stopped));
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      allStopped.then(() => 'drained' as const),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), drainTimeoutMs))),
      second.then(() => 'signal' as const),
    ]);
    clearTimeout(timer);
    this.phase = 'stopping';
    if (outcome !== 'drained') {
      const why = outcome === 'signal' ? 'second signal during shutdown' : `drain timeout (${drainTimeoutMs} ms)`;
      this.log.warn({ reason: why, active: active() }, 'shutting down: aborting associations still in flight');
      for (const relay of this.relays) relay.abort(`proxy shutting down: ${why}`);
      // Bounded whatever is open: peers that do not close after the grace are cut off by the relays; a relay
      // that has not stopped shortly after is stopped.
      await Promise.race([allStopped, new Promise<void>((resolve) => (timer = setTimeout(resolve, ABORT_GRACE_MS + 600)))]);
      clearTimeout(timer);
      for (const relay of this.relays) relay.kill();
    }
    await Promise.race([listenersClosed, new Promise<void>((resolve) => (timer = setTimeout(resolve, 200)))]);
    clearTimeout(timer);
    await this.release();
    const aborted = this.relays.reduce((n, r) => n + r.aborted, 0);
    this.log.info({ aborted }, 'stopped');
    return aborted > 0 ? 1 : 0;
  }

  private async release(): Promise<void> {
    for (const w of this.waiting.splice(0)) w.socket.destroy();
    await this.listeners.closeAll();
    await Promise.all(this.endpoints.map((e) => e.close()));
    this.endpoints = [];
  }
}
