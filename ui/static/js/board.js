// The site board: every patient of one site in one dense table, highest risk
// first, with the site's open alerts beside it. Rows update in place; while
// the reader points at or scrolls the table, or has focus in it, the order
// holds still and a button offers to re-sort, so a row never moves out from
// under the reader.
//
// Test hooks: table#patients, rows [data-patient], cells [data-field] with
// [data-value]; ol#alerts, items [data-alert-id]; #resort.

import { Component } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { fetchTrends } from './api.js';
import { html } from './html.js';
import { t, tn } from './i18n.js';
import { href } from './router.js';
import { RISKS, dict, sortedAlerts, sortedPatients, stableOrder, riskCounts } from './state.js';
import { useSite } from './store.js';
import {
  consciousnessLabel,
  duration,
  modelHint,
  news2Breakdown,
  num,
  paramLabel,
  percent,
  reasonLabel,
} from './format.js';
import { AlertActions, SaeClock } from './actions.js';
import { RiskBadge, StatusBadge, Time, problemText, useNow } from './ui.js';

const TREND_REFRESH_MS = 5 * 60_000;
const ACVPU_LETTER = { alert: 'A', new_confusion: 'C', voice: 'V', pain: 'P', unresponsive: 'U' };
const EMPTY = { patients: {}, loaded: false };
const DEFAULT_OVERDUE_S = 3 * 3600;

// Sparkline draws a series as an inline SVG line through the buckets that
// have a value (readings come every few hours, buckets are half-hours), with
// a dot on the newest.
export function Sparkline({ values, label }) {
  if (!Array.isArray(values)) return null;
  const pts = [];
  values.forEach((v, i) => v != null && pts.push([i, v]));
  if (pts.length < 2) return null;
  let lo = Math.min(...pts.map((p) => p[1]));
  let hi = Math.max(...pts.map((p) => p[1]));
  if (hi - lo < 1e-9) {
    lo -= 1;
    hi += 1;
  }
  const w = 56;
  const h = 14;
  const step = w / (values.length - 1);
  const xy = pts.map(([i, v]) => [(i * step).toFixed(1), (h - 2 - ((v - lo) / (hi - lo)) * (h - 4)).toFixed(1)]);
  const d = xy.map(([x, y], k) => `${k ? 'L' : 'M'}${x} ${y}`).join('');
  const [lx, ly] = xy[xy.length - 1];
  return html`<svg class="spark" viewBox=${`0 0 ${w} ${h}`} width=${w} height=${h} role="img" aria-label=${label}><path d=${d} /><circle cx=${lx} cy=${ly} r="1.6" /></svg>`;
}

// A vital's cell, shaded by its NEWS2 sub-score (0–3) as on the RCP chart;
// the sub-score is also written out, so colour never carries it alone.
function Vital({ field, param, value, score, stale, trend, children }) {
  const s = !stale && score && param in (score.news2?.parameters || {}) ? score.news2.parameters[param] : null;
  const cls = ['vital', s ? `p${Math.min(3, s)}` : '', stale ? 'stale' : ''].filter(Boolean).join(' ');
  const hint = [s != null ? `${paramLabel(param)}: NEWS2 +${s}` : '', stale ? t('site.staleVitals') : ''].filter(Boolean).join('\n');
  return html`<td class=${cls} data-field=${field} data-value=${value ?? ''} data-subscore=${s ?? ''} title=${hint || undefined}>
    <span class="v">${children ?? (value == null ? html`<span class="muted">—</span>` : value)}${s ? html`<sup class="sub">+${s}</sup>` : null}</span>
    ${trend ? html`<${Sparkline} values=${trend} label=${t('site.trend24', { v: paramLabel(param) })} />` : null}
  </td>`;
}

class PatientRow extends Component {
  shouldComponentUpdate(n) {
    const p = this.props;
    return n.row !== p.row || n.flash !== p.flash || n.alert !== p.alert || n.trend !== p.trend || n.now !== p.now || n.overdueS !== p.overdueS || n.lang !== p.lang;
  }

