// The experiment's table (stats on a messages CSV whose rows carry more than one arm): per arm, and per
// stratum (a device with --by calling_aet; per route too when the rows hold several), the associations,
// messages, bytes, median MB/s and share of associations, and each arm's effect against the reference arm
// at equal data-set size with its bootstrap interval and verdict (src/analysis/arm-effect.ts). The engine
// reads the messages twice (the sums of each association; the medians) and returns only sums per arm and
// per bootstrap unit: the bootstrap never sees a message.

import { ArmUnits, armVerdict, bootstrapRatios, fitArms, MIN_ASSOCIATIONS, ratioOf } from './arm-effect.js';
import type { ArmVerdict, Sums } from './arm-effect.js';
import { equalSharesTest } from './chi-square.js';
import type { ChiSquareTest } from './chi-square.js';
import type { Engine } from './engine.js';
import { columnText } from './logs.js';
import { NO_ROUTE, sortKeys } from './messages.js';
import { MB } from './summary.js';
import { seededRandom } from '../experiment/random.js';

/** The seed of the bootstrap when none is given: the same files give the same intervals. */
export const DEFAULT_SEED = 1;
/** Bootstrap replicates per stratum. */
export const BOOTSTRAP_REPLICATES = 1000;
/** The interval's level. */
export const INTERVAL_LEVEL = 0.95;
/**
 * Beyond this many timed associations in one arm of one stratum, its associations are dealt (by a seeded
 * hash) into this many groups and the groups are resampled: the groups are as independent as the
 * associations, and a replicate's cost stays bounded whatever the number of associations.
 */
export const MAX_UNITS_PER_ARM = 4000;
/** ln() of a duration that is not timed (0, NULL) is computed but never summed: this keeps it finite. */
const MIN_MS = 1e-9;
/** A warning when the arms' shares of associations differ from equal with a chi-square p below this. */
export const SHARE_ALPHA = 0.001;

/**
 * The messages that are timed for the effect: C-STOREs sent by the SCU, with a data set, answered with
 * success (0000) or a warning (0001, Bxxx). Failures are left out: a refused store is fast, not good.
 */
export const TIMED_MESSAGE = `command = 'C-STORE-RQ' AND coalesce(requested_by, 'scu') = 'scu' AND bytes > 0 AND duration_ms > 0
  AND (status = '0000' OR status = '0001' OR lower(status) LIKE 'b%')`;

export interface ExperimentOptions {
  /** A messages CSV column whose values are analysed apart (the device: calling_aet); none: all together. */
  by?: string;
  /** The reference arm's label (default: the first arm, see armOrder). */
  baseline?: string;
  seed?: number;
  replicates?: number;
  /** Associations of one arm (and stratum) beyond which they are resampled in groups (default MAX_UNITS_PER_ARM). */
  maxUnitsPerArm?: number;
}

export interface ArmRow {
  /** Set when the rows hold more than one route. */
  route?: string;
  /** The --by value ("(empty)" for an empty field); undefined without --by. */
  stratum?: string;
  arm: string;
  associations: number;
  /** Associations with at least one timed message: the units of the bootstrap. */
  timedAssociations: number;
  messages: number;
  timedMessages: number;
  bytes: number;
  /** Median over the timed messages of bytes / duration, MB = 2^20 bytes. */
  medianMbPerS: number | undefined;
  /** This arm's share of the stratum's associations (0..1). */
  share: number;
  reference: boolean;
  /** Throughput against the reference at equal size (undefined for the reference, or without data). */
  ratio?: number;
  low?: number;
  high?: number;
  verdict?: ArmVerdict;
  /** Residual standard deviation of ln(duration) in this arm, after the fit (per message). */
  residualSd?: number;
}

export interface ShareCheck {
  route?: string;
  stratum?: string;
  counts: Array<{ arm: string; associations: number }>;
  test: ChiSquareTest;
}

/** How the experiment was analysed. */
interface Settings {
  /** The arms in their order (see armOrder); the first is the default reference. */
  arms: string[];
  baseline: string;
  /** The reference was given with --baseline (else it is the first arm). */
  baselineGiven: boolean;
  by: string | undefined;
  perRoute: boolean;
  seed: number;
  replicates: number;
}

export interface Experiment extends Settings {
  rows: ArmRow[];
  shares: ShareCheck[];
  /** Share checks below SHARE_ALPHA. */
  warnings: ShareCheck[];
  messages: number;
  timedMessages: number;
  associations: number;
}

/** A --baseline that names no arm. */
export class ExperimentInputError extends Error {}

interface ArmInfo {
  arm: string;
  max_pdu: number | null;
}

/**
 * The arms in order: ascending by the Maximum Length they told the SCU, a repeated size after its first
 * occurrence ("16KB", "16KB#2", "64KB"): the order the proxy lists them when --max-pdu is written smallest
 * first.
 */
