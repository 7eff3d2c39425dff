// Prometheus metrics (--metrics): a recorder fed by the same events as the CSV logs, and the sum of the
// workers' registries (--workers). Loaded only when --metrics is set (prom-client is imported here and
// nowhere else); the HTTP endpoint that serves them is the control plane's (src/control/metrics-endpoint.ts).
//
// The hot path stays cheap: every route gets a view (forRoute) that adds PDU bytes and counts to plain
// numbers, handed to prom-client's counters when a scrape asks (collect()); only the PDU size histogram is
// observed per PDU, through a labelled child looked up once per route and direction. Label values are the
// route id (a plain word), a direction, and fixed vocabularies: never a peer's text.

import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { durationUs } from '../dimse/tracker.js';
import { ABORT_CAUSES, ASSOCIATION_OUTCOMES, REJECTION_SOURCES, TLS_FAILURE_REASONS } from '../events/events.js';
import type { AssociationEvent, CertificateEvent, Direction, MessageRecord, PduRecord, Recorder, TlsFailureEvent } from '../events/events.js';
import { PDU_HEADER_LENGTH } from '../pdu/constants.js';
import { NO_ARM_METRIC_LABEL } from '../experiment/arms.js';

export const METRIC_PREFIX = 'dicom_pdu_proxy_';

/** PDU-length buckets: 4 KiB, 8 KiB, ... 32 MiB (powers of two, as Maximum Lengths usually are). */
export const PDU_SIZE_BUCKETS: readonly number[] = Array.from({ length: 14 }, (_, i) => 4096 * 2 ** i);

/** Message duration buckets, seconds: 1 ms to 5 min. */
export const MESSAGE_DURATION_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

const DIRECTIONS: readonly Direction[] = ['to_scp', 'to_scu'];

/** Per route and direction, counts not yet handed to prom-client. */
interface Pending {
  pdus: number;
  pdusSent: number;
  violations: number;
}

const none = (): Pending => ({ pdus: 0, pdusSent: 0, violations: 0 });

type Labels = 'route' | 'direction';
type ArmLabels = Labels | 'arm';

/** One arm's bytes on one route: not yet handed to prom-client, and its labelled children. */
interface ArmBytes {
  arm: string;
  pending: Record<Direction, number>;
  children: Record<Direction, Counter.Internal>;
}

/**
 * dicom_pdu_proxy_experiment_arm_withdrawn_total{route,arm}: arms the guard withdrew for a calling AE title
 * (counted by the control plane, where the guard runs; the AE title is in the warn line, never a label).
 */
function armsWithdrawnCounter(registry: Registry): Counter<'route' | 'arm'> {
  return new Counter({
    name: `${METRIC_PREFIX}experiment_arm_withdrawn_total`,
    help: 'Experiment arms (--max-pdu A,B,...) withdrawn by the guard for one calling AE title whose associations failed on them (--guard on); that device goes on with the other arms',
    labelNames: ['route', 'arm'],
    registers: [registry],
  });
}

/** --workers: what the control plane counts itself (the workers' metrics are summed beside it). */
export class ControlMetrics {
  readonly registry = new Registry();
  readonly armsWithdrawn = armsWithdrawnCounter(this.registry);
}

export class MetricsRecorder implements Recorder {
  readonly registry = new Registry();
  /** Counted by the control plane when it runs in this process (one process). */
  readonly armsWithdrawn = armsWithdrawnCounter(this.registry);
  private readonly views: RouteView[] = [];
  readonly bytes: Counter<ArmLabels>;
  readonly pdus: Counter<Labels>;
  readonly pdusSent: Counter<Labels>;
  readonly violations: Counter<Labels>;
  readonly pduSize: Histogram<Labels>;
  readonly messageDuration: Histogram<ArmLabels>;
  readonly associationsOpen: Gauge<'route'>;
  readonly associations: Counter<'route'>;
  readonly associationsEnded: Counter<'route' | 'outcome'>;
  readonly aborts: Counter<'route' | 'reason'>;
  readonly rejections: Counter<'route' | 'by'>;
  readonly tlsFailures: Counter<'route' | 'leg' | 'reason'>;
  readonly rowsDropped: Counter<'file'>;
  readonly configGeneration: Gauge;
  readonly configReloadFailures: Counter;
  private reloadFailuresReported = 0;
  readonly certExpiry: Gauge<'route' | 'cert'>;
  /** Per CSV file (label value: the flag's name), its recorder's running count of dropped rows. */
  private readonly droppedSources = new Map<string, { count: () => number; reported: number }>();

