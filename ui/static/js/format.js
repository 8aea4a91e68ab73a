// Formatting for the board: times in the viewer's time zone (UTC on hover),
// vitals, and the labels of clinical codes, all through the catalogues.

import { formatDateTime, formatNumber, has, locale, t } from './i18n.js';

const rtfCache = new Map();
function rtf() {
  let f = rtfCache.get(locale());
  if (!f) {
    f = new Intl.RelativeTimeFormat(locale(), { numeric: 'auto', style: 'short' });
    rtfCache.set(locale(), f);
  }
  return f;
}

// relTime says how long ago iso was: "just now", "3 min ago", "2 hr. ago".
export function relTime(iso, now = Date.now()) {
  const ms = typeof iso === 'number' ? iso : Date.parse(iso);
  if (!Number.isFinite(ms)) return '—';
  const s = Math.round((now - ms) / 1000);
  if (s < 45) return t('time.justNow');
  const m = Math.round(s / 60);
  if (m < 60) return rtf().format(-m, 'minute');
  const h = Math.floor(m / 60);
  if (h < 48) return rtf().format(-h, 'hour');
  return rtf().format(-Math.floor(h / 24), 'day');
}

// duration reads a number of seconds: "45 s", "12 min", "3 h 5 min", "2 d 4 h".
export function duration(sec) {
  if (sec == null || !Number.isFinite(Number(sec))) return '—';
  const s = Math.max(0, Math.round(Number(sec)));
  if (s < 60) return t('dur.s', { s });
  const m = Math.floor(s / 60);
  if (m < 60) return t('dur.m', { m });
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? t('dur.hm', { h, m: m % 60 }) : t('dur.h', { h });
  const d = Math.floor(h / 24);
  return h % 24 ? t('dur.dh', { d, h: h % 24 }) : t('dur.d', { d });
}

// localTime is an instant in the viewer's time zone; utcTime the same in UTC,
// for the hover text.
export function localTime(iso, opts) {
  const ms = typeof iso === 'number' ? iso : Date.parse(iso);
  return Number.isFinite(ms) ? formatDateTime(ms, opts) : '';
}

export function utcTime(iso) {
  const ms = typeof iso === 'number' ? iso : Date.parse(iso);
  return Number.isFinite(ms) ? `${new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z')} UTC` : '';
}

// exactTime is the hover text of a time: local, then UTC.
export function exactTime(iso) {
  const l = localTime(iso);
  return l ? `${l}\n${utcTime(iso)}` : '';
}

export function num(v, digits = 0) {
  if (v == null || v === '') return null;
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  return digits ? n.toFixed(digits) : String(Math.round(n * 10) / 10);
}

// percent shows a probability without claiming certainty: 0.9996 is ">99%".
export function percent(p) {
  if (p > 0.99) return '>99%';
  if (p > 0 && p < 0.01) return '<1%';
  return `${Math.round(p * 100)}%`;
}

export const PARAMS = ['respiratory_rate', 'spo2', 'on_oxygen', 'systolic_bp', 'heart_rate', 'consciousness', 'temperature'];

export const paramLabel = (p) => t(`param.${p}`);
export const consciousnessLabel = (c) => t(`acvpu.${c}`);
export const riskLabel = (r) => t(`risk.${r}`);
export const statusLabel = (s) => t(`status.${s}`);
export const bandLabel = (b) => t(`band.${b}`);
export const outcomeLabel = (o) => t(`outcome.${o}`);
export const roleLabel = (r) => t(`role.${r}`);

export function reasonLabel(r) {
  const k = `reason.${r}`;
  const s = t(k);
  return s === k ? String(r).replace(/_/g, ' ') : s;
}

// news2Breakdown is the hover text of a NEWS2 total.
export function news2Breakdown(news2) {
  if (!news2) return '';
  const p = news2.parameters || {};
  const lines = PARAMS.map((k) => (k in p ? `${paramLabel(k)}: ${p[k]}` : `${paramLabel(k)}: ${t('news2.notMeasured')}`));
  lines.unshift(`NEWS2 ${news2.total}${news2.band ? ` (${bandLabel(news2.band)})` : ''}`);
  if (news2.spo2_scale) lines.push(t('news2.scale', { n: news2.spo2_scale }));
  if (news2.partial) lines.push(t('news2.partialHint'));
  return lines.join('\n');
}

// featureLabel reads a model input's name (predictor-py/FEATURES.md):
// spo2_slope_24h → "SpO₂ trend per hour (24 h)".
export function featureLabel(f) {
  const direct = `feature.${f}`;
  if (t(direct) !== direct) return t(direct);
  for (const k of ['respiratory_rate', 'spo2', 'systolic_bp', 'heart_rate', 'temperature']) {
    if (f === `${k}_delta_24h`) return t('feature.delta', { v: paramLabel(k) });
    if (f === `${k}_slope_24h`) return t('feature.slope', { v: paramLabel(k) });
  }
  return String(f).replace(/_/g, ' ');
}

// modelHint explains a model probability: what it is, which model, and the
// inputs that pushed it up most.
export function modelHint(m) {
  const lines = [t('model.hint', { version: m.version || '' })];
  const top = (m.contributions || []).slice(0, 5);
  if (top.length) {
    lines.push(t('model.raisedBy'));
    for (const c of top) {
      const push = Number(c.logit);
      const val = c.imputed ? t('model.imputed') : ` = ${+Number(c.value).toFixed(2)}`;
      lines.push(`  ${featureLabel(c.feature)}${val}  (${push >= 0 ? '+' : '−'}${Math.abs(push).toFixed(2)} ${t('model.logOdds')})`);
    }
  }
  return lines.join('\n');
}

export const labelOr = (key, fallback) => (has(key) ? t(key) : fallback);
export const symptomLabel = (term) => labelOr(`patient.symptom.${String(term).replace(/\s+/g, '_')}`, String(term).replace(/_/g, ' '));
export const gradeLabel = (g) => t('patient.grade', { n: g, label: labelOr(`patient.grade.${g}`, String(g)) });

export function valueText(param, v) {
  const digits = param === 'temperature' ? 1 : 0;
  const n = formatNumber(Number(v), { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return has(`unit.${param}`) ? `${n} ${t(`unit.${param}`)}` : n;
}

// findingText reads one finding: "Protocol vital limit · Systolic BP 165
// mmHg · CTCAE grade 3", "Severe symptom · Nausea · severe (3)".
export function findingText(f) {
  const symptom = f.reason === 'symptom_severe';
  const subject = f.parameter ? (symptom ? symptomLabel(f.parameter) : labelOr(`param.${f.parameter}`, f.parameter)) : '';
  const value = f.value != null && f.parameter && !symptom ? valueText(f.parameter, f.value) : '';
  const grade = f.grade ? (symptom ? gradeLabel(f.grade) : t('patient.finding.ctcae', { n: f.grade })) : '';
  return [reasonLabel(f.reason), [subject, value].filter(Boolean).join(' '), grade].filter(Boolean).join(' · ');
}

