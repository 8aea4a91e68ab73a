// The Vigil board: sign-in, the shell (navigation, language, connection
// state, banners) and the routing between the four views.

import { render } from 'preact';
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { SiteView } from './board.js';
import { html } from './html.js';
import { LOCALES, locale, setLocale, t } from './i18n.js';
import { STATE } from './live.js';
import { NotifyToggle } from './notifications.js';
import { OverviewView } from './overview.js';
import { QueueView } from './queue.js';
import { href, navigate, useRoute } from './router.js';
import * as S from './session.js';
import { BoardStore, CONN, useStore } from './store.js';
import { duration, localTime, roleLabel } from './format.js';
import { problemText, useLocale, useNow } from './ui.js';

function initial() {
  const fromURL = S.takeFromLocation().token;
  const raw = fromURL || S.loadToken();
  if (!raw) return { session: null, notice: null };
  const r = S.checkToken(raw);
  if (r.error) {
    S.clearToken();
    return { session: null, notice: r.error };
  }
  S.saveToken(r.token);
  return { session: r, notice: null };
}

function App() {
  const lang = useLocale();
  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = t('app.title');
  }, [lang]);
  const init = useMemo(initial, []);
  const [session, setSession] = useState(init.session);
  const [notice, setNotice] = useState(init.notice);

  const signOut = useCallback((message) => {
    S.clearToken();
    setSession(null);
    setNotice(message || null);
  }, []);

  const signIn = useCallback((r) => {
    S.saveToken(r.token);
    setNotice(null);
    setSession(r);
  }, []);

  // The token's own expiry: sign out when it passes (the hub closes 4009).
  useEffect(() => {
    if (!session) return undefined;
    const ms = S.msUntilExpiry(session.claims);
    if (!Number.isFinite(ms)) return undefined;
    const id = setTimeout(() => signOut('problem.expired'), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    return () => clearTimeout(id);
  }, [session]);

  if (!session) return html`<${SignIn} key=${lang} notice=${notice} onSignIn=${signIn} />`;
  return html`<${Shell} key=${session.claims.sub || session.token} session=${session} setSession=${setSession} signOut=${signOut} lang=${lang} />`;
}

function LangSwitch() {
  return html`<label class="lang">
    <span class="sr-only">${t('lang.label')}</span>
    <select id="lang" value=${locale()} onChange=${(e) => setLocale(e.currentTarget.value)}>
      ${Object.entries(LOCALES).map(([k, v]) => html`<option key=${k} value=${k} lang=${k}>${v.name}</option>`)}
    </select>
  </label>`;
}

function SignIn({ notice, onSignIn }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState(null);
  const submit = (e) => {
    e.preventDefault();
    const r = S.checkToken(value);
    if (r.error) setError(r.error);
    else onSignIn(r);
  };
  return html`<main class="signin" id="main">
    <form class="card" onSubmit=${submit}>
      <div class="signin-head">
        <h1><${Logo} /> ${t('app.name')} <span class="muted">${t('app.tagline')}</span></h1>
        <${LangSwitch} />
      </div>
      ${notice ? html`<p class="notice" role="alert">${typeof notice === 'string' ? t(notice) : t(notice.key, notice)}</p>` : null}
      <label for="token">${t('signin.token')}</label>
      <textarea id="token" name="token" rows="5" spellcheck="false" autocomplete="off" placeholder="eyJhbGciOi…"
        value=${value} onInput=${(e) => setValue(e.currentTarget.value)}></textarea>
      ${error ? html`<p class="error" role="alert">${t(error.key, error)}</p>` : null}
      <button type="submit" class="primary">${t('signin.submit')}</button>
      <p class="muted small">${t('signin.help')}</p>
    </form>
  </main>`;
}

export function Logo() {
  return html`<svg class="logo" viewBox="0 0 32 32" aria-hidden="true"><rect width="32" height="32" rx="6" fill="#0b4f8a"/><path d="M4 17h6l3-7 5 13 3-6h7" fill="none" stroke="#fff" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"/></svg>`;
}

function ConnIndicator({ store }) {
  const state = store.connState();
  const { reason, code } = store.conn;
  const title =
    state === STATE.LIVE
      ? t('conn.liveTitle')
      : state === CONN.RECOVERING
        ? t('conn.recoveringTitle')
        : reason
          ? t(`conn.reason.${reason}`, { code: code ?? '' })
          : '';
  return html`<span id="conn" class="conn" data-state=${state} role="status" aria-live="polite" title=${title}>
    <span class="dot" aria-hidden="true"></span>${t(`conn.${state}`)}
  </span>`;
}

// canSee says whether the token may see a site, so the board never asks
// for what it would be refused.
export const canSee = S.canSeeSite;

// homeRoute is where each role starts: a PI or CRA on their site, on-call
// staff on the alert queue, safety physicians and admins on the trial.
function homeRoute(claims) {
  const sites = S.sitesOf(claims);
  if (claims.role === 'oncall') return { view: 'alerts' };
  const wide = S.trialsOf(claims).filter((t) => S.canSeeTrial(claims, t));
  if (wide.length) return { view: 'trial', trial: wide[0] };
  if (sites.length === 1) return { view: 'site', trial: sites[0].trial, site: sites[0].site };
  return null;
}