  render({ row, now, flash, alert, trend, overdueS, site }) {
    const score = row.score;
    const stale = row.vitalsFor !== row.reading_id;
    const v = row.vitals || {};
    const spo2 = num(v.spo2);
    const scale = score?.news2?.spo2_scale || v.spo2_scale;
    const bp = v.systolic_bp != null ? `${num(v.systolic_bp)}/${v.diastolic_bp != null ? num(v.diastolic_bp) : '—'}` : null;
    const o2 = v.on_oxygen == null ? null : v.on_oxygen ? t('o2.oxygen') : t('o2.air');
    // ACVPU by its letter (the full word on hover): "New confusion" does not
    // fit a dense column, and the letters are the chart's own shorthand.
    const acvpu = v.consciousness ? ACVPU_LETTER[v.consciousness] || v.consciousness : null;
    const news2 = score?.news2;
    const silentS = (now - Date.parse(row.measured_at)) / 1000;
    const overdue = Number.isFinite(silentS) && silentS > overdueS;
    const tr = trend || {};
    const flashCls = flash ? (flash % 2 ? 'flash-a' : 'flash-b') : '';
    return html`<tr data-patient=${row.patient_id} data-risk=${score?.risk || 'pending'} class=${[flashCls, overdue ? 'overdue' : ''].join(' ').trim() || undefined}>
      <th scope="row" data-field="patient" data-value=${row.patient_id}>
        <div class="pcell">
          <a href=${href({ view: 'patient', trial: site.trial, site: site.site, patient: row.patient_id })}>${row.patient_id}</a>
          ${score && score.registered === false
            ? html` <span class="unreg" data-field="unregistered" title=${t('common.unregisteredTitle')}>${t('common.unregistered')}</span>`
            : null}
          ${alert
            ? html` <span class=${`flag risk-${alert.severity}`} data-field="alert" data-value=${alert.severity}
                title=${`${t(`status.${alert.status}`)} · ${(alert.reasons || []).map(reasonLabel).join(', ')}`}>${t('site.alertFlag', { severity: t(`risk.${alert.severity}`) })}</span>`
            : null}
        </div>
      </th>
      <td data-field="measured_at" data-value=${row.measured_at} class=${overdue ? 'late' : undefined}>
        <div class="pcell">
          <${Time} iso=${row.measured_at} now=${now} />
          ${overdue ? html` <span class="tag late-tag" data-field="overdue">${t('site.overdue')}</span>` : null}
        </div>
      </td>
      <${Vital} field="rr" param="respiratory_rate" value=${num(v.respiratory_rate)} score=${score} stale=${stale} trend=${tr.respiratory_rate} />
      <${Vital} field="spo2" param="spo2" value=${spo2} score=${score} stale=${stale} trend=${tr.spo2}>
        ${spo2 == null
          ? html`<span class="muted">—</span>`
          : html`${spo2}${scale === 2 ? html` <span class="tag" title=${t('site.scale2')}>S2</span>` : null}`}
      <//>
      <${Vital} field="o2" param="on_oxygen" value=${o2} score=${score} stale=${stale} />
      <${Vital} field="bp" param="systolic_bp" value=${bp} score=${score} stale=${stale} trend=${tr.systolic_bp} />
      <${Vital} field="hr" param="heart_rate" value=${num(v.heart_rate)} score=${score} stale=${stale} trend=${tr.heart_rate} />
      <${Vital} field="consciousness" param="consciousness" value=${v.consciousness ?? null} score=${score} stale=${stale}>
        ${acvpu ? html`<abbr title=${consciousnessLabel(v.consciousness)}>${acvpu}</abbr><span class="sr-only"> ${consciousnessLabel(v.consciousness)}</span>` : html`<span class="muted">—</span>`}
      <//>
      <${Vital} field="temp" param="temperature" value=${num(v.temperature, 1)} score=${score} stale=${stale} trend=${tr.temperature} />
      <td class="news2" data-field="news2" data-value=${news2 ? news2.total : ''} title=${news2Breakdown(news2) || undefined}>
        ${news2
          ? html`<span class=${`total band-${news2.band}`}>${news2.total}</span>${news2.partial
              ? html` <span class="tag partial" data-field="partial" title=${t('news2.partialTitle', { missing: (news2.missing || []).map(paramLabel).join(', ') || t('news2.someParams') })}>${t('news2.partial')}</span>`
              : null}`
          : html`<span class="muted">…</span>`}
        ${tr.news2 ? html`<${Sparkline} values=${tr.news2} label=${t('site.trend24', { v: 'NEWS2' })} />` : null}
      </td>
      <td data-field="risk" data-value=${score?.risk || ''}>
        <${RiskBadge} risk=${score?.risk} />
        ${score?.degraded ? html` <span class="tag" data-field="degraded" title=${t('model.rulesOnlyTitle')}>${t('model.rulesOnly')}</span>` : null}
      </td>
      <td data-field="model" data-value=${score?.model ? score.model.probability : ''} class="model" title=${score?.model ? modelHint(score.model) : undefined}>
        ${score?.model ? percent(score.model.probability) : html`<span class="muted">—</span>`}
      </td>
    </tr>`;
  }
}

