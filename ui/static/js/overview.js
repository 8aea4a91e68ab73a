// The trial overview, the safety physician's view: every site the token may
// see against risk, with open alerts, how fast they are acknowledged, and
// the sites whose data stopped arriving. It reloads from
// GET /v1/trials/{trial}/overview when the trial's alerts change (coalesced)
// and every half minute.
//
// Test hooks: section#overview, #stale-sites, table#sites, rows
// tr[data-site] with cells [data-field] and [data-value].

import { useEffect, useState } from 'preact/hooks';
import { fetchOverview } from './api.js';
import { html } from './html.js';
import { t, tn } from './i18n.js';
import { href } from './router.js';
import { duration } from './format.js';
import { RiskBadge, Time, useNow } from './ui.js';

const REFRESH_MS = 30_000;
const EVENT_COALESCE_MS = 2_000;
const LEVELS = ['critical', 'high', 'medium', 'low', 'none', 'pending'];

// worst orders sites by who needs attention: critical patients, then high,
// then open alerts, then silence.
function worst(a, b) {
  for (const k of ['critical', 'high', 'medium']) {
    const d = (b.risk?.[k] || 0) - (a.risk?.[k] || 0);
    if (d) return d;
  }
  return (b.alerts?.open || 0) - (a.alerts?.open || 0) || Number(b.stale) - Number(a.stale) || String(a.site_id).localeCompare(String(b.site_id), undefined, { numeric: true });
}

const SORTS = {
  worst,
  site: (a, b) => String(a.site_id).localeCompare(String(b.site_id), undefined, { numeric: true }),
  alerts: (a, b) => (b.alerts?.open || 0) + (b.alerts?.escalated || 0) - ((a.alerts?.open || 0) + (a.alerts?.escalated || 0)) || worst(a, b),
  silent: (a, b) => (Date.parse(a.last_reading_at) || 0) - (Date.parse(b.last_reading_at) || 0),
};

function useOverview(store, trial) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    const abort = new AbortController();
    let timer;
    let soon;
    const load = () => {
      clearTimeout(timer);
      fetchOverview(trial, store.token, abort.signal)
        .then((d) => {
          setData(d);
          setError(null);
        })
        .catch((e) => {
          if (e.name !== 'AbortError') setError(e.message);
        })
        .finally(() => {
          if (!abort.signal.aborted) timer = setTimeout(load, REFRESH_MS);
        });
    };
    load();
    const off = store.onEvents((room, d) => {
      if (d.kind !== 'alert' || d.trial_id !== trial || soon) return;
      soon = setTimeout(() => {
        soon = null;
        load();
      }, EVENT_COALESCE_MS);
    });
    return () => {
      abort.abort();
      off();
      clearTimeout(timer);
      clearTimeout(soon);
    };
  }, [trial]);
  return { data, error };
}

// RiskBar shows a site's patients by risk: a bar of proportional segments,
// each labelled with its count, so the colours are never read alone.
function RiskBar({ risk, total }) {
  if (!total) return html`<span class="muted">${t('overview.noPatients')}</span>`;
  return html`<div class="riskbar" role="img" aria-label=${LEVELS.filter((k) => risk?.[k]).map((k) => `${t(`risk.${k}`)} ${risk[k]}`).join(', ')}>
    ${LEVELS.filter((k) => risk?.[k]).map(
      (k) => html`<span key=${k} class=${`seg risk-${k}`} data-level=${k} data-value=${risk[k]} title=${`${t(`risk.${k}`)}: ${risk[k]}`}
        ref=${(el) => el && (el.style.flexGrow = String(risk[k]))}>${risk[k]}</span>`,
    )}
  </div>`;
}

