// The board's data for one site, as pure functions: patients (latest reading
// and score each) and open alerts, merged from REST snapshots and live events
// so that whichever arrives last, the newer information wins.

export const RISKS = ['none', 'low', 'medium', 'high', 'critical'];

export function riskRank(risk) {
  const i = RISKS.indexOf(risk);
  return i < 0 ? -1 : i;
}

function ts(s) {
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : 0;
}

export function emptyBoard() {
  return { patients: {}, alerts: {}, loaded: false, model: null };
}

// noteModel records what the newest score says of the risk model: scored
// with it, degraded (a configured model failed and the rules decided alone),
// or rules only (none configured). The board's model banner follows it.
function noteModel(model, score) {
  if (!score || !score.scored_at) return model;
  if (model && ts(model.at) > ts(score.scored_at)) return model;
  const status = score.degraded ? 'degraded' : score.model ? 'ok' : 'none';
  // since: when the current status began, as far as this board has seen.
  const since = model?.status === status ? model.since : score.scored_at;
  return { status, at: score.scored_at, since, version: score.model?.version ?? model?.version ?? null };
}

// modelStatus is the newest score's word on the model, for the banner.
export function modelStatus(state) {
  return state.model;
}

// A row is a reading of DESIGN.md plus vitalsFor: the reading_id whose vitals
// it shows. A score event carries no vitals, so until the next snapshot a row
// can show a newer score than its vitals; the board marks those vitals stale.
function rowFromReading(e) {
  return { ...e, vitalsFor: e.vitals ? e.reading_id : null };
}

function mergeRow(cur, e) {
  if (!cur) return rowFromReading(e);
  const te = ts(e.measured_at);
  const tc = ts(cur.measured_at);
  if (te > tc) return rowFromReading(e);
  if (te < tc) return cur; // the snapshot predates an event we already have
  const row = rowFromReading(e);
  if (e.reading_id === cur.reading_id && !e.score && cur.score) row.score = cur.score;
  return row;
}

// applySnapshot merges GET …/patients (and, unless alerts is undefined,
// GET /v1/alerts) into the board. touched holds the alert events applied while
// the snapshot was in flight, which may be newer than it.
export function applySnapshot(state, { patients, alerts, touched }) {
  const next = { ...state, loaded: true, patients: { ...state.patients } };
  for (const e of patients || []) {
    if (!e || !e.patient_id) continue;
    next.patients[e.patient_id] = mergeRow(state.patients[e.patient_id], e);
    next.model = noteModel(next.model, e.score);
  }
  if (alerts !== undefined) {
    const fresh = {};
    for (const a of alerts) if (a?.alert_id && a.status !== 'resolved') fresh[a.alert_id] = a;
    for (const [id, a] of touched || []) {
      const s = fresh[id];
      if (s && ts(s.updated_at) > ts(a.updated_at)) continue;
      if (a.status === 'resolved') delete fresh[id];
      else fresh[id] = a;
    }
    next.alerts = fresh;
  }
  return next;
}

// applyScore puts a score event on its patient's row. It reports whether the
// row changed and whether the row's vitals now lag its score.
export function applyScore(state, d) {
  const cur = state.patients[d.patient_id];
  if (cur && ts(d.measured_at) < ts(cur.measured_at)) return { state, changed: false, stale: false };
  let row;
  if (d.vitals) {
    // Vigil's score events carry the reading's vitals and symptoms, so the
    // row is complete without asking the server again.
    row = {
      patient_id: d.patient_id,
      reading_id: d.reading_id,
      measured_at: d.measured_at,
      received_at: d.received_at ?? null,
      symptoms: d.symptoms ?? [],
      vitals: d.vitals,
      vitalsFor: d.reading_id,
      score: d,
    };
  } else if (cur && cur.reading_id === d.reading_id) {
    row = { ...cur, score: d };
  } else {
    row = {
      patient_id: d.patient_id,
      reading_id: d.reading_id,
      measured_at: d.measured_at,
      received_at: cur?.received_at ?? null,
      symptoms: cur?.symptoms ?? [],
      vitals: cur?.vitals ?? null,
      vitalsFor: cur?.vitalsFor ?? null,
      score: d,
    };
  }
  const next = { ...state, patients: { ...state.patients, [d.patient_id]: row }, model: noteModel(state.model, d) };
  return { state: next, changed: true, stale: row.vitalsFor !== row.reading_id };
}

export function applyAlert(state, a) {
  const cur = state.alerts[a.alert_id];
  if (cur && ts(cur.updated_at) > ts(a.updated_at)) return state;
  const alerts = { ...state.alerts };
  if (a.status === 'resolved') delete alerts[a.alert_id];
  else alerts[a.alert_id] = a;
  return { ...state, alerts };
}

// sortedPatients: highest risk first, then highest NEWS2, then patient id.
// Rows still being scored come first: their risk is not known yet.
export function sortedPatients(state) {
  return Object.values(state.patients).sort((a, b) => {
    const ra = a.score ? riskRank(a.score.risk) : 99;
    const rb = b.score ? riskRank(b.score.risk) : 99;
    if (ra !== rb) return rb - ra;
    const na = a.score?.news2?.total ?? -1;
    const nb = b.score?.news2?.total ?? -1;
    if (na !== nb) return nb - na;
    return String(a.patient_id).localeCompare(String(b.patient_id), undefined, { numeric: true });
  });
}

// sortedAlerts: newest first.
export function sortedAlerts(state) {
  return Object.values(state.alerts).sort(
    (a, b) => ts(b.updated_at || b.opened_at) - ts(a.updated_at || a.opened_at) || (a.alert_id < b.alert_id ? -1 : 1),
  );
}

export function riskCounts(state) {
  const counts = {};
  for (const r of Object.values(state.patients)) {
    const k = r.score ? r.score.risk : 'pending';
    counts[k] = (counts[k] || 0) + 1;
  }
  return counts;
}
