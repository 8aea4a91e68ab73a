// Time-series charts of the patient view: a thin Preact wrapper around uPlot
// (vendor/uPlot.esm.js) that shades horizontal bands behind the data (the
// NEWS2 sub-score of each value, the NEWS2 response bands, the model's alert
// threshold) and labels every band on the canvas, so the shading never speaks
// by colour alone. Charts of one view share a cursor (sync key), follow their
// container's width, and can be stepped through with the arrow keys.
//
// Test hooks: the chart element carries data-bands, the number of bands the
// shading plugin painted on its last draw, and data-points, the number of
// points it draws.

import uPlot from 'uplot';
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from './html.js';
import { formatDateTime, formatNumber, t } from './i18n.js';

// Fills of NEWS2 sub-scores 1–3: the same tints as the site board's cells.
// Score 0 stays unshaded.
const SCORE_FILL = { 1: '#fff1b8', 2: '#ffd59e', 3: '#f7bdbd' };
const LABEL_INK = { 0: '#2c3744', 1: '#4f3500', 2: '#5c2e00', 3: '#6d0b0b' };

// Series colours: dark enough for 3:1 against white and every band fill
// (WCAG 1.4.11); a second series is also dashed, so it differs by more than
// hue.
const INK = { primary: '#0b4f8a', secondary: '#6b2fa3', threshold: '#17202b' };

const AXIS_INK = '#55606e';
const GRID_INK = '#e7ebf0';

// NEWS2 sub-score bands of each charted vital (RCP 2017, Chart 1), as value
// ranges [from, to). The chart's integer limits become half-way boundaries
// (RR ≤8 scores 3, 9–11 scores 1: the boundary is 8.5); temperatures, scored
// after rounding half-up to 0.1 °C, change band at the next half tenth.
const NEWS2_BANDS = {
  respiratory_rate: [[null, 8.5, 3], [8.5, 11.5, 1], [11.5, 20.5, 0], [20.5, 24.5, 2], [24.5, null, 3]],
  spo2_1: [[null, 91.5, 3], [91.5, 93.5, 2], [93.5, 95.5, 1], [95.5, null, 0]],
  // Scale 2 scores 93 % and above only on oxygen; on air they score 0.
  spo2_2: [[null, 83.5, 3], [83.5, 85.5, 2], [85.5, 87.5, 1], [87.5, 92.5, 0],
    [92.5, 94.5, 1, true], [94.5, 96.5, 2, true], [96.5, null, 3, true]],
  systolic_bp: [[null, 90.5, 3], [90.5, 100.5, 2], [100.5, 110.5, 1], [110.5, 219.5, 0], [219.5, null, 3]],
  heart_rate: [[null, 40.5, 3], [40.5, 50.5, 1], [50.5, 90.5, 0], [90.5, 110.5, 1], [110.5, 130.5, 2], [130.5, null, 3]],
  temperature: [[null, 35.05, 3], [35.05, 36.05, 1], [36.05, 38.05, 0], [38.05, 39.05, 1], [39.05, null, 2]],
};

// points reads a NEWS2 sub-score as the chart's key does: 0, +1, +2, +3.
export const points = (n) => (n ? `+${n}` : '0');

// news2Bands returns the shaded bands of a vital: {from, to, fill, label}.
// scale is the SpO₂ scale (1 or 2) the patient is scored on.
// onOxygen: on scale 2, 93 % and above scores only on oxygen; for a patient
// on air (by the latest reading) those bands are shaded as the 0 they score.
export function news2Bands(vital, scale = 1, onOxygen = true) {
  const key = vital === 'spo2' ? `spo2_${scale === 2 ? 2 : 1}` : vital;
  let bands = NEWS2_BANDS[key] || [];
  if (key === 'spo2_2' && !onOxygen) bands = [...bands.filter((b) => !b[3]).slice(0, -1), [87.5, null, 0]];
  return bands.map(([from, to, score, oxygenOnly]) => ({
    from,
    to,
    fill: SCORE_FILL[score] || null,
    ink: LABEL_INK[score],
    label: t(oxygenOnly ? 'patient.chart.bandOxygen' : 'patient.chart.band', { n: points(score) }),
  }));
}