  constructor() {
    const registers = [this.registry];
    // The process's own: resident memory, open descriptors, heap, event-loop delay (p50/p90/p99 over the
    // time since the previous scrape), handles; what a soak watches for leaks.
    collectDefaultMetrics({ register: this.registry });
    const views = this.views;
    // Counters fed from the views' pending sums, at scrape time.
    const flush = (pick: (p: Pending) => number, reset: (p: Pending) => void) =>
      function collect(this: Counter<Labels>): void {
        for (const view of views) {
          for (const direction of DIRECTIONS) {
            const pending = view.pending[direction];
            const n = pick(pending);
            if (n > 0) view.counters(this)[direction].inc(n);
            reset(pending);
          }
        }
      };
    this.bytes = new Counter({
      name: `${METRIC_PREFIX}bytes_total`,
      help: `Bytes of the PDUs forwarded, as received from their sender (PDU headers included); arm: the association's --max-pdu arm, "${NO_ARM_METRIC_LABEL}" without arms`,
      labelNames: ['route', 'direction', 'arm'],
      registers,
      collect(): void {
        for (const view of views) {
          for (const arm of view.armBytes.values()) {
            for (const direction of DIRECTIONS) {
              const n = arm.pending[direction];
              if (n > 0) arm.children[direction].inc(n);
              arm.pending[direction] = 0;
            }
          }
        }
      },
    });
    this.pdus = new Counter({
      name: `${METRIC_PREFIX}pdus_total`,
      help: 'PDUs forwarded, counted as received from their sender',
      labelNames: ['route', 'direction'],
      registers,
      collect: flush(
        (p) => p.pdus,
        (p) => (p.pdus = 0),
      ),
    });
    this.pdusSent = new Counter({
      name: `${METRIC_PREFIX}pdus_sent_total`,
      help: 'PDUs sent onward for the PDUs forwarded (more than received when P-DATA-TF is re-fragmented)',
      labelNames: ['route', 'direction'],
      registers,
      collect: flush(
        (p) => p.pdusSent,
        (p) => (p.pdusSent = 0),
      ),
    });
    this.violations = new Counter({
      name: `${METRIC_PREFIX}violations_repaired_total`,
      help: "PDUs longer than the Maximum Length the proxy announced to their sender, re-fragmented within the receiver's limit",
      labelNames: ['route', 'direction'],
      registers,
      collect: flush(
        (p) => p.violations,
        (p) => (p.violations = 0),
      ),
    });
    this.pduSize = new Histogram({
      name: `${METRIC_PREFIX}pdu_size_bytes`,
      help: 'PDU-length field of the PDUs received (every type), in bytes',
      labelNames: ['route', 'direction'],
      buckets: [...PDU_SIZE_BUCKETS],
      registers,
    });
    this.messageDuration = new Histogram({
      name: `${METRIC_PREFIX}message_duration_seconds`,
      help: `DIMSE requests that got a final response: first request byte to last byte of the final response; direction is the request's (to_scu: sent by the SCP, C-GET sub-operations); arm: the association's --max-pdu arm, "${NO_ARM_METRIC_LABEL}" without arms`,
      labelNames: ['route', 'direction', 'arm'],
      buckets: [...MESSAGE_DURATION_BUCKETS],
      registers,
    });
    this.associationsOpen = new Gauge({
      name: `${METRIC_PREFIX}associations_open`,
      help: 'Associations admitted and not yet closed',
      labelNames: ['route'],
      registers,
    });
    this.associations = new Counter({
      name: `${METRIC_PREFIX}associations_total`,
      help: 'A-ASSOCIATE-RQs received (admitted or refused by the proxy)',
      labelNames: ['route'],
      registers,
    });
    this.associationsEnded = new Counter({
      name: `${METRIC_PREFIX}associations_ended_total`,
      help: 'Associations ended, by outcome: released, rejected (by the SCP or the proxy), aborted, closed (connection closed without release)',
      labelNames: ['route', 'outcome'],
      registers,
    });
    this.aborts = new Counter({
      name: `${METRIC_PREFIX}aborts_total`,
      help: 'Connections that ended aborted, by reason: scu_abort, scp_abort (A-ABORT from a peer), protocol_error, connection_lost, idle_timeout, shutdown, internal_error (an exception inside the proxy), peer_stalled (a peer took no bytes for --stall-timeout)',
      labelNames: ['route', 'reason'],
      registers,
    });
    this.rejections = new Counter({
      name: `${METRIC_PREFIX}associations_rejected_total`,
      help: 'Associations rejected (A-ASSOCIATE-RJ to the SCU), by who rejected them: scp (its own RJ, passed on), proxy (the admission rules), upstream_unavailable (the proxy could not reach the SCP, or its TLS handshake failed)',
      labelNames: ['route', 'by'],
      registers,
    });
    this.tlsFailures = new Counter({
      name: `${METRIC_PREFIX}tls_handshake_failures_total`,
      help: `TLS handshakes that failed, by leg (scu: the listener, scp: the upstream connection) and reason: ${TLS_FAILURE_REASONS.join(', ')}`,
      labelNames: ['route', 'leg', 'reason'],
      registers,
    });
    this.certExpiry = new Gauge({
      name: `${METRIC_PREFIX}tls_cert_expiry_timestamp_seconds`,
      help: "When a certificate stops being valid (notAfter, seconds since the epoch; the earliest of its chain), by cert: listener (--tls-cert), upstream_client (--upstream-tls-cert), upstream_server (the SCP's chain as verified in the last upstream TLS handshake). With --workers, the latest any worker holds",
      labelNames: ['route', 'cert'],
      // --workers: the configured certificates are the same in every worker; of the SCP's, the newest seen
      // (a renewed certificate must not stay hidden behind a worker that has not connected since).
      aggregator: 'max',
      registers,
    });
    this.configGeneration = new Gauge({
      name: `${METRIC_PREFIX}config_generation`,
      help: 'The settings generation new associations get: 1 at start, +1 per reload (SIGHUP) that validated',
      // --workers: every worker is told the same; a worker that has not heard of the newest yet must not hide it.
      aggregator: 'max',
      registers,
    });
    this.configReloadFailures = new Counter({
      name: `${METRIC_PREFIX}config_reload_failures_total`,
      help: 'Reloads (SIGHUP) whose settings did not validate: the settings stayed as they were (the log line names the key)',
      aggregator: 'max',
      registers,
    });
    this.configGeneration.set(1);
    const sources = this.droppedSources;
    this.rowsDropped = new Counter({
      name: `${METRIC_PREFIX}recorder_rows_dropped_total`,
      help: 'CSV rows that never reached their file (disk full, write errors, a disk that did not keep up), by file: csv (--csv), messages_csv (--messages-csv)',
      labelNames: ['file'],
      registers,
      collect(this: Counter<'file'>): void {
        for (const [file, source] of sources) {
          const now = source.count();
          if (now > source.reported) this.labels(file).inc(now - source.reported);
          source.reported = now;
        }
      },
    });
  }

