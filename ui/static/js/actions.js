// Alert actions: acknowledge, escalate, resolve (with the outcome) and mark
// as a possible SAE, each a signed action with a reason (21 CFR 11.50: the
// signature shows the printed name, time and meaning). When the trial
// requires a recent sign-in (require_auth_within), the server answers 401
// reauthentication-required and the dialog asks for a fresh token of the
// same person, then signs again. SaeClock is the 24-hour investigator-to-
// sponsor clock of an alert marked possible SAE.

import { useState } from 'preact/hooks';
import { alertAction } from './api.js';
import { html } from './html.js';
import { t } from './i18n.js';
import { duration, exactTime, localTime, roleLabel } from './format.js';
import * as S from './session.js';
import { Dialog } from './ui.js';

const RESOLVERS = ['pi', 'safety', 'admin'];
const OUTCOMES = ['sae', 'ae', 'not_ae'];

// allowedActions lists what this person may do to the alert now.
export function allowedActions(alert, claims) {
  if (!alert || alert.status === 'resolved') return [];
  const out = [];
  if (alert.status === 'open' || alert.status === 'escalated') out.push('ack');
  out.push('escalate');
  if (RESOLVERS.includes(claims.role)) out.push('resolve');
  if (!alert.possible_sae) out.push('possible_sae');
  return out;
}

export function AlertActions({ store, alert, compact = false }) {
  const [open, setOpen] = useState(null);
  const actions = allowedActions(alert, store.claims);
  if (!actions.length) return null;
  return html`<div class=${`actions${compact ? ' compact' : ''}`} role="group" aria-label=${t('act.group', { id: alert.patient_id })}>
    ${actions.map(
      (a) => html`<button key=${a} type="button" class=${a === 'ack' ? 'primary' : 'secondary'} data-action=${a} onClick=${() => setOpen(a)}>${t(`act.${a}`)}</button>`,
    )}
    ${open ? html`<${ActionDialog} store=${store} alert=${alert} action=${open} onClose=${() => setOpen(null)} />` : null}
  </div>`;
}

function ActionDialog({ store, alert, action, onClose }) {
  const [reason, setReason] = useState('');
  const [outcome, setOutcome] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [reauth, setReauth] = useState(false);
  const [fresh, setFresh] = useState('');
  const claims = store.claims;
  const signed = action !== 'escalate';

  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    if (!reason.trim()) return setError({ field: 'reason', message: t('act.reasonRequired') });
    if (action === 'resolve' && !outcome) return setError({ field: 'outcome', message: t('act.outcomeRequired') });
    if (reauth) {
      const r = S.checkToken(fresh);
      if (r.error) return setError({ field: 'fresh', message: t(r.error.key, r.error) });
      if (r.claims.sub !== claims.sub) return setError({ field: 'fresh', message: t('act.reauthOtherPerson') });
      store.onNewToken?.(r);
    }
    setBusy(true);
    try {
      const body = action === 'resolve' ? { reason: reason.trim(), outcome } : { reason: reason.trim() };
      const updated = await alertAction(alert.alert_id, action, body, store.token);
      store.acted(updated);
      onClose();
    } catch (err) {
      const p = err.problem || {};
      if (err.status === 401 && String(p.type || '').endsWith('reauthentication-required')) {
        setReauth(true);
        setError({ field: 'fresh', message: t('act.reauthNeeded') });
      } else if (err.status === 409) {
        setError({ message: t('act.conflict', { detail: p.detail || '' }) });
      } else if (Array.isArray(p.errors) && p.errors.length) {
        setError({ field: p.errors[0].field, message: p.errors.map((x) => `${x.field}: ${x.message}`).join('; ') });
      } else {
        setError({ message: err.message });
      }
    } finally {
      setBusy(false);
    }
  };

  const id = `act-${action}`;
  return html`<${Dialog} id=${id} title=${t(`act.${action}.title`, { patient: alert.patient_id })} onClose=${onClose}>
    <form class="action-form" onSubmit=${submit} novalidate>
      <p class="muted small">${t(`act.${action}.help`)}</p>
      ${action === 'resolve'
        ? html`<fieldset class="outcomes">
            <legend>${t('act.outcome')}</legend>
            ${OUTCOMES.map(
              (o) => html`<label key=${o}><input type="radio" name="outcome" value=${o} checked=${outcome === o} onChange=${() => setOutcome(o)} /> ${t(`outcome.${o}`)}</label>`,
            )}
          </fieldset>`
        : null}
      <label for=${`${id}-reason`}>${t('act.reason')}</label>
      <textarea id=${`${id}-reason`} name="reason" rows="3" maxlength="2000" required aria-invalid=${error?.field === 'reason' ? 'true' : undefined}
        value=${reason} onInput=${(e) => setReason(e.currentTarget.value)}></textarea>
      ${reauth
        ? html`<div class="reauth" id="reauth">
            <label for=${`${id}-fresh`}>${t('act.reauthLabel')}</label>
            <textarea id=${`${id}-fresh`} name="fresh" rows="3" spellcheck="false" autocomplete="off" value=${fresh} onInput=${(e) => setFresh(e.currentTarget.value)}></textarea>
          </div>`
        : null}
      ${signed
        ? html`<p class="signature small">${t('act.signAs', { name: claims.name || claims.sub, role: roleLabel(claims.role), time: localTime(Date.now(), { dateStyle: 'medium', timeStyle: 'short' }) })}<br />${t(`act.${action}.meaning`)}</p>`
        : null}
      ${error ? html`<p class="error" role="alert" data-field=${error.field || ''}>${error.message}</p>` : null}
      <div class="dialog-actions">
        <button type="button" class="ghost" onClick=${onClose}>${t('common.cancel')}</button>
        <button type="submit" class="primary" disabled=${busy} data-submit=${action}>${t(signed ? 'act.sign' : 'act.submit', { action: t(`act.${action}`) })}</button>
      </div>
    </form>
  <//>`;
}

// SaeClock shows, on an alert marked possible SAE, the time left to report
// it to the sponsor (24 h from awareness), and how late a late one is.
export function SaeClock({ alert, now }) {
  if (!alert?.report_due_at) return null;
  if (alert.status === 'resolved' && alert.outcome !== 'sae') return null;
  const due = Date.parse(alert.report_due_at);
  if (!Number.isFinite(due)) return null;
  const left = (due - now) / 1000;
  const late = left < 0;
  const urgent = !late && left < 4 * 3600;
  return html`<p class=${`sae-clock${late ? ' late' : urgent ? ' urgent' : ''}`} data-field="sae-clock" data-due=${alert.report_due_at} role="timer"
    title=${t('sae.dueAt', { time: exactTime(alert.report_due_at) })}>
    <strong>${t('sae.label')}</strong> ${late ? t('sae.overdue', { d: duration(-left) }) : t('sae.left', { d: duration(left) })}
  </p>`;
}
