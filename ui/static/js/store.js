// BoardStore is the board's live data for one signed-in tab: one LiveClient
// (one WebSocket), the alert queue of everything the token may see, and the
// patients of each site a view is watching. Views read it and subscribe;
// changes are announced at most once per animation frame (and ten times a
// second), so a burst of events costs one render, not one per event.
//
// Rooms: the "home" rooms (the trial rooms of the trials a safety, on-call
// or admin token names; the site rooms of every other site the token names)
// carry every alert the token may see, so the queue and browser
// notifications work from any view; a watched site adds its room for scores.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, fetchAlerts, fetchPatients, fetchProtocol, fetchResolvedSince } from './api.js';
import { LiveClient, STATE } from './live.js';
import { closeNotification, notifyAlert } from './notifications.js';
import { applyAlert, applyAlertSnapshot, applyPatients, applyScore, emptyBoard, emptyQueue, newerModel } from './state.js';
import * as S from './session.js';

const FLASH_MS = 2500;
// MIN_FLUSH_MS spaces renders out under a stream of events: ten a second is
// as fast as anyone reads, and each render of a big table costs layout.
const MIN_FLUSH_MS = 100;
const RETRY_MS = 5000;
// LINGER_MS keeps a site's room and patients after its last view closes, so
// going from a site to a patient and back is instant.
const LINGER_MS = 60_000;
// PROTOCOL_TTL_MS: how long a trial's protocol (sites, schedule, model
// threshold) is reused by the views before it is asked for again.
const PROTOCOL_TTL_MS = 5 * 60_000;
// A resolved alert judged an SAE stays in the queue's "reports due" while its
// 24-hour clock matters: this long after its resolution.
const REPORTS_WINDOW_MS = 48 * 3600_000;

export const CONN = { ...STATE, RECOVERING: 'recovering' };

export function siteRoom(trial, site) {
  return `site:${trial}:${site}`;
}

// homeRooms are the rooms that carry every alert the token may see.
export function homeRooms(claims) {
  const rooms = [];
  for (const t of S.trialsOf(claims)) if (S.canSeeTrial(claims, t)) rooms.push(`trial:${t}`);
  for (const s of S.sitesOf(claims)) if (!S.canSeeTrial(claims, s.trial)) rooms.push(siteRoom(s.trial, s.site));
  return rooms;
}

function wsURL() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

function reportDue(a) {
  return a.status === 'resolved' && a.outcome === 'sae' && a.report_due_at && Date.now() - Date.parse(a.updated_at) < REPORTS_WINDOW_MS;
}

export class BoardStore {
  constructor({ token, claims }) {
    this.token = token;
    this.claims = claims;
    this.conn = { state: STATE.CONNECTING };
    this.queue = emptyQueue();
    this.queueCtl = { inflight: false, again: false, recover: false, touched: null, timer: null };
    this.reports = new Map(); // alert_id -> resolved SAE alert whose report clock runs
    this.sites = new Map(); // "T/S" -> watched site
    this.flashes = new Map(); // "T/S/P" -> n
    this.snapshots = new Map(); // room -> snapshots taken since start (views reload on change)
    this.model = null;
    this.problem = null; // {kind: expired|forbidden|error, key, …}
    this.recovering = 0;
    this.version = 0;
    this.listeners = new Set();
    this.eventListeners = new Set();
    this.raf = 0;
    this.lastFlush = 0;
    this.dead = false;
    this.abort = new AbortController();
    this.home = homeRooms(claims);
    this.trialSites = [];
    this.protocols = new Map(); // trial -> {at, reply: Promise of the protocol or null}
    this.onNewToken = null;
    this.client = new LiveClient({
      url: wsURL(),
      token,
      onState: (state, info) => {
        this.conn = { state, ...info };
        // Live again: a transient server error is over.
        if (state === STATE.LIVE && this.problem?.kind === 'error') this.problem = null;
        this.changed();
      },
      onEvent: (room, data) => this.onEvent(room, data),
      onSnapshotNeeded: (room) => this.onSnapshotNeeded(room),
      onServerError: (msg) => {
        if (msg.code === 'forbidden') this.setProblem({ kind: 'forbidden', key: 'problem.forbidden', room: msg.room });
        else if (msg.code === 'invalid_token') this.setProblem({ kind: 'error', key: 'problem.refreshRejected' });
        else this.setProblem({ kind: 'error', key: 'problem.server', detail: msg.message || msg.code });
      },
      onAuthClosed: () => this.expired(),
    });
    this.client.tokenExp = claims.exp;
  }

