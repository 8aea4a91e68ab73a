// The alert queue, the on-call home: every unresolved alert the token may
// see, most severe and longest waiting first, with the actions that move it
// on. It is live (the store's home rooms carry every alert) and works from a
// phone.
//
// Test hooks: section#queue, ol#queue-list > li[data-alert-id] with
// data-severity, data-status, data-patient; [data-action] buttons.

import { useState } from 'preact/hooks';
import { html } from './html.js';
import { t, tn } from './i18n.js';
import { href } from './router.js';
import { SEVERITIES, sortedAlerts } from './state.js';
import { duration, exactTime, findingText, localTime, reasonLabel } from './format.js';
import { AlertActions, SaeClock } from './actions.js';
import { RiskBadge, StatusBadge, Time, useNow } from './ui.js';

const STATUSES = ['open', 'escalated', 'acknowledged'];

function Signed({ label, sig }) {
  if (!sig) return null;
  return html`<p class="signed small"><strong>${label}</strong> ${sig.name} (${t(`role.${sig.role}`)}), <time datetime=${sig.at} title=${exactTime(sig.at)}>${localTime(sig.at, { dateStyle: 'short', timeStyle: 'short' })}</time>: “${sig.reason}”</p>`;
}

export function AlertCard({ store, a, now }) {
  const age = (now - Date.parse(a.opened_at)) / 1000;
  return html`<li class=${`qalert sev-${a.severity} st-${a.status}`} data-alert-id=${a.alert_id} data-severity=${a.severity} data-status=${a.status} data-patient=${a.patient_id}>
    <div class="qalert-head">
      <${RiskBadge} risk=${a.severity} />
      <a class="qpatient" href=${href({ view: 'patient', trial: a.trial_id, site: a.site_id, patient: a.patient_id })}>${a.patient_id}</a>
      <span class="muted small">${t('nav.trialSite', { trial: a.trial_id, site: a.site_id })}</span>
      <${StatusBadge} status=${a.status} />
      <span class="spacer"></span>
      <span class="age" title=${exactTime(a.opened_at)}>${t('queue.openFor', { d: duration(age) })}</span>
    </div>
    <ul class="reasons">
      ${(a.findings && a.findings.length ? a.findings.map(findingText) : (a.reasons || []).map(reasonLabel)).map((r, i) => html`<li key=${i}>${r}</li>`)}
    </ul>
    ${a.current_risk && a.current_risk !== a.severity ? html`<p class="small muted">${t('queue.currentRisk', { risk: t(`risk.${a.current_risk}`) })}</p>` : null}
    ${a.next_escalation_at && a.status !== 'resolved'
      ? html`<p class="small muted" title=${exactTime(a.next_escalation_at)}>${t(a.status === 'acknowledged' ? 'queue.reopensAt' : 'queue.nextTier', { time: localTime(a.next_escalation_at, { timeStyle: 'short' }) })}${a.tier >= 0 ? ` · ${t('queue.tier', { n: a.tier + 1 })}` : ''}</p>`
      : null}
    <${Signed} label=${t('queue.ackedBy')} sig=${a.acknowledged} />
    <${Signed} label=${t('queue.saeBy')} sig=${a.possible_sae} />
    <${SaeClock} alert=${a} now=${now} />
    <${AlertActions} store=${store} alert=${a} />
  </li>`;
}

// ReportsDue lists the alerts resolved as serious adverse events whose
// report to the sponsor is still to be made or just made: the 24-hour clock
// runs on after the alert leaves the queue.
function ReportsDue({ store, now }) {
  const list = [...store.reports.values()].sort((a, b) => Date.parse(a.report_due_at) - Date.parse(b.report_due_at));
  if (!list.length) return null;
  return html`<section id="reports-due" class="reports" aria-labelledby="reports-h">
    <h2 id="reports-h">${t('queue.reportsDue')} <span class="count">${list.length}</span></h2>
    <ul>
      ${list.map(
        (a) => html`<li key=${a.alert_id} data-alert-id=${a.alert_id}>
          <a href=${href({ view: 'patient', trial: a.trial_id, site: a.site_id, patient: a.patient_id })}>${a.patient_id}</a>
          <span class="muted small">${t('nav.trialSite', { trial: a.trial_id, site: a.site_id })}</span>
          <span class="small">${t('queue.resolvedSae', { name: a.resolved?.name || '' })}</span>
          <${SaeClock} alert=${a} now=${now} />
        </li>`,
      )}
    </ul>
  </section>`;
}

export function QueueView({ store }) {
  const now = useNow(10_000);
  const [status, setStatus] = useState('');
  const [severity, setSeverity] = useState('');
  const [by, setBy] = useState('severity');
  const [q, setQ] = useState('');
  const all = Object.values(store.queue.alerts);
  const list = sortedAlerts(
    all.filter(
      (a) =>
        (!status || a.status === status) &&
        (!severity || a.severity === severity) &&
        (!q || String(a.patient_id).toLowerCase().includes(q.toLowerCase()) || `${a.trial_id}/${a.site_id}`.toLowerCase().includes(q.toLowerCase())),
    ),
    by,
  );
  const counts = {};
  for (const a of all) counts[a.status] = (counts[a.status] || 0) + 1;
  return html`<main id="main" tabindex="-1" class="queue-main">
    <section id="queue" aria-labelledby="queue-h">
      <div class="panel-head">
        <h1 id="queue-h">${t('nav.alerts')} <span class="count">${all.length}</span></h1>
        <ul class="summary">${STATUSES.map((s) => html`<li key=${s}><${StatusBadge} status=${s} /> ${counts[s] || 0}</li>`)}</ul>
      </div>
      <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
        <label>${t('queue.status')}
          <select id="filter-status" value=${status} onChange=${(e) => setStatus(e.currentTarget.value)}>
            <option value="">${t('queue.allUnresolved')}</option>
            ${STATUSES.map((s) => html`<option key=${s} value=${s}>${t(`status.${s}`)}</option>`)}
          </select>
        </label>
        <label>${t('queue.severity')}
          <select id="filter-severity" value=${severity} onChange=${(e) => setSeverity(e.currentTarget.value)}>
            <option value="">${t('queue.any')}</option>
            ${[...SEVERITIES].reverse().map((s) => html`<option key=${s} value=${s}>${t(`risk.${s}`)}</option>`)}
          </select>
        </label>
        <label>${t('queue.sort')}
          <select id="sort-by" value=${by} onChange=${(e) => setBy(e.currentTarget.value)}>
            <option value="severity">${t('queue.bySeverity')}</option>
            <option value="updated">${t('queue.byUpdated')}</option>
          </select>
        </label>
        <label>${t('queue.search')}
          <input type="search" id="filter-q" value=${q} placeholder="P1001" onInput=${(e) => setQ(e.currentTarget.value)} />
        </label>
      </form>
      ${store.queue.error ? html`<p class="error" role="alert">${t('queue.loadError', { detail: store.queue.error })}</p>` : null}
      <p class="sr-only" aria-live="polite">${tn('queue.shown', list.length)}</p>
      <${ReportsDue} store=${store} now=${now} />
      <ol id="queue-list" class="queue-list">
        ${list.map((a) => html`<${AlertCard} key=${a.alert_id} store=${store} a=${a} now=${now} />`)}
        ${list.length === 0
          ? html`<li class="empty muted">${store.queue.loaded ? t('queue.empty') : t('common.loading')}</li>`
          : null}
      </ol>
    </section>
  </main>`;
}