  /** The control plane's settings: the generation in force and the reloads that failed so far (a running count). */
  configState(generation: number, reloadFailures: number): void {
    this.configGeneration.set(generation);
    if (reloadFailures > this.reloadFailuresReported) this.configReloadFailures.inc(reloadFailures - this.reloadFailuresReported);
    this.reloadFailuresReported = Math.max(this.reloadFailuresReported, reloadFailures);
  }

  /** Report the bytes the capture (--pcap) dropped as capture_bytes_dropped_total. */
  watchCaptureDrops(count: () => number): void {
    const source = { count, reported: 0 };
    new Counter({
      name: `${METRIC_PREFIX}capture_bytes_dropped_total`,
      help: 'Relayed bytes the --pcap capture does not hold (a disk that did not keep up, disk full, write errors); the relaying itself lost nothing',
      registers: [this.registry],
      collect(this: Counter): void {
        const now = source.count();
        if (now > source.reported) this.inc(now - source.reported);
        source.reported = now;
      },
    });
  }

  /**
   * Report the rows a CSV recorder dropped (a full or failing disk) as recorder_rows_dropped_total{file};
   * `file` is a fixed word (csv, messages_csv), never a path. The count is read when a scrape asks.
   */
  watchDroppedRows(file: string, count: () => number): void {
    this.droppedSources.set(file, { count, reported: 0 });
    this.rowsDropped.labels(file).inc(0);
  }

