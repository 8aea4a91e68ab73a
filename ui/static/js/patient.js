// The patient view (#/patient/T/S/P): one patient's vitals over hours to
// weeks with their NEWS2 bands, the model's probability and what drove it,
// the reading history, and the patient's alerts with their signatures and
// audit trail. A range is loaded over REST, then kept live: score and alert
// events of this patient are merged in as they arrive, and after a lost
// connection the range is loaded again, as the hub may not have replayed
// everything that was missed.
//
// Everything shown comes from the server's replies to this token (the API
// filters by what the token may see) and is rendered as text, never as
// markup.
//
// Test hooks: section#patient-view[data-patient]; #patient-charts, its
// figures carrying data-bands; table#readings, rows tr[data-reading-id],
// cells [data-field] with the raw value in [data-value]; #patient-alerts
// li[data-alert-id][data-status]; .audit-trail [data-action]; #model-panel
// [data-state=ok|degraded|none|empty].

import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { AlertActions, SaeClock } from './actions.js';
import { fetchAudit, fetchPatientAlerts, fetchReadings } from './api.js';
import { Chart, fixed, news2Bands, points, thin, thresholdBands, totalBands } from './chart.js';
import {
  bandLabel,
  consciousnessLabel,
  featureLabel,
  findingText,
  gradeLabel,
  labelOr,
  localTime,
  news2Breakdown,
  outcomeLabel,
  paramLabel,
  percent,
  reasonLabel,
  riskLabel,
  statusLabel,
  symptomLabel,
  valueText,
} from './format.js';
import { html } from './html.js';
import { formatNumber, t } from './i18n.js';
import { href } from './router.js';
import { siteRef } from './session.js';
import { siteRoom, useSite, useStore } from './store.js';
import { RiskBadge, StatusBadge, Time, useLocale, useNow } from './ui.js';

const RANGES = [['6h', 6], ['24h', 24], ['72h', 72], ['7d', 168], ['28d', 672]];
const DEFAULT_RANGE = '72h';
// The newest readings kept of a range, and the points one chart draws: a
// chart is a few hundred pixels wide, so more points only cost time.
const MAX_READINGS = 20000;
const MAX_PASSES = 5;
const MAX_POINTS = 1200;
const PAGE = 50;
const DEFAULT_THRESHOLD = 0.5; // docs/api.md: thresholds.model_probability
const SEVERITIES = ['medium', 'high', 'critical'];
const SHORT = { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };

const ts = (iso) => {
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms : 0;
};

// ---- data -----------------------------------------------------------------

// readingFromEvent turns a score event (the score plus the reading's vitals,
// symptoms and receipt time) into a reading as the REST list has it.
function readingFromEvent(d) {
  const { vitals, symptoms, received_at: receivedAt, ...score } = d;
  return {
    reading_id: d.reading_id,
    patient_id: d.patient_id,
    measured_at: d.measured_at,
    received_at: receivedAt ?? null,
    vitals: vitals ?? null,
    symptoms: symptoms ?? [],
    score,
  };
}

function mergeReading(cur, next) {
  return { ...cur, ...next, vitals: next.vitals ?? cur.vitals, score: next.score ?? cur.score, received_at: next.received_at ?? cur.received_at };
}

// upsertReadings adds readings to a list kept oldest first, one entry per
// reading_id.
function upsertReadings(list, items) {
  if (items.length === 1) return upsertReading(list, items[0]);
  const byId = new Map(list.map((r) => [r.reading_id, r]));
  for (const r of items) {
    const cur = byId.get(r.reading_id);
    byId.set(r.reading_id, cur ? mergeReading(cur, r) : r);
  }
  return [...byId.values()].sort((a, b) => ts(a.measured_at) - ts(b.measured_at));
}

// upsertReading adds one reading: a live one is nearly always the newest,
// appended without sorting the list.
function upsertReading(list, r) {
  const i = list.findLastIndex((x) => x.reading_id === r.reading_id);
  if (i >= 0) return list.with(i, mergeReading(list[i], r));
  const out = [...list, r];
  if (list.length && ts(r.measured_at) < ts(list[list.length - 1].measured_at)) out.sort((a, b) => ts(a.measured_at) - ts(b.measured_at));
  return out;
}

// upsertAlert keeps the newer of two versions of an alert: an event and a
// snapshot may arrive in either order.
function upsertAlert(byId, a) {
  const cur = byId[a.alert_id];
  if (cur && ts(cur.updated_at) > ts(a.updated_at)) return byId;
  return { ...byId, [a.alert_id]: a };
}

// sortAlerts: unresolved first, the most severe and most recently changed
// first among them; then resolved ones, newest first.
function sortAlerts(alerts) {
  const rank = (a) => (a.status === 'resolved' ? -1 : SEVERITIES.indexOf(a.severity));
  return alerts.slice().sort((a, b) => rank(b) - rank(a) || ts(b.updated_at) - ts(a.updated_at));
}

