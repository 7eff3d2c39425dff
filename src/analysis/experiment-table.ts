// The experiment's table as text (stats) and the words shared with the report: the caption, each arm's
// effect cell, the share warnings.

import { formatP } from './inference.js';
import { PRACTICAL_MARGIN } from './arm-effect.js';
import { INTERVAL_LEVEL, NOT_ENOUGH_DATA, SHARE_ALPHA } from './experiment.js';
import type { ArmRow, Experiment, ShareCheck } from './experiment.js';
import { MB } from './summary.js';
import { renderColumns } from './table.js';

const fixed = (v: number | undefined, digits: number): string => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));

/** How the reference was chosen, in words. */
export function referenceText(e: Experiment): string {
  return e.baselineGiven ? `${e.baseline} (--baseline)` : `${e.baseline} (the first arm: smallest max PDU; --baseline ARM for another)`;
}

/** What the effect, its interval and the verdicts are: under the table and in the report. */
export function methodText(e: Experiment): string {
  return (
    `effect = throughput against the reference arm at equal data-set size (least squares of ln duration on ln bytes with one intercept per arm${e.by ? `, per ${e.by}` : ''}; ` +
    `timed: C-STOREs from the SCU answered with success or warning); ${Math.round(INTERVAL_LEVEL * 100)}% interval: percentile bootstrap, ${e.replicates} replicates resampling associations within each arm (--seed ${e.seed}); ` +
    `verdict: faster / slower = interval above / below 1; no practical difference = interval within ±${Math.round(PRACTICAL_MARGIN * 100)}%; not enough data = ${NOT_ENOUGH_DATA}`
  );
}

/** The first line of the experiment's output. */
export function captionText(e: Experiment): string {
  return (
    `experiment: ${e.arms.length} arms (${e.arms.join(', ')}), reference ${referenceText(e)}; ${e.messages} messages (${e.timedMessages} timed) in ${e.associations} associations` +
    `${e.by ? `, per ${e.by}` : ''}${e.perRoute ? ', per route' : ''}; MB = 2^20 bytes; share = the arm's share of the associations; resid sd = residual sd of ln(duration) per message`
  );
}

/** A share check below SHARE_ALPHA as one line. */
export function shareWarningText(e: Experiment, c: ShareCheck): string {
  const where = [c.route !== undefined ? `route ${c.route}` : '', c.stratum !== undefined ? `${e.by} ${c.stratum}` : ''].filter(Boolean).join(', ');
  return (
    `warning: ${where ? `${where}: ` : ''}associations per arm ${c.counts.map((x) => `${x.arm} ${x.associations}`).join(', ')} are not the equal shares intended ` +
    `(chi-square ${c.test.statistic.toFixed(1)}, df ${c.test.df}, p ${c.test.p < 0.001 ? '< 0.001' : `= ${formatP(c.test.p)}`}; warned below p ${SHARE_ALPHA}): ` +
    `check --assign, whether the guard withdrew an arm, or whether the files hold all of the experiment`
  );
}

/** The effect cell of a row: "reference", or the ratio. */
export function effectText(r: ArmRow): string {
  return r.reference ? 'reference' : fixed(r.ratio, 3);
}

export function renderExperimentTable(e: Experiment): string {
  const header = [
    ...(e.perRoute ? ['route'] : []),
    ...(e.by ? [e.by] : []),
    'arm',
    'assocs',
    'messages',
    'MB',
    'median MB/s',
    'share',
    'resid sd',
    'effect',
    'ci95 low',
    'ci95 high',
    'verdict',
  ];
  const body = e.rows.map((r) => [
    ...(e.perRoute ? [r.route ?? ''] : []),
    ...(e.by ? [r.stratum ?? ''] : []),
    r.arm,
    String(r.associations),
    String(r.messages),
    (r.bytes / MB).toFixed(1),
    fixed(r.medianMbPerS, 2),
    `${(r.share * 100).toFixed(1)}%`,
    fixed(r.residualSd, 3),
    effectText(r),
    fixed(r.low, 3),
    fixed(r.high, 3),
    r.reference ? '-' : (r.verdict ?? '-'),
  ]);
  return [`${captionText(e)}\n`, renderColumns(header, body), `${methodText(e)}\n`, ...e.warnings.map((w) => `${shareWarningText(e, w)}\n`)].join('');
}
