// useSiteFeed joins the live connection and the REST snapshots of one site
// into the board's data: a LiveClient per token (one WebSocket across site
// changes), the site's room, snapshots when the hub cannot replay, vitals
// from score events (which carry the vitals), and the row flashes.

import { useEffect, useRef, useState } from 'preact/hooks';
import { fetchAlerts, fetchPatients } from './api.js';
import { LiveClient, STATE } from './live.js';
import { notifyAlert } from './notifications.js';
import { applyAlert, applyScore, applySnapshot, emptyBoard } from './state.js';

const FLASH_MS = 2500;
const VITALS_MIN_INTERVAL_MS = 1000;
const RETRY_MS = 5000;

export function roomOf(ref) {
  return `site:${ref.trial}:${ref.site}`;
}

function wsURL() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

export function useSiteFeed(token, site) {
  const [conn, setConn] = useState({ state: STATE.CONNECTING });
  const [board, setBoard] = useState(emptyBoard);
  const [flashes, setFlashes] = useState({});
  const [problem, setProblem] = useState(null); // {kind: expired|forbidden|error, message}
  const clientRef = useRef(null);
  const ctxRef = useRef(null);

  // One connection per token.
  useEffect(() => {
    const client = new LiveClient({
      url: wsURL(),
      token,
      onState: (state, info) => setConn({ state, ...info }),
      onEvent: (room, data) => ctxRef.current?.onEvent(room, data),
      onSnapshotNeeded: (room) => ctxRef.current?.room === room && ctxRef.current.snapshot(true),
      onServerError: (msg) => {
        const what = msg.room ? ` (${msg.room})` : '';
        setProblem({
          kind: msg.code === 'forbidden' ? 'forbidden' : 'error',
          message:
            msg.code === 'forbidden'
              ? `Your token does not give access to this site${what}.`
              : `Server: ${msg.message || msg.detail || msg.code || 'error'}${what}`,
        });
      },
      onAuthClosed: () => setProblem({ kind: 'expired', message: 'Session expired, sign in again.' }),
    });
    clientRef.current = client;
    client.start();
    window.__vigil = {
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
    };
    return () => {
      client.stop();
      clientRef.current = null;
      delete window.__vigil;
    };
  }, [token]);

  // One context per site: stale replies of a previous site are ignored.
  useEffect(() => {
    setBoard(emptyBoard());
    setFlashes({});
    setProblem((p) => (p && p.kind === 'expired' ? p : null));
    if (!site) {
      clientRef.current?.setRooms([]);
      return undefined;
    }
    const abort = new AbortController();
    const ctx = {
      room: roomOf(site),
      data: emptyBoard(),
      dead: false,
      inflight: false,
      queued: null, // 'full' | 'patients'
      touched: null, // alert events applied during a full snapshot
      vitalsTimer: null,
      retryTimer: null,
      lastPatientsFetch: 0,
    };
    const flashTimers = new Set();
    const commit = (next) => {
      ctx.data = next;
      setBoard(next);
    };

    ctx.snapshot = async (full) => {
      if (ctx.dead) return;
      if (ctx.inflight) {
        ctx.queued = full || ctx.queued === 'full' ? 'full' : 'patients';
        return;
      }
      ctx.inflight = true;
      ctx.touched = full ? new Map() : null;
      ctx.lastPatientsFetch = Date.now();
      try {
        const [patients, alerts] = await Promise.all([
          fetchPatients(site, token, abort.signal),
          full ? fetchAlerts(site, token, abort.signal) : undefined,
        ]);
        if (ctx.dead) return;
        commit(applySnapshot(ctx.data, { patients, alerts, touched: ctx.touched }));
        setProblem((p) => (p && p.kind === 'error' ? null : p));
      } catch (e) {
        if (ctx.dead || e.name === 'AbortError') return;
        if (e.status === 401) {
          clientRef.current?.stop();
          setConn({ state: STATE.OFFLINE, reason: 'session expired' });
          setProblem({ kind: 'expired', message: 'Session expired, sign in again.' });
          return;
        }
        if (e.status === 403) {
          setProblem({ kind: 'forbidden', message: `Your token does not give access to site ${site.key}.` });
          return;
        }
        setProblem({ kind: 'error', message: `Could not load ${site.key}: ${e.message}. Retrying…` });
        clearTimeout(ctx.retryTimer);
        ctx.retryTimer = setTimeout(() => ctx.snapshot(true), RETRY_MS);
      } finally {
        ctx.inflight = false;
        ctx.touched = null;
        if (ctx.queued && !ctx.dead) {
          const q = ctx.queued;
          ctx.queued = null;
          ctx.snapshot(q === 'full');
        }
      }
    };

    // A score event without vitals (a server older than this board) leaves the
    // row's vitals behind: fetch them, coalesced, at most once a second.
    const refreshVitals = () => {
      if (ctx.vitalsTimer) return;
      const wait = Math.max(150, VITALS_MIN_INTERVAL_MS - (Date.now() - ctx.lastPatientsFetch));
      ctx.vitalsTimer = setTimeout(() => {
        ctx.vitalsTimer = null;
        ctx.snapshot(false);
      }, wait);
    };

    const flash = (patientId) => {
      setFlashes((f) => ({ ...f, [patientId]: (f[patientId] || 0) + 1 }));
      const t = setTimeout(() => {
        flashTimers.delete(t);
        setFlashes((f) => {
          const n = { ...f };
          delete n[patientId];
          return n;
        });
      }, FLASH_MS);
      flashTimers.add(t);
    };

    ctx.onEvent = (room, d) => {
      if (room !== ctx.room || ctx.dead) return;
      if (d.kind === 'score') {
        const r = applyScore(ctx.data, d);
        if (!r.changed) return;
        commit(r.state);
        flash(d.patient_id);
        if (r.stale) refreshVitals();
      } else if (d.kind === 'alert') {
        notifyAlert(d, ctx.data.alerts[d.alert_id]);
        ctx.touched?.set(d.alert_id, d);
        commit(applyAlert(ctx.data, d));
      }
    };

    ctxRef.current = ctx;
    clientRef.current?.setRooms([ctx.room]);
    // The snapshot follows the hub's "subscribed" reply; take one now as well
    // so the table fills even while the WebSocket is still connecting.
    ctx.snapshot(true);
    return () => {
      ctx.dead = true;
      abort.abort();
      clearTimeout(ctx.vitalsTimer);
      clearTimeout(ctx.retryTimer);
      for (const t of flashTimers) clearTimeout(t);
      if (ctxRef.current === ctx) ctxRef.current = null;
    };
  }, [token, site?.key]);

  return { conn, board, flashes, problem };
}