// PatientView loads the patient view (and uPlot, the board's largest
// module) when first opened, so the first paint does not wait for it.
let patientModule = null;
function PatientView(props) {
  const [mod, setMod] = useState(patientModule);
  useEffect(() => {
    if (!mod) import('./patient.js').then((m) => setMod((patientModule = m)));
  }, []);
  if (!mod) return html`<main id="main" class="picker"><p class="muted">${t('common.loading')}</p></main>`;
  return html`<${mod.PatientView} ...${props} />`;
}

function Shell({ session, setSession, signOut }) {
  const { claims } = session;
  const store = useMemo(
    () => new BoardStore({ token: session.token, claims }),
    [claims.sub],
  );
  useEffect(() => {
    store.start();
    if (window.__vigilTest) window.__vigil = store.hooks();
    return () => {
      store.stop();
      delete window.__vigil;
    };
  }, [store]);
  useStore(store);
  const route = useRoute();

  // A fresh token of the same person (step-up sign-in) replaces the old one.
  useEffect(() => {
    store.onNewToken = (r) => {
      S.saveToken(r.token);
      store.setToken(r.token, r.claims);
      setSession(r);
    };
  }, [store]);

  useEffect(() => {
    if (route.view !== 'home') return;
    const r = homeRoute(claims);
    if (r) navigate(r, { replace: true });
  }, [route.view]);

  const openCount = Object.keys(store.queue.alerts).length;
  const name = claims.name || claims.sub || '';
  const state = store.connState();
  const siteRef = route.trial && route.site ? S.siteRef(route.trial, route.site) : null;
  const allowed = !siteRef || canSee(store.claims, route.trial, route.site);
  const trialAllowed = route.view !== 'trial' || S.trialsOf(store.claims).includes(route.trial);

  let view;
  if (!allowed || !trialAllowed) {
    view = html`<main id="main" class="picker"><p class="error" role="alert">${t('problem.forbidden', { room: siteRef ? siteRef.key : route.trial })}</p></main>`;
  } else if (route.view === 'site') {
    view = html`<${SiteView} key=${siteRef.key} store=${store} site=${siteRef} />`;
  } else if (route.view === 'patient') {
    view = html`<${PatientView} key=${`${siteRef.key}/${route.patient}`} store=${store} trial=${route.trial} site=${route.site} patient=${route.patient} />`;
  } else if (route.view === 'alerts') {
    view = html`<${QueueView} store=${store} />`;
  } else if (route.view === 'trial') {
    view = html`<${OverviewView} key=${route.trial} store=${store} trial=${route.trial} />`;
  } else {
    view = html`<${SitePicker} store=${store} />`;
  }

  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e) => {
      e.preventDefault();
      document.getElementById('main')?.focus();
    }}>${t('nav.skip')}</a>
    <header class="topbar">
      <a class="brand" href=${href({ view: 'home' })}><${Logo} /> ${t('app.name')}</a>
      <nav class="mainnav" aria-label=${t('nav.main')}>
        <${NavSites} store=${store} route=${route} />
        <a href=${href({ view: 'alerts' })} aria-current=${route.view === 'alerts' ? 'page' : undefined} id="nav-alerts">
          ${t('nav.alerts')} <span class="count" aria-label=${t('nav.openAlerts', { n: openCount })}>${openCount}</span>
        </a>
        ${S.trialsOf(claims).map(
          (tr) => html`<a key=${tr} href=${href({ view: 'trial', trial: tr })} aria-current=${route.view === 'trial' && route.trial === tr ? 'page' : undefined}>
            ${t('nav.overview')}${S.trialsOf(claims).length > 1 ? ` ${tr}` : ''}
          </a>`,
        )}
      </nav>
      <span class="spacer"></span>
      <${NotifyToggle} />
      <${LangSwitch} />
      <${ConnIndicator} store=${store} />
      <span class="who" title=${`${roleLabel(claims.role)} · ${claims.sub || ''}`}>
        <strong>${name}</strong> <span class="role">${roleLabel(claims.role)}</span>
      </span>
      <button type="button" class="ghost" onClick=${() => signOut()}>${t('nav.signOut')}</button>
    </header>
    <${StaleBanner} store=${store} state=${state} />
    <${ExpiryBanner} claims=${store.claims} />
    ${store.problem
      ? html`<div class="banner banner-${store.problem.kind}" role="alert">
          <span>${problemText(store.problem)}</span>
          ${store.problem.kind === 'expired'
            ? html`<button type="button" class="primary" onClick=${() => signOut('problem.expired')}>${t('problem.signInAgain')}</button>`
            : null}
        </div>`
      : null}
    <${ModelBanner} model=${store.model} />
    ${view}
    <footer class="foot muted small">${t('time.localUtc', { tz: Intl.DateTimeFormat().resolvedOptions().timeZone })}</footer>
  </div>`;
}

// ExpiryBanner warns, in the last ten minutes of the token, that the session
// (and its alerts) will end, while there is time to sign in again.
function ExpiryBanner({ claims }) {
  const now = useNow(30_000);
  const left = S.msUntilExpiry(claims, now);
  if (!Number.isFinite(left) || left > 10 * 60_000 || left <= 0) return null;
  return html`<div id="expiry-banner" class="banner banner-warn" role="status">${t('problem.expiresSoon', { d: duration(left / 1000) })}</div>`;
}

// StaleBanner: a board that silently shows stale data is worse than none.
function StaleBanner({ store, state }) {
  const [since, setSince] = useState(null);
  useEffect(() => {
    if (state === STATE.LIVE || state === CONN.RECOVERING || state === STATE.CONNECTING) setSince(null);
    else if (!since) setSince(new Date().toISOString());
  }, [state]);
  if (!since || store.problem?.kind === 'expired') return null;
  return html`<div id="stale-banner" class="banner banner-warn" role="status">${t('conn.staleBanner', { since: localTime(since, { timeStyle: 'medium' }) })}</div>`;
}

// ModelBanner says, while the newest score was made without the configured
// risk model, that scores come from the rules alone.
function ModelBanner({ model }) {
  if (!model || model.status !== 'degraded') return null;
  return html`<div id="model-banner" class="banner banner-error" role="status" data-state="degraded">
    <span><strong>${t('model.bannerTitle')}</strong> ${t('model.bannerText', { since: localTime(model.since) })}</span>
  </div>`;
}

// NavSites: the site switcher; switching is instant (the new site's room
// joins the open WebSocket).
function NavSites({ store, route }) {
  const sites = knownSites(store);
  const cur = route.trial && route.site ? `${route.trial}/${route.site}` : '';
  return html`<label class="sitepick">
    <span class="sr-only">${t('nav.chooseSite')}</span>
    <select id="site-select" value=${sites.some((s) => s.key === cur) ? cur : ''} onChange=${(e) => {
      const s = S.parseSiteKey(e.currentTarget.value);
      navigate(s ? { view: 'site', trial: s.trial, site: s.site } : { view: 'home' });
    }}>
      <option value="">${t('nav.sites')}…</option>
      ${sites.map((s) => html`<option key=${s.key} value=${s.key}>${t('nav.trialSite', { trial: s.trial, site: s.site })}</option>`)}
    </select>
  </label>`;
}

// knownSites: the token's sites, and for trial-wide roles the sites of
// their trials' protocols and alerts.
export function knownSites(store) {
  const m = new Map();
  for (const s of S.sitesOf(store.claims)) m.set(s.key, s);
  for (const s of store.trialSites || []) if (canSee(store.claims, s.trial, s.site)) m.set(s.key, s);
  for (const a of Object.values(store.queue.alerts)) {
    const s = S.siteRef(a.trial_id, a.site_id);
    if (canSee(store.claims, s.trial, s.site)) m.set(s.key, s);
  }
  return [...m.values()].sort((a, b) => a.key.localeCompare(b.key, undefined, { numeric: true }));
}

function SitePicker({ store }) {
  const claims = store.claims;
  const sites = knownSites(store);
  const trials = S.trialsOf(claims);
  const wide = S.isTrialWide(claims);
  const [trial, setTrial] = useState(trials[0] || '');
  const [siteId, setSiteId] = useState('');
  const open = (e) => {
    e.preventDefault();
    const s = siteId.trim();
    if (trial && s) navigate({ view: 'site', trial, site: s });
  };
  return html`<main class="picker" id="main" tabindex="-1">
    <h1>${t('picker.title')}</h1>
    ${sites.length
      ? html`<ul class="sites">
          ${sites.map(
            (s) => html`<li key=${s.key}>
              <a class="site" data-site=${s.key} href=${href({ view: 'site', trial: s.trial, site: s.site })}>
                <span class="muted">${t('picker.trial')} ${s.trial}</span><strong>${t('picker.site')} ${s.site}</strong>
              </a>
            </li>`,
          )}
        </ul>`
      : html`<p class="muted">${wide ? t('picker.noneWide') : t('picker.none')}</p>`}
    ${wide && trials.length
      ? html`<form class="card opensite" onSubmit=${open}>
          <h2>${t('picker.other')}</h2>
          <label>${t('picker.trial')}
            <select value=${trial} onChange=${(e) => setTrial(e.currentTarget.value)}>
              ${trials.map((x) => html`<option key=${x} value=${x}>${x}</option>`)}
            </select>
          </label>
          <label>${t('picker.site')} <input name="site" value=${siteId} placeholder="S01" autocomplete="off" onInput=${(e) => setSiteId(e.currentTarget.value)} /></label>
          <button type="submit" class="primary">${t('picker.open')}</button>
        </form>`
      : null}
  </main>`;
}

render(html`<${App} />`, document.getElementById('app'));