function armOrder(arms: readonly ArmInfo[]): string[] {
  return [...arms]
    .sort((a, b) => (a.max_pdu ?? Infinity) - (b.max_pdu ?? Infinity) || a.arm.length - b.arm.length || (a.arm < b.arm ? -1 : a.arm > b.arm ? 1 : 0))
    .map((a) => a.arm);
}

interface ArmGroupRow {
  g_route: string;
  g_stratum: string;
  arm: string;
  associations: number;
  timed_associations: number;
  messages: number;
  timed_messages: number;
  bytes: number | null;
  median_mbps: number | null;
}

interface UnitRow extends Sums {
  g_route: string;
  g_stratum: string;
  arm: string;
}

const key = (route: string, stratum: string): string => `${route}\u0000${stratum}`;

/**
 * The experiment over the messages view (createViews), or undefined when its rows carry fewer than two
 * arms. One pass over the messages: the sums of each association and its messages' rates (for the
 * medians); everything else is computed from that table.
 */
export async function analyseExperiment(engine: Engine, o: ExperimentOptions = {}): Promise<Experiment | undefined> {
  const stratum = o.by === undefined ? "''" : `coalesce(${columnText('messages', o.by)}, '')`;
  await engine.run(`CREATE OR REPLACE TEMP TABLE exp_assoc AS
    SELECT g_route, g_stratum, arm, file, assoc, min(max_pdu) AS max_pdu, count(*) AS messages, coalesce(sum(bytes), 0) AS bytes,
           count(*) FILTER (WHERE timed) AS n,
           ${['x', 'x * x', 'y', 'x * y', 'y * y'].map((v, i) => `coalesce(sum(${v}) FILTER (WHERE timed), 0) AS ${['sx', 'sxx', 'sy', 'sxy', 'syy'][i]}`).join(', ')},
           list(bytes / (duration_ms / 1000) / ${MB}) FILTER (WHERE timed) AS rates
    FROM (SELECT coalesce(route, '') AS g_route, ${stratum} AS g_stratum, arm, file, assoc, max_pdu, bytes, duration_ms, coalesce(${TIMED_MESSAGE}, false) AS timed,
                 ln(greatest(bytes, 1)) AS x, ln(greatest(duration_ms, ${MIN_MS})) AS y
          FROM messages WHERE arm <> '')
    GROUP BY g_route, g_stratum, arm, file, assoc`);
  try {
    const found = await engine.all<ArmInfo & { routes: string[] }>(`SELECT arm, min(max_pdu) AS max_pdu, list(DISTINCT g_route) AS routes FROM exp_assoc GROUP BY arm`);
    const arms = armOrder(found);
    if (arms.length < 2) return undefined;
    const perRoute = new Set(found.flatMap((a) => a.routes)).size > 1;
    const baseline = o.baseline ?? arms[0]!;
    if (!arms.includes(baseline)) throw new ExperimentInputError(`--baseline: ${JSON.stringify(baseline)} is not an arm of these files (${arms.join(', ')})`);
    const seed = o.seed ?? DEFAULT_SEED;
    const replicates = o.replicates ?? BOOTSTRAP_REPLICATES;
    const cap = Math.max(2, Math.trunc(o.maxUnitsPerArm ?? MAX_UNITS_PER_ARM));
    const route = perRoute ? 'g_route' : "''";
    const groups = await engine.all<ArmGroupRow>(`
      SELECT a.*, m.median_mbps FROM (
        SELECT ${route} AS g_route, g_stratum, arm, count(*) AS associations, count(*) FILTER (WHERE n > 0) AS timed_associations,
               sum(messages) AS messages, sum(n) AS timed_messages, sum(bytes) AS bytes
        FROM exp_assoc GROUP BY ALL
      ) a LEFT JOIN (
        SELECT g_route, g_stratum, arm, median(rate) AS median_mbps
        FROM (SELECT ${route} AS g_route, g_stratum, arm, unnest(rates) AS rate FROM exp_assoc WHERE n > 0) GROUP BY ALL
      ) m USING (g_route, g_stratum, arm)`);
    // A unit: an association, or beyond the cap a group of them (bucket set: the association's key is not grouped on).
    const units = await engine.all<UnitRow>(`
      SELECT ${route} AS g_route, g_stratum, arm, sum(n) AS n, sum(sx) AS sx, sum(sxx) AS sxx, sum(sy) AS sy, sum(sxy) AS sxy, sum(syy) AS syy
      FROM (
        SELECT *, CASE WHEN count(*) OVER (PARTITION BY ${route}, g_stratum, arm) > ${cap}
                       THEN hash(file, assoc, ${Math.trunc(seed)}) % ${cap} END AS bucket
        FROM exp_assoc WHERE n > 0
      )
      GROUP BY ${route}, g_stratum, arm, bucket, CASE WHEN bucket IS NULL THEN file END, CASE WHEN bucket IS NULL THEN assoc END
      ORDER BY 1, g_stratum, arm, bucket, min(file), min(assoc)`);
    return assemble({ arms, baseline, baselineGiven: o.baseline !== undefined, by: o.by, perRoute, seed, replicates }, groups, units);
  } finally {
    await engine.run('DROP TABLE IF EXISTS exp_assoc');
  }
}

