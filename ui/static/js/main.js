// The Vigil board: sign-in, site picker, and the live view of one site.

import { render } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { fetchAlerts } from './api.js';
import { AlertFeed, PatientsTable, RiskBadge } from './board.js';
import { useSiteFeed } from './feed.js';
import { html } from './html.js';
import { STATE } from './live.js';
import { NotifyToggle } from './notifications.js';
import * as S from './session.js';
import { exactTime } from './format.js';
import { RISKS, modelStatus, riskCounts, sortedAlerts, sortedPatients } from './state.js';

const EXPIRED = 'Your session has expired. Sign in again.';

function initial() {
  const { token: fromURL, site } = S.takeFromLocation();
  const raw = fromURL || S.loadToken();
  if (!raw) return { session: null, notice: null, site: null };
  const r = S.checkToken(raw);
  if (r.error) {
    S.clearToken();
    return { session: null, notice: r.error, site: null };
  }
  S.saveToken(r.token);
  return { session: r, notice: null, site: chooseSite(r.claims, S.parseSiteKey(site)) };
}

// chooseSite opens the remembered site, or the only one the token names.
function chooseSite(claims, wanted) {
  if (wanted && (S.isTrialWide(claims) ? S.trialsOf(claims).includes(wanted.trial) : S.sitesOf(claims).some((s) => s.key === wanted.key))) {
    return wanted;
  }
  const sites = S.sitesOf(claims);
  return sites.length === 1 ? sites[0] : null;
}

function useNow(ms) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