const COLUMNS = [
  ['patient', 'site.col.patient', null],
  ['measured_at', 'site.col.measured', null],
  [null, 'site.col.rr', 'respiratory_rate'],
  [null, 'site.col.spo2', 'spo2'],
  [null, 'site.col.o2', null],
  [null, 'site.col.bp', 'systolic_bp'],
  [null, 'site.col.hr', 'heart_rate'],
  [null, 'site.col.acvpu', null],
  [null, 'site.col.temp', 'temperature'],
  ['news2', 'site.col.news2', null],
  ['risk', 'site.col.risk', null],
  ['model', 'site.col.model', null],
];

function SortHeader({ col, label, unit, sort, setSort }) {
  const abbr = html`<abbr title=${t(`${label}.title`)}>${t(label)}</abbr>${unit ? html`<span class="unit">${t(`unit.${unit}`)}</span>` : null}`;
  const numeric = col === null || col === 'news2' || col === 'model';
  if (!col) return html`<th scope="col" class=${numeric ? 'vital' : undefined}>${abbr}</th>`;
  const active = sort.key === col;
  // The default order of these two runs up (ids A→Z, oldest reading first);
  // the others run down (highest risk first).
  const up = col === 'patient' || col === 'measured_at';
  const ariaSort = active ? (up !== sort.desc ? 'ascending' : 'descending') : undefined;
  return html`<th scope="col" aria-sort=${ariaSort} class=${col === 'news2' ? 'news2' : undefined}>
    <button type="button" class="sort" data-sort=${col} onClick=${() => setSort(active ? { key: col, desc: !sort.desc } : { key: col, desc: false })}>
      ${abbr}<span class="sort-mark" aria-hidden="true">${active ? (sort.desc ? '▲' : '▼') : ''}</span>
    </button>
  </th>`;
}

// useHolding reports whether the reader is in the table: pointer over it,
// focus in it, or scrolled down.
function useHolding(ref) {
  const [holding, setHolding] = useState(false);
  useEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    let over = false;
    let focus = false;
    const update = () => setHolding(over || focus || el.scrollTop > 40);
    const on = {
      pointerenter: () => ((over = true), update()),
      pointerleave: () => ((over = false), update()),
      focusin: () => ((focus = true), update()),
      focusout: () => ((focus = el.contains(document.activeElement)), update()),
      scroll: update,
    };
    for (const [k, f] of Object.entries(on)) el.addEventListener(k, f, { passive: true });
    return () => {
      for (const [k, f] of Object.entries(on)) el.removeEventListener(k, f);
    };
  }, []);
  return holding;
}

// ROW_PX is the height of a patient row (app.css sets it); OVERSCAN rows are
// rendered beyond each edge of the view, so scrolling and Tab find rows ready.
const ROW_PX = 36;
const OVERSCAN = 15;

