// Small components every view shares: times (local, UTC on hover), risk and
// status badges, and the modal dialog.

import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from './html.js';
import { locale, onLocale, t } from './i18n.js';
import { exactTime, localTime, relTime, riskLabel, statusLabel } from './format.js';

// Time shows an instant relative to now (or, with abs, as a local date and
// time); the exact local time and UTC are on hover and in datetime.
export function Time({ iso, now, abs = false, opts }) {
  if (!iso) return html`<span class="muted">${t('common.none')}</span>`;
  return html`<time datetime=${iso} title=${exactTime(iso)}>${abs ? localTime(iso, opts) : relTime(iso, now)}</time>`;
}

// RiskBadge never relies on colour alone: the word is always there.
export function RiskBadge({ risk }) {
  if (!risk) return html`<span class="badge risk-pending">${t('risk.pending')}</span>`;
  return html`<span class="badge risk-${risk}">${riskLabel(risk)}</span>`;
}

export function StatusBadge({ status }) {
  return html`<span class="status status-${status}">${statusLabel(status)}</span>`;
}

// Dialog is a modal <dialog>: focus moves into it, Escape closes it, and
// focus returns where it was.
export function Dialog({ title, onClose, children, id, wide = false }) {
  const ref = useRef(null);
  useEffect(() => {
    const d = ref.current;
    const back = document.activeElement;
    if (d && !d.open) d.showModal();
    return () => {
      // Closed first: while the modal is open the page behind it is inert
      // and cannot take focus.
      if (d?.open) d.close();
      if (back && typeof back.focus === 'function' && document.contains(back)) back.focus();
    };
  }, []);
  return html`<dialog ref=${ref} id=${id} class=${`dialog${wide ? ' wide' : ''}`} aria-labelledby=${`${id}-title`}
    onCancel=${(e) => {
      e.preventDefault();
      onClose();
    }}>
    <div class="dialog-head">
      <h2 id=${`${id}-title`}>${title}</h2>
      <button type="button" class="ghost icon" aria-label=${t('common.close')} onClick=${onClose}>×</button>
    </div>
    ${children}
  </dialog>`;
}

// useNow re-renders every ms milliseconds, for relative times and clocks.
export function useNow(ms) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(id);
  }, [ms]);
  return now;
}

// problemText reads a problem the store or a view recorded.
export function problemText(p) {
  return t(p.key, { ...p, detail: p.unreachable ? t('problem.unreachable') : p.detail });
}

// useLocale re-renders the caller when the language changes, and returns it.
export function useLocale() {
  const [l, setL] = useState(locale());
  useEffect(() => onLocale(setL), []);
  return l;
}
