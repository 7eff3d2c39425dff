// SVG charts with vega-lite, rendered in Node by vega's headless View (renderer 'none': no browser, no
// canvas). Two charts: the experiment (mean with its 95% interval and min-max bars per group) and one
// association's timeline (the one of `stats --timeline` and of the report).

import type { TopLevelSpec } from 'vega-lite';
import { ci95 } from './inference.js';
import type { TimelinePdu } from './chunks.js';
import type { ResultRow } from './table.js';

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  // Loaded on first use: vega is large, and the proxy command (same CLI) must start fast and small.
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export interface ExperimentSeries {
  /** Legend entry (e.g. "proxy", "direct"); one series when all rows share it. */
  series: string;
  rows: readonly ResultRow[];
}

/**
 * Mean seconds per group (point) with a min-max bar (thin rule) and, for the rows whose spread is known,
 * the 95% confidence interval of the mean (thick rule); groups on x in the given order.
 */
export function experimentSpec(series: readonly ExperimentSeries[], xTitle: string, title: string): TopLevelSpec {
  const values = series.flatMap((s) =>
    s.rows
      .filter((r) => r.seconds !== undefined)
      .map((r) => {
        const ci = ci95(r.seconds!);
        const { mean, min, max, n } = r.seconds!;
        return { group: r.label, series: s.series, mean, min, max, n, ...(ci ? { ci_low: ci.low, ci_high: ci.high } : {}) };
      }),
  );
  const withCi = values.some((v) => 'ci_low' in v);
  const order = [...new Set(series.flatMap((s) => s.rows.map((r) => r.label)))];
  const x = { field: 'group', type: 'ordinal' as const, sort: order, title: xTitle, axis: { labelAngle: 0 } };
  const color = series.length > 1 ? { color: { field: 'series', type: 'nominal' as const, title: null } } : {};
  const xOffset = series.length > 1 ? { xOffset: { field: 'series', type: 'nominal' as const } } : {};
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: Math.max(320, order.length * 70),
    height: 260,
    data: { values },
    encoding: { x, ...xOffset, ...color },
    layer: [
      {
        mark: { type: 'rule', strokeWidth: withCi ? 1.5 : 2 },
        encoding: { y: { field: 'min', type: 'quantitative', title: `seconds per image (mean, ${withCi ? '95% CI, ' : ''}min-max)` }, y2: { field: 'max' } },
      },
      ...(withCi
        ? [
            {
              // Rows without an interval (one timed value, or an old file) draw none.
              transform: [{ filter: 'isValid(datum.ci_low)' }],
              // The colour of the dots (one series); several series take theirs from the colour encoding.
              mark: { type: 'rule', strokeWidth: 7, opacity: 0.45, strokeCap: 'butt', color: '#4c78a8' },
              encoding: { y: { field: 'ci_low', type: 'quantitative' }, y2: { field: 'ci_high' } },
            },
          ]
        : []),
      {
        mark: { type: 'point', filled: true, size: 70 },
        encoding: {
          y: { field: 'mean', type: 'quantitative' },
          tooltip: [
            { field: 'group', title: xTitle },
            { field: 'mean', format: '.3f' },
            ...(withCi
              ? [
                  { field: 'ci_low', title: '95% CI low', format: '.3f' },
                  { field: 'ci_high', title: '95% CI high', format: '.3f' },
                ]
              : []),
            { field: 'min', format: '.3f' },
            { field: 'max', format: '.3f' },
            { field: 'n' },
          ],
        },
      },
    ],
  } as TopLevelSpec;
}

/** One association's PDUs as the timeline draws them. */
export interface TimelineChart {
  assoc: string;
  /** The association's PDUs, both directions (timelinePdus). */
  rows: readonly TimelinePdu[];
  /** Which setting or file the association comes from, in the title (the report: its max PDU). */
  source?: string | undefined;
  /** The largest P-DATA-TF the sender was allowed, drawn as a dashed line when known (> 0). */
  allowed?: number | undefined;
}

/** The legend's words for the chunk CSV's directions. */
const DIRECTION_LABELS = "datum.label === 'to_scp' ? 'SCU → SCP' : datum.label === 'to_scu' ? 'SCP → SCU' : datum.label";

/**
 * One association's PDUs: length (log scale: control PDUs of a few bytes beside P-DATA-TF of megabytes)
 * against the time the last byte arrived, both directions; with `allowed`, the sender's limit as a line.
 * The `stats --timeline` chart and the report's.
 */
export function timelineSpec(t: TimelineChart): TopLevelSpec {
  const values = t.rows.map((r) => ({
    ms: Math.round(r.lastByteUs ?? 0) / 1000,
    length: Math.max(1, r.length ?? 1),
    direction: r.direction ?? '?',
    type: r.type,
  }));
  const points = {
    mark: { type: 'point', filled: true, size: 50, opacity: 0.8 },
    encoding: {
      x: { field: 'ms', type: 'quantitative', title: 'last byte received (ms since the association was accepted)' },
      y: { field: 'length', type: 'quantitative', scale: { type: 'log' }, title: 'PDU length (bytes, log scale)' },
      color: { field: 'direction', type: 'nominal', title: null, legend: { orient: 'bottom', labelExpr: DIRECTION_LABELS } },
      shape: { field: 'type', type: 'nominal', title: null, legend: { orient: 'bottom' } },
      tooltip: [{ field: 'type' }, { field: 'direction' }, { field: 'length', format: ',' }, { field: 'ms', format: '.3f' }],
    },
  };
  const layers: unknown[] = [{ data: { values }, ...points }];
  if (t.allowed !== undefined && t.allowed > 0) {
    layers.push({
      data: { values: [{ allowed: t.allowed, text: `allowed: ${t.allowed.toLocaleString('en-US')}` }] },
      layer: [
        { mark: { type: 'rule', strokeDash: [4, 3], color: '#888' }, encoding: { y: { field: 'allowed', type: 'quantitative' } } },
        {
          mark: { type: 'text', align: 'left', dx: 4, dy: -6, color: '#555' },
          encoding: { y: { field: 'allowed', type: 'quantitative' }, x: { value: 0 }, text: { field: 'text' } },
        },
      ],
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `association ${t.assoc}${t.source !== undefined ? ` (${t.source})` : ''}: PDUs over time`,
    width: 620,
    height: 280,
    layer: layers,
  } as TopLevelSpec;
}