// loadRange fetches a range's readings and keeps the newest MAX_READINGS.
// fetchReadings pages oldest first and stops at its cap, so a range holding
// more is read on from where the last batch ended: the newest readings
// matter most. clipped: older readings of the range were dropped;
// incomplete: the newest may be missing too (a range far too dense).
async function loadRange(ref, sinceISO, token, signal) {
  let list = [];
  let from = sinceISO;
  let clipped = false;
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const { readings, truncated } = await fetchReadings(ref, from, token, signal, MAX_READINGS);
    list = upsertReadings(list, readings);
    if (list.length > MAX_READINGS) {
      list = list.slice(-MAX_READINGS);
      clipped = true;
    }
    if (!truncated || !readings.length) return { list, clipped, incomplete: false };
    from = readings[readings.length - 1].measured_at;
  }
  return { list, clipped, incomplete: true };
}

// usePatientData loads a patient's readings of the last `hours` and all of
// their alerts, and merges this patient's live events into both. Events
// that arrive while a load is in flight are kept aside and merged into its
// result, so a reading scored during the load is not lost.
function usePatientData(store, ref, hours) {
  const [readings, setReadings] = useState({ list: [], since: Date.now() - hours * 3600e3, loaded: false, clipped: false, incomplete: false });
  const [alerts, setAlerts] = useState({ byId: {}, loaded: false });
  const [problem, setProblem] = useState(null);
  const [reload, setReload] = useState(0);
  const pendingReadings = useRef(null);
  const pendingAlerts = useRef(null);

  const failed = (e) => {
    if (e.name === 'AbortError' || store.failed(e)) return;
    // The API answers 404 for a site the token may not see, like a missing one.
    setProblem(e.status === 403 || e.status === 404 ? { kind: 'forbidden' } : { kind: 'error', detail: e.message });
  };

  useEffect(() => {
    const abort = new AbortController();
    const since = Date.now() - hours * 3600e3;
    const pending = [];
    pendingReadings.current = pending;
    setReadings((s) => ({ ...s, loaded: false }));
    setProblem(null);
    loadRange(ref, new Date(since).toISOString(), store.token, abort.signal).then(({ list, clipped, incomplete }) => {
      pendingReadings.current = null;
      const late = pending.filter((r) => ts(r.measured_at) >= since);
      setReadings({ list: upsertReadings(list, late), since, loaded: true, clipped, incomplete });
    }, failed);
    return () => abort.abort();
  }, [ref.patientKey, hours, reload]);

  useEffect(() => {
    const abort = new AbortController();
    const pending = [];
    pendingAlerts.current = pending;
    fetchPatientAlerts(ref, store.token, abort.signal).then((list) => {
      pendingAlerts.current = null;
      let byId = {};
      // Filtered here too: the list must hold this patient's alerts only,
      // whatever the server's filter does.
      for (const a of list) if (a.patient_id === ref.patient) byId = upsertAlert(byId, a);
      for (const a of pending) byId = upsertAlert(byId, a);
      setAlerts({ byId, loaded: true });
    }, failed);
    return () => abort.abort();
  }, [ref.patientKey, reload]);

  useEffect(
    () =>
      store.onEvents((room, d) => {
        if (d.patient_id !== ref.patient || d.trial_id !== ref.trial || d.site_id !== ref.site) return;
        if (d.kind === 'score') {
          const r = readingFromEvent(d);
          pendingReadings.current?.push(r);
          setReadings((s) => (s.loaded && ts(r.measured_at) >= s.since ? { ...s, list: upsertReadings(s.list, [r]) } : s));
        } else if (d.kind === 'alert') {
          pendingAlerts.current?.push(d);
          setAlerts((s) => ({ ...s, byId: upsertAlert(s.byId, d) }));
        }
      }),
    [store, ref.patientKey],
  );

  useReloadOnSnapshot(store, ref, () => setReload((n) => n + 1));

  return { readings, alerts, problem, retry: () => setReload((n) => n + 1) };
}

// useReloadOnSnapshot calls reload whenever the store had to reload the
// patient's site room (or, for alerts, a home room) from REST: the hub could
// not replay it after a reconnect, or its offsets showed a gap. What this
// view holds of the patient may then miss events too.
function useReloadOnSnapshot(store, ref, reload) {
  const key = [siteRoom(ref.trial, ref.site), ...store.home].map((r) => store.snapshotCount(r)).join(',');
  const first = useRef(key);
  useEffect(() => {
    if (key !== first.current) {
      first.current = key;
      reload();
    }
  }, [key]);
}

// useThreshold is the trial's model probability threshold. A trial without
// a stored protocol answers 404, and then the server uses the default too.
function useThreshold(store, trial) {
  const [threshold, setThreshold] = useState(DEFAULT_THRESHOLD);
  useEffect(() => {
    let live = true;
    store.protocol(trial).then((p) => {
      const v = Number(p?.thresholds?.model_probability);
      if (live && v > 0 && v < 1) setThreshold(v);
    });
    return () => {
      live = false;
    };
  }, [trial]);
  return threshold;
}