// totalBands are NEWS2's response bands of the total: 0–4 low, 5–6 medium
// (urgent review), 7 and above high (emergency response); they start at the
// threshold lines drawn at 5 and 7. A red single parameter with a total of 4
// or less ("low–medium") is not a band of the total, so the chart cannot
// show it; the history table does.
export function totalBands() {
  return [
    { from: null, to: 5, fill: null, ink: LABEL_INK[0], label: t('band.low') },
    { from: 5, to: 7, fill: SCORE_FILL[2], ink: LABEL_INK[2], label: t('band.medium') },
    { from: 7, to: null, fill: SCORE_FILL[3], ink: LABEL_INK[3], label: t('band.high') },
  ];
}

// thresholdBands shade a probability at or above the protocol's threshold.
export function thresholdBands(threshold) {
  return [
    { from: null, to: threshold, fill: null, ink: LABEL_INK[0], label: t('patient.chart.belowThreshold') },
    { from: threshold, to: null, fill: SCORE_FILL[3], ink: LABEL_INK[3], label: t('patient.chart.aboveThreshold') },
  ];
}

// thin keeps at most max rows for a chart: the first and last, and in each
// of max/3 equal time buckets the first row and the rows with the lowest
// and highest value. A brief desaturation in four weeks of readings must
// survive thinning; an average would hide it.
export function thin(rows, value, max) {
  if (rows.length <= max) return rows;
  const buckets = Math.max(1, Math.floor((max - 2) / 3));
  const size = rows.length / buckets;
  const keep = new Set([0, rows.length - 1]);
  for (let b = 0; b < buckets; b++) {
    const start = Math.floor(b * size);
    const end = Math.min(rows.length, Math.floor((b + 1) * size));
    let lo = start;
    let hi = start;
    for (let i = start; i < end; i++) {
      if (value(rows[i]) < value(rows[lo])) lo = i;
      if (value(rows[i]) > value(rows[hi])) hi = i;
    }
    keep.add(start).add(lo).add(hi);
  }
  return [...keep].sort((a, b) => a - b).map((i) => rows[i]);
}

// visible lists the bands and lines within the y scale, with their canvas
// positions, lines from the lowest up.
function visible(u, bands, lines) {
  const { min, max } = u.scales.y;
  const spans = [];
  for (const b of bands) {
    const lo = Math.max(b.from ?? -Infinity, min);
    const hi = Math.min(b.to ?? Infinity, max);
    if (hi > lo) spans.push({ ...b, top: u.valToPos(hi, 'y', true), bottom: u.valToPos(lo, 'y', true) });
  }
  const marks = lines
    .filter((l) => l.value >= min && l.value <= max)
    .sort((a, b) => a.value - b.value)
    .map((l) => ({ ...l, y: Math.round(u.valToPos(l.value, 'y', true)) }));
  return { spans, marks };
}

// clipped runs draw with the canvas clipped to the plotting area.
function clipped(u, draw) {
  const { ctx, bbox } = u;
  ctx.save();
  ctx.beginPath();
  ctx.rect(bbox.left, bbox.top, bbox.width, bbox.height);
  ctx.clip();
  draw(ctx, bbox, uPlot.pxRatio || 1);
  ctx.restore();
}

// paintBands is the drawClear hook: band fills and dashed threshold lines,
// under the grid and the series.
function paintBands(u, bands, lines) {
  const { spans, marks } = visible(u, bands, lines);
  clipped(u, (ctx, bbox, px) => {
    for (const b of spans) {
      if (!b.fill) continue;
      ctx.fillStyle = b.fill;
      ctx.fillRect(bbox.left, b.top, bbox.width, b.bottom - b.top);
    }
    ctx.strokeStyle = INK.threshold;
    ctx.lineWidth = px;
    ctx.setLineDash([5 * px, 4 * px]);
    for (const l of marks) {
      ctx.beginPath();
      ctx.moveTo(bbox.left, l.y);
      ctx.lineTo(bbox.left + bbox.width, l.y);
      ctx.stroke();
    }
  });
  u.root.closest('.pv-chart').dataset.bands = String(spans.length);
}

