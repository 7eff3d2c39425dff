// The report's charts as vega-lite specifications (rendered to SVG by src/analysis/chart.ts renderSvg; the
// timeline is analysis/chart.ts's timelineSpec, the one `stats --timeline` draws).

import type { TopLevelSpec } from 'vega-lite';
import { experimentSpec } from '../analysis/chart.js';
import { SPLIT_PARTS, shownParts, splitOf } from './model.js';
import type { ReportSetting } from './model.js';
import { PRACTICAL_MARGIN } from '../analysis/arm-effect.js';
import type { ArmRow, Experiment } from '../analysis/experiment.js';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';
/** Colours of the split, one per part of SPLIT_PARTS (vega's tableau10, bytes in flight in grey). */
const SPLIT_COLOURS = ['#54a24b', '#4c78a8', '#f58518', '#e45756', '#b279a2', '#bab0ac'];

/** Larger text than vega's defaults (11px), in the page's system font: the charts are read on a laptop. */
export function readable(spec: TopLevelSpec): TopLevelSpec {
  const font = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  return {
    ...spec,
    config: {
      font,
      title: { fontSize: 15, fontWeight: 600 },
      // No "…": setting labels such as "16KB · 512KB image · proxy" are read in full.
      axis: { labelFontSize: 12, titleFontSize: 13, labelLimit: 400 },
      legend: { labelFontSize: 12, titleFontSize: 12, labelLimit: 0 },
    },
  } as TopLevelSpec;
}

/** Mean with min-max bars per group (max PDU), one series per image size / SCU / mode when several. */
export function sweepSpec(settings: readonly ReportSetting[], xTitle: string, title: string): TopLevelSpec {
  const names = [...new Set(settings.map((s) => s.series))];
  const series = names.map((name) => ({ series: name || 'all', rows: settings.filter((s) => s.series === name).map((s) => ({ ...s.row, label: s.group })) }));
  const spec = experimentSpec(series, xTitle, title) as TopLevelSpec & { width: number; height: number };
  // Wider than the stats chart: the page has room, and the bars of few settings are easier to compare.
  return { ...spec, width: Math.max(spec.width, Math.min(720, 140 * new Set(settings.map((s) => s.group)).size)), height: 300 };
}

/** Stacked horizontal bars: mean ms per image of each part of the split, per setting (rows with a split only). */
export function splitSpec(settings: readonly ReportSetting[], unit: string): TopLevelSpec | undefined {
  const parts = shownParts(settings);
  const values = settings.flatMap((s, order) => {
    const split = splitOf(s.row);
    return split ? parts.map((part) => ({ setting: s.label, order, part, i: SPLIT_PARTS.indexOf(part), ms: Math.round(split[part] * 10) / 10 })) : [];
  });
  if (values.length === 0) return undefined;
  const labels = [...new Set(values.map((v) => v.setting))];
  return {
    $schema: SCHEMA,
    title: `where the time went: mean ms per ${unit}`,
    width: 560,
    height: Math.max(60, labels.length * 26),
    data: { values },
    mark: { type: 'bar' },
    encoding: {
      y: { field: 'setting', type: 'nominal', sort: labels, title: null },
      x: { field: 'ms', type: 'quantitative', stack: 'zero', title: `ms per ${unit}` },
      color: {
        field: 'part',
        type: 'nominal',
        sort: parts,
        scale: { domain: parts, range: parts.map((p) => SPLIT_COLOURS[SPLIT_PARTS.indexOf(p)]!) },
        title: null,
        legend: { orient: 'bottom' },
      },
      order: { field: 'i', type: 'quantitative' },
      tooltip: [{ field: 'setting' }, { field: 'part' }, { field: 'ms', format: '.1f' }],
    },
  } as TopLevelSpec;
}

/** Colours of the verdicts in the forest plot. */
const VERDICT_COLOURS: Record<string, string> = {
  faster: '#2e7d32',
  slower: '#c62828',
  'no practical difference': '#4c78a8',
  'not enough data': '#9e9e9e',
};

/** The label of an experiment row in the forest plot: "route · device · arm", the parts that vary. */
export function forestLabel(r: ArmRow): string {
  return [r.route, r.stratum, r.arm].filter((p): p is string => p !== undefined).join(' · ');
}

/**
 * The forest plot: per device and arm (reference arms left out: 1 by definition), the effect against the
 * reference (dot) and its 95% interval (line), a reference line at 1 and the ±5% band of no practical
 * difference; log scale, so 0.8 and 1.25 are as far from 1.
 */
export function forestSpec(e: Experiment): TopLevelSpec {
  const rows = e.rows.filter((r) => !r.reference && r.ratio !== undefined);
  const values = rows.map((r) => ({
    label: forestLabel(r),
    ratio: r.ratio!,
    low: r.low ?? r.ratio!,
    high: r.high ?? r.ratio!,
    verdict: r.verdict ?? 'not enough data',
  }));
  const labels = values.map((v) => v.label);
  const extent = values.flatMap((v) => [v.low, v.high]);
  const domain = [Math.min(1 - PRACTICAL_MARGIN * 2, ...extent) * 0.97, Math.max(1 + PRACTICAL_MARGIN * 2, ...extent) * 1.03];
  const x = { type: 'quantitative' as const, scale: { type: 'log', domain, nice: false } };
  const verdicts = Object.keys(VERDICT_COLOURS);
  return {
    $schema: SCHEMA,
    title: `effect against ${e.baseline}: throughput at equal size, 95% interval`,
    width: 560,
    height: Math.max(60, labels.length * 28),
    layer: [
      {
        data: { values: [{ from: 1 - PRACTICAL_MARGIN, to: 1 + PRACTICAL_MARGIN }] },
        mark: { type: 'rect', color: '#e3e8ef', opacity: 0.8 },
        encoding: { x: { field: 'from', ...x, title: `throughput ratio against ${e.baseline} (log scale; band: ±${PRACTICAL_MARGIN * 100}%)` }, x2: { field: 'to' } },
      },
      { data: { values: [{ one: 1 }] }, mark: { type: 'rule', color: '#555', strokeDash: [4, 3] }, encoding: { x: { field: 'one', ...x } } },
      {
        data: { values },
        encoding: {
          y: { field: 'label', type: 'nominal', sort: labels, title: null },
          color: { field: 'verdict', type: 'nominal', scale: { domain: verdicts, range: verdicts.map((v) => VERDICT_COLOURS[v]!) }, title: null, legend: { orient: 'bottom' } },
          tooltip: [{ field: 'label' }, { field: 'ratio', format: '.3f' }, { field: 'low', format: '.3f' }, { field: 'high', format: '.3f' }, { field: 'verdict' }],
        },
        layer: [
          { mark: { type: 'rule', strokeWidth: 2 }, encoding: { x: { field: 'low', ...x }, x2: { field: 'high' } } },
          { mark: { type: 'point', filled: true, size: 70, opacity: 1 }, encoding: { x: { field: 'ratio', ...x } } },
        ],
      },
    ],
  } as TopLevelSpec;
}