// ---- labels ---------------------------------------------------------------

const roleText = (role) => labelOr(`role.${role}`, String(role || ''));
// ---- view -----------------------------------------------------------------

export function PatientView({ store, trial, site, patient }) {
  useStore(store);
  const lang = useLocale();
  const ref = useMemo(() => ({ ...siteRef(trial, site), patient, patientKey: `${trial}/${site}/${patient}` }), [trial, site, patient]);
  const siteData = useSite(store, ref);
  const [range, setRange] = useState(DEFAULT_RANGE);
  const hours = RANGES.find(([k]) => k === range)[1];
  const { readings, alerts, problem, retry } = usePatientData(store, ref, hours);
  const threshold = useThreshold(store, trial);
  const now = useNow(30_000);

  const list = readings.list;
  const lastScored = useMemo(() => list.findLast((r) => r.score), [list]);
  const siteRow = siteData?.patients?.[patient] ?? null;
  const latest = [list[list.length - 1], siteRow].filter(Boolean).sort((a, b) => ts(b.measured_at) - ts(a.measured_at))[0] ?? null;
  const scale = (lastScored ?? siteRow)?.score?.news2?.spo2_scale === 2 ? 2 : 1;

  return html`<main id="main" tabindex="-1" class="pv-main">
    <section id="patient-view" class="pv" data-patient=${patient} aria-labelledby="pv-title">
      <${Header} trial=${trial} site=${site} patient=${patient} latest=${latest} scale=${scale} now=${now} />
      ${problem?.kind === 'forbidden'
        ? html`<p class="error pv-problem" role="alert">${t('patient.forbidden', { patient, site: `${trial}/${site}` })}</p>`
        : html`
          ${problem
            ? html`<div class="banner banner-error" role="alert">
                <span>${t('patient.loadFailed', { detail: problem.detail })}</span>
                <button type="button" class="secondary" onClick=${retry}>${t('common.retry')}</button>
              </div>`
            : null}
          <div class="pv-top">
            <${AlertsPanel} store=${store} alerts=${alerts} now=${now} />
            <${ModelPanel} list=${list} loaded=${readings.loaded} threshold=${threshold} />
          </div>
          <${ChartsPanel} readings=${readings} scale=${scale} threshold=${threshold} range=${range} setRange=${setRange}
            now=${now} lang=${lang} syncKey=${`pv-${ref.patientKey}`} />
          <${ReadingsPanel} readings=${readings} hours=${hours} />`}
    </section>
  </main>`;
}

function Header({ trial, site, patient, latest, scale, now }) {
  const score = latest?.score;
  return html`<header class="pv-head">
    <a class="pv-back" href=${href({ view: 'site', trial, site })}><span aria-hidden="true">← </span>${t('patient.back', { site })}</a>
    <div class="pv-title">
      <h1 id="pv-title">${t('patient.title', { patient })}</h1>
      <span class="muted">${t('nav.trialSite', { trial, site })}</span>
      ${score?.registered === false ? html`<span class="tag" title=${t('common.unregisteredTitle')}>${t('common.unregistered')}</span>` : null}
    </div>
    <dl class="pv-facts">
      <div><dt>${t('patient.lastReading')}</dt><dd><${Time} iso=${latest?.measured_at} now=${now} /></dd></div>
      <div><dt>${t('param.news2')}</dt><dd><${News2} news2=${score?.news2} /></dd></div>
      <div><dt>${t('patient.risk')}</dt><dd>${latest ? html`<${RiskBadge} risk=${score?.risk} />` : t('common.none')}</dd></div>
      <div><dt>${t('patient.spo2Scale')}</dt><dd>${t('patient.scale', { n: scale })}</dd></div>
    </dl>
  </header>`;
}

function News2({ news2 }) {
  if (!news2) return html`<span class="muted">${t('common.none')}</span>`;
  return html`<span class="pv-news2">
    <span class=${`pv-total band-${news2.band}`}>${news2.total}</span>
    <span class="small">${bandLabel(news2.band)}</span>
    ${news2.partial ? html`<span class="tag partial">${t('news2.partial')}</span>` : null}
  </span>`;
}

// ---- alerts ---------------------------------------------------------------

function AlertsPanel({ store, alerts, now }) {
  const list = sortAlerts(Object.values(alerts.byId));
  const open = list.filter((a) => a.status !== 'resolved').length;
  return html`<section id="patient-alerts" class="panel pv-panel" aria-labelledby="pv-alerts-h" aria-busy=${alerts.loaded ? 'false' : 'true'}>
    <div class="panel-head">
      <h2 id="pv-alerts-h">${t('patient.alerts.title')}</h2>
      <span class="small muted">${t('patient.alerts.count', { open, all: list.length })}</span>
    </div>
    ${!alerts.loaded
      ? html`<p class="pv-empty muted">${t('common.loading')}</p>`
      : list.length
        ? html`<ol class="pv-alerts">${list.map((a) => html`<${AlertItem} key=${a.alert_id} store=${store} alert=${a} now=${now} />`)}</ol>`
        : html`<p class="pv-empty muted">${t('patient.alerts.none')}</p>`}
  </section>`;
}