// useWindow follows the table's scroll position: which rows are in view.
function useWindow(ref) {
  const [view, setView] = useState({ top: 0, height: 1200 });
  useEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    let raf = 0;
    const update = () => {
      raf = 0;
      setView((v) => (v.top === el.scrollTop && v.height === el.clientHeight ? v : { top: el.scrollTop, height: el.clientHeight }));
    };
    const on = () => {
      if (!raf) raf = requestAnimationFrame(update);
    };
    update();
    el.addEventListener('scroll', on, { passive: true });
    const ro = new ResizeObserver(on);
    ro.observe(el);
    return () => {
      cancelAnimationFrame(raf);
      el.removeEventListener('scroll', on);
      ro.disconnect();
    };
  }, []);
  return view;
}

// Spacer stands in for the rows out of view, so the scrollbar is true to
// the whole table. Its height is set through the CSSOM, which the page's
// Content-Security-Policy allows (it forbids style attributes in markup).
function Spacer({ rows, cols }) {
  if (!rows) return null;
  return html`<tr class="spacer" aria-hidden="true" ref=${(el) => el && (el.style.height = `${rows * ROW_PX}px`)}><td colspan=${cols}></td></tr>`;
}

// PatientsTable renders only the rows in view (and OVERSCAN around them):
// with 500 patients and a stream of readings, laying out and painting every
// row at every update is what makes a board stutter.
export function PatientsTable({ store, site, data, alertsByPatient, trends, overdueS, now }) {
  const [sort, setSort] = useState({ key: 'risk', desc: false });
  const wrap = useRef(null);
  const holding = useHolding(wrap);
  const view = useWindow(wrap);
  const order = useRef([]);
  const [resortTick, setResortTick] = useState(0);
  const sorted = useMemo(() => sortedPatients(data, sort.key, sort.desc), [data, sort.key, sort.desc]);
  // The order holds while the reader is in the table, until they re-sort.
  const { rows, moved } = useMemo(() => {
    if (!holding || !order.current) return { rows: sorted, moved: 0 };
    return stableOrder(order.current, sorted);
  }, [sorted, holding, resortTick]);
  order.current = rows.map((r) => r.patient_id);
  const resort = () => {
    order.current = null;
    setResortTick((n) => n + 1);
  };
  // Choosing an order is asking for it now, reading or not.
  const choose = (next) => {
    order.current = null;
    setSort(next);
  };
  const lang = document.documentElement.lang;
  const first = Math.max(0, Math.floor(view.top / ROW_PX) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((view.top + view.height) / ROW_PX) + OVERSCAN);
  return html`<div class="table-wrap" ref=${wrap}>
    ${moved
      ? html`<button type="button" id="resort" class="resort" onClick=${resort}>${tn('site.resort', moved)}</button>`
      : null}
    <table id="patients" class="patients">
      <caption class="sr-only">${t('site.caption', { site: site.key })}</caption>
      <colgroup>
        <col class="c-patient" /><col class="c-measured" /><col class="c-vital" /><col class="c-vital" /><col class="c-vital" />
        <col class="c-wide" /><col class="c-vital" /><col class="c-wide" /><col class="c-vital" /><col class="c-news2" /><col class="c-risk" /><col class="c-model" />
      </colgroup>
      <thead>
        <tr>
          ${COLUMNS.map(([col, label, unit]) => html`<${SortHeader} key=${label} col=${col} label=${label} unit=${unit} sort=${sort} setSort=${choose} />`)}
        </tr>
      </thead>
      <tbody>
        <${Spacer} rows=${first} cols=${COLUMNS.length} />
        ${rows.slice(first, last).map(
          (row) => html`<${PatientRow} key=${row.patient_id} row=${row} now=${now} site=${site} lang=${lang}
            flash=${store.flash(site.trial, site.site, row.patient_id)} alert=${alertsByPatient[row.patient_id]}
            trend=${trends?.patients?.[row.patient_id]} overdueS=${overdueS} />`,
        )}
        <${Spacer} rows=${rows.length - last} cols=${COLUMNS.length} />
        ${rows.length === 0
          ? html`<tr class="empty"><td colspan=${COLUMNS.length}>${data.loaded ? t('site.empty') : store.siteProblem(site.key) ? t('site.notLoaded') : t('common.loading')}</td></tr>`
          : null}
      </tbody>
    </table>
  </div>`;
}

