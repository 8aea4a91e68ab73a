// Formatting for the board: times, vitals and labels.

export function relTime(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '—';
  const s = Math.round((now - t) / 1000);
  if (s < 45) return 'just now';
  if (s < 90) return '1 min ago';
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h ${m % 60 ? `${m % 60} min ` : ''}ago`;
  const d = Math.floor(h / 24);
  return `${d} d ago`;
}

const exactFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

export function exactTime(iso) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '';
  return `${exactFmt.format(t)} (${new Date(t).toISOString()})`;
}

export function num(v, digits = 0) {
  if (v == null || v === '') return null;
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  return digits ? n.toFixed(digits) : String(Math.round(n * 10) / 10);
}

export const CONSCIOUSNESS = {
  alert: 'Alert',
  new_confusion: 'New confusion',
  voice: 'Voice',
  pain: 'Pain',
  unresponsive: 'Unresponsive',
};

export const PARAMS = [
  ['respiratory_rate', 'Respiration rate'],
  ['spo2', 'SpO₂'],
  ['on_oxygen', 'Air or oxygen'],
  ['systolic_bp', 'Systolic BP'],
  ['heart_rate', 'Pulse'],
  ['consciousness', 'Consciousness'],
  ['temperature', 'Temperature'],
];

export const PARAM_LABEL = Object.fromEntries(PARAMS);

// news2Breakdown is the hover text of a NEWS2 total.
export function news2Breakdown(news2) {
  if (!news2) return '';
  const p = news2.parameters || {};
  const lines = PARAMS.map(([k, label]) => (k in p ? `${label}: ${p[k]}` : `${label}: not measured`));
  lines.unshift(`NEWS2 ${news2.total}${news2.band ? ` (${bandLabel(news2.band)})` : ''}`);
  if (news2.spo2_scale) lines.push(`SpO₂ scored on scale ${news2.spo2_scale}`);
  if (news2.partial) lines.push('Partial: a total without every parameter can only under-estimate.');
  return lines.join('\n');
}

export function bandLabel(band) {
  return { low: 'low', low_medium: 'low–medium', medium: 'medium', high: 'high' }[band] || band;
}

export const REASONS = {
  news2_high: 'NEWS2 high',
  single_parameter_red: 'Red single parameter',
  model_sae_risk: 'Model: SAE risk',
  missed_readings: 'Missed readings',
};

export function reasonLabel(r) {
  return REASONS[r] || String(r).replace(/_/g, ' ');
}

export const RISK_LABEL = {
  none: 'None',
  low: 'Low',
  medium: 'Medium',
  high: 'High',
  critical: 'Critical',
};

export const STATUS_LABEL = {
  open: 'Open',
  acknowledged: 'Acknowledged',
  escalated: 'Escalated',
  resolved: 'Resolved',
};

// FEATURE_BASE names the vitals of the model's inputs (predictor-py/FEATURES.md).
const FEATURE_BASE = {
  respiratory_rate: 'Respiration rate',
  spo2: 'SpO₂',
  systolic_bp: 'Systolic BP',
  heart_rate: 'Pulse',
  temperature: 'Temperature',
};

// featureLabel reads a model input's name: spo2_slope_24h → "SpO₂ trend
// (per hour, 24 h)".
export function featureLabel(f) {
  const other = { not_alert: 'Not alert (ACVPU)', on_oxygen: 'On oxygen', news2_total: 'NEWS2 total', age_band: 'Age band' };
  if (other[f]) return other[f];
  for (const [k, label] of Object.entries(FEATURE_BASE)) {
    if (f === k) return label;
    if (f === `${k}_delta_24h`) return `${label} change over 24 h`;
    if (f === `${k}_slope_24h`) return `${label} trend per hour (24 h)`;
  }
  return String(f).replace(/_/g, ' ');
}
