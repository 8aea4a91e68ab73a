// The board's views for one site: the patients table and the alert feed.
// Test hooks: table#patients, rows [data-patient], cells [data-field] with
// [data-value]; list#alerts, items [data-alert-id].

import { html } from './html.js';
import {
  CONSCIOUSNESS,
  PARAM_LABEL,
  RISK_LABEL,
  STATUS_LABEL,
  exactTime,
  featureLabel,
  news2Breakdown,
  num,
  reasonLabel,
  relTime,
} from './format.js';

function Time({ iso, now }) {
  if (!iso) return html`<span class="muted">—</span>`;
  return html`<time datetime=${iso} title=${exactTime(iso)}>${relTime(iso, now)}</time>`;
}

export function RiskBadge({ risk }) {
  if (!risk) return html`<span class="badge risk-pending">Scoring…</span>`;
  return html`<span class="badge risk-${risk}">${RISK_LABEL[risk] || risk}</span>`;
}

// A vital's cell, shaded by its NEWS2 sub-score (0–3) as on the RCP chart.
function Vital({ field, param, value, score, stale, title, children }) {
  const s = !stale && score && param in (score.news2?.parameters || {}) ? score.news2.parameters[param] : null;
  const cls = ['vital', s ? `p${Math.min(3, s)}` : '', stale ? 'stale' : ''].filter(Boolean).join(' ');
  const hint = [title, s != null ? `${PARAM_LABEL[param]}: NEWS2 +${s}` : '', stale ? 'From an earlier reading; updating…' : '']
    .filter(Boolean)
    .join('\n');
  return html`<td class=${cls} data-field=${field} data-value=${value ?? ''} title=${hint || undefined}>
    ${children ?? (value == null ? html`<span class="muted">—</span>` : value)}
  </td>`;
}

// modelHint explains a model probability: what it is, which model, and the
// inputs that pushed it up most.
function modelHint(m) {
  const lines = [`Model ${m.version || ''}: probability of a serious adverse event in the next 24 h`];
  const top = (m.contributions || []).slice(0, 5);
  if (top.length) {
    lines.push('Raised most by:');
    for (const c of top) {
      const push = Number(c.logit);
      lines.push(`  ${featureLabel(c.feature)}${c.imputed ? ' (not measured; assumed typical)' : ` = ${+Number(c.value).toFixed(2)}`}  (${push >= 0 ? '+' : '−'}${Math.abs(push).toFixed(2)} log-odds)`);
    }
  }
  return lines.join('\n');
}

// percent shows a probability without claiming certainty: 0.9996 is ">99%",
// not "100%".
function percent(p) {
  if (p > 0.99) return '>99%';
  if (p > 0 && p < 0.01) return '<1%';
  return `${Math.round(p * 100)}%`;
}

function PatientRow({ row, now, flash, alert }) {
  const score = row.score;
  const stale = row.vitalsFor !== row.reading_id;
  const v = row.vitals || {};
  const spo2 = num(v.spo2);
  const scale = score?.news2?.spo2_scale || v.spo2_scale;
  const bp = v.systolic_bp != null ? `${num(v.systolic_bp)}/${v.diastolic_bp != null ? num(v.diastolic_bp) : '—'}` : null;
  const o2 = v.on_oxygen == null ? null : v.on_oxygen ? 'O₂' : 'Air';
  const acvpu = v.consciousness ? CONSCIOUSNESS[v.consciousness] || v.consciousness : null;
  const news2 = score?.news2;
  const flashCls = flash ? (flash % 2 ? 'flash-a' : 'flash-b') : '';
  return html`<tr data-patient=${row.patient_id} data-risk=${score?.risk || 'pending'} class=${flashCls}>
    <th scope="row" data-field="patient" data-value=${row.patient_id}>
      ${row.patient_id}
      ${alert
        ? html` <span class="flag risk-${alert.severity}" data-field="alert" data-value=${alert.severity}
            title=${`${STATUS_LABEL[alert.status] || alert.status} ${alert.severity} alert: ${(alert.reasons || []).map(reasonLabel).join(', ')}`}>alert</span>`
        : null}
      ${score && score.registered === false ? html` <span class="unreg" title="No registry record: scored with default settings">unregistered</span>` : null}
    </th>
    <td data-field="measured_at" data-value=${row.measured_at}><${Time} iso=${row.measured_at} now=${now} /></td>
    <${Vital} field="rr" param="respiratory_rate" value=${num(v.respiratory_rate)} score=${score} stale=${stale} />
    <${Vital} field="spo2" param="spo2" value=${spo2} score=${score} stale=${stale}>
      ${spo2 == null
        ? html`<span class="muted">—</span>`
        : html`${spo2}${scale === 2 ? html` <span class="tag" title="SpO₂ scale 2 (hypercapnic respiratory failure)">S2</span>` : null}`}
    <//>
    <${Vital} field="o2" param="on_oxygen" value=${o2} score=${score} stale=${stale} />
    <${Vital} field="bp" param="systolic_bp" value=${bp} score=${score} stale=${stale} />
    <${Vital} field="hr" param="heart_rate" value=${num(v.heart_rate)} score=${score} stale=${stale} />
    <${Vital} field="consciousness" param="consciousness" value=${acvpu} score=${score} stale=${stale} />
    <${Vital} field="temp" param="temperature" value=${num(v.temperature, 1)} score=${score} stale=${stale} />
    <td class="news2" data-field="news2" data-value=${news2 ? news2.total : ''} title=${news2Breakdown(news2) || undefined}>
      ${news2
        ? html`<span class="total band-${news2.band}">${news2.total}</span>${news2.partial
            ? html` <span class="tag partial" data-field="partial" title=${`Partial: not measured — ${(news2.missing || []).map((m) => PARAM_LABEL[m] || m).join(', ') || 'some parameters'}`}>partial</span>`
            : null}`
        : html`<span class="muted">…</span>`}
    </td>
    <td data-field="risk" data-value=${score?.risk || ''}>
      <${RiskBadge} risk=${score?.risk} />
      ${score?.degraded ? html` <span class="tag" data-field="degraded" title="The model was unavailable: rules decided alone">rules only</span>` : null}
      ${score?.model
        ? html` <span class="model" data-field="model" data-value=${score.model.probability} title=${modelHint(score.model)}>${percent(score.model.probability)}</span>`
        : null}
    </td>
  </tr>`;
}