/** The table from the engine's sums: the fit and the bootstrap per stratum, the share check per stratum. */
function assemble(s: Settings, groups: readonly ArmGroupRow[], units: readonly UnitRow[]): Experiment {
  const order = new Map(s.arms.map((a, i) => [a, i]));
  const byStratum = new Map<string, ArmGroupRow[]>();
  for (const g of groups) byStratum.set(key(g.g_route, g.g_stratum), [...(byStratum.get(key(g.g_route, g.g_stratum)) ?? []), g]);
  const unitsOf = new Map<string, Sums[]>();
  for (const u of units) {
    const k = `${key(u.g_route, u.g_stratum)}\u0000${u.arm}`;
    const list = unitsOf.get(k) ?? [];
    list.push(u);
    unitsOf.set(k, list);
  }
  // The arms of each route (a route's devices are checked against all of its arms).
  const routeArms = new Map<string, Set<string>>();
  for (const g of groups) routeArms.set(g.g_route, (routeArms.get(g.g_route) ?? new Set()).add(g.arm));

  const rows: ArmRow[] = [];
  const shares: ShareCheck[] = [];
  const routes = sortKeys([...new Set(groups.map((g) => g.g_route))]);
  for (const route of routes) {
    const strata = sortKeys([...new Set(groups.filter((g) => g.g_route === route).map((g) => g.g_stratum))]);
    const armsOfRoute = s.arms.filter((a) => routeArms.get(route)?.has(a));
    for (const stratum of strata) {
      const present = [...byStratum.get(key(route, stratum))!].sort((a, b) => order.get(a.arm)! - order.get(b.arm)!);
      const armUnits = present.map((g) => new ArmUnits(unitsOf.get(`${key(route, stratum)}\u0000${g.arm}`) ?? []));
      const ref = present.findIndex((g) => g.arm === s.baseline);
      const fit = fitArms(armUnits.map((u) => u.total()));
      // One stream per stratum: adding a device does not change another device's interval.
      const random = seededRandom(s.seed, key(route, stratum));
      const intervals = ref >= 0 ? bootstrapRatios(armUnits, ref, { replicates: s.replicates, level: INTERVAL_LEVEL, random }) : present.map(() => undefined);
      const total = present.reduce((sum, g) => sum + g.associations, 0);
      const where = { ...(s.perRoute ? { route: route === '' ? NO_ROUTE : route } : {}), ...(s.by !== undefined ? { stratum: stratum === '' ? '(empty)' : stratum } : {}) };
      present.forEach((g, k) => {
        const row: ArmRow = {
          ...where,
          arm: g.arm,
          associations: g.associations,
          timedAssociations: g.timed_associations,
          messages: g.messages,
          timedMessages: g.timed_messages,
          bytes: g.bytes ?? 0,
          medianMbPerS: g.median_mbps ?? undefined,
          share: total > 0 ? g.associations / total : 0,
          reference: k === ref,
          ...(Number.isFinite(fit.residualSd[k]) ? { residualSd: fit.residualSd[k] } : {}),
        };
        if (k !== ref && ref >= 0 && Number.isFinite(fit.intercepts[k]) && Number.isFinite(fit.intercepts[ref])) {
          row.ratio = ratioOf(fit, k, ref);
          const i = intervals[k];
          if (i) Object.assign(row, { low: i.low, high: i.high });
        }
        if (k !== ref) row.verdict = armVerdict(intervals[k], g.timed_associations, ref >= 0 ? present[ref]!.timed_associations : 0);
        rows.push(row);
      });
      const counts = armsOfRoute.map((arm) => ({ arm, associations: present.find((g) => g.arm === arm)?.associations ?? 0 }));
      const test = equalSharesTest(counts.map((c) => c.associations));
      if (test) shares.push({ ...where, counts, test });
    }
  }
  return {
    ...s,
    rows,
    shares,
    warnings: shares.filter((c) => c.test.p < SHARE_ALPHA),
    messages: rows.reduce((n, r) => n + r.messages, 0),
    timedMessages: rows.reduce((n, r) => n + r.timedMessages, 0),
    associations: rows.reduce((n, r) => n + r.associations, 0),
  };
}

/** How the threshold of `not enough data` reads. */
export const NOT_ENOUGH_DATA = `fewer than ${MIN_ASSOCIATIONS} timed associations in the arm or the reference, or an interval across 1 reaching beyond ±5%`;
