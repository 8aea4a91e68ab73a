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

export function fetchAlerts({ trial, site }, token, signal) {
  const q = new URLSearchParams({ trial });
  if (site) q.set('site', site);
  q.set('status', 'open');
  return getJSON(`/v1/alerts?${q}`, token, signal).then((b) => (Array.isArray(b?.alerts) ? b.alerts : []));
}
