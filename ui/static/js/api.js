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
  let res;
  try {
    res = await fetch(path, {
      headers: { Accept: 'application/json', Authorization: `Bearer ${token}` },
      cache: 'no-store',
      signal,
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, { title: 'Server unreachable', detail: e.message });
  }
  let body = null;
  const type = res.headers.get('Content-Type') || '';
  if (type.includes('json')) {
    try {
      body = await res.json();
    } catch {
      body = null;
    }
  }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
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