  start() {
    this.client.setRooms(this.rooms());
    this.client.start();
    this.loadQueue();
    this.loadTrialSites();
  }

  stop() {
    this.dead = true;
    this.abort.abort();
    this.client.stop();
    cancelAnimationFrame(this.raf);
    clearTimeout(this.raf);
    clearTimeout(this.queueCtl.timer);
    for (const w of this.sites.values()) {
      clearTimeout(w.retry);
      clearTimeout(w.linger);
    }
    for (const id of Object.keys(this.queue.alerts)) closeNotification(id);
  }

  // loadTrialSites lists the sites of the trials the token sees whole, from
  // their protocols, for the site switcher.
  async loadTrialSites() {
    const trials = S.trialsOf(this.claims).filter((t) => S.canSeeTrial(this.claims, t));
    const found = [];
    await Promise.all(
      trials.map((trial) =>
        this.protocol(trial).then((p) => {
          for (const s of Array.isArray(p?.sites) ? p.sites : []) found.push(S.siteRef(trial, String(s)));
        }),
      ),
    );
    if (this.dead) return;
    this.trialSites = found;
    this.changed();
  }

  // protocol resolves to a trial's protocol, or null when it has none (or
  // it could not be read): one request per trial for every view that needs
  // it, again after PROTOCOL_TTL_MS.
  protocol(trial) {
    const cur = this.protocols.get(trial);
    if (cur && Date.now() - cur.at < PROTOCOL_TTL_MS) return cur.reply;
    const reply = fetchProtocol(trial, this.token, this.abort.signal).catch(() => null);
    this.protocols.set(trial, { at: Date.now(), reply });
    return reply;
  }

