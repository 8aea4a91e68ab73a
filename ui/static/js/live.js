// LiveClient keeps one WebSocket to the hub (DESIGN.md "WebSocket protocol"):
// it authenticates, subscribes to rooms, tracks each room's last offset and
// epoch, and after a drop reconnects with exponential backoff and full jitter,
// asking the hub to replay what it missed. When the hub cannot (recovered:
// false), or the offsets show a gap, it asks its owner for a fresh snapshot.
// It knows nothing of the UI.

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const BACKOFF_FLOOR_MS = 50;
const READY_TIMEOUT_MS = 10_000;
// The heartbeat: a ping every PING_MS, and a socket that has carried nothing
// for SILENT_MS is taken for dead (a browser never sees the hub's own pings,
// and a connection cut without a FIN can look open for minutes).
const PING_MS = 20_000;
const SILENT_MS = 45_000;

// Close codes of the hub.
export const CLOSE_AUTH = 4001; // invalid token or no auth in time
export const CLOSE_SLOW = 4008; // could not keep up: reconnect and recover
export const CLOSE_EXPIRED = 4009; // token expired
export const CLOSE_GOING_AWAY = 1001; // node draining or stopping: another takes over
export const CLOSE_RESTART = 1012; // event stream reset: reconnect and recover

// Connection states shown on the board.
export const STATE = {
  CONNECTING: 'connecting',
  LIVE: 'live',
  RECONNECTING: 'reconnecting',
  OFFLINE: 'offline',
};

// backoffDelay is exponential backoff with full jitter: a uniformly random
// wait up to the attempt's ceiling (0.5 s doubling to 10 s), so that when a
// hub restarts, its thousands of boards do not all come back at once.
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
  return Math.max(BACKOFF_FLOOR_MS, Math.round(random() * ceiling));
}

export class LiveClient {
  /**
   * @param {object} o
   * @param {string} o.url            ws(s)://host/ws
   * @param {string} o.token          staff JWT
   * @param {(state:string, info:object)=>void} o.onState
   * @param {(room:string, data:object, offset:number)=>void} o.onEvent
   * @param {(room:string, why:string)=>void} o.onSnapshotNeeded
   * @param {(msg:object)=>void} o.onServerError   {"type":"error",…} frames
   * @param {(code:number, reason:string)=>void} o.onAuthClosed  4001 / 4009
   */
  constructor(o) {
    this.url = o.url;
    this.token = o.token;
    this.cb = o;
    this.rooms = new Map(); // room -> {offset, epoch, subscribed, forbidden}
    this.ws = null;
    this.ready = false;
    this.attempt = 0;
    this.timer = null;
    this.readyTimer = null;
    this.stopped = true;
    this.held = false;
    this.everLive = false;
    this.state = null;
    this.lastSubscribed = null;
    this.onOnline = () => this.reconnectNow();
    // Offline: the socket cannot be trusted; close it, and reconnect when
    // the browser is back online.
    this.onOffline = () => {
      clearTimeout(this.timer);
      if (this.ws) {
        const ws = this.ws;
        this.ws = null;
        this.ready = false;
        for (const r of this.rooms.values()) r.subscribed = false;
        ws.close(4000, 'offline');
      }
      this.setState(STATE.OFFLINE, { reason: 'offline' });
    };
    this.heartbeat = null;
    this.lastHeard = 0;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    addEventListener('online', this.onOnline);
    addEventListener('offline', this.onOffline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearInterval(this.heartbeat);
    removeEventListener('online', this.onOnline);
    removeEventListener('offline', this.onOffline);
    clearTimeout(this.timer);
    clearTimeout(this.readyTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, 'bye');
    }
  }

  // setRooms makes the subscriptions exactly these rooms.
  setRooms(rooms) {
    const want = new Set(rooms);
    for (const room of [...this.rooms.keys()]) {
      if (!want.has(room)) {
        this.rooms.delete(room);
        if (this.ready) this.send({ type: 'unsubscribe', room });
      }
    }
    for (const room of want) {
      if (!this.rooms.has(room)) {
        this.rooms.set(room, { offset: null, epoch: null, subscribed: false, forbidden: false });
        if (this.ready) this.subscribe(room);
      }
    }
  }

  // drop closes the socket as a network failure would (test and debug hook).
  // With hold, it stays down until reconnectNow.
  drop({ hold = false } = {}) {
    this.held = hold;
    if (hold) clearTimeout(this.timer);
    if (this.ws) this.ws.close(4000, 'dropped by client');
  }

  // refresh hands the hub a fresh token of the same person (DESIGN.md:
  // {"type": "refresh"}), so the session outlives the old token's expiry;
  // the next connection authenticates with it.
  refresh(token, exp) {
    this.token = token;
    this.tokenExp = exp;
    if (this.ready) this.send({ type: 'refresh', token });
  }

  reconnectNow() {
    this.held = false;
    if (this.stopped || this.ws) return;
    clearTimeout(this.timer);
    this.attempt = 0;
    this.connect();
  }

