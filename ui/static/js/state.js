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

// dict is a map keyed by ids from outside (patient and alert ids): with no
// prototype, an id such as "__proto__" or "constructor" is a key like any
// other, never an inherited property or the prototype's setter.
export function dict(from) {
  return from ? Object.assign(Object.create(null), from) : Object.create(null);
}

export function emptyBoard() {
  return { patients: dict(), loaded: false, model: null };
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

// applyPatients merges GET …/patients into a site's board.
export function applyPatients(state, patients) {
  const next = { ...state, loaded: true, patients: dict(state.patients) };
  for (const e of patients || []) {
    if (!e || !e.patient_id) continue;
    next.patients[e.patient_id] = mergeRow(state.patients[e.patient_id], e);
    next.model = noteModel(next.model, e.score);
  }
  return next;
}

export function emptyQueue() {
  return { alerts: dict(), loaded: false, error: null };
}

// applyAlertSnapshot replaces the queue's alerts with a snapshot of the
// unresolved ones. touched holds the alert events applied while the snapshot
// was in flight, which may be newer than it.
export function applyAlertSnapshot(queue, alerts, touched) {
  const fresh = dict();
  for (const a of alerts || []) if (a?.alert_id && a.status !== 'resolved') fresh[a.alert_id] = a;
  for (const [id, a] of touched || []) {
    const s = fresh[id];
    if (s && ts(s.updated_at) > ts(a.updated_at)) continue;
    if (a.status === 'resolved') delete fresh[id];
    else fresh[id] = a;
  }
  return { ...queue, alerts: fresh, loaded: true };
}

// newerModel is whichever of two model notes is newer.
export function newerModel(a, b) {
  if (!a) return b;
  if (!b) return a;
  return ts(b.at) >= ts(a.at) ? b : a;
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
  const patients = dict(state.patients);
  patients[d.patient_id] = row;
  const next = { ...state, patients, model: noteModel(state.model, d) };
  return { state: next, changed: true, stale: row.vitalsFor !== row.reading_id };
}

// applyAlert puts an alert event in the queue; a resolved alert leaves it.
export function applyAlert(queue, a) {
  const cur = queue.alerts[a.alert_id];
  if (cur && ts(cur.updated_at) > ts(a.updated_at)) return queue;
  const alerts = dict(queue.alerts);
  if (a.status === 'resolved') delete alerts[a.alert_id];
  else alerts[a.alert_id] = a;
  return { ...queue, alerts };
}

// One collator: localeCompare with options builds one per call, which was
// the board's hottest function with 500 rows.
const collator = new Intl.Collator(undefined, { numeric: true });
const byId = (a, b) => collator.compare(String(a.patient_id), String(b.patient_id));
const riskOf = (r) => (r.score ? riskRank(r.score.risk) : 99); // being scored: not known yet, so first
const news2Of = (r) => r.score?.news2?.total ?? -1;

// SORTS are the site board's orders; each compares for the default
// direction (the one that puts who needs attention first).
export const SORTS = {
  risk: (a, b) => riskOf(b) - riskOf(a) || news2Of(b) - news2Of(a) || byId(a, b),
  news2: (a, b) => news2Of(b) - news2Of(a) || riskOf(b) - riskOf(a) || byId(a, b),
  model: (a, b) => (b.score?.model?.probability ?? -1) - (a.score?.model?.probability ?? -1) || byId(a, b),
  measured_at: (a, b) => ts(a.measured_at) - ts(b.measured_at) || byId(a, b), // longest silent first
  patient: byId,
};

// sortedPatients orders a site's rows by one of SORTS (risk by default);
// desc reverses it.
export function sortedPatients(state, key = 'risk', desc = false) {
  const cmp = SORTS[key] || SORTS.risk;
  const rows = Object.values(state.patients).sort(cmp);
  return desc ? rows.reverse() : rows;
}

// stableOrder keeps the rows in the order the reader sees (prev, a list of
// ids) while they read, appending newcomers; it reports how many rows are
// out of their sorted place.
export function stableOrder(prev, sorted) {
  const byPatient = new Map(sorted.map((r) => [r.patient_id, r]));
  const rows = [];
  for (const id of prev) {
    const r = byPatient.get(id);
    if (r) {
      rows.push(r);
      byPatient.delete(id);
    }
  }
  for (const r of byPatient.values()) rows.push(r);
  let moved = 0;
  for (let i = 0; i < rows.length; i++) if (rows[i] !== sorted[i]) moved++;
  return { rows, moved };
}

export const SEVERITIES = ['medium', 'high', 'critical'];

// sortedAlerts: the queue's order, most severe first, then oldest first
// (the longest waiting); by "updated" newest change first.
export function sortedAlerts(list, by = 'severity') {
  const arr = Array.isArray(list) ? [...list] : Object.values(list.alerts || list);
  if (by === 'updated') {
    return arr.sort((a, b) => ts(b.updated_at || b.opened_at) - ts(a.updated_at || a.opened_at) || (a.alert_id < b.alert_id ? -1 : 1));
  }
  return arr.sort(
    (a, b) =>
      SEVERITIES.indexOf(b.severity) - SEVERITIES.indexOf(a.severity) ||
      ts(a.opened_at) - ts(b.opened_at) ||
      (a.alert_id < b.alert_id ? -1 : 1),
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