// labelBands is the drawAxes hook: the labels of bands (at the right edge,
// where there is room) and of lines (at the left), over the grid and under
// the series, so no data point is ever hidden by a label.
function labelBands(u, bands, lines) {
  const { spans, marks } = visible(u, bands, lines);
  clipped(u, (ctx, bbox, px) => {
    for (const b of spans) {
      if (b.label && b.bottom - b.top >= 13 * px) tag(ctx, b.label, bbox.left + bbox.width - 4 * px, (b.top + b.bottom) / 2, 'right', b.ink, px);
    }
    marks.forEach((l, i) => {
      // Above its line, or below it when the next line up is too close.
      const crowded = marks[i + 1] && l.y - marks[i + 1].y < 16 * px;
      tag(ctx, l.label, bbox.left + 4 * px, crowded ? l.y + 9 * px : l.y - 9 * px, 'left', INK.threshold, px);
    });
  });
}

// tag writes a label on a pale plate, so grid lines never cross its text.
// x is its left or right end (align), y its middle.
function tag(ctx, text, x, y, align, ink, px) {
  ctx.font = `600 ${11 * px}px system-ui, sans-serif`;
  ctx.textAlign = align;
  ctx.textBaseline = 'middle';
  const w = ctx.measureText(text).width;
  const left = align === 'right' ? x - w : x;
  ctx.fillStyle = 'rgba(255, 255, 255, 0.85)';
  ctx.fillRect(left - 2 * px, y - 7 * px, w + 4 * px, 14 * px);
  ctx.fillStyle = ink;
  ctx.fillText(text, x, y);
}

// timeTicks labels the time axis in the viewer's locale and zone: times of
// day below a day's step, dates above it, and the date again where a day
// begins among time ticks.
function timeTicks(u, splits, axis, space, incr) {
  let lastDay = null;
  return splits.map((s) => {
    const ms = s * 1000;
    if (incr >= 86400) return formatDateTime(ms, { month: 'short', day: 'numeric' });
    const time = formatDateTime(ms, { hour: '2-digit', minute: '2-digit' });
    const day = formatDateTime(ms, { month: 'short', day: 'numeric' });
    const withDay = day !== lastDay;
    lastDay = day;
    return withDay ? `${time}\n${day}` : time;
  });
}

const pointTime = (s) => formatDateTime(s * 1000, { dateStyle: 'medium', timeStyle: 'short' });

// yRange keeps a chart's usual span (so its bands show) and widens it to
// any value outside.
function yRange([lo, hi]) {
  return (u, dmin, dmax) => {
    const pad = (hi - lo) * 0.05;
    return [dmin == null ? lo : Math.min(lo, dmin - pad), dmax == null ? hi : Math.max(hi, dmax + pad)];
  };
}

function options({ width, height, series, yAxis, syncKey, format, axisFormat, xRange, paint, label }) {
  return {
    width,
    height,
    cursor: { sync: { key: syncKey }, drag: { x: false, y: false }, points: { size: 8 } },
    legend: { show: true, live: true },
    scales: { x: { time: true, range: () => xRange.current }, y: { range: yRange(yAxis.span) } },
    axes: [
      { stroke: AXIS_INK, grid: { stroke: GRID_INK }, ticks: { stroke: GRID_INK }, space: 64, size: 44, values: timeTicks },
      { stroke: AXIS_INK, grid: { stroke: GRID_INK }, ticks: { stroke: GRID_INK }, size: 52, values: (u, splits) => splits.map((v) => axisFormat(v)) },
    ],
    series: [
      { label: t('patient.chart.time'), value: (u, v) => (v == null ? '—' : pointTime(v)) },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: i === 0 ? INK.primary : INK.secondary,
        width: 2,
        dash: i === 0 ? undefined : [6, 3],
        spanGaps: s.spanGaps !== false,
        points: { size: 5, fill: i === 0 ? INK.primary : '#fff' },
        value: (u, v) => (v == null ? '—' : format(v)),
      })),
    ],
    hooks: { drawClear: [paint], drawAxes: [label] },
  };
}

