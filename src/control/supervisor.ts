// The control plane: one per proxy, whatever the number of relay processes. It owns what must be one:
// the listeners, the association ids, admission (--allow-*, --max-associations) and the --max-pending bound,
// the settings and their reloads (SIGHUP), the drain and the signals, the health and metrics endpoints. The
// relays (relays.ts) run the associations, in this process or in --workers processes: one process is the
// N = 1 case of the same code. Every connection is accepted here, given an id and handed to a relay; the
// relay asks once per A-ASSOCIATE-RQ whether to admit it (in-process: a call; a worker: one IPC round trip
// per association, none per PDU). Nothing else of a connection passes through the control plane.

import { randomInt } from 'node:crypto';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import type { RouteConfig } from '../config/options.js';
import { shapingFor } from '../config/options.js';
import { AdmissionRules } from '../proxy/admission.js';
import type { AdmissionRequest, Decision, OutcomeWire } from '../proxy/admission.js';
import { ExperimentGeneration } from '../experiment/generation.js';
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
import type { GenerationWire } from './ipc.js';
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

/** One settings generation: the routes, the listener each is served on, their admission rules and experiments. */
interface Generation {
  wire: GenerationWire;
  /** Per route: its listener's key (the listen address as written). */
  keys: string[];
  /** Per route: its id (the configured id, else the bound port). */
  ids: string[];
  rules: AdmissionRules[];
  /** Per route: its --max-pdu arms' assignment and guard (src/experiment). */
  experiments: ExperimentGeneration;
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

interface Listener {
  server: net.Server;
  port: number;
  address: AddressInfo;
}

/** Settings that belong to the process, not to a route: a reload cannot change them. */
const PROCESS_WIDE = ['csv', 'messagesCsv', 'pcap'] as const;

/**
 * A route's listener, by its address; routes on port 0 (a free port each) by their id or place. A reload keeps
 * the listener of a route whose key it keeps.
 */
const keyOf = (route: RouteConfig, index: number): string => {
  const where = formatEndpoint(route.options.listen);
  return route.options.listen.port !== 0 ? where : `${where}#${route.id ?? index}`;
};

/** How a route's listen failure is named on stderr: the flag or route it came from, and the address. */
function listenLabel(route: RouteConfig): string {
  const where = formatEndpoint(route.options.listen);
  return route.label === '--listen' ? `--listen ${where}` : `${route.label} (listen ${where})`;
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
  private readonly listeners = new Map<string, Listener>();
  private readonly relays: Relay[] = [];
  private readonly generations = new Map<number, Generation>();
  private current!: Generation;
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
  private reloadFailures = 0;
  /** dicom_pdu_proxy_experiment_arm_withdrawn_total, when metrics are served. */
  private armsWithdrawn: ControlMetrics['armsWithdrawn'] | undefined;

  constructor(log: Logger, run: SupervisorOptions, count: number) {
    this.log = log;
    this.run = run;
    this.count = count;
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
      const failed = await this.openListener(route, i);
      if (failed) {
        process.stderr.write(`dicom-pdu-proxy: ${listenLabel(route)}: ${failed}\n`);
        if (this.count === 1) await Promise.all(rows.recorders.map((r) => r.close()));
        await this.release();
        return 1;
      }
    }
    this.current = this.generation(1, routes);
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
    for (const [i, route] of routes.entries()) this.logListening(route, this.current.keys[i]!, this.current.ids[i]!);
    this.logExperiments(this.current);
    onReload(() => void this.reload());
    return this.shutdown(await firstSignal, secondSignal, options.drainTimeoutMs);
  }

  // ---- Listeners and connections ------------------------------------------------------------------

