// Routes: the board's views live in the address fragment, so a reload or a
// shared link opens the same view (a token is never part of it):
//
//   #/                       home: the view the role starts from
//   #/site/T008/S01          site board
//   #/patient/T008/S01/P1001 patient view
//   #/alerts                 alert queue
//   #/trial/T008             trial overview
//
// "#token=…" (the demo's sign-in link) and "#site=T008/S01" (links of
// earlier boards) are still read.

import { useEffect, useState } from 'preact/hooks';

const enc = encodeURIComponent;

export function parseRoute(hash) {
  const h = String(hash || '').replace(/^#/, '');
  if (!h.startsWith('/')) {
    const site = new URLSearchParams(h).get('site');
    const m = site && /^([^/\s]+)\/([^/\s]+)$/.exec(site);
    return m ? { view: 'site', trial: m[1], site: m[2] } : { view: 'home' };
  }
  const parts = h
    .slice(1)
    .split('?')[0]
    .split('/')
    .filter(Boolean)
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
  switch (parts[0]) {
    case 'site':
      return parts.length === 3 ? { view: 'site', trial: parts[1], site: parts[2] } : { view: 'home' };
    case 'patient':
      return parts.length === 4 ? { view: 'patient', trial: parts[1], site: parts[2], patient: parts[3] } : { view: 'home' };
    case 'alerts':
      return { view: 'alerts' };
    case 'trial':
      return parts.length === 2 ? { view: 'trial', trial: parts[1] } : { view: 'home' };
    default:
      return { view: 'home' };
  }
}

export function href(r) {
  switch (r.view) {
    case 'site':
      return `#/site/${enc(r.trial)}/${enc(r.site)}`;
    case 'patient':
      return `#/patient/${enc(r.trial)}/${enc(r.site)}/${enc(r.patient)}`;
    case 'alerts':
      return '#/alerts';
    case 'trial':
      return `#/trial/${enc(r.trial)}`;
    default:
      return '#/';
  }
}

export function navigate(r, { replace = false } = {}) {
  const url = new URL(location.href);
  url.hash = href(r);
  if (replace) history.replaceState(history.state, '', url.href);
  else history.pushState(history.state, '', url.href);
  dispatchEvent(new HashChangeEvent('hashchange'));
}

export function useRoute() {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}