function AlertItem({ store, alert: a, now }) {
  const resolved = a.status === 'resolved';
  return html`<li class=${`pv-alert sev-${a.severity}${resolved ? ' resolved' : ''}`} data-alert-id=${a.alert_id} data-status=${a.status} data-severity=${a.severity}>
    <div class="pv-alert-head">
      <span class=${`badge risk-${a.severity}`}>${t('patient.alert.severity', { level: riskLabel(a.severity) })}</span>
      <${StatusBadge} status=${a.status} />
      ${a.possible_sae ? html`<span class="tag pv-sae" data-field="possible-sae">${t('patient.alert.possibleSae')}</span>` : null}
      ${!resolved && a.current_risk ? html`<span class="small">${t('patient.alert.currentRisk')} <${RiskBadge} risk=${a.current_risk} /></span>` : null}
    </div>
    <${Findings} alert=${a} />
    <p class="small muted pv-times">
      <span>${t('patient.alert.opened')} <${Time} iso=${a.opened_at} abs opts=${SHORT} /></span>
      <span>${t('patient.alert.updated')} <${Time} iso=${a.updated_at} now=${now} /></span>
      ${!resolved && a.next_escalation_at ? html`<span>${t('patient.alert.nextEscalation')} <${Time} iso=${a.next_escalation_at} abs opts=${SHORT} /></span>` : null}
    </p>
    <${Signatures} alert=${a} />
    ${a.report_due_at ? html`<${SaeCountdown} alert=${a} />` : null}
    ${resolved ? null : html`<${AlertActions} store=${store} alert=${a} />`}
    <${AuditTrail} store=${store} alert=${a} />
  </li>`;
}

// SaeCountdown ticks the SAE clock every second without re-rendering the view.
function SaeCountdown({ alert }) {
  const now = useNow(1000);
  return html`<${SaeClock} alert=${alert} now=${now} />`;
}

// Findings lists the alert's findings, then any reason no finding details.
function Findings({ alert }) {
  const findings = alert.findings || [];
  const detailed = new Set(findings.map((f) => f.reason));
  const items = [...findings.map(findingText), ...(alert.reasons || []).filter((r) => !detailed.has(r)).map(reasonLabel)];
  if (!items.length) return null;
  return html`<ul class="reasons pv-findings" aria-label=${t('patient.alert.findings')}>
    ${items.map((s, i) => html`<li key=${i}>${s}</li>`)}
  </ul>`;
}

// Signatures: printed name, role, time, meaning and reason of each signed
// action (21 CFR 11.50), and the outcome of a resolution.
const SIGNED = [['acknowledged', 'patient.sig.acknowledged'], ['possible_sae', 'patient.sig.possibleSae'], ['resolved', 'patient.sig.resolved']];

function Signatures({ alert }) {
  const sigs = SIGNED.filter(([k]) => alert[k]);
  if (!sigs.length && !alert.outcome) return null;
  return html`<dl class="pv-sigs">
    ${sigs.map(
      ([k, label]) => html`<div key=${k} class="pv-sig" data-signature=${k}>
        <dt>${t(label)}</dt>
        <dd><${Signature} sig=${alert[k]} /></dd>
      </div>`,
    )}
    ${alert.outcome
      ? html`<div class="pv-sig" data-signature="outcome"><dt>${t('patient.sig.outcome')}</dt><dd><strong>${outcomeLabel(alert.outcome)}</strong></dd></div>`
      : null}
  </dl>`;
}

function Signature({ sig }) {
  return html`<strong>${sig.name || sig.sub}</strong> (${roleText(sig.role)}) · <${Time} iso=${sig.at} abs />
    ${sig.meaning ? html`<br /><span class="muted">${t('patient.sig.meaning')}</span> ${sig.meaning}` : null}
    ${sig.reason ? html`<br /><span class="muted">${t('patient.sig.reason')}</span> <q>${sig.reason}</q>` : null}`;
}

