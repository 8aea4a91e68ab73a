// Browser notifications for alerts: the board's own notification channel
// (the "board" kind of an escalation tier). An alert that opens, escalates or
// grows more severe pops up even when the board is in a background tab.
// Ids and severity only: never vitals or names.

import { useState } from 'preact/hooks';
import { html } from './html.js';

const supported = () => typeof Notification !== 'undefined';

// notifyAlert shows a notification for a when it needs a person's attention
// and differs from prev (the board's copy before this event).
export function notifyAlert(a, prev) {
  if (!supported() || Notification.permission !== 'granted') return;
  if (a.status !== 'open' && a.status !== 'escalated') return;
  if (prev && prev.status === a.status && prev.severity === a.severity && prev.tier === a.tier) return;
  try {
    new Notification(`Vigil: ${String(a.severity).toUpperCase()} alert (${a.status})`, {
      body: `Patient ${a.patient_id} · trial ${a.trial_id} · site ${a.site_id}\n${(a.reasons || []).join(', ')}`,
      tag: `vigil-${a.alert_id}`,
      requireInteraction: a.severity === 'critical',
    });
  } catch {
    // Some browsers allow notifications only from a service worker; the
    // board's feed still shows the alert.
  }
}

// NotifyToggle asks for permission; browsers require a click to ask.
export function NotifyToggle() {
  const [perm, setPerm] = useState(supported() ? Notification.permission : 'unsupported');
  if (perm === 'unsupported' || perm === 'granted') return null;
  if (perm === 'denied') return html`<span class="muted" title="Allow notifications for this site in the browser's settings">Alerts: notifications blocked</span>`;
  return html`<button type="button" class="ghost" id="enable-notifications"
    onClick=${() => Notification.requestPermission().then(setPerm)}>Notify me of alerts</button>`;
}