  forRoute(route: string): Recorder {
    const view = new RouteView(route, this);
    this.views.push(view);
    return view;
  }

  /** The text exposition, as GET /metrics serves it. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** One route's view: its labelled children, looked up once. */
class RouteView implements Recorder {
  readonly route: string;
  readonly pending: Record<Direction, Pending> = { to_scp: none(), to_scu: none() };
  private readonly metrics: MetricsRecorder;
  private readonly children = new Map<Counter<Labels>, Record<Direction, Counter.Internal>>();
  private readonly pduSize: Record<Direction, Histogram.Internal<Labels>>;
  /** Bytes per arm label; the arm of the last PDU, looked up once per association's run of PDUs. */
  readonly armBytes = new Map<string, ArmBytes>();
  private lastArm: ArmBytes;
  private readonly durations = new Map<string, Record<Direction, Histogram.Internal<ArmLabels>>>();
  private readonly open: Gauge.Internal<'route'>;
  private readonly requested: Counter.Internal;
  private readonly ended: Map<string, Counter.Internal>;
  private readonly aborts: Map<string, Counter.Internal>;
  private readonly rejections: Map<string, Counter.Internal>;
  private readonly tlsFailures: MetricsRecorder['tlsFailures'];

  constructor(route: string, metrics: MetricsRecorder) {
    this.route = route;
    this.metrics = metrics;
    const both = <T>(make: (d: Direction) => T): Record<Direction, T> => ({ to_scp: make('to_scp'), to_scu: make('to_scu') });
    // Every series exists from the start (at 0), so rates and alerts work before the first event.
    for (const counter of [metrics.pdus, metrics.pdusSent, metrics.violations]) {
      const c = both((d) => counter.labels(route, d));
      c.to_scp.inc(0);
      c.to_scu.inc(0);
      this.children.set(counter, c);
    }
    this.pduSize = both((d) => metrics.pduSize.labels(route, d));
    // The arm-labelled series: "none" from the start; each arm's with its first PDU or message.
    this.lastArm = this.bytesOf(NO_ARM_METRIC_LABEL);
    this.durationOf(NO_ARM_METRIC_LABEL);
    for (const direction of DIRECTIONS) metrics.pduSize.zero({ route, direction });
    this.open = metrics.associationsOpen.labels(route);
    this.open.set(0);
    this.requested = metrics.associations.labels(route);
    this.requested.inc(0);
    this.ended = new Map(ASSOCIATION_OUTCOMES.map((o) => [o, metrics.associationsEnded.labels(route, o)]));
    this.aborts = new Map(ABORT_CAUSES.map((r) => [r, metrics.aborts.labels(route, r)]));
    this.rejections = new Map(REJECTION_SOURCES.map((by) => [by, metrics.rejections.labels(route, by)]));
    for (const c of [...this.ended.values(), ...this.aborts.values(), ...this.rejections.values()]) c.inc(0);
    // Rare events: their series appear with the first failure, so routes without TLS stay free of them.
    this.tlsFailures = metrics.tlsFailures;
  }