// AuditTrail shows an alert's trail (.audit-trail) on request, and loads it
// again whenever the alert changes (its updated_at moves with every
// recorded change).
function AuditTrail({ store, alert }) {
  const [open, setOpen] = useState(false);
  const [state, setState] = useState({ records: null, error: null });
  useEffect(() => {
    if (!open) return undefined;
    const abort = new AbortController();
    fetchAudit(alert.alert_id, store.token, abort.signal).then(
      (records) => setState({ records, error: null }),
      (e) => {
        if (e.name !== 'AbortError' && !store.failed(e)) setState((s) => ({ ...s, error: e.message }));
      },
    );
    return () => abort.abort();
  }, [open, alert.alert_id, alert.updated_at]);

  const id = `audit-${alert.alert_id}`;
  return html`<div class="pv-audit-wrap">
    <button type="button" class="linklike" aria-expanded=${open ? 'true' : 'false'} aria-controls=${id} onClick=${() => setOpen(!open)}>
      ${open ? t('patient.audit.hide') : t('patient.audit.show')}
    </button>
    ${open
      ? html`<div id=${id} class="audit-trail pv-audit" aria-busy=${state.records ? 'false' : 'true'}>
          ${state.error ? html`<p class="error" role="alert">${t('patient.audit.failed', { detail: state.error })}</p>` : null}
          ${!state.records
            ? html`<p class="muted small">${t('common.loading')}</p>`
            : state.records.length
              ? html`<ol>${state.records.map((r) => html`<${AuditRecord} key=${r.id} r=${r} />`)}</ol>`
              : html`<p class="muted small">${t('patient.audit.none')}</p>`}
        </div>`
      : null}
  </div>`;
}

// The alert fields an audit record's old → new values are compared on.
const AUDIT_FIELDS = [
  ['status', statusLabel],
  ['severity', riskLabel],
  ['reasons', (rs) => rs.map(reasonLabel).join(', ')],
  ['current_risk', riskLabel],
  ['tier', (n) => (n < 0 ? t('patient.audit.noTier') : formatNumber(n))],
  ['outcome', outcomeLabel],
  ['possible_sae', () => t('patient.audit.marked')],
  ['report_due_at', (iso) => localTime(iso)],
];

function changes(oldValue, newValue) {
  const o = oldValue || {};
  const n = newValue || {};
  const empty = (v) => v == null || (Array.isArray(v) && !v.length);
  return AUDIT_FIELDS.filter(([k]) => JSON.stringify(empty(o[k]) ? null : o[k]) !== JSON.stringify(empty(n[k]) ? null : n[k])).map(
    ([k, fmt]) => ({ field: k, from: empty(o[k]) ? t('common.none') : fmt(o[k]), to: empty(n[k]) ? t('common.none') : fmt(n[k]) }),
  );
}

function AuditRecord({ r }) {
  const diff = changes(r.old_value, r.new_value);
  const who = r.actor === 'system' ? t('patient.audit.system') : `${r.actor_name || r.actor}${r.actor_role ? ` (${roleText(r.actor_role)})` : ''}`;
  return html`<li data-action=${r.action}>
    <div class="pv-audit-head">
      <${Time} iso=${r.at} abs />
      <strong>${labelOr(`patient.audit.action.${r.action}`, r.action)}</strong>
      <span>${t('patient.audit.by', { who })}</span>
    </div>
    ${diff.length
      ? html`<ul class="pv-changes">
          ${diff.map(
            (c) => html`<li key=${c.field}>
              <span class="muted">${t(`patient.audit.field.${c.field}`)}:</span> <span class="pv-old">${c.from}</span> <span aria-hidden="true">→</span><span class="sr-only"> ${t('patient.audit.to')} </span> <span class="pv-new">${c.to}</span>
            </li>`,
          )}
        </ul>`
      : null}
    ${r.meaning ? html`<div><span class="muted">${t('patient.sig.meaning')}</span> ${r.meaning}</div>` : null}
    ${r.reason ? html`<div><span class="muted">${t('patient.sig.reason')}</span> <q>${r.reason}</q></div>` : null}
  </li>`;
}

// ---- model ----------------------------------------------------------------

// ModelPanel: the latest probability the model gave, the inputs that pushed
// it up most, and whether the newest score was made without it.
function ModelPanel({ list, loaded, threshold }) {
  const lastScored = list.findLast((r) => r.score);
  const lastModel = list.findLast((r) => r.score?.model);
  const degraded = !!lastScored?.score.degraded;
  const state = !lastScored ? 'empty' : degraded ? 'degraded' : lastScored.score.model ? 'ok' : 'none';
  let body;
  if (!loaded) body = html`<p class="muted">${t('common.loading')}</p>`;
  else if (lastModel) body = html`<${ModelOutput} reading=${lastModel} threshold=${threshold} />`;
  else body = html`<p class="muted">${t(state === 'empty' ? 'patient.model.noScores' : state === 'none' ? 'patient.model.rulesOnly' : 'patient.model.noneInRange')}</p>`;
  return html`<section id="model-panel" class="panel pv-panel" aria-labelledby="pv-model-h" data-state=${state}>
    <div class="panel-head"><h2 id="pv-model-h">${t('patient.model.title')}</h2></div>
    <div class="pv-model">
      ${degraded
        ? html`<p class="pv-note" role="status">
            <span class="tag">${t('model.rulesOnly')}</span> ${t('patient.model.degraded')} <${Time} iso=${lastScored.measured_at} abs opts=${SHORT} />
          </p>`
        : null}
      ${body}
    </div>
  </section>`;
}

