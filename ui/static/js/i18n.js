// Translation: every string the board shows comes from a catalogue
// (locales/<locale>/*.js, one file per area of the board), looked up by key
// with {name} placeholders. The chosen locale is remembered in localStorage;
// without a choice the browser's language decides. Dates and numbers are
// formatted with Intl in the same locale, in the viewer's time zone.

import en from './locales/en/index.js';
import zhCN from './locales/zh-CN/index.js';

export const LOCALES = { en: { name: 'English', messages: en }, 'zh-CN': { name: '简体中文', messages: zhCN } };
const KEY = 'vigil.locale';

function initialLocale() {
  try {
    const saved = localStorage.getItem(KEY);
    if (saved && LOCALES[saved]) return saved;
  } catch {
    // storage disabled
  }
  const langs = typeof navigator !== 'undefined' ? navigator.languages || [navigator.language] : [];
  for (const l of langs) if (/^zh\b/i.test(String(l))) return 'zh-CN';
  return 'en';
}

let current = initialLocale();
const listeners = new Set();

export function locale() {
  return current;
}

// setLocale switches the board's language; subscribers re-render.
export function setLocale(l) {
  if (!LOCALES[l] || l === current) return;
  current = l;
  try {
    localStorage.setItem(KEY, l);
  } catch {
    // storage disabled: the choice lasts as long as the page
  }
  document.documentElement.lang = l;
  for (const f of listeners) f(l);
}

export function onLocale(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

// t returns the message of key in the current locale, with {name}
// placeholders filled from vars. A key missing from the locale falls back to
// English, then to the key itself, so a gap shows rather than breaks.
export function t(key, vars) {
  let s = LOCALES[current].messages[key];
  if (s === undefined) s = en[key];
  if (s === undefined) return key;
  if (!vars) return s;
  return s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] === undefined || vars[k] === null ? m : String(vars[k])));
}

// tn picks key.one or key.other by n (English plural rules; Chinese has one
// form, and its catalogue gives both keys the same text) and fills {n}.
export function tn(key, n, vars = {}) {
  const rule = new Intl.PluralRules(current).select(n);
  return t(`${key}.${rule === 'one' ? 'one' : 'other'}`, { n: formatNumber(n), ...vars });
}

export function has(key) {
  return LOCALES[current].messages[key] !== undefined || en[key] !== undefined;
}

const fmtCache = new Map();
function fmt(kind, opts) {
  const k = `${current}|${kind}|${JSON.stringify(opts)}`;
  let f = fmtCache.get(k);
  if (!f) {
    f = kind === 'dt' ? new Intl.DateTimeFormat(current, opts) : new Intl.NumberFormat(current, opts);
    fmtCache.set(k, f);
  }
  return f;
}

export function formatNumber(n, opts = {}) {
  return fmt('n', opts).format(n);
}

// formatDateTime shows an instant in the viewer's time zone.
export function formatDateTime(ms, opts = { dateStyle: 'medium', timeStyle: 'medium' }) {
  return fmt('dt', opts).format(ms);
}