  /** Bind a route's listener (unless one is open on its address already); an error code when it cannot. */
  private async openListener(route: RouteConfig, index: number): Promise<string | undefined> {
    const key = keyOf(route, index);
    if (this.listeners.has(key)) return undefined;
    // A connection for a worker is handed over before anything is read from it.
    const server = net.createServer({ pauseOnConnect: this.count > 1, allowHalfOpen: true }, (socket) => this.dispatch(socket, key));
    try {
      const address = await new Promise<AddressInfo>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: route.options.listen.host, port: route.options.listen.port }, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
      server.on('error', (err) => this.log.error({ listen: key, err: err.message }, 'listener error'));
      this.listeners.set(key, { server, port: address.port, address });
      return undefined;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return e.code ?? e.message;
    }
  }

  private closeListener(key: string): Promise<void> {
    const listener = this.listeners.get(key);
    this.listeners.delete(key);
    return new Promise((resolve) => (listener?.server.listening ? listener.server.close(() => resolve()) : resolve()));
  }

  private generation(generation: number, routes: RouteConfig[]): Generation {
    const keys = routes.map((r, i) => keyOf(r, i));
    const ids = routes.map((r, i) => r.id ?? String(this.listeners.get(keys[i]!)!.port));
    // One assignment per route and generation, decided here for every relay; a route whose experiment a
    // reload leaves alone carries on its blocks and guard records (and the seed drawn for it).
    const experiments = new ExperimentGeneration(
      routes.map((r, i) => ({ id: ids[i], arms: r.options.arms, assign: r.options.assign, assignSeed: r.options.assignSeed, guard: r.options.guard })),
      () => randomInt(0, 2 ** 32),
      this.generations.get(generation - 1)?.experiments,
    );
    const g: Generation = { wire: { generation, routes }, keys, ids, rules: routes.map((r) => new AdmissionRules(r.options)), experiments };
    this.generations.set(generation, g);
    return g;
  }

  private dispatch(socket: Socket, key: string): void {
    const route = this.current?.keys.indexOf(key) ?? -1;
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
      const route = this.current.keys.indexOf(w.key);
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

  private logListening(route: RouteConfig, key: string, id: string): void {
    const listener = this.listeners.get(key)!;
    this.log.info(
      {
        route: id,
        listen: `${listener.address.address}:${listener.address.port}`,
        ...describeRoute(route.options),
        ...(this.count > 1 ? { workers: this.count } : {}),
        generation: this.current.wire.generation,
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

  // ---- Reload (SIGHUP) -----------------------------------------------------------------------------

  private reloading = false;

  /**
   * Re-read the settings: new connections get them, connections accepted before keep theirs, the listeners
   * stay open (routes added get one, routes removed stop listening; their associations go on). Settings that
   * do not validate change nothing: one error line, a failure count.
   */
  private async reload(): Promise<void> {
    if (this.phase !== 'running' || this.reloading) {
      this.log.warn({ phase: this.reloading ? 'reloading' : this.phase }, 'SIGHUP ignored: the proxy is not running or already reloading');
      return;
    }
    if (!this.run.reload) {
      this.log.warn('SIGHUP: no --config file to re-read: settings unchanged');
      return;
    }
    this.reloading = true;
    try {
      let routes: RouteConfig[];
      try {
        routes = this.run.reload();
      } catch (err) {
        return this.reloadFailed((err as Error).message);
      }
      const before = this.current.wire.routes[0]!.options;
      const changed = PROCESS_WIDE.filter((k) => JSON.stringify(before[k]) !== JSON.stringify(routes[0]!.options[k]));
      if (changed.length > 0) return this.reloadFailed(`${changed.map(flagOf).join(', ')} cannot change without a restart`);
      const opened: string[] = [];
      for (const [i, route] of routes.entries()) {
        const key = keyOf(route, i);
        if (this.listeners.has(key)) continue;
        const failed = await this.openListener(route, i);
        if (failed) {
          for (const k of opened) await this.closeListener(k);
          return this.reloadFailed(`${listenLabel(route)}: ${failed}`);
        }
        opened.push(key);
      }
      if (this.phase !== 'running') return; // a shutdown began meanwhile: it closes what was opened
      const next = this.generation(this.current.wire.generation + 1, routes);
      for (const relay of this.relays) relay.settings(next.wire, next.ids);
      for (const relay of this.relays) relay.configState(next.wire.generation, this.reloadFailures);
      const removed = [...this.listeners.keys()].filter((k) => !next.keys.includes(k));
      this.current = next;
      for (const key of removed) {
        this.log.info({ listen: key }, 'route removed by the reload: its listener is closed, its associations go on');
        void this.closeListener(key);
      }
      this.log.info({ generation: next.wire.generation, file: this.run.configFile, routes: next.ids, opened: opened.length, closed: removed.length }, 'settings reloaded');
      this.logExperiments(next);
      for (const [i, route] of routes.entries()) if (opened.includes(next.keys[i]!)) this.logListening(route, next.keys[i]!, next.ids[i]!);
    } finally {
      this.reloading = false;
    }
  }

  private reloadFailed(why: string): void {
    this.reloadFailures++;
    for (const relay of this.relays) relay.configState(this.current.wire.generation, this.reloadFailures);
    this.log.error(
      { file: this.run.configFile, reason: why, generation: this.current.wire.generation, failures: this.reloadFailures },
      'reload failed: the settings stay as they were',
    );
  }

  // ---- Shutdown -------------------------------------------------------------------------------------

  private async shutdown(signal: NodeJS.Signals, secondSignal: () => Promise<NodeJS.Signals>, drainTimeoutMs: number): Promise<number> {
    this.phase = 'draining';
    const second = secondSignal();
    const listenersClosed = Promise.all([...this.listeners.keys()].map((k) => this.closeListener(k)));
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
    await Promise.all([...this.listeners.keys()].map((k) => this.closeListener(k)));
    await Promise.all(this.endpoints.map((e) => e.close()));
    this.endpoints = [];
  }
}

function flagOf(key: (typeof PROCESS_WIDE)[number]): string {
  return key === 'csv' ? '--csv' : key === 'messagesCsv' ? '--messages-csv' : '--pcap';
}