function ModelOutput({ reading, threshold }) {
  const m = reading.score.model;
  const above = m.probability >= threshold;
  const contributions = m.contributions || [];
  const widest = Math.max(...contributions.map((c) => Math.abs(Number(c.logit)) || 0), 0.01);
  return html`
    <p class="pv-prob">
      <strong class=${above ? 'above' : ''} data-value=${m.probability}>${percent(m.probability)}</strong>
      <span>${t('patient.model.probability')}</span>
    </p>
    <p class="small">
      ${above ? html`<span class="tag pv-above">${t('patient.model.above', { p: percent(threshold) })}</span>` : t('patient.model.below', { p: percent(threshold) })}
    </p>
    <p class="small muted">
      ${t('patient.model.of')} <${Time} iso=${reading.measured_at} abs opts=${SHORT} /> · ${t('patient.model.version', { version: m.version || '' })}
    </p>
    ${contributions.length
      ? html`<table class="pv-contrib">
          <caption>${t('patient.model.drivers')}</caption>
          <thead><tr>
            <th scope="col">${t('patient.model.input')}</th>
            <th scope="col" class="num">${t('patient.model.value')}</th>
            <th scope="col" class="num">${t('patient.model.push')}</th>
          </tr></thead>
          <tbody>
            ${contributions.map((c) => {
              const push = Number(c.logit);
              return html`<tr key=${c.feature} data-feature=${c.feature}>
                <th scope="row">${featureLabel(c.feature)}</th>
                <td class="num">
                  ${formatNumber(Number(c.value), { maximumFractionDigits: 2 })}
                  ${c.imputed ? html` <span class="tag" title=${t('patient.model.imputedTitle')}>${t('patient.model.imputed')}</span>` : null}
                </td>
                <td class="num">
                  ${push >= 0 ? '+' : '−'}${formatNumber(Math.abs(push), { minimumFractionDigits: 2, maximumFractionDigits: 2 })}
                  <span class="pv-bar" aria-hidden="true"><span class=${push >= 0 ? 'up' : 'down'} style=${{ width: `${(Math.abs(push) / widest) * 100}%` }}></span></span>
                </td>
              </tr>`;
            })}
          </tbody>
        </table>
        <p class="small muted">${t('patient.model.pushHelp')}</p>`
      : null}`;
}

// ---- charts ---------------------------------------------------------------

const VITAL_CHARTS = [
  { id: 'rr', keys: ['respiratory_rate'], span: [6, 30] },
  { id: 'spo2', keys: ['spo2'], span: [84, 100] },
  { id: 'bp', keys: ['systolic_bp', 'diastolic_bp'], span: [50, 180] },
  { id: 'hr', keys: ['heart_rate'], span: [35, 140] },
  { id: 'temp', keys: ['temperature'], span: [34.5, 40], digits: 1 },
];

// series builds a chart's data from rows: times and one array per key,
// thinned to MAX_POINTS by rank (by default the first key's value).
function series(rows, keys, value, rank = (r) => value(r, keys[0])) {
  const kept = thin(rows, rank, MAX_POINTS);
  return [kept.map((r) => ts(r.measured_at) / 1000), ...keys.map((k) => kept.map((r) => value(r, k)))];
}

const vital = (r, k) => (typeof r.vitals?.[k] === 'number' ? r.vitals[k] : null);
const probability = (r) => r.score.model?.probability ?? null;
const asPercent = (v) => formatNumber(v, { style: 'percent' });

function chartSpecs(list, scale, threshold) {
  const onOxygen = list.findLast((r) => r.vitals?.on_oxygen != null)?.vitals.on_oxygen ?? true;
  const scored = list.filter((r) => r.score);
  const vitals = VITAL_CHARTS.map((c) => {
    const unit = t(`unit.${c.keys[0]}`);
    return {
      id: c.id,
      title: c.id === 'bp' ? t('patient.chart.bp', { unit }) : t('patient.chart.vital', { label: paramLabel(c.keys[0]), unit }),
      series: c.keys.map((k) => ({ label: paramLabel(k) })),
      data: series(list.filter((r) => vital(r, c.keys[0]) != null), c.keys, vital),
      yAxis: { span: c.id === 'spo2' && scale === 2 ? [78, 100] : c.span },
      bands: news2Bands(c.keys[0], scale, onOxygen),
      format: fixed(c.digits || 0),
    };
  });
  return [
    ...vitals,
    {
      id: 'news2',
      title: t('patient.chart.news2'),
      series: [{ label: t('param.news2') }],
      data: series(scored, ['total'], (r) => r.score.news2?.total ?? null),
      yAxis: { span: [0, 10] },
      bands: totalBands(),
      lines: [{ value: 5, label: t('patient.chart.urgent') }, { value: 7, label: t('patient.chart.emergency') }],
      format: fixed(0),
    },
    {
      id: 'model',
      title: t('patient.chart.model'),
      // Readings scored without the model leave gaps in its line, not
      // zeros; thinning keeps those gaps (ranked lowest) and the peaks.
      series: [{ label: t('patient.chart.probability'), spanGaps: false }],
      data: series(scored, ['p'], probability, (r) => probability(r) ?? -1),
      yAxis: { span: [0, 1] },
      bands: thresholdBands(threshold),
      lines: [{ value: threshold, label: t('patient.chart.threshold', { p: percent(threshold) }) }],
      format: percent,
      axisFormat: asPercent,
      empty: !scored.some((r) => r.score.model),
    },
  ];
}

