// The settings generations of the control plane and their reload (SIGHUP). Generation 1 is what the proxy
// started with; each reload that validates makes the next one: the settings read again (the --config file,
// under the same environment and flags), checked (process-wide settings cannot change), the listeners of
// routes it adds opened (all or none), then the new generation handed to every relay and the listeners of
// routes it removes closed (their associations go on). A connection keeps the generation it was accepted
// in, so every generation with connections is kept. Settings that do not validate change nothing: one
// error line and a failure count (dicom_pdu_proxy_config_reload_failures_total).

import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { ProxyOptions, RouteConfig } from '../config/options.js';
import { SETTINGS } from '../config/settings.js';
import { AdmissionRules } from '../proxy/admission.js';
import { ExperimentGeneration } from '../experiment/generation.js';
import type { GenerationWire } from './ipc.js';
import { keyOf } from './listeners.js';
import type { Listeners } from './listeners.js';

/** One settings generation: the routes, the listener each is served on, their admission rules and experiments. */
export interface Generation {
  wire: GenerationWire;
  /** Per route: its listener's key (the listen address as written). */
  keys: string[];
  /** Per route: its id (the configured id, else the bound port). */
  ids: string[];
  rules: AdmissionRules[];
  /** Per route: its --max-pdu arms' assignment and guard (src/experiment). */
  experiments: ExperimentGeneration;
}

/** What a reload asks of the rest of the control plane. */
export interface ReloadHost {
  /** The supervisor's phase: a reload begins only while 'running', and takes effect only if a shutdown has not begun meanwhile. */
  phase(): string;
  /** Tell every relay of the new generation, and of the generation and failure count now in force (metrics). */
  settings(next: Generation): void;
  configState(generation: number, failures: number): void;
  /** The log lines of a new generation: its experiments, and the route at `index` listening for the first time. */
  logExperiments(g: Generation): void;
  logListening(g: Generation, index: number): void;
}

/** Settings that belong to the process, not to a route: a reload cannot change them. */
const PROCESS_WIDE = ['csv', 'messagesCsv', 'pcap'] as const;

/** The process-wide settings `after` changes, as flags ("--csv, --pcap"); undefined when none. */
export function processWideChanges(before: ProxyOptions, after: ProxyOptions): string | undefined {
  const changed = PROCESS_WIDE.filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
  return changed.length > 0 ? changed.map((k) => SETTINGS[k]).join(', ') : undefined;
}

export class Generations {
  private readonly all = new Map<number, Generation>();
  private latest: Generation | undefined;
  private reloading = false;
  /** Reloads that did not validate so far. */
  failures = 0;

  /**
   * `read`: the settings read again; throws a ConfigError naming the key when they do not validate
   * (undefined: there is no file to re-read). `file`: what it reads, for the log lines.
   */
  constructor(
    private readonly log: Logger,
    private readonly listeners: Listeners,
    private readonly read: (() => RouteConfig[]) | undefined,
    private readonly file: string | undefined,
  ) {}

  /** The generation new connections get (after first()). */
  get current(): Generation {
    return this.latest!;
  }

  /** The current generation's route served on listener `key`: its index, -1 when none (or before the first generation). */
  routeOf(key: string): number {
    return this.latest?.keys.indexOf(key) ?? -1;
  }

  get(generation: number): Generation | undefined {
    return this.all.get(generation);
  }

  /** Generation 1: the routes the proxy starts with (their listeners open). */
  first(routes: RouteConfig[]): Generation {
    return (this.latest = this.make(1, routes));
  }

  private make(generation: number, routes: RouteConfig[]): Generation {
    const keys = routes.map((r, i) => keyOf(r, i));
    const ids = routes.map((r, i) => r.id ?? String(this.listeners.address(keys[i]!)!.port));
    // One assignment per route and generation, decided here for every relay; a route whose experiment a
    // reload leaves alone carries on its blocks and guard records (and the seed drawn for it).
    const experiments = new ExperimentGeneration(
      routes.map((r, i) => ({ id: ids[i], arms: r.options.arms, assign: r.options.assign, assignSeed: r.options.assignSeed, guard: r.options.guard })),
      () => randomInt(0, 2 ** 32),
      this.all.get(generation - 1)?.experiments,
    );
    const g: Generation = { wire: { generation, routes }, keys, ids, rules: routes.map((r) => new AdmissionRules(r.options)), experiments };
    this.all.set(generation, g);
    return g;
  }

  /**
   * SIGHUP: re-read the settings; new connections get them, connections accepted before keep theirs, the
   * listeners stay open (routes added get one, routes removed stop listening; their associations go on).
   */
  async reload(host: ReloadHost): Promise<void> {
    if (host.phase() !== 'running' || this.reloading) {
      this.log.warn({ phase: this.reloading ? 'reloading' : host.phase() }, 'SIGHUP ignored: the proxy is not running or already reloading');
      return;
    }
    if (!this.read) {
      this.log.warn('SIGHUP: no --config file to re-read: settings unchanged');
      return;
    }
    this.reloading = true;
    try {
      let routes: RouteConfig[];
      try {
        routes = this.read();
      } catch (err) {
        return this.failed(host, (err as Error).message);
      }
      const changed = processWideChanges(this.current.wire.routes[0]!.options, routes[0]!.options);
      if (changed) return this.failed(host, `${changed} cannot change without a restart`);
      const listened = await this.listeners.listenMissing(routes);
      if ('failed' in listened) return this.failed(host, listened.failed);
      if (host.phase() !== 'running') return; // a shutdown began meanwhile: it closes what was opened
      const next = this.make(this.current.wire.generation + 1, routes);
      host.settings(next);
      host.configState(next.wire.generation, this.failures);
      const removed = this.listeners.keys().filter((k) => !next.keys.includes(k));
      this.latest = next;
      for (const key of removed) {
        this.log.info({ listen: key }, 'route removed by the reload: its listener is closed, its associations go on');
        void this.listeners.close(key);
      }
      this.log.info({ generation: next.wire.generation, file: this.file, routes: next.ids, opened: listened.opened.length, closed: removed.length }, 'settings reloaded');
      host.logExperiments(next);
      for (const i of routes.keys()) if (listened.opened.includes(next.keys[i]!)) host.logListening(next, i);
    } finally {
      this.reloading = false;
    }
  }

  private failed(host: ReloadHost, why: string): void {
    this.failures++;
    host.configState(this.current.wire.generation, this.failures);
    this.log.error({ file: this.file, reason: why, generation: this.current.wire.generation, failures: this.failures }, 'reload failed: the settings stay as they were');
  }
}
