// Session: the staff token, where it comes from (URL fragment or the sign-in
// form), where it is kept (sessionStorage, so it dies with the tab), and what
// its claims say. The payload is decoded only to show who is signed in and
// which sites they may open; the server verifies every request.

const TOKEN_KEY = 'vigil.token';

export const STAFF_ROLES = ['pi', 'cra', 'safety', 'oncall', 'admin'];
const TRIAL_WIDE = ['safety', 'oncall', 'admin'];

function base64urlDecode(s) {
  let b64 = s.replace(/-/g, '+').replace(/_/g, '/');
  while (b64.length % 4) b64 += '=';
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

// decodeClaims returns a JWT's payload, or throws if it is not a JWT.
export function decodeClaims(token) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('not a token: expected three dot-separated parts');
  let claims;
  try {
    claims = JSON.parse(base64urlDecode(parts[1]));
  } catch {
    throw new Error('not a token: the payload does not decode');
  }
  if (!claims || typeof claims !== 'object') throw new Error('not a token: the payload is not an object');
  return claims;
}

// checkToken decodes a token and says why the board cannot use it, if so.
export function checkToken(raw) {
  const token = (raw || '').trim().replace(/^Bearer\s+/i, '');
  if (!token) return { error: { key: 'signin.paste' } };
  let claims;
  try {
    claims = decodeClaims(token);
  } catch {
    return { error: { key: 'signin.notToken' } };
  }
  if (isExpired(claims)) return { error: { key: 'signin.expired' } };
  if (claims.role === 'patient') return { error: { key: 'signin.patientToken' } };
  if (!STAFF_ROLES.includes(claims.role)) return { error: { key: 'signin.unknownRole', role: String(claims.role ?? '') } };
  return { token, claims };
}

export function isExpired(claims, now = Date.now()) {
  return typeof claims.exp === 'number' && claims.exp * 1000 <= now;
}

// msUntilExpiry is how long the token has left, or Infinity without exp.
export function msUntilExpiry(claims, now = Date.now()) {
  return typeof claims.exp === 'number' ? claims.exp * 1000 - now : Infinity;
}

export function isTrialWide(claims) {
  return TRIAL_WIDE.includes(claims.role);
}

// canSeeTrial and canSeeSite mirror the server's rules (auth.Claims): a
// whole trial for safety, on-call and admin roles that name it in "trials";
// a site for anyone naming it in "sites", or whose trial they may see. The
// board asks only for what these allow, so it is never refused.
export function canSeeTrial(claims, trial) {
  return isTrialWide(claims) && Array.isArray(claims.trials) && claims.trials.map(String).includes(trial);
}

export function canSeeSite(claims, trial, site) {
  return sitesOf(claims).some((s) => s.trial === trial && s.site === site) || canSeeTrial(claims, trial);
}

// sitesOf lists the sites named in the token ("T008/S01").
export function sitesOf(claims) {
  const out = [];
  for (const s of Array.isArray(claims.sites) ? claims.sites : []) {
    const m = /^([^/]+)\/([^/]+)$/.exec(String(s));
    if (m) out.push(siteRef(m[1], m[2]));
  }
  return out;
}

export function trialsOf(claims) {
  const trials = new Set(Array.isArray(claims.trials) ? claims.trials.map(String) : []);
  for (const s of sitesOf(claims)) trials.add(s.trial);
  return [...trials].sort();
}

export function siteRef(trial, site) {
  return { trial, site, key: `${trial}/${site}` };
}

export function parseSiteKey(key) {
  const m = /^([^/\s]+)\/([^/\s]+)$/.exec(key || '');
  return m ? siteRef(m[1], m[2]) : null;
}

// takeFromLocation reads "#token=…" (the demo's sign-in link) and removes
// the token from the address bar, and so from history, at once.
export function takeFromLocation() {
  const h = location.hash.replace(/^#/, '');
  if (h.startsWith('/')) return { token: null };
  const params = new URLSearchParams(h);
  const token = params.get('token');
  if (token) {
    params.delete('token');
    const url = new URL(location.href);
    url.hash = params.toString().replace(/%2F/gi, '/');
    history.replaceState(history.state, '', url.href);
  }
  return { token };
}

export function loadToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function saveToken(token) {
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // Storage disabled: the session lasts as long as the page.
  }
}

export function clearToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // nothing kept
  }
}
