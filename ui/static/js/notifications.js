// Browser notifications for critical alerts: the board's own notification
// channel (the "board" kind of an escalation tier). A critical alert that
// opens, escalates or becomes critical pops up when the board is in a
// background tab, where the screen cannot show it. Ids and severity only:
// never vitals or names.

import { useState } from 'preact/hooks';
import { html } from './html.js';
import { t } from './i18n.js';

const supported = () => typeof Notification !== 'undefined';

// shown: the notifications still up, by alert id, to close when the alert is
// acknowledged or resolved, or the person signs out.
const shown = new Map();

export function closeNotification(alertId) {
  const n = shown.get(alertId);
  if (!n) return;
  shown.delete(alertId);
  try {
    n.close();
  } catch {
    // already gone
  }
}

// shouldNotify: a critical alert that needs a person and is new to this
// board in that state, while the tab is not being looked at.
export function shouldNotify(a, prev, hidden) {
  if (!hidden) return false;
  if (a.severity !== 'critical') return false;
  if (a.status !== 'open' && a.status !== 'escalated') return false;
  return !prev || prev.status !== a.status || prev.severity !== a.severity || prev.tier !== a.tier;
}

export function notifyAlert(a, prev) {
  if (!supported() || Notification.permission !== 'granted') return;
  const hidden = document.visibilityState === 'hidden';
  if (!shouldNotify(a, prev, hidden)) return;
  try {
    const n = new Notification(t('notify.title', { severity: t(`risk.${a.severity}`), status: t(`status.${a.status}`) }), {
      body: t('notify.body', { patient: a.patient_id, trial: a.trial_id, site: a.site_id }),
      tag: `vigil-${a.alert_id}`,
      requireInteraction: true,
    });
    n.onclick = () => {
      window.focus();
      location.hash = '#/alerts';
      closeNotification(a.alert_id);
    };
    shown.set(a.alert_id, n);
  } catch {
    // Some browsers allow notifications only from a service worker; the
    // queue still shows the alert.
  }
}

// NotifyToggle asks for permission; browsers require a click to ask.
export function NotifyToggle() {
  const [perm, setPerm] = useState(() => (supported() ? Notification.permission : 'unsupported'));
  if (perm === 'unsupported') return null;
  if (perm === 'granted') return html`<span class="muted small notify-on" id="notify-state" data-state="granted">${t('notify.on')}</span>`;
  if (perm === 'denied') return html`<span class="muted small" id="notify-state" data-state="denied" title=${t('notify.blockedTitle')}>${t('notify.blocked')}</span>`;
  return html`<button type="button" class="ghost" id="enable-notifications"
    onClick=${() => Notification.requestPermission().then(setPerm)}>${t('notify.enable')}</button>`;
}