export function PatientsTable({ rows, now, flashes, alertsByPatient, loaded, failed, site }) {
  return html`<table id="patients" class="patients">
    <caption class="sr-only">Patients at ${site.key}, highest risk first</caption>
    <thead>
      <tr>
        <th scope="col">Patient</th>
        <th scope="col">Measured</th>
        <th scope="col" class="vital"><abbr title="Respiration rate, breaths/min">RR</abbr></th>
        <th scope="col" class="vital"><abbr title="Oxygen saturation, %">SpO₂</abbr></th>
        <th scope="col" class="vital"><abbr title="Air or supplemental oxygen">O₂</abbr></th>
        <th scope="col" class="vital"><abbr title="Systolic/diastolic blood pressure, mmHg">BP</abbr></th>
        <th scope="col" class="vital"><abbr title="Pulse, beats/min">HR</abbr></th>
        <th scope="col" class="vital"><abbr title="Consciousness (ACVPU)">ACVPU</abbr></th>
        <th scope="col" class="vital"><abbr title="Temperature, °C">Temp</abbr></th>
        <th scope="col" class="news2"><abbr title="National Early Warning Score 2">NEWS2</abbr></th>
        <th scope="col">Risk</th>
      </tr>
    </thead>
    <tbody>
      ${rows.map((row) => html`<${PatientRow} key=${row.patient_id} row=${row} now=${now} flash=${flashes[row.patient_id]} alert=${alertsByPatient[row.patient_id]} />`)}
      ${rows.length === 0
        ? html`<tr class="empty"><td colspan="11">${loaded ? 'No readings from this site yet.' : failed ? 'Not loaded.' : 'Loading…'}</td></tr>`
        : null}
    </tbody>
  </table>`;
}

export function AlertFeed({ alerts, now, onPick }) {
  return html`<ol id="alerts" class="alerts" aria-live="polite">
    ${alerts.map(
      (a) => html`<li key=${a.alert_id} class="alert sev-${a.severity}" data-alert-id=${a.alert_id} data-severity=${a.severity} data-patient=${a.patient_id} data-status=${a.status}>
        <div class="alert-head">
          <span class="badge risk-${a.severity}">${RISK_LABEL[a.severity] || a.severity}</span>
          <button type="button" class="linklike" title="Show in the table" onClick=${() => onPick(a.patient_id)}>${a.patient_id}</button>
          <span class="status status-${a.status}">${STATUS_LABEL[a.status] || a.status}</span>
          <span class="spacer"></span>
          <${Time} iso=${a.opened_at} now=${now} />
        </div>
        <ul class="reasons">
          ${(a.reasons || []).map((r) => html`<li key=${r}>${reasonLabel(r)}</li>`)}
        </ul>
        ${a.updated_at && a.updated_at !== a.opened_at
          ? html`<div class="updated muted">updated <${Time} iso=${a.updated_at} now=${now} /></div>`
          : null}
      </li>`,
    )}
    ${alerts.length === 0 ? html`<li class="empty muted">No open alerts.</li>` : null}
  </ol>`;
}