export function AlertFeed({ store, alerts, now }) {
  return html`<ol id="alerts" class="alerts" aria-live="polite">
    ${alerts.map(
      (a) => html`<li key=${a.alert_id} class=${`alert sev-${a.severity}`} data-alert-id=${a.alert_id} data-severity=${a.severity} data-patient=${a.patient_id} data-status=${a.status}>
        <div class="alert-head">
          <${RiskBadge} risk=${a.severity} />
          <a href=${href({ view: 'patient', trial: a.trial_id, site: a.site_id, patient: a.patient_id })}>${a.patient_id}</a>
          <${StatusBadge} status=${a.status} />
          <span class="spacer"></span>
          <${Time} iso=${a.opened_at} now=${now} />
        </div>
        <ul class="reasons">
          ${(a.reasons || []).map((r) => html`<li key=${r}>${reasonLabel(r)}</li>`)}
        </ul>
        <${SaeClock} alert=${a} now=${now} />
        <${AlertActions} store=${store} alert=${a} compact=${true} />
      </li>`,
    )}
    ${alerts.length === 0 ? html`<li class="empty muted">${t('site.noAlerts')}</li>` : null}
  </ol>`;
}

// useProtocol is a trial's protocol (its schedule says when a patient is
// overdue), from the store's one copy per trial.
function useProtocol(store, trial) {
  const [p, setP] = useState(null);
  useEffect(() => {
    let live = true;
    store.protocol(trial).then((v) => live && setP(v));
    return () => {
      live = false;
    };
  }, [trial]);
  return p;
}

// parseDur reads a Go duration as the server writes it ("1h30m0s", "90s",
// "1.5h") in seconds.
export function parseDur(s) {
  const unit = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const m of String(s || '').matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]];
  return total;
}

// overdueAfter: silent for longer than the protocol's schedule plus grace
// (the missed-readings rule), else three hours.
export function overdueAfter(protocol) {
  const every = parseDur(protocol?.schedule?.every);
  return every ? every + parseDur(protocol?.schedule?.grace) : DEFAULT_OVERDUE_S;
}

// useTrends loads the site's 24-hour series (every TREND_REFRESH_MS) and
// puts each score event's vitals in the newest bucket at once, so the
// sparklines move with the readings. Events change it in place and the
// store's batched render shows it: one render per frame, not per event.
function useTrends(store, site) {
  const ref = useRef(null);
  const [, setLoaded] = useState(0);
  useEffect(() => {
    const abort = new AbortController();
    let timer;
    ref.current = null;
    const load = () =>
      fetchTrends(site, store.token, abort.signal)
        .then((tr) => {
          if (tr?.patients) tr.patients = dict(tr.patients);
          ref.current = tr;
          setLoaded((n) => n + 1);
        }, () => {})
        .finally(() => {
          if (!abort.signal.aborted) timer = setTimeout(load, TREND_REFRESH_MS);
        });
    load();
    const off = store.onEvents((room, d) => {
      if (d.kind === 'score' && d.trial_id === site.trial && d.site_id === site.site && d.vitals) appendTrend(ref.current, d);
    });
    return () => {
      abort.abort();
      clearTimeout(timer);
      off();
    };
  }, [site.key]);
  return ref.current;
}

const TREND_VITALS = ['respiratory_rate', 'spo2', 'systolic_bp', 'heart_rate', 'temperature'];