function ChartsPanel({ readings, scale, threshold, range, setRange, now, lang, syncKey }) {
  const { list, since, loaded, clipped, incomplete } = readings;
  // lang: the specs hold translated titles and labels.
  const specs = useMemo(() => chartSpecs(list, scale, threshold), [list, scale, threshold, lang]);
  const last = list.length ? ts(list[list.length - 1].measured_at) : 0;
  const xRange = [since / 1000, Math.max(now, last) / 1000];
  const thinned = list.length > MAX_POINTS;
  return html`<section id="patient-charts" class="panel pv-panel" aria-labelledby="pv-charts-h" aria-busy=${loaded ? 'false' : 'true'}>
    <div class="panel-head pv-charts-head">
      <h2 id="pv-charts-h">${t('patient.chart.title')}</h2>
      <${RangePicker} range=${range} setRange=${setRange} />
    </div>
    <${BandKey} scale=${scale} />
    ${clipped || incomplete || thinned
      ? html`<p class="pv-note small">
          ${incomplete ? t('patient.chart.incomplete') : clipped ? t('patient.chart.clipped', { n: formatNumber(MAX_READINGS) }) : null}
          ${thinned ? t('patient.chart.thinned', { n: formatNumber(MAX_POINTS) }) : null}
        </p>`
      : null}
    ${!loaded && !list.length
      ? html`<p class="pv-empty muted">${t('common.loading')}</p>`
      : html`<div class="pv-charts">
          ${specs.map((s) =>
            s.empty || !s.data[0].length
              ? html`<figure key=${s.id} class="pv-chart pv-chart-empty" id=${`chart-${s.id}`}>
                  <figcaption>${s.title}</figcaption>
                  <p class="muted small">${s.id === 'model' ? t('patient.chart.noModel') : t('patient.chart.noData')}</p>
                </figure>`
              : html`<${Chart} key=${`${s.id}-${lang}-${scale}`} id=${`chart-${s.id}`} title=${s.title} data=${s.data} series=${s.series}
                  yAxis=${s.yAxis} bands=${s.bands} lines=${s.lines} xRange=${xRange} syncKey=${syncKey} format=${s.format} axisFormat=${s.axisFormat} />`,
          )}
        </div>`}
  </section>`;
}

function RangePicker({ range, setRange }) {
  return html`<div class="pv-range" role="group" aria-label=${t('patient.range.label')}>
    ${RANGES.map(
      ([k]) => html`<button key=${k} type="button" data-range=${k} aria-pressed=${k === range ? 'true' : 'false'} onClick=${() => setRange(k)}>
        ${t(`patient.range.${k}`)}
      </button>`,
    )}
  </div>`;
}

// BandKey says in words what the shading behind the vitals means.
function BandKey({ scale }) {
  return html`<div class="pv-key small">
    <span>${t('patient.chart.key')}</span>
    <ul>
      ${[0, 1, 2, 3].map((n) => html`<li key=${n}><span class=${`pv-swatch s${n}`} aria-hidden="true"></span>${t('patient.chart.band', { n: points(n) })}</li>`)}
    </ul>
    <span class="muted">${t(scale === 2 ? 'patient.chart.keyScale2' : 'patient.chart.keyScale1')}</span>
  </div>`;
}

// ---- reading history ------------------------------------------------------