function App() {
  const init = useMemo(initial, []);
  const [session, setSession] = useState(init.session);
  const [notice, setNotice] = useState(init.notice);
  const [site, setSiteState] = useState(init.site);

  const setSite = useCallback((ref) => {
    S.rememberSite(ref);
    setSiteState(ref);
  }, []);
  useEffect(() => S.rememberSite(site), []);

  const signOut = useCallback((message) => {
    S.clearToken();
    S.rememberSite(null);
    setSession(null);
    setSiteState(null);
    setNotice(typeof message === 'string' ? message : null);
  }, []);

  const signIn = useCallback((r) => {
    S.saveToken(r.token);
    setNotice(null);
    setSession(r);
    setSite(chooseSite(r.claims, null));
  }, []);

  // The token's own expiry: sign out when it passes, the hub would close 4009.
  useEffect(() => {
    if (!session) return undefined;
    const ms = S.msUntilExpiry(session.claims);
    if (!Number.isFinite(ms)) return undefined;
    const t = setTimeout(() => signOut(EXPIRED), Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    return () => clearTimeout(t);
  }, [session]);

  if (!session) return html`<${SignIn} notice=${notice} onSignIn=${signIn} />`;
  return html`<${Shell} key=${session.token} session=${session} site=${site} setSite=${setSite} signOut=${signOut} />`;
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
  return html`<main class="signin">
    <form class="card" onSubmit=${submit}>
      <h1><${Logo} /> Vigil <span class="muted">safety board</span></h1>
      ${notice ? html`<p class="notice" role="alert">${notice}</p>` : null}
      <label for="token">Access token</label>
      <textarea id="token" name="token" rows="5" spellcheck="false" autocomplete="off" placeholder="eyJhbGciOi…"
        value=${value} onInput=${(e) => setValue(e.currentTarget.value)}></textarea>
      ${error ? html`<p class="error" role="alert">${error}</p>` : null}
      <button type="submit" class="primary">Sign in</button>
      <p class="muted small">Open the board link you were given, or paste a staff token. The token is kept only in this tab and is forgotten when it closes.</p>
    </form>
  </main>`;
}

function Logo() {
  return html`<svg class="logo" viewBox="0 0 32 32" aria-hidden="true"><rect width="32" height="32" rx="6" fill="#0b4f8a"/><path d="M4 17h6l3-7 5 13 3-6h7" fill="none" stroke="#fff" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"/></svg>`;
}

const CONN_LABEL = {
  [STATE.CONNECTING]: 'Connecting…',
  [STATE.LIVE]: 'Live',
  [STATE.RECONNECTING]: 'Reconnecting…',
  [STATE.OFFLINE]: 'Offline',
};

function ConnIndicator({ conn }) {
  const title = conn.state === STATE.LIVE ? 'Receiving updates as they happen' : conn.reason || '';
  return html`<span id="conn" class="conn" data-state=${conn.state} role="status" aria-live="polite" title=${title}>
    <span class="dot" aria-hidden="true"></span>${CONN_LABEL[conn.state] || conn.state}
  </span>`;
}

function Shell({ session, site, setSite, signOut }) {
  const { claims, token } = session;
  const [discovered, setDiscovered] = useState([]);
  const feed = useSiteFeed(token, site);
  const known = useMemo(() => {
    const m = new Map();
    for (const s of [...S.sitesOf(claims), ...discovered, ...(site ? [site] : [])]) m.set(s.key, s);
    return [...m.values()].sort((a, b) => a.key.localeCompare(b.key, undefined, { numeric: true }));
  }, [claims, discovered, site?.key]);

  // Safety, on-call and admin roles may hold only trials: find their sites
  // from the trial's open alerts.
  useEffect(() => {
    if (!S.isTrialWide(claims)) return undefined;
    const abort = new AbortController();
    Promise.all(
      S.trialsOf(claims).map((trial) =>
        fetchAlerts({ trial }, token, abort.signal)
          .then((alerts) => alerts.map((a) => S.siteRef(trial, a.site_id)))
          .catch(() => []),
      ),
    ).then((lists) => !abort.signal.aborted && setDiscovered(lists.flat().filter((s) => s.site)));
    return () => abort.abort();
  }, [token]);

  const name = claims.name || claims.sub || 'unknown';
  return html`<div class="shell">
    <header class="topbar">
      <div class="brand"><${Logo} /> Vigil</div>
      ${site
        ? html`<label class="sitepick">
            <span class="sr-only">Site</span>
            <select value=${site.key} onChange=${(e) => setSite(e.currentTarget.value ? S.parseSiteKey(e.currentTarget.value) : null)}>
              ${known.map((s) => html`<option key=${s.key} value=${s.key}>Trial ${s.trial} · Site ${s.site}</option>`)}
              <option value="">All my sites…</option>
            </select>
          </label>`
        : null}
      <span class="spacer"></span>
      <${NotifyToggle} />
      <${ConnIndicator} conn=${feed.conn} />
      <span class="who" title=${`${S.ROLE_LABELS[claims.role] || claims.role} · ${claims.sub || ''}`}>
        <strong>${name}</strong> <span class="role">${claims.role}</span>
      </span>
      <button type="button" class="ghost" onClick=${() => signOut()}>Sign out</button>
    </header>
    ${feed.problem
      ? html`<div class="banner banner-${feed.problem.kind}" role="alert">
          <span>${feed.problem.message}</span>
          ${feed.problem.kind === 'expired'
            ? html`<button type="button" class="primary" onClick=${() => signOut(EXPIRED)}>Sign in again</button>`
            : null}
        </div>`
      : null}
    <${ModelBanner} model=${site ? modelStatus(feed.board) : null} />
    ${site
      ? html`<${SiteView} key=${site.key} feed=${feed} site=${site} />`
      : html`<${SitePicker} claims=${claims} known=${known} setSite=${setSite} />`}
  </div>`;
}

// ModelBanner says, while the newest score was made without the configured
// risk model, that scores come from the rules alone: a board must not look
// the same with and without half of its scoring.
function ModelBanner({ model }) {
  if (!model || model.status !== 'degraded') return null;
  return html`<div id="model-banner" class="banner banner-error" role="status" data-state="degraded">
    <span><strong>Risk model unavailable.</strong> Scores since ${exactTime(model.since)} come from NEWS2 and the trial's rules alone; model probabilities return when the model is back.</span>
  </div>`;
}

function SitePicker({ claims, known, setSite }) {
  const trials = S.trialsOf(claims);
  const wide = S.isTrialWide(claims);
  const [trial, setTrial] = useState(trials[0] || '');
  const [siteId, setSiteId] = useState('');
  const open = (e) => {
    e.preventDefault();
    const s = siteId.trim();
    if (trial && s) setSite(S.siteRef(trial, s));
  };
  return html`<main class="picker">
    <h1>Choose a site</h1>
    ${known.length
      ? html`<ul class="sites">
          ${known.map(
            (s) => html`<li key=${s.key}>
              <button type="button" class="site" data-site=${s.key} onClick=${() => setSite(s)}>
                <span class="muted">Trial ${s.trial}</span><strong>Site ${s.site}</strong>
              </button>
            </li>`,
          )}
        </ul>`
      : html`<p class="muted">${wide ? 'No site with open alerts yet.' : 'Your token names no site. Ask for a token with your sites.'}</p>`}
    ${wide && trials.length
      ? html`<form class="card opensite" onSubmit=${open}>
          <h2>Open another site</h2>
          <label>Trial
            <select value=${trial} onChange=${(e) => setTrial(e.currentTarget.value)}>
              ${trials.map((t) => html`<option key=${t} value=${t}>${t}</option>`)}
            </select>
          </label>
          <label>Site <input name="site" value=${siteId} placeholder="S01" autocomplete="off" onInput=${(e) => setSiteId(e.currentTarget.value)} /></label>
          <button type="submit" class="primary">Open</button>
        </form>`
      : null}
  </main>`;
}

function SiteView({ feed, site }) {
  const { conn, board, flashes } = feed;
  const now = useNow(15_000);
  const rows = useMemo(() => sortedPatients(board), [board]);
  const alerts = useMemo(() => sortedAlerts(board), [board]);
  const counts = useMemo(() => riskCounts(board), [board]);
  const alertsByPatient = useMemo(() => {
    const m = {};
    for (const a of alerts) if (!m[a.patient_id]) m[a.patient_id] = a;
    return m;
  }, [alerts]);
  const tableRef = useRef(null);

  const pick = (patientId) => {
    const tr = tableRef.current?.querySelector(`tr[data-patient="${CSS.escape(patientId)}"]`);
    if (!tr) return;
    tr.scrollIntoView({ block: 'center', behavior: 'smooth' });
    tr.classList.remove('picked');
    void tr.offsetWidth; // restart the highlight
    tr.classList.add('picked');
  };

  return html`
    <main class=${`board${conn.state === STATE.LIVE ? '' : ' not-live'}`}>
      <section class="panel patients-panel" aria-labelledby="patients-h">
        <div class="panel-head">
          <h2 id="patients-h">Patients <span class="count">${rows.length}</span></h2>
          <ul class="summary" aria-label="Patients by risk">
            ${[...RISKS].reverse().map((r) =>
              counts[r] ? html`<li key=${r}><${RiskBadge} risk=${r} /> ${counts[r]}</li>` : null,
            )}
          </ul>
        </div>
        <div class="table-wrap" ref=${tableRef}>
          <${PatientsTable} rows=${rows} now=${now} flashes=${flashes} alertsByPatient=${alertsByPatient} loaded=${board.loaded} failed=${!!feed.problem} site=${site} />
        </div>
      </section>
      <aside class="panel alerts-panel" aria-labelledby="alerts-h">
        <div class="panel-head">
          <h2 id="alerts-h">Open alerts <span class="count">${alerts.length}</span></h2>
        </div>
        <${AlertFeed} alerts=${alerts} now=${now} onPick=${pick} />
      </aside>
    </main>
    <footer class="foot muted small">
      NEWS2 per RCP 2017; cells shaded by their NEWS2 sub-score. Trial ${site.trial} · Site ${site.site}.
    </footer>`;
}

render(html`<${App} />`, document.getElementById('app'));
