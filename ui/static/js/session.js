// Session: the staff token, where it comes from (URL fragment or the sign-in
// form), where it is kept (sessionStorage, so it dies with the tab), and what
// its claims say. The payload is decoded only to show who is signed in and
// which sites they may open; the server verifies every request.

const TOKEN_KEY = 'vigil.token';

export const STAFF_ROLES = ['pi', 'cra', 'safety', 'oncall', 'admin'];
const TRIAL_WIDE = ['safety', 'oncall', 'admin'];

export const ROLE_LABELS = {
  pi: 'Principal investigator',
  cra: 'Clinical research associate',
  safety: 'Safety physician',
  oncall: 'On-call',
  admin: 'Administrator',
};

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
  if (!token) return { error: 'Paste a token.' };
  let claims;
  try {
    claims = decodeClaims(token);
  } catch (e) {
    return { error: e.message };
  }
  if (isExpired(claims)) return { error: 'This token has expired. Ask for a new one and sign in again.' };
  if (claims.role === 'patient') return { error: 'This is a patient (ePRO app) token. The board needs a staff token.' };
  if (!STAFF_ROLES.includes(claims.role)) return { error: `Unknown role "${claims.role ?? ''}". The board needs a staff token.` };
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

// takeFromLocation reads "#token=…&site=T008/S01" and removes the token from
// the address bar (and so from history) at once.
export function takeFromLocation() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  const token = params.get('token');
  const site = params.get('site');
  if (token) {
    params.delete('token');
    writeHash(params);
  }
  return { token, site };
}

function writeHash(params) {
  const rest = params.toString().replace(/%2F/gi, '/');
  const url = new URL(location.href);
  url.hash = rest;
  history.replaceState(history.state, '', url.href);
}

// rememberSite puts the open site in the fragment, so a reload keeps it.
export function rememberSite(ref) {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  if (ref) params.set('site', ref.key);
  else params.delete('site');
  writeHash(params);
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