function SiteRow({ s, trial, now }) {
  const a = s.alerts || {};
  const ack = s.ack || {};
  return html`<tr data-site=${s.site_id} data-stale=${s.stale ? 'true' : 'false'} class=${s.stale ? 'stale' : undefined}>
    <th scope="row" data-field="site" data-value=${s.site_id}>
      <a href=${href({ view: 'site', trial, site: s.site_id })}>${s.site_id}</a>
    </th>
    <td data-field="patients" data-value=${s.patients}>${s.patients}</td>
    <td data-field="risk"><${RiskBar} risk=${s.risk} total=${s.patients} /></td>
    <td data-field="critical" data-value=${s.risk?.critical || 0} class="num">${s.risk?.critical ? html`<${RiskBadge} risk="critical" /> ${s.risk.critical}` : '0'}</td>
    <td data-field="open" data-value=${(a.open || 0) + (a.escalated || 0) + (a.acknowledged || 0)} class="num">
      ${t('overview.alertCounts', { open: a.open || 0, escalated: a.escalated || 0, acknowledged: a.acknowledged || 0 })}
      ${a.critical ? html`<br /><span class="small">${t('overview.criticalAlerts', { n: a.critical })}</span>` : null}
    </td>
    <td data-field="ack" data-value=${ack.median_seconds ?? ''} class="num">
      ${ack.count ? html`${duration(ack.median_seconds)} <span class="muted small">${tn('overview.ackDetail', ack.count, { p90: duration(ack.p90_seconds) })}</span>` : html`<span class="muted">—</span>`}
    </td>
    <td data-field="last" data-value=${s.last_reading_at || ''}>
      ${s.last_reading_at ? html`<${Time} iso=${s.last_reading_at} now=${now} />` : html`<span class="muted">${t('overview.never')}</span>`}
      ${s.stale ? html` <span class="tag late-tag" data-field="stale">${t('overview.stale')}</span>` : null}
    </td>
  </tr>`;
}

export function OverviewView({ store, trial }) {
  const now = useNow(15_000);
  const { data, error } = useOverview(store, trial);
  const [sort, setSort] = useState('worst');
  const sites = data ? [...(data.sites || [])].sort(SORTS[sort]) : [];
  const stale = sites.filter((s) => s.stale);
  const totals = { patients: 0, critical: 0, high: 0, open: 0 };
  for (const s of sites) {
    totals.patients += s.patients || 0;
    totals.critical += s.risk?.critical || 0;
    totals.high += s.risk?.high || 0;
    totals.open += (s.alerts?.open || 0) + (s.alerts?.escalated || 0);
  }
  return html`<main id="main" tabindex="-1" class="overview-main">
    <section id="overview" aria-labelledby="overview-h" class="panel">
      <div class="panel-head">
        <h1 id="overview-h">${t('overview.title', { trial })}</h1>
        <ul class="summary">
          <li>${tn('overview.sites', sites.length)}</li>
          <li>${tn('site.patients', totals.patients)}</li>
          <li><${RiskBadge} risk="critical" /> ${totals.critical}</li>
          <li><${RiskBadge} risk="high" /> ${totals.high}</li>
          <li>${tn('overview.needAck', totals.open)}</li>
        </ul>
        <label class="small">${t('queue.sort')}
          <select id="overview-sort" value=${sort} onChange=${(e) => setSort(e.currentTarget.value)}>
            ${Object.keys(SORTS).map((k) => html`<option key=${k} value=${k}>${t(`overview.sort.${k}`)}</option>`)}
          </select>
        </label>
      </div>
      ${error ? html`<p class="error pad" role="alert">${t('overview.loadError', { detail: error })}</p>` : null}
      ${stale.length
        ? html`<div id="stale-sites" class="banner banner-warn" role="status">
            ${tn('overview.staleSites', stale.length, { after: duration(data.stale_after_seconds), sites: stale.map((s) => s.site_id).join(', ') })}
          </div>`
        : null}
      <div class="table-scroll">
        <table id="sites" class="sites-table">
          <caption class="sr-only">${t('overview.caption', { trial })}</caption>
          <thead>
            <tr>
              <th scope="col">${t('common.site')}</th>
              <th scope="col">${t('overview.col.patients')}</th>
              <th scope="col">${t('overview.col.risk')}</th>
              <th scope="col">${t('risk.critical')}</th>
              <th scope="col">${t('overview.col.alerts')}</th>
              <th scope="col"><abbr title=${t('overview.col.ack.title')}>${t('overview.col.ack')}</abbr></th>
              <th scope="col">${t('overview.col.last')}</th>
            </tr>
          </thead>
          <tbody>
            ${sites.map((s) => html`<${SiteRow} key=${s.site_id} s=${s} trial=${trial} now=${now} />`)}
            ${!data && !error ? html`<tr><td colspan="7" class="muted pad">${t('common.loading')}</td></tr>` : null}
            ${data && !sites.length ? html`<tr><td colspan="7" class="muted pad">${t('overview.none')}</td></tr>` : null}
          </tbody>
        </table>
      </div>
      ${data ? html`<p class="muted small pad">${t('overview.generated')} <${Time} iso=${data.generated_at} abs=${true} opts=${{ timeStyle: 'medium' }} /> · ${t('overview.ackWindow')}</p>` : null}
    </section>
  </main>`;
}