  counters(counter: Counter<Labels>): Record<Direction, Counter.Internal> {
    return this.children.get(counter)!;
  }

  /** An arm's bytes: its series created (at 0) when first seen. */
  private bytesOf(arm: string): ArmBytes {
    let entry = this.armBytes.get(arm);
    if (entry === undefined) {
      const children = { to_scp: this.metrics.bytes.labels(this.route, 'to_scp', arm), to_scu: this.metrics.bytes.labels(this.route, 'to_scu', arm) };
      children.to_scp.inc(0);
      children.to_scu.inc(0);
      entry = { arm, pending: { to_scp: 0, to_scu: 0 }, children };
      this.armBytes.set(arm, entry);
    }
    return entry;
  }

  /** An arm's message duration histograms: created (empty) when first seen. */
  private durationOf(arm: string): Record<Direction, Histogram.Internal<ArmLabels>> {
    let entry = this.durations.get(arm);
    if (entry === undefined) {
      const histogram = this.metrics.messageDuration;
      entry = { to_scp: histogram.labels(this.route, 'to_scp', arm), to_scu: histogram.labels(this.route, 'to_scu', arm) };
      for (const direction of DIRECTIONS) histogram.zero({ route: this.route, direction, arm });
      this.durations.set(arm, entry);
    }
    return entry;
  }

  pdu(record: PduRecord): void {
    this.pduSize[record.direction].observe(record.length);
    if (record.forwardedUs === undefined) return;
    const arm = record.arm || NO_ARM_METRIC_LABEL;
    if (this.lastArm.arm !== arm) this.lastArm = this.bytesOf(arm);
    this.lastArm.pending[record.direction] += record.length + PDU_HEADER_LENGTH;
    const p = this.pending[record.direction];
    p.pdus++;
    p.pdusSent += record.outPdus;
    if (record.violation) p.violations++;
  }

  message(record: MessageRecord): void {
    if (record.status === undefined) return;
    const us = durationUs(record);
    if (us !== undefined) this.durationOf(record.arm || NO_ARM_METRIC_LABEL)[record.direction].observe(us / 1e6);
  }

  association(event: AssociationEvent): void {
    if (event.phase === 'requested') {
      this.requested.inc();
      if (event.admitted) this.open.inc();
      return;
    }
    if (event.admitted) this.open.dec();
    if (event.requested) this.ended.get(event.outcome)!.inc();
    if (event.abort !== undefined) this.aborts.get(event.abort)!.inc();
    if (event.rejectedBy !== undefined) this.rejections.get(event.rejectedBy)!.inc();
  }

  tlsFailure(event: TlsFailureEvent): void {
    this.tlsFailures.labels(this.route, event.leg, event.reason).inc();
  }

  certificate(event: CertificateEvent): void {
    this.metrics.certExpiry.labels(this.route, event.cert).set(event.notAfterMs / 1000);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

// ---- --workers: the sum of the workers' metrics -----------------------------------------------------
//
// Each worker answers the primary's requests with a snapshot of its registry (getMetricsAsJSON; the
// messages and the HTTP endpoint: src/control/metrics-endpoint.ts). The primary keeps every worker's last
// snapshot and sums the newest snapshot of each. When a worker exits, the counters and histograms of its
// last snapshot are folded into a retired base that every later sum includes, so a *_total never goes down
// when a worker dies and its replacement starts from zero. What the dead worker counted after its last
// snapshot is lost (docs/METRICS.md).

/** One metric of a registry's getMetricsAsJSON(): what a worker's snapshot holds. */
export type MetricJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number];
type SeriesJson = MetricJson['values'][number] & { metricName?: string };

/** The content type of the text exposition (what GET /metrics answers with). */
export const EXPOSITION_CONTENT_TYPE: string = Registry.PROMETHEUS_CONTENT_TYPE;

/** Counters and histograms summed over workers that are gone (what their last snapshots held). */
class RetiredBase {
  private readonly metrics = new Map<string, { metric: MetricJson; series: Map<string, SeriesJson> }>();

