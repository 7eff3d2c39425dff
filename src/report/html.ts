// report.html: one self-contained page (inline CSS and SVG, no script, no web font, no URL to fetch), so
// it opens on a machine without network access. Pure: the model and the rendered charts in, a string out.

import { ci95 } from '../analysis/inference.js';
import { rowVerdicts, verdictText } from '../analysis/table.js';
import { rankingVerdict } from '../analysis/fidelity.js';
import type { Fidelity } from '../analysis/fidelity.js';
import { REMAINDER, busyMeasured, findings, shownParts, splitOf } from './model.js';
import type { ReportModel } from './model.js';
import type { Experiment } from '../analysis/experiment.js';
import { captionText, effectText, methodText, shareWarningText } from '../analysis/experiment-table.js';
import { forestLabel } from './charts.js';
import { MB } from '../analysis/summary.js';

export interface ReportCharts {
  sweep: string | undefined;
  split: string | undefined;
  timeline: string | undefined;
  /** The experiment's forest plot (messages CSVs with arms). */
  forest?: string | undefined;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** An SVG from vega, inline: drawn at its own size, shrunk with the page when narrower (its viewBox stays). */
function inlineSvg(svg: string, label: string): string {
  return svg.replace(/^<svg /, `<svg role="img" aria-label="${escapeHtml(label)}" `);
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const fixed = (v: number | undefined, digits: number, unit: string): string => (v === undefined ? '–' : `${v.toFixed(digits)} ${unit}`);

interface Column {
  title: string;
  numeric?: boolean;
}

/** A line under a row's label (e.g. its verdict against the fastest); `strong` draws it in the warning colour. */
interface RowNote {
  text: string;
  strong?: boolean;
}

function table(id: string, columns: readonly Column[], rows: ReadonlyArray<readonly string[]>, note?: string, rowNotes?: ReadonlyArray<RowNote | undefined>): string {
  const head = columns.map((c) => `<th scope="col"${c.numeric ? ' class="num"' : ''}>${escapeHtml(c.title)}</th>`).join('');
  const label = (text: string, n: RowNote | undefined): string =>
    `<th scope="row">${escapeHtml(text)}${n ? `<span class="row-note${n.strong ? ' strong' : ''}">${escapeHtml(n.text)}</span>` : ''}</th>`;
  const body = rows
    .map(
      (r, row) => `<tr>${r.map((cell, i) => (i === 0 ? label(cell, rowNotes?.[row]) : `<td${columns[i]?.numeric ? ' class="num"' : ''}>${escapeHtml(cell)}</td>`)).join('')}</tr>`,
    )
    .join('\n');
  return `<div class="scroll"><table id="${id}"><thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody></table></div>${note ? `<p class="note">${escapeHtml(note)}</p>` : ''}`;
}

const CSS = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1d2430; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 1.5rem; margin: 0 0 4px; }
h2 { font-size: 1.15rem; margin: 0 0 10px; }
.sub { color: #5b6472; margin: 0 0 20px; }
section { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: 16px 18px; margin: 0 0 18px; }
#what-this-shows { font-size: 1.05rem; margin: 0; }
#what-this-shows li { margin: 2px 0; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0; }
dt { color: #5b6472; }
dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: 0.88rem; }
th, td { padding: 4px 6px; border-bottom: 1px solid #e8ebef; white-space: nowrap; text-align: left; }
thead th { border-bottom: 2px solid #c9ced6; font-weight: 600; vertical-align: bottom; white-space: normal; }
tbody th { font-weight: 600; white-space: normal; min-width: 11em; }
.row-note { display: block; font-weight: 400; font-size: 0.85em; color: #5b6472; }
.row-note.strong, .note.strong { color: #a1262a; }
.num { text-align: right; }
figure { margin: 0; }
figure svg { display: block; max-width: 100%; height: auto; }
figcaption, .note { color: #5b6472; font-size: 0.9rem; margin-top: 6px; }
@media (max-width: 1100px) { main { padding: 16px 10px 32px; } section { padding: 12px 10px; } table { font-size: 0.84rem; } th, td { padding: 3px 5px; } }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em; }
`;

/**
 * bench --both: per setting, proxy and native means with their intervals, the ratio, the proxy mean less
 * the proxy's own share (proxy_busy_ms) and its ratio, and the ranking.
 */
function fidelitySection(f: Fidelity, unit: string): string {
  const rows = f.rows.map((r) => [
    r.setting,
    fixed(r.native.mean, 3, 's'),
    r.nativeCi ? `±${r.nativeCi.halfWidth.toFixed(3)} s` : '–',
    fixed(r.proxy.mean, 3, 's'),
    r.proxyCi ? `±${r.proxyCi.halfWidth.toFixed(3)} s` : '–',
    r.ratio.toFixed(3),
    r.ratioCi ? `${r.ratioCi.low.toFixed(2)} – ${r.ratioCi.high.toFixed(2)}` : '–',
    fixed(r.proxyLessBusy, 3, 's'),
    r.lessBusyRatio === undefined ? '–' : r.lessBusyRatio.toFixed(3),
  ]);
  const columns: Column[] = [
    { title: 'max PDU' },
    ...['native mean', '95% CI', 'proxy mean', '95% CI', 'proxy / native', 'ratio 95% CI', 'proxy mean − proxy busy', '(proxy − busy) / native'].map((title) => ({
      title,
      numeric: true,
    })),
  ];
  return `<section id="fidelity">
<h2>Proxy versus native</h2>
<p id="ranking">${escapeHtml(rankingVerdict(f))}</p>
${table('fidelity-table', columns, rows, `Each setting measured natively (no proxy: the SCP announced the size itself) and through the proxy (the proxy announced it). Seconds per ${unit}; 95% CI: mean ± this (Student's t); the ratio's interval is approximate (delta method from the two intervals). Proxy mean − proxy busy: the proxy mean less the proxy's own time per ${unit} (mean proxy_busy_ms, an upper bound of its share), i.e. at most what the proxy's method would show if the proxy cost nothing; – when the results have no proxy_busy_ms. The ranking is only judged for pairs of settings whose intervals are apart in at least one mode.`)}
</section>
`;
}

/** stats --html with arms: the experiment's table (one row per device and arm), its forest plot and warnings. */
function experimentSection(e: Experiment, forest: string | undefined): string {
  const num = (v: number | undefined, digits: number): string => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits));
  const rows = e.rows.map((r) => [
    forestLabel(r),
    int(r.associations),
    int(r.messages),
    `${(r.bytes / MB).toFixed(1)} MB`,
    num(r.medianMbPerS, 2),
    `${(r.share * 100).toFixed(1)}%`,
    effectText(r) === '-' ? '–' : effectText(r),
    r.low !== undefined && r.high !== undefined ? `${r.low.toFixed(3)} – ${r.high.toFixed(3)}` : '–',
    r.reference ? '–' : (r.verdict ?? '–'),
  ]);
  const columns: Column[] = [
    { title: [...(e.perRoute ? ['route'] : []), ...(e.by ? [e.by] : []), 'arm'].join(' · ') },
    ...['associations', 'messages', 'data', 'median MB/s', 'share', 'effect', '95% interval'].map((title) => ({ title, numeric: true })),
    { title: 'verdict' },
  ];
  const notes = e.rows.map((r): RowNote | undefined => (r.verdict === 'slower' ? { text: 'slower than the reference', strong: true } : undefined));
  const warnings = e.warnings.map((w) => `<p class="note strong" role="alert">${escapeHtml(shareWarningText(e, w))}</p>`).join('\n');
  const figure = forest
    ? `<figure id="forest-chart">${inlineSvg(forest, `effect of each arm against ${e.baseline}, per ${e.by ?? 'experiment'}`)}<figcaption>${escapeHtml(
        `One line per ${e.by ? `${e.by} and ` : ''}arm: the dot is the effect (throughput at equal data-set size against ${e.baseline}), the line its 95% interval; dashed: 1 (no effect); band: ±5%, no practical difference. A line entirely right of the band: faster; left of it: slower.`,
      )}</figcaption></figure>`
    : '<p class="note" id="forest-chart-missing">No effect to draw (no arm has timed messages beside the reference).</p>';
  return `<section id="experiment">
<h2>Experiment: the arms against ${escapeHtml(e.baseline)}</h2>
<p>${escapeHtml(captionText(e))}</p>
${warnings}
${table('experiment-table', columns, rows, methodText(e), notes)}
${figure}
</section>
`;
}

export function renderReportHtml(m: ReportModel, charts: ReportCharts): string {
  const unit = m.unit;
  const sentences = findings(m.settings, m.pduUse, unit);
  const facts = m.facts.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('\n');

  const verdicts = rowVerdicts(
    m.settings.map((s) => s.row),
    (_, i) => m.settings[i]!.series,
  );
  const resultRows = m.settings.map((s) => {
    const r = s.row;
    const ci = r.seconds && ci95(r.seconds);
    return [
      s.label,
      int(r.count),
      int(r.failures),
      fixed(r.seconds?.mean, 3, 's'),
      // The t interval is symmetric: mean ± its half width (results.csv has both ends).
      ci ? `±${ci.halfWidth.toFixed(3)} s` : '–',
      fixed(r.seconds?.min, 3, 's'),
      fixed(r.seconds?.max, 3, 's'),
      fixed(r.seconds?.p50, 3, 's'),
      fixed(r.seconds?.p95, 3, 's'),
      fixed(r.mbPerS, 2, 'MB/s'),
      fixed(r.setupMs, 1, 'ms'),
      fixed(r.scuIdleMs, 1, 'ms'),
      fixed(r.upstreamBlockedMs, 1, 'ms'),
      fixed(r.scpResponseMs, 1, 'ms'),
      fixed(r.proxyBusyMs, 1, 'ms'),
      fixed(splitOf(r)?.[REMAINDER], 1, 'ms'),
    ];
  });
  // Each row's verdict against the fastest, under its label (a column would not fit a laptop's width).
  const verdictNotes = verdicts.map((v): RowNote | undefined =>
    v === undefined || v.kind === 'untested' ? undefined : { text: v.kind === 'fastest' ? 'fastest' : verdictText(v, true), strong: v.kind === 'slower' },
  );
  const resultColumns: Column[] = [
    { title: m.groupTitle },
    ...[
      `${unit}s`,
      'failed',
      'mean',
      '95% CI',
      'min',
      'max',
      'p50',
      'p95',
      'rate',
      'association set-up',
      'SCU idle',
      'upstream blocked',
      'SCP response',
      'proxy busy',
      REMAINDER,
    ].map((title) => ({
      title,
      numeric: true,
    })),
  ];

  const pduRows = m.pduUse.map((u) => [
    u.source,
    u.allowed === undefined ? 'unknown' : u.allowed === 0 ? 'no limit' : `${int(u.allowed)} B`,
    `${int(u.sentMax)} B`,
    `${int(u.sentCommon)} B`,
    int(u.pdata),
    int(u.associations),
  ]);
  const pduColumns: Column[] = [
    { title: 'setting' },
    ...['allowed (max PDU)', 'largest sent', 'most frequent', 'P-DATA-TF PDUs', 'associations'].map((title) => ({ title, numeric: true })),
  ];

  const figure = (id: string, svg: string | undefined, label: string, caption: string, missing: string): string =>
    svg ? `<figure id="${id}">${inlineSvg(svg, label)}<figcaption>${escapeHtml(caption)}</figcaption></figure>` : `<p class="note" id="${id}-missing">${escapeHtml(missing)}</p>`;

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(m.title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>${escapeHtml(m.title)}</h1>
<p class="sub">Report generated ${escapeHtml(m.generatedAt)} by dicom-pdu-proxy. MB = 2^20 bytes; times are means per ${unit} unless said otherwise.</p>

<section id="summary">
<h2>What this shows</h2>
${sentences.length > 0 ? `<ul id="what-this-shows">${sentences.map((s) => `<li>${escapeHtml(s)}</li>`).join('\n')}</ul>` : '<p id="what-this-shows">No timed results in the files given.</p>'}
</section>

<section id="settings">
<h2>Settings</h2>
<dl>
${facts}
</dl>
</section>

<section id="results">
<h2>Results</h2>
${table('results-table', resultColumns, resultRows, `One row per setting. ${unit === 'image' ? 'Seconds per image as measured by the senders' : 'Seconds per message from the proxy (first request byte to last response byte)'}; 95% CI: the mean's 95% confidence interval is mean ± this (Student's t); under each label, Welch's t-test against the fastest setting${m.settings.some((s) => s.series !== '') ? ' of the same series' : ''} (slower: p < 0.05; within noise: not distinguishable from it); p50/p95 nearest rank; rate = bytes / summed times, per transfer; split = mean ms per ${unit} from the proxy's messages CSV.`, verdictNotes)}
</section>

${m.experiment ? experimentSection(m.experiment, charts.forest) : ''}
${m.fidelity ? fidelitySection(m.fidelity, m.unit) : ''}
<section id="sweep">
<h2>Time per ${unit}</h2>
${figure(
  'sweep-chart',
  charts.sweep,
  `mean seconds per ${unit} with 95% confidence intervals and min-max bars, per ${m.groupTitle}`,
  `Dot: mean; thick bar: 95% confidence interval of the mean (Student's t; drawn where a setting has at least two timed ${unit}s and its file keeps their spread); thin line: min to max, per ${m.groupTitle}.`,
  'No timed results to draw.',
)}
</section>

<section id="split">
<h2>Where the time went</h2>
${figure(
  'split-chart',
  charts.split,
  `time split per setting`,
  `${shownParts(m.settings).includes('association set-up') ? "Association set-up: the sender's TCP connect and A-ASSOCIATE-RQ/AC round trip before the image, as the senders measured it (with one association per sender, spread over its images). " : ''}SCU idle: the proxy waited for the SCU's bytes. Upstream blocked: the proxy had bytes but the SCP was not reading (or, with --bandwidth, the emulated link was full). SCP response: last request byte to the first byte of the answer. Proxy busy: the proxy's own time, processing the message's bytes or busy with other work (other associations, the other direction, its recorders) while the message waited; an upper bound of its share. Bytes in flight: the remainder of the mean time per ${unit} (the bytes in kernel buffers and on the network, the peers reading and writing${unit === 'image' ? ', and what the sender does around the message: encoding it, reading the response' : ''}).${busyMeasured(m.settings) ? '' : " These files were written before proxy_busy_ms: the proxy's own time is in bytes in flight."}`,
  'No time split: the proxy wrote no messages CSV for these settings (e.g. --direct).',
)}
</section>

<section id="pdus">
<h2>PDU sizes the SCU sent</h2>
${pduRows.length > 0 ? table('pdu-table', pduColumns, pduRows, "P-DATA-TF PDUs received from the SCU (PDU-length field), from the proxy's chunk CSV, against the Maximum Length the proxy announced to it.") : '<p class="note">No chunk CSV given.</p>'}
${m.timeline ? figure('timeline-chart', charts.timeline, `PDUs of association ${m.timeline.assoc} over time`, `Every PDU of one association, both directions${m.timeline.allowed ? '; dashed line: the maximum the SCU was allowed' : ''}.`, '') : ''}
</section>

<section id="sources">
<h2>Files</h2>
<ul>${m.sources.map((s) => `<li><code>${escapeHtml(s)}</code></li>`).join('')}</ul>
</section>
</main>
</body>
</html>
`;
}
