// BoardStore is the board's live data for one signed-in tab: one LiveClient
// (one WebSocket), the alert queue of everything the token may see, and the
// patients of each site a view is watching. Views read it and subscribe;
// changes are announced at most once per animation frame, so a burst of
// events costs one render, not one per event.
//
// Rooms: the "home" rooms (a PI's or CRA's site rooms; the trial rooms of
// safety, on-call and admin) carry every alert the token may see, so the
// queue and browser notifications work from any view; a watched site adds
// its room for scores.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, fetchAlerts, fetchPatients, fetchProtocol } from './api.js';
import { LiveClient, STATE } from './live.js';
import { notifyAlert } from './notifications.js';
import { applyAlert, applyAlertSnapshot, applyPatients, applyScore, emptyBoard, emptyQueue, newerModel } from './state.js';
import * as S from './session.js';

const FLASH_MS = 2500;
// MIN_FLUSH_MS spaces renders out under a stream of events: a board with 500
// rows re-lays its table on every render, and ten a second is as fast as
// anyone reads.
const MIN_FLUSH_MS = 100;
const RETRY_MS = 5000;

export const CONN = { ...STATE, RECOVERING: 'recovering' };

export function siteRoom(trial, site) {
  return `site:${trial}:${site}`;
}

export function homeRooms(claims) {
  if (S.isTrialWide(claims)) return S.trialsOf(claims).map((t) => `trial:${t}`);
  return S.sitesOf(claims).map((s) => siteRoom(s.trial, s.site));
}

function wsURL() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

export class BoardStore {
  constructor({ token, claims, onExpired }) {
    this.token = token;
    this.claims = claims;
    this.onExpired = onExpired;
    this.conn = { state: STATE.CONNECTING };
    this.queue = emptyQueue();
    this.queueCtl = { inflight: false, again: false, touched: null, timer: null };
    this.sites = new Map(); // "T/S" -> watched site
    this.flashes = new Map(); // "T/S/P" -> n
    this.model = null;
    this.problem = null; // {kind: expired|forbidden|error, message}
    this.recovering = 0;
    this.version = 0;
    this.listeners = new Set();
    this.eventListeners = new Set();
    this.raf = 0;
    this.dead = false;
    this.abort = new AbortController();
    this.home = homeRooms(claims);
    this.trialSites = [];
    this.onNewToken = null;
    this.client = new LiveClient({
      url: wsURL(),
      token,
      onState: (state, info) => {
        this.conn = { state, ...info };
        this.changed();
      },
      onEvent: (room, data) => this.onEvent(room, data),
      onSnapshotNeeded: (room) => this.onSnapshotNeeded(room),
      onServerError: (msg) => {
        if (msg.code === 'forbidden') this.setProblem({ kind: 'forbidden', key: 'problem.forbidden', room: msg.room });
        else if (msg.code !== 'invalid_token') this.setProblem({ kind: 'error', key: 'problem.server', detail: msg.message || msg.code, room: msg.room });
      },
      onAuthClosed: () => this.expired(),
    });
  }

  start() {
    this.client.setRooms(this.rooms());
    this.client.start();
    this.loadQueue();
    this.loadTrialSites();
  }

  // loadTrialSites lists, for trial-wide roles, the sites their trials'
  // protocols name, for the site switcher.
  async loadTrialSites() {
    if (!S.isTrialWide(this.claims)) return;
    const found = [];
    await Promise.all(
      S.trialsOf(this.claims).map((trial) =>
        fetchProtocol(trial, this.token, this.abort.signal)
          .then((p) => {
            for (const s of Array.isArray(p?.sites) ? p.sites : []) found.push(S.siteRef(trial, String(s)));
          })
          .catch(() => {}),
      ),
    );
    if (this.dead) return;
    this.trialSites = found;
    this.changed();
  }

  stop() {
    this.dead = true;
    this.abort.abort();
    this.client.stop();
    cancelAnimationFrame(this.raf);
    clearTimeout(this.raf);
    clearTimeout(this.queueCtl.timer);
    for (const w of this.sites.values()) clearTimeout(w.retry);
  }