// appendTrend puts a score event's values in its bucket of tr (the newest,
// or a new one when the window has moved on), replacing the patient's
// series object so that the row re-renders.
export function appendTrend(tr, d) {
  if (!tr?.patients || !tr.bucket_seconds) return;
  const step = tr.bucket_seconds * 1000;
  let from = Date.parse(tr.from);
  const n = Math.round((Date.parse(tr.to) - from) / step);
  const at = Date.parse(d.measured_at);
  if (!Number.isFinite(at) || at < from) return;
  // The window moved on: every series shifts left by the new buckets.
  const shift = Math.max(0, Math.floor((at - from) / step) - (n - 1));
  if (shift) {
    from += shift * step;
    tr.from = new Date(from).toISOString();
    tr.to = new Date(from + n * step).toISOString();
    for (const [p, series] of Object.entries(tr.patients)) {
      const moved = {};
      for (const [k, v] of Object.entries(series)) moved[k] = [...v.slice(Math.min(shift, v.length)), ...Array(Math.min(shift, v.length)).fill(null)];
      tr.patients[p] = moved;
    }
  }
  const i = Math.floor((at - from) / step);
  const cur = Object.hasOwn(tr.patients, d.patient_id) ? tr.patients[d.patient_id] : null;
  const next = {};
  for (const k of [...TREND_VITALS, 'news2']) next[k] = cur?.[k] ? [...cur[k]] : Array(n).fill(null);
  for (const k of TREND_VITALS) if (d.vitals[k] != null) next[k][i] = Number(d.vitals[k]);
  if (d.news2?.total != null) next.news2[i] = d.news2.total;
  tr.patients[d.patient_id] = next;
}

export function SiteView({ store, site }) {
  const data = useSite(store, site);
  const now = useNow(15_000);
  const protocol = useProtocol(store, site.trial);
  const trends = useTrends(store, site);
  const queue = store.queue.alerts;
  const { alerts, alertsByPatient } = useMemo(() => {
    const list = sortedAlerts(Object.values(queue).filter((a) => a.trial_id === site.trial && a.site_id === site.site));
    const by = dict();
    for (const a of list) if (!by[a.patient_id]) by[a.patient_id] = a;
    return { alerts: list, alertsByPatient: by };
  }, [queue, site.key]);
  const board = data || EMPTY;
  const overdueS = overdueAfter(protocol);
  const { counts, overdue } = useMemo(
    () => ({
      counts: riskCounts(board),
      overdue: Object.values(board.patients).filter((r) => (now - Date.parse(r.measured_at)) / 1000 > overdueS).length,
    }),
    [board, now, overdueS],
  );
  const problem = store.siteProblem(site.key);
  return html`
    <main id="main" tabindex="-1" class=${`board${store.connState() === 'live' ? '' : ' not-live'}`} data-site=${site.key}>
      ${problem ? html`<div class="banner banner-${problem.kind}" role="alert">${problemText(problem)}</div>` : null}
      <section class="panel patients-panel" aria-labelledby="patients-h">
        <div class="panel-head">
          <h1 id="patients-h">${t('nav.trialSite', { trial: site.trial, site: site.site })} <span class="count">${tn('site.patients', Object.keys(board.patients).length)}</span></h1>
          <ul class="summary" aria-label=${t('site.byRisk')}>
            ${[...RISKS].reverse().map((r) => (counts[r] ? html`<li key=${r}><${RiskBadge} risk=${r} /> ${counts[r]}</li>` : null))}
            ${overdue ? html`<li class="late"><span class="tag late-tag">${t('site.overdue')}</span> ${overdue}</li>` : null}
          </ul>
          <span class="muted small">${t('site.overdueRule', { d: duration(overdueS) })}</span>
        </div>
        <${PatientsTable} store=${store} site=${site} data=${board} alertsByPatient=${alertsByPatient} trends=${trends} overdueS=${overdueS} now=${now} />
      </section>
      <aside class="panel alerts-panel" aria-labelledby="alerts-h">
        <div class="panel-head">
          <h2 id="alerts-h">${t('site.openAlerts')} <span class="count">${alerts.length}</span></h2>
        </div>
        <${AlertFeed} store=${store} alerts=${alerts} now=${now} />
      </aside>
    </main>`;
}
