// The soak's plot: one panel per sampled metric against time, with the line fitted over the second half
// where growth is judged (vega-lite, rendered to SVG by the same code as the stats charts).

import type { TopLevelSpec } from 'vega-lite';
import type { Trend } from './trend.js';

export interface Panel {
  title: string;
  unit: string;
  points: ReadonlyArray<{ t: number; v: number }>;
  /** A second series drawn in grey (a reference measured alongside). */
  reference?: ReadonlyArray<{ t: number; v: number }>;
  trend?: Trend | undefined;
}

export function soakSpec(panels: readonly Panel[], title: string): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    vconcat: panels.map((p) => {
      const samples = p.points.map((s) => ({ minutes: s.t / 60, value: s.v }));
      const fit = p.trend?.line
        ? [
            { minutes: p.trend.line.t0 / 60, value: p.trend.line.v0 },
            { minutes: p.trend.line.t1 / 60, value: p.trend.line.v1 },
          ]
        : [];
      const x = { field: 'minutes', type: 'quantitative' as const, title: 'minutes' };
      const y = { field: 'value', type: 'quantitative' as const, title: p.unit, scale: { zero: false } };
      const slope =
        p.trend && Number.isFinite(p.trend.slopePerMinute)
          ? ` — slope ${p.trend.slopePerMinute.toPrecision(3)} ${p.unit}/min [${p.trend.lowPerMinute.toPrecision(3)}, ${p.trend.highPerMinute.toPrecision(3)}] (${p.trend.verdict})`
          : '';
      return {
        title: `${p.title}${slope}`,
        width: 720,
        height: 140,
        layer: [
          ...(p.reference
            ? [
                {
                  data: { values: p.reference.map((s) => ({ minutes: s.t / 60, value: s.v })) },
                  mark: { type: 'line' as const, color: '#999999', strokeWidth: 1 },
                  encoding: { x, y },
                },
              ]
            : []),
          { data: { values: samples }, mark: { type: 'line', strokeWidth: 1 }, encoding: { x, y } },
          ...(fit.length ? [{ data: { values: fit }, mark: { type: 'line' as const, color: '#d62728', strokeWidth: 2 }, encoding: { x, y } }] : []),
        ],
      };
    }),
  } as TopLevelSpec;
}