  // listen calls f after changes, at most once per animation frame.
  listen(f) {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  // onEvents calls f(room, data) for every live event, at once.
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
    const frame = () => requestAnimationFrame(flush);
    const wait = MIN_FLUSH_MS - (performance.now() - (this.lastFlush || 0));
    if (wait > 0) this.raf = setTimeout(frame, wait);
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

  setProblem(p) {
    this.problem = p;
    this.changed();
  }

  expired() {
    this.client.stop();
    this.conn = { state: STATE.OFFLINE, reason: 'session expired' };
    this.setProblem({ kind: 'expired', key: 'problem.expired' });
    this.onExpired?.();
  }

  // setToken takes a fresh token of the same person (step-up sign-in) for
  // the REST calls and the open WebSocket.
  setToken(token, claims) {
    this.token = token;
    this.claims = claims;
    this.client.refresh(token);
  }

  // watchSite subscribes to a site's room and loads its patients; the
  // returned function releases it.
  watchSite(ref) {
    let w = this.sites.get(ref.key);
    if (!w) {
      w = { ref, room: siteRoom(ref.trial, ref.site), users: 0, data: emptyBoard(), inflight: false, again: false, problem: null, retry: null };
      this.sites.set(ref.key, w);
      this.client.setRooms(this.rooms());
      this.loadSite(w);
    }
    w.users++;
    return () => {
      if (--w.users > 0) return;
      clearTimeout(w.retry);
      this.sites.delete(ref.key);
      if (!this.dead) this.client.setRooms(this.rooms());
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
      return;
    }
    w.inflight = true;
    if (recovering) this.recovering++;
    try {
      const patients = await fetchPatients(w.ref, this.token, this.abort.signal);
      if (this.dead || this.sites.get(w.ref.key) !== w) return;
      w.data = applyPatients(w.data, patients);
      this.model = newerModel(this.model, w.data.model);
      w.problem = null;
    } catch (e) {
      if (e.name === 'AbortError' || this.dead || this.failed(e)) return;
      if (e.status === 403) {
        w.problem = { kind: 'forbidden', key: 'problem.forbiddenSite', site: w.ref.key };
      } else {
        w.problem = { kind: 'error', key: 'problem.loadSite', site: w.ref.key, detail: e.message };
        clearTimeout(w.retry);
        w.retry = setTimeout(() => this.loadSite(w), RETRY_MS);
      }
    } finally {
      w.inflight = false;
      if (recovering) this.recovering--;
      this.changed();
      if (w.again && !this.dead) {
        w.again = false;
        this.loadSite(w);
      }
    }
  }

  // loadQueue replaces the alert queue with every unresolved alert the token
  // may see; alert events that arrive meanwhile are kept if newer.
  async loadQueue(recovering = false) {
    const q = this.queueCtl;
    if (q.inflight) {
      q.again = true;
      return;
    }
    q.inflight = true;
    q.touched = new Map();
    if (recovering) this.recovering++;
    try {
      const lists = await Promise.all(S.trialsOf(this.claims).map((trial) => fetchAlerts({ trial }, this.token, this.abort.signal)));
      if (this.dead) return;
      this.queue = applyAlertSnapshot(this.queue, lists.flat(), q.touched);
      this.queue.error = null;
    } catch (e) {
      if (e.name === 'AbortError' || this.dead || this.failed(e)) return;
      this.queue = { ...this.queue, error: e.message };
      clearTimeout(q.timer);
      q.timer = setTimeout(() => this.loadQueue(), RETRY_MS);
    } finally {
      q.inflight = false;
      q.touched = null;
      if (recovering) this.recovering--;
      this.changed();
      if (q.again && !this.dead) {
        q.again = false;
        this.loadQueue();
      }
    }
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
      notifyAlert(d, this.queue.alerts[d.alert_id]);
      this.queueCtl.touched?.set(d.alert_id, d);
      this.queue = applyAlert(this.queue, d);
    }
    for (const f of this.eventListeners) f(room, d);
    this.changed();
  }

  // acted applies the alert a person's action returned at once, ahead of its
  // event, so the board answers the click without waiting for the bus.
  acted(a) {
    this.queue = applyAlert(this.queue, a);
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

  // test and debug hooks (window.__vigil)
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