// Chart draws one time series chart.
//   data:   [xs (Unix seconds), ys…], one ys per series (null: not measured)
//   series: [{label, spanGaps}] (first: solid primary line; second: dashed)
//   yAxis:  {span: [lo, hi]} the usual range, widened to fit the data
//   bands:  [{from, to, fill, ink, label}] shaded behind, labelled
//   lines:  [{value, label}] dashed threshold lines
//   xRange: [from, to] in Unix seconds, shared by a view's charts
//   format: a value's text (legend, keyboard read-out); axisFormat: a tick's,
//           if different
export function Chart({ id, title, data, series, yAxis, bands = [], lines = [], xRange, syncKey, format, axisFormat = format, height = 170 }) {
  const box = useRef(null);
  const plot = useRef(null);
  const range = useRef(xRange);
  const shading = useRef({ bands, lines });
  const [point, setPoint] = useState(-1);
  range.current = xRange;
  shading.current = { bands, lines };

  // uPlot is built once per mount (the view remounts charts when the
  // language changes); data, range and bands change in place.
  useEffect(() => {
    const el = box.current;
    const paint = (u) => paintBands(u, shading.current.bands, shading.current.lines);
    const label = (u) => labelBands(u, shading.current.bands, shading.current.lines);
    const u = new uPlot(options({ width: el.clientWidth || 320, height, series, yAxis, syncKey, format, axisFormat, xRange: range, paint, label }), data, el);
    plot.current = u;
    const ro = new ResizeObserver(() => {
      if (el.clientWidth > 0 && el.clientWidth !== u.width) u.setSize({ width: el.clientWidth, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    plot.current?.setData(data);
    box.current.closest('.pv-chart').dataset.points = String(data[0].length);
  }, [data, xRange[0], xRange[1]]);

  useEffect(() => {
    plot.current?.redraw(false, false);
  }, [bands, lines]);

  const onKey = (e) => {
    const u = plot.current;
    const n = data[0].length;
    if (!u || !n) return;
    const next = { ArrowLeft: point - 1, ArrowRight: point + 1, Home: 0, End: n - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    const i = Math.max(0, Math.min(n - 1, point < 0 && e.key === 'ArrowLeft' ? n - 1 : next));
    const y = data.slice(1).map((ys) => ys[i]).find((v) => v != null);
    u.setCursor({ left: u.valToPos(data[0][i], 'x'), top: y == null ? 0 : u.valToPos(y, 'y') });
    setPoint(i);
  };
  const onBlur = () => {
    plot.current?.setCursor({ left: -10, top: -10 });
    setPoint(-1);
  };

  return html`<figure class="pv-chart" id=${id}>
    <figcaption>${title}</figcaption>
    <div class="pv-plot" ref=${box} tabindex="0" role="group"
      aria-label=${t('patient.chart.keys', { title })} onKeyDown=${onKey} onBlur=${onBlur}></div>
    <p class="sr-only" aria-live="polite">${point >= 0 ? readOut(data, series, format, point) : ''}</p>
  </figure>`;
}

// readOut is what a keyboard user hears for the point under the cursor.
function readOut(data, series, format, i) {
  const values = series.map((s, k) => `${s.label}: ${data[k + 1][i] == null ? t('news2.notMeasured') : format(data[k + 1][i])}`);
  return `${pointTime(data[0][i])}. ${values.join('; ')}`;
}

// fixed formats a value with a fixed number of decimals in the viewer's locale.
export function fixed(digits) {
  return (v) => formatNumber(v, { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