  add(snapshot: readonly MetricJson[]): void {
    for (const metric of snapshot) {
      // Only what only goes up: gauges (open associations, memory) of a dead worker are gone with it.
      // prom-client's typings say an enum; the JSON holds the exposition's word ('counter', 'histogram').
      const type = metric.type as unknown as string;
      if ((type !== 'counter' && type !== 'histogram') || (metric.aggregator ?? 'sum') !== 'sum') continue;
      let kept = this.metrics.get(metric.name);
      if (!kept) this.metrics.set(metric.name, (kept = { metric: { ...metric, values: [] }, series: new Map() }));
      for (const value of metric.values as SeriesJson[]) {
        const key = `${value.metricName ?? ''}\u0000${seriesKey(value.labels)}`;
        const sum = kept.series.get(key);
        if (sum) sum.value += value.value;
        else kept.series.set(key, { ...value, labels: { ...value.labels } });
      }
    }
  }

  /** As one more registry's getMetricsAsJSON(), for AggregatorRegistry.aggregate. */
  asJson(): MetricJson[] {
    return [...this.metrics.values()].map(({ metric, series }) => ({ ...metric, values: [...series.values()] }));
  }
}

function seriesKey(labels: Record<string, string | number | undefined>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${String(labels[k])}`)
    .join('\u0000');
}

/**
 * The primary's view of its workers' metrics, apart from node:cluster (tested on its own): snapshots in,
 * the summed exposition out.
 */
export class WorkerMetricsSum {
  private readonly retired = new RetiredBase();
  /** Per worker (cluster id): its newest snapshot and the request it answered. */
  private readonly workers = new Map<number, { hello: boolean; id: number; snapshot: MetricJson[] | undefined }>();
  private readonly waits = new Map<number, { missing: Set<number>; done: () => void }>();
  private nextId = 1;

  /** The worker answers requests from now on: scrapes wait for it. */
  hello(worker: number): void {
    const w = this.workers.get(worker);
    if (w) w.hello = true;
    else this.workers.set(worker, { hello: true, id: 0, snapshot: undefined });
  }

  /** A worker's answer to request `id` (kept only when newer than what it answered before). */
  answer(worker: number, id: number, metrics: MetricJson[]): void {
    const w = this.workers.get(worker);
    if (!w) this.workers.set(worker, { hello: true, id, snapshot: metrics });
    else if (id > w.id) Object.assign(w, { hello: true, id, snapshot: metrics });
    this.settle(worker, id);
  }

  /** The worker is gone: its last counters join the retired base; nothing of it is waited for. */
  exited(worker: number): void {
    const w = this.workers.get(worker);
    this.workers.delete(worker);
    if (w?.snapshot) this.retired.add(w.snapshot);
    for (const id of this.waits.keys()) this.settle(worker, id);
  }

  /**
   * Ask: `send(worker, id)` for every worker that said hello (false when the message could not go); then
   * wait until they all answered, or `timeoutMs`; then sum.
   */
  async collect(send: (worker: number, id: number) => boolean, timeoutMs: number, own?: Registry): Promise<string> {
    const id = this.nextId++;
    const missing = new Set<number>();
    for (const [worker, w] of this.workers) if (w.hello && send(worker, id)) missing.add(worker);
    if (missing.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.waits.set(id, { missing, done: resolve });
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
      this.waits.delete(id);
    }
    return this.exposition(own ? await own.getMetricsAsJSON() : []);
  }

  /** The sum of the retired base, every worker's newest snapshot and the primary's `own` metrics, as text. */
  exposition(own: MetricJson[] = []): Promise<string> {
    const all = [this.retired.asJson(), own];
    for (const w of this.workers.values()) if (w.snapshot) all.push(w.snapshot);
    return AggregatorRegistry.aggregate(all).metrics();
  }

  private settle(worker: number, id: number): void {
    const wait = this.waits.get(id);
    if (!wait) return;
    wait.missing.delete(worker);
    if (wait.missing.size === 0) wait.done();
  }
}