function ReadingsPanel({ readings, hours }) {
  const [shown, setShown] = useState(PAGE);
  const rows = useMemo(() => readings.list.slice().reverse(), [readings.list]);
  const more = Math.min(PAGE, rows.length - shown);
  return html`<section class="panel pv-panel" aria-labelledby="pv-readings-h" aria-busy=${readings.loaded ? 'false' : 'true'}>
    <div class="panel-head">
      <h2 id="pv-readings-h">${t('patient.readings.title')} <span class="count">${formatNumber(rows.length)}</span></h2>
      <span class="small muted">${t('patient.readings.newestFirst')}</span>
    </div>
    <div class="pv-table-wrap" tabindex="0" role="region" aria-labelledby="pv-readings-h">
      <table id="readings" class="pv-readings">
        <thead>
          <tr>
            <th scope="col">${t('patient.readings.measured')}</th>
            <th scope="col">${t('patient.readings.received')}</th>
            ${['respiratory_rate', 'spo2'].map((k) => html`<${VitalHead} key=${k} k=${k} />`)}
            <th scope="col">${t('param.on_oxygen')}</th>
            <th scope="col">${t('patient.readings.bp')}<span class="unit">${t('unit.systolic_bp')}</span></th>
            <${VitalHead} k="heart_rate" />
            <th scope="col">${t('param.consciousness')}</th>
            <${VitalHead} k="temperature" />
            <th scope="col">${t('param.news2')}</th>
            <th scope="col">${t('patient.risk')}</th>
            <th scope="col">${t('patient.readings.model')}</th>
            <th scope="col">${t('patient.readings.symptoms')}</th>
          </tr>
        </thead>
        <tbody>
          ${rows.slice(0, shown).map((r) => html`<${ReadingRow} key=${r.reading_id} r=${r} />`)}
          ${readings.loaded && !rows.length
            ? html`<tr class="pv-none"><td colspan="13">${t('patient.readings.none', { period: t(`patient.range.${RANGES.find(([, h]) => h === hours)[0]}`) })}</td></tr>`
            : null}
        </tbody>
      </table>
    </div>
    ${more > 0
      ? html`<button type="button" class="secondary pv-more" onClick=${() => setShown((n) => n + PAGE)}>
          ${t('patient.readings.more', { n: more, shown: formatNumber(shown), total: formatNumber(rows.length) })}
        </button>`
      : null}
  </section>`;
}

function VitalHead({ k }) {
  return html`<th scope="col">${paramLabel(k)}<span class="unit">${t(`unit.${k}`)}</span></th>`;
}

// Vital is a vital's cell, shaded by its NEWS2 sub-score and, so that colour
// is not the only signal, showing the sub-score as text.
function Vital({ field, value, text, sub }) {
  const cls = sub ? `vital p${Math.min(3, sub)}` : 'vital';
  return html`<td class=${cls} data-field=${field} data-value=${value ?? ''}>
    ${value == null ? html`<span class="muted">${t('common.none')}</span>` : (text ?? value)}
    ${sub ? html`<span class="pv-sub" title=${t('patient.readings.subScore', { n: sub })}><span class="sr-only">${t('param.news2')} </span>+${sub}</span>` : null}
  </td>`;
}

function ReadingRow({ r }) {
  const v = r.vitals || {};
  const s = r.score;
  const p = s?.news2?.parameters || {};
  const bp = v.systolic_bp != null ? `${formatNumber(v.systolic_bp)}/${v.diastolic_bp != null ? formatNumber(v.diastolic_bp) : '—'}` : null;
  return html`<tr data-reading-id=${r.reading_id} data-risk=${s?.risk || 'pending'}>
    <th scope="row" data-field="measured_at" data-value=${r.measured_at}><${Time} iso=${r.measured_at} abs opts=${SHORT} /></th>
    <td data-field="received_at" data-value=${r.received_at || ''}><${Time} iso=${r.received_at} abs opts=${SHORT} /></td>
    <${Vital} field="respiratory_rate" value=${v.respiratory_rate} sub=${p.respiratory_rate} />
    <${Vital} field="spo2" value=${v.spo2} sub=${p.spo2} />
    <${Vital} field="on_oxygen" value=${v.on_oxygen} text=${v.on_oxygen ? t('o2.oxygen') : t('o2.air')} sub=${p.on_oxygen} />
    <${Vital} field="bp" value=${bp} sub=${p.systolic_bp} />
    <${Vital} field="heart_rate" value=${v.heart_rate} sub=${p.heart_rate} />
    <${Vital} field="consciousness" value=${v.consciousness} text=${v.consciousness ? consciousnessLabel(v.consciousness) : null} sub=${p.consciousness} />
    <${Vital} field="temperature" value=${v.temperature} text=${v.temperature != null ? fixed(1)(v.temperature) : null} sub=${p.temperature} />
    <td class="news2" data-field="news2" data-value=${s?.news2?.total ?? ''} title=${s ? news2Breakdown(s.news2) : undefined}>
      ${s ? html`<${News2} news2=${s.news2} />` : html`<${RiskBadge} />`}
    </td>
    <td data-field="risk" data-value=${s?.risk || ''}>${s ? html`<${RiskBadge} risk=${s.risk} />` : null}</td>
    <td data-field="model" data-value=${s?.model?.probability ?? ''}>
      ${s?.model
        ? percent(s.model.probability)
        : s?.degraded
          ? html`<span class="tag" data-state="degraded" title=${t('model.rulesOnlyTitle')}>${t('model.rulesOnly')}</span>`
          : html`<span class="muted">${t('common.none')}</span>`}
    </td>
    <td data-field="symptoms">
      ${r.symptoms?.length
        ? html`<ul class="pv-symptoms">${r.symptoms.map((x, i) => html`<li key=${i}>${symptomLabel(x.term)}: ${gradeLabel(x.grade)}</li>`)}</ul>`
        : html`<span class="muted">${t('common.none')}</span>`}
    </td>
  </tr>`;
}