  setState(state, info = {}) {
    this.state = state;
    this.cb.onState?.(state, info);
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  subscribe(room) {
    const r = this.rooms.get(room);
    const msg = { type: 'subscribe', room };
    if (r.offset != null) msg.since = r.offset;
    if (r.epoch != null) msg.epoch = r.epoch;
    r.subscribed = false;
    this.send(msg);
  }

  connect() {
    if (this.stopped) return;
    if (typeof navigator !== 'undefined' && navigator.onLine === false) {
      this.setState(STATE.OFFLINE, { reason: 'offline' });
      return; // the "online" event reconnects
    }
    this.setState(this.everLive ? STATE.RECONNECTING : STATE.CONNECTING, { attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.scheduleReconnect('cannot_open');
      return;
    }
    this.ws = ws;
    this.ready = false;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: 'auth', token: this.token }));
      this.readyTimer = setTimeout(() => {
        if (this.ws === ws && !this.ready) ws.close(4000, 'no ready in time');
      }, READY_TIMEOUT_MS);
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastHeard = Date.now();
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.handle(msg);
    };
    ws.onclose = (ev) => {
      clearTimeout(this.readyTimer);
      clearInterval(this.heartbeat);
      if (this.ws !== ws) return; // replaced or stopped
      this.ws = null;
      this.ready = false;
      for (const r of this.rooms.values()) r.subscribed = false;
      if (this.stopped) return;
      // A close for an expired token after a fresh one was handed over (it
      // crossed the refresh) is not the end: reconnect with the new token.
      const fresh = this.tokenExp && this.tokenExp * 1000 > Date.now();
      if (ev.code === CLOSE_AUTH || (ev.code === CLOSE_EXPIRED && !fresh)) {
        this.stop();
        this.setState(STATE.OFFLINE, { reason: 'expired', code: ev.code });
        this.cb.onAuthClosed?.(ev.code, ev.reason);
        return;
      }
      // Recover at once: the node asked for it (a slow session, a reset) or
      // is draining, and another node (or this one restarted) takes over.
      if (ev.code === CLOSE_SLOW || ev.code === CLOSE_GOING_AWAY || ev.code === CLOSE_RESTART) this.attempt = 0;
      this.scheduleReconnect('closed', ev.code);
    };
  }

  scheduleReconnect(reason, code) {
    clearTimeout(this.timer);
    this.everLive = true;
    this.setState(STATE.RECONNECTING, { reason, code, held: this.held });
    if (this.held) return;
    const delay = backoffDelay(this.attempt++);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  handle(msg) {
    switch (msg.type) {
      case 'ready':
        clearTimeout(this.readyTimer);
        this.ready = true;
        this.startHeartbeat();
        this.user = { sub: msg.sub, role: msg.role };
        if (this.rooms.size === 0) this.markLive();
        for (const room of this.rooms.keys()) this.subscribe(room);
        break;
      case 'subscribed': {
        const r = this.rooms.get(msg.room);
        if (!r) break;
        this.lastSubscribed = { ...msg, at: Date.now() };
        const epochChanged = msg.epoch != null && r.epoch != null && msg.epoch !== r.epoch;
        if (msg.epoch != null) r.epoch = msg.epoch;
        const latest = Number(msg.offset) || 0;
        if (!msg.recovered || r.offset == null || epochChanged || latest < r.offset) {
          // Nothing to replay from: start from the hub's latest offset and
          // take a fresh snapshot.
          r.offset = latest;
          this.cb.onSnapshotNeeded?.(msg.room, 'not recovered');
        }
        r.subscribed = true;
        if ([...this.rooms.values()].every((x) => x.subscribed || x.forbidden)) this.markLive();
        break;
      }
      case 'event': {
        const r = this.rooms.get(msg.room);
        if (!r) break;
        const offset = Number(msg.offset);
        if (r.offset != null && Number.isFinite(offset)) {
          if (offset <= r.offset) break; // already seen (replayed twice)
          if (offset > r.offset + 1) this.cb.onSnapshotNeeded?.(msg.room, 'gap');
        }
        if (Number.isFinite(offset)) r.offset = offset;
        if (msg.data && typeof msg.data === 'object') this.cb.onEvent?.(msg.room, msg.data, offset);
        break;
      }
      case 'unsubscribed': {
        // The hub dropped a room (a refreshed token no longer allows it).
        const r = this.rooms.get(msg.room);
        if (r && msg.reason === 'forbidden') {
          r.forbidden = true;
          r.subscribed = false;
          this.cb.onServerError?.({ type: 'error', code: 'forbidden', room: msg.room });
        }
        break;
      }
      case 'error': {
        const r = msg.room && this.rooms.get(msg.room);
        if (r && msg.code === 'forbidden') r.forbidden = true;
        if (r && msg.code === 'unavailable') {
          // The bus could not subscribe or replay: ask again shortly.
          const ws = this.ws;
          setTimeout(() => {
            if (this.ws === ws && this.ready && this.rooms.get(msg.room) === r) this.subscribe(msg.room);
          }, backoffDelay(1));
        }
        this.cb.onServerError?.(msg);
        if (r && [...this.rooms.values()].every((x) => x.subscribed || x.forbidden)) this.markLive();
        break;
      }
      default:
        break; // pong and future message types
    }
  }

  startHeartbeat() {
    const ws = this.ws;
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      if (this.ws !== ws) return;
      if (Date.now() - this.lastHeard > SILENT_MS) {
        ws.close(4000, 'silent');
        return;
      }
      this.send({ type: 'ping' });
    }, PING_MS);
  }

  markLive() {
    this.attempt = 0;
    this.everLive = true;
    this.setState(STATE.LIVE);
  }
}
