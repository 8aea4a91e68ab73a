// REST calls to the board API (DESIGN.md "Board"), with the staff token.

export class ApiError extends Error {
  constructor(status, problem) {
    const title = problem?.title || `HTTP ${status}`;
    super(problem?.detail ? `${title}: ${problem.detail}` : title);
    this.status = status;
    this.problem = problem;
  }
}

export async function getJSON(path, token, signal) {
  return request('GET', path, token, undefined, signal);
}

export async function postJSON(path, token, body, signal) {
  return request('POST', path, token, body, signal);
}

async function request(method, path, token, body, signal) {
  let res;
  const headers = { Accept: 'application/json', Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, { title: 'unreachable', detail: e.message });
  }
  let reply = null;
  const type = res.headers.get('Content-Type') || '';
  if (type.includes('json')) {
    try {
      reply = await res.json();
    } catch {
      reply = null;
    }
  }
  if (!res.ok) throw new ApiError(res.status, reply);
  return reply;
}

const enc = encodeURIComponent;

export function fetchPatients(ref, token, signal) {
  return getJSON(`/v1/trials/${enc(ref.trial)}/sites/${enc(ref.site)}/patients`, token, signal).then(
    (b) => (Array.isArray(b?.patients) ? b.patients : []),
  );
}

// Statuses of alerts that still need a person: the board shows all of them.
const UNRESOLVED = ['open', 'acknowledged', 'escalated'];
const PAGE = 1000;

// fetchAlerts returns every unresolved alert of the site, following "next"
// through every page: a snapshot replaces the board's alerts, so a partial
// one would silently drop alerts from the screen.
export async function fetchAlerts({ trial, site }, token, signal) {
  const all = [];
  for (const status of UNRESOLVED) {
    let after = '';
    for (;;) {
      const q = new URLSearchParams({ trial, status, limit: String(PAGE) });
      if (site) q.set('site', site);
      if (after) q.set('after', after);
      const b = await getJSON(`/v1/alerts?${q}`, token, signal);
      if (Array.isArray(b?.alerts)) all.push(...b.alerts);
      if (!b?.next) break;
      after = b.next;
    }
  }
  return all;
}

// fetchResolvedSince returns the trial's alerts resolved since sinceMs (the
// list is newest change first, so it stops at the first older page).
export async function fetchResolvedSince(trial, sinceMs, token, signal) {
  const out = [];
  let after = '';
  for (;;) {
    const q = new URLSearchParams({ trial, status: 'resolved', limit: '200' });
    if (after) q.set('after', after);
    const b = await getJSON(`/v1/alerts?${q}`, token, signal);
    const page = Array.isArray(b?.alerts) ? b.alerts : [];
    for (const a of page) if (Date.parse(a.updated_at) >= sinceMs) out.push(a);
    if (!b?.next || page.some((a) => Date.parse(a.updated_at) < sinceMs)) return out;
    after = b.next;
  }
}

// fetchPatientAlerts lists one patient's alerts of every status, newest
// change first.
export async function fetchPatientAlerts({ trial, site, patient }, token, signal) {
  const all = [];
  let after = '';
  for (;;) {
    const q = new URLSearchParams({ trial, site, patient, limit: String(PAGE) });
    if (after) q.set('after', after);
    const b = await getJSON(`/v1/alerts?${q}`, token, signal);
    if (Array.isArray(b?.alerts)) all.push(...b.alerts);
    if (!b?.next) break;
    after = b.next;
  }
  return all;
}

// fetchReadings returns a patient's readings measured since sinceISO,
// oldest first, following "next" up to max readings.
export async function fetchReadings({ trial, site, patient }, sinceISO, token, signal, max = 20000) {
  const out = [];
  let since = sinceISO || '';
  for (;;) {
    const q = new URLSearchParams({ limit: '1000' });
    if (since) q.set('since', since);
    const b = await getJSON(`/v1/trials/${enc(trial)}/sites/${enc(site)}/patients/${enc(patient)}/readings?${q}`, token, signal);
    if (Array.isArray(b?.readings)) out.push(...b.readings);
    if (!b?.next || out.length >= max) return { readings: out, truncated: !!b?.next };
    since = b.next;
  }
}

export function fetchAudit(alertId, token, signal) {
  return getJSON(`/v1/audit?${new URLSearchParams({ alert_id: alertId })}`, token, signal).then((b) =>
    Array.isArray(b?.records) ? b.records : [],
  );
}

export function fetchTrends({ trial, site }, token, signal, hours = 24) {
  return getJSON(`/v1/trials/${enc(trial)}/sites/${enc(site)}/trends?hours=${hours}`, token, signal);
}

export function fetchOverview(trial, token, signal) {
  return getJSON(`/v1/trials/${enc(trial)}/overview`, token, signal);
}

export function fetchProtocol(trial, token, signal) {
  return getJSON(`/v1/trials/${enc(trial)}`, token, signal);
}

// ACTIONS are the alert actions and their endpoints (docs/api.md "Alert
// lifecycle").
export const ACTIONS = { ack: 'ack', escalate: 'escalate', resolve: 'resolve', possible_sae: 'possible-sae' };

export function alertAction(alertId, action, body, token, signal) {
  return postJSON(`/v1/alerts/${enc(alertId)}/${ACTIONS[action]}`, token, body, signal);
}