  // listen calls f after changes, at most once per animation frame.
  listen(f) {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  // onEvents calls f(room, data) for every live event, at once (room is
  // null for the result of a person's own action).
  onEvents(f) {
    this.eventListeners.add(f);
    return () => this.eventListeners.delete(f);
  }

  changed() {
    if (this.raf || this.dead) return;
    const flush = () => {
      this.raf = 0;
      if (this.dead) return;
      this.lastFlush = performance.now();
      this.version++;
      for (const f of this.listeners) f(this.version);
    };
    // On the next animation frame at least MIN_FLUSH_MS after the last one;
    // a hidden tab gets no frames and catches up when shown.
    const wait = MIN_FLUSH_MS - (performance.now() - this.lastFlush);
    if (wait > 0) this.raf = setTimeout(() => requestAnimationFrame(flush), wait);
    else this.raf = requestAnimationFrame(flush);
  }

  // connState adds "recovering" to the socket's state: live again, but
  // still loading what the hub could not replay.
  connState() {
    if (this.conn.state === STATE.LIVE && this.recovering > 0) return CONN.RECOVERING;
    return this.conn.state;
  }

  rooms() {
    const r = new Set(this.home);
    for (const w of this.sites.values()) r.add(w.room);
    return [...r];
  }

  // snapshotCount changes whenever the store reloaded a room from REST
  // because the hub could not replay it: a view holding its own copy of
  // that room's data reloads it then.
  snapshotCount(room) {
    return this.snapshots.get(room) || 0;
  }

  setProblem(p) {
    this.problem = p;
    this.changed();
  }

  expired() {
    this.client.stop();
    this.conn = { state: STATE.OFFLINE, reason: 'expired' };
    this.setProblem({ kind: 'expired', key: 'problem.expired' });
  }

  // setToken takes a fresh token of the same person (step-up sign-in) for
  // the REST calls and the open WebSocket.
  setToken(token, claims) {
    this.token = token;
    this.claims = claims;
    this.client.refresh(token, claims.exp);
  }

  // watchSite subscribes to a site's room and loads its patients; the
  // returned function releases it (after LINGER_MS without another view).
  watchSite(ref) {
    let w = this.sites.get(ref.key);
    if (!w) {
      w = { ref, room: siteRoom(ref.trial, ref.site), users: 0, data: emptyBoard(), inflight: false, again: false, recover: false, problem: null, retry: null, linger: null };
      this.sites.set(ref.key, w);
      this.client.setRooms(this.rooms());
      this.loadSite(w);
    }
    clearTimeout(w.linger);
    w.users++;
    return () => {
      if (--w.users > 0) return;
      w.linger = setTimeout(() => {
        if (w.users > 0 || this.dead) return;
        clearTimeout(w.retry);
        this.sites.delete(ref.key);
        this.client.setRooms(this.rooms());
        this.noteModel();
        this.changed();
      }, LINGER_MS);
    };
  }

  site(key) {
    return this.sites.get(key)?.data ?? null;
  }

  siteProblem(key) {
    return this.sites.get(key)?.problem ?? null;
  }

  flash(trial, site, patient) {
    return this.flashes.get(`${trial}/${site}/${patient}`) || 0;
  }

  // noteModel: the banner follows the newest score of the sites on screen.
  noteModel() {
    let m = null;
    for (const w of this.sites.values()) m = newerModel(m, w.data.model);
    this.model = m;
  }

  failed(e) {
    if (e instanceof ApiError && e.status === 401) {
      this.expired();
      return true;
    }
    return false;
  }

  async loadSite(w, recovering = false) {
    if (w.inflight) {
      w.again = true;
      w.recover ||= recovering;
      return;
    }
    w.inflight = true;
    if (recovering) this.recovering++;
    const current = () => !this.dead && this.sites.get(w.ref.key) === w;
    try {
      const patients = await fetchPatients(w.ref, this.token, this.abort.signal);
      if (!current()) return;
      w.data = applyPatients(w.data, patients);
      w.problem = null;
      this.noteModel();
      if (recovering) this.snapshots.set(w.room, this.snapshotCount(w.room) + 1);
    } catch (e) {
      if (e.name === 'AbortError' || !current() || this.failed(e)) return;
      if (e.status === 403) {
        w.problem = { kind: 'forbidden', key: 'problem.forbiddenSite', site: w.ref.key };
      } else {
        w.problem = { kind: 'error', key: 'problem.loadSite', site: w.ref.key, detail: e.message, unreachable: e.status === 0 };
        clearTimeout(w.retry);
        w.retry = setTimeout(() => current() && this.loadSite(w, true), RETRY_MS);
      }
    } finally {
      w.inflight = false;
      if (recovering) this.recovering--;
      this.changed();
      if (w.again && current()) {
        const again = w.recover;
        w.again = false;
        w.recover = false;
        this.loadSite(w, again);
      }
    }
  }

  // loadQueue replaces the alert queue with every unresolved alert the token
  // may see (and the resolved SAEs whose report clock runs); alert events
  // that arrive meanwhile, and a person's own actions, are kept if newer.
  async loadQueue(recovering = false) {
    const q = this.queueCtl;
    if (q.inflight) {
      q.again = true;
      q.recover ||= recovering;
      return;
    }
    q.inflight = true;
    q.touched = new Map();
    if (recovering) this.recovering++;
    try {
      const trials = S.trialsOf(this.claims);
      const since = Date.now() - REPORTS_WINDOW_MS;
      const [open, resolved] = await Promise.all([
        Promise.all(trials.map((trial) => fetchAlerts({ trial }, this.token, this.abort.signal))),
        Promise.all(trials.map((trial) => fetchResolvedSince(trial, since, this.token, this.abort.signal))),
      ]);
      if (this.dead) return;
      const prev = this.queue;
      this.queue = applyAlertSnapshot(this.queue, open.flat(), q.touched);
      this.queue.error = null;
      // An alert first seen in a snapshot (missed while disconnected)
      // notifies like one seen live.
      for (const a of Object.values(this.queue.alerts)) if (prev.loaded) notifyAlert(a, prev.alerts[a.alert_id]);
      for (const id of Object.keys(prev.alerts)) if (!this.queue.alerts[id]) closeNotification(id);
      for (const a of resolved.flat()) if (reportDue(a)) this.reports.set(a.alert_id, a);
      for (const [id, a] of q.touched) this.noteReport(id, a);
      if (recovering) for (const r of this.home) this.snapshots.set(r, this.snapshotCount(r) + 1);
    } catch (e) {
      if (e.name === 'AbortError' || this.dead || this.failed(e)) return;
      this.queue = { ...this.queue, error: e.message, unreachable: e.status === 0 };
      clearTimeout(q.timer);
      q.timer = setTimeout(() => this.loadQueue(true), RETRY_MS);
    } finally {
      q.inflight = false;
      q.touched = null;
      if (recovering) this.recovering--;
      this.changed();
      if (q.again && !this.dead) {
        const again = q.recover;
        q.again = false;
        q.recover = false;
        this.loadQueue(again);
      }
    }
  }

  noteReport(id, a) {
    if (reportDue(a)) this.reports.set(id, a);
    else this.reports.delete(id);
  }

  onSnapshotNeeded(room) {
    if (this.home.includes(room)) this.loadQueue(true);
    for (const w of this.sites.values()) if (w.room === room) this.loadSite(w, true);
  }

  onEvent(room, d) {
    if (d.kind === 'score') {
      const w = this.sites.get(`${d.trial_id}/${d.site_id}`);
      if (w && w.room === room) {
        const r = applyScore(w.data, d);
        if (r.changed) {
          w.data = r.state;
          this.model = newerModel(this.model, w.data.model);
          this.flashRow(d);
          if (r.stale) this.loadSite(w);
        }
      }
    } else if (d.kind === 'alert') {
      this.applyAlert(d);
    }
    for (const f of this.eventListeners) f(room, d);
    this.changed();
  }

  applyAlert(a) {
    this.queueCtl.touched?.set(a.alert_id, a);
    const prev = this.queue.alerts[a.alert_id];
    const next = applyAlert(this.queue, a);
    if (next === this.queue) return; // older than what the queue holds
    this.queue = next;
    notifyAlert(a, prev);
    if (a.status === 'acknowledged' || a.status === 'resolved') closeNotification(a.alert_id);
    this.noteReport(a.alert_id, a);
  }

  // acted applies the alert a person's action returned at once, ahead of its
  // event, so the board answers the click without waiting for the bus.
  acted(a) {
    this.applyAlert(a);
    for (const f of this.eventListeners) f(null, a);
    this.changed();
  }

  flashRow(d) {
    const k = `${d.trial_id}/${d.site_id}/${d.patient_id}`;
    const n = (this.flashes.get(k) || 0) + 1;
    this.flashes.set(k, n);
    setTimeout(() => {
      if (this.flashes.get(k) === n) {
        this.flashes.delete(k);
        this.changed();
      }
    }, FLASH_MS);
  }

  // hooks are the test and debugging handles (window.__vigil), installed
  // only when a test asks for them (window.__vigilTest): the store holds
  // the token.
  hooks() {
    const client = this.client;
    return {
      dropConnection: (opts) => client.drop(opts),
      reconnect: () => client.reconnectNow(),
      get state() {
        return client.state;
      },
      get lastSubscribed() {
        return client.lastSubscribed;
      },
      get rooms() {
        return Object.fromEntries([...client.rooms].map(([k, v]) => [k, { ...v }]));
      },
      store: this,
    };
  }
}

// useStore re-renders the calling component after the store changes.
export function useStore(store) {
  const [, setVersion] = useState(0);
  useEffect(() => (store ? store.listen(setVersion) : undefined), [store]);
  return store;
}

// useSite watches a site for as long as the component is mounted.
export function useSite(store, ref) {
  useEffect(() => (store && ref ? store.watchSite(ref) : undefined), [store, ref?.key]);
  return ref ? store.site(ref.key) : null;
}
