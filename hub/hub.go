// Package hub owns the WebSocket side of Vigil (GET /ws): authenticating staff
// sessions, their room subscriptions with history recovery, and fan-out of bus
// events to them through bounded per-session queues. It imports auth (claims
// and room permissions), bus (the Broker it consumes) and metrics.
//
// The node subscribes to a room on the bus once, whatever the number of its
// sessions in the room; the bus calls dispatch once per event, which encodes
// the event frame once and offers the same bytes to every session without
// blocking. A session that cannot take them is closed 4008 and recovers from
// history when it reconnects.
//
// The protocol is DESIGN.md's, with additions a client may ignore: "ready"
// carries the token's "exp"; "subscribed" carries the bus "epoch", which the
// client sends back with "since" so that offsets from before a restart are
// not mistaken for current ones; a room dropped because a refreshed token no
// longer allows it is announced as {"type":"unsubscribed","reason":"forbidden"};
// and a bus failure on subscribe is {"type":"error","code":"unavailable"}.
package hub

import (
	"bytes"
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"vigil/auth"
	"vigil/bus"
	"vigil/metrics"
)

// TokenVerifier checks a bearer token; *auth.Verifier is one.
type TokenVerifier interface {
	Verify(token string) (*auth.Claims, error)
}

// Config configures a Hub. Zero durations and sizes take the defaults.
type Config struct {
	Verifier TokenVerifier
	// AllowedOrigins are host patterns ("board.example.org", "*.example.org",
	// or "https://board.example.org" to match the scheme too) of pages allowed
	// to open a session. "*" allows any origin. Empty allows only the request's
	// own host.
	AllowedOrigins []string
	// AuthTimeout bounds the wait for the auth frame (default 5s).
	AuthTimeout time.Duration
	// SendQueue is the number of frames a session may have waiting to be
	// written before it is closed as too slow (default 256).
	SendQueue int
	// PingInterval is the keep-alive period (default 25s, below the 30s idle
	// timeouts common in proxies).
	PingInterval time.Duration
	// WriteTimeout bounds each write and each pong wait (default 10s).
	WriteTimeout time.Duration
	// Logger gets session ids, subjects and rooms, never tokens or event data.
	Logger *slog.Logger
}

const (
	defaultAuthTimeout  = 5 * time.Second
	defaultSendQueue    = 256
	defaultPingInterval = 25 * time.Second
	defaultWriteTimeout = 10 * time.Second
	// readLimit bounds one client frame; client frames are small commands.
	readLimit = 64 << 10
	// brokerTimeout bounds a bus call made for a session.
	brokerTimeout = 10 * time.Second
)

// Close codes of DESIGN.md.
const (
	StatusUnauthorized = websocket.StatusCode(4001)
	StatusTooSlow      = websocket.StatusCode(4008)
	StatusExpired      = websocket.StatusCode(4009)
)

// Hub serves WebSocket sessions. Create it with New.
type Hub struct {
	broker bus.Broker
	cfg    Config
	log    *slog.Logger
	accept websocket.AcceptOptions

	// mu guards rooms. Dispatch only reads, and only long enough to load a
	// room's member slice, which is replaced, never modified, on join and
	// leave; fan-out then runs without the lock.
	mu    sync.RWMutex
	rooms map[string][]*subscription

	// stripes serialize the bus Subscribe and Unsubscribe of a room with its
	// membership changes, so that "first in subscribes, last out
	// unsubscribes" holds without holding mu over a network call.
	stripes [64]sync.Mutex
	seed    maphash.Seed

	sessMu   sync.Mutex
	sessions map[*session]struct{}
	closing  bool
	active   sync.WaitGroup
	// pinger pings every session once per PingInterval from one goroutine,
	// started with the first session and stopped by Shutdown, instead of a
	// timer per session.
	pinger   sync.Once
	stopPing chan struct{}
	fan      *fanout

	nextID atomic.Uint64
}

// New returns a Hub delivering the broker's events and installs its handler
// on the broker.
func New(b bus.Broker, cfg Config) *Hub {
	if cfg.Verifier == nil {
		panic("hub: Config.Verifier is required")
	}
	if cfg.AuthTimeout <= 0 {
		cfg.AuthTimeout = defaultAuthTimeout
	}
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = defaultSendQueue
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = defaultPingInterval
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Hub{
		broker:   b,
		cfg:      cfg,
		log:      cfg.Logger.With("component", "hub"),
		rooms:    make(map[string][]*subscription),
		seed:     maphash.MakeSeed(),
		sessions: make(map[*session]struct{}),
		stopPing: make(chan struct{}),
		fan:      newFanout(0, cfg.Logger.With("component", "hub")),
	}
	if slices.Contains(cfg.AllowedOrigins, "*") {
		// coder/websocket asks for InsecureSkipVerify rather than a "*"
		// pattern so that allowing every origin is explicit.
		h.accept.InsecureSkipVerify = true
	} else {
		h.accept.OriginPatterns = slices.Clone(cfg.AllowedOrigins)
	}
	b.SetHandler(h.dispatch)
	return h
}

// Sessions returns the number of open sessions.
func (h *Hub) Sessions() int {
	h.sessMu.Lock()
	defer h.sessMu.Unlock()
	return len(h.sessions)
}

// ServeHTTP upgrades GET /ws and serves the session until it ends. It takes
// the connection from the net/http server at once and serves it as ServeConn
// does.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "the connection cannot be upgraded", http.StatusInternalServerError)
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		h.log.Debug("hijack failed", "err", err)
		return
	}
	// net/http leaves its read and write deadlines on a hijacked connection.
	_ = conn.SetDeadline(time.Time{})
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		early = bytes.Clone(b)
	}
	h.ServeConn(PrefixConn(conn, early), r)
}

// ServeConn serves a connection its HTTP server has given up, whose request
// r asked for GET /ws. It answers the upgrade on conn (or refuses it with an
// HTTP error and closes conn) on the calling goroutine, then serves the
// session on a goroutine of its own, which closes conn when the session
// ends, and returns.
func (h *Hub) ServeConn(conn net.Conn, r *http.Request) {
	h.sessMu.Lock()
	if h.closing {
		h.sessMu.Unlock()
		refuse(conn, h.cfg.WriteTimeout, http.StatusServiceUnavailable, "shutting down")
		return
	}
	h.active.Add(1)
	h.sessMu.Unlock()

	s, token := h.upgrade(conn, r)
	if s == nil {
		h.active.Done()
		return
	}
	// A goroutine of its own, so that the handshake's stack and the HTTP
	// server's frames are not kept under the session's reads.
	go h.run(s, token)
}

// upgrade answers the upgrade and registers the session.
func (h *Hub) upgrade(conn net.Conn, r *http.Request) (*session, string) {
	fw := newFrameWriter(conn, h.cfg.WriteTimeout)
	hw := &handshakeWriter{conn: conn, fw: fw, timeout: h.cfg.WriteTimeout, header: make(http.Header)}
	ws, err := websocket.Accept(hw, r, &h.accept)
	if err != nil {
		// Accept has put the HTTP error (403 for a refused Origin) in hw.
		h.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		hw.finish()
		conn.Close()
		return nil, ""
	}
	ws.SetReadLimit(readLimit)
	s := newSession(h, ws, fw)
	if !h.register(s) {
		ws.Close(websocket.StatusGoingAway, "server shutting down")
		return nil, ""
	}
	return s, auth.BearerToken(r.Header.Get("Authorization"))
}

// run serves an accepted session until it ends.
func (h *Hub) run(s *session, token string) {
	defer h.active.Done()
	s.guard(func() bool { s.readLoop(token); return true })
	// The read side is finished (peer gone, or a close already under way);
	// make sure the writer stops too, then let go of the rooms.
	s.close(websocket.StatusNormalClosure, "")
	s.mu.Lock()
	writerDone := s.writerDone
	s.mu.Unlock()
	<-writerDone
	s.cleanup()
	h.unregister(s)
}

func (h *Hub) register(s *session) bool {
	h.sessMu.Lock()
	defer h.sessMu.Unlock()
	if h.closing {
		return false
	}
	h.sessions[s] = struct{}{}
	metrics.HubSessions.Inc()
	h.pinger.Do(func() { go h.pingLoop() })
	return true
}

// pingSlots spreads the pings of PingInterval over this many ticks, so that
// thousands of sessions are not pinged at the same instant.
const pingSlots = 25

// pingLoop pings each session once per PingInterval: session n in tick n
// modulo pingSlots.
func (h *Hub) pingLoop() {
	t := time.NewTicker(h.cfg.PingInterval / pingSlots)
	defer t.Stop()
	var due []*session
	for tick := uint64(0); ; tick++ {
		select {
		case <-h.stopPing:
			return
		case <-t.C:
		}
		h.sessMu.Lock()
		for s := range h.sessions {
			if s.id%pingSlots == tick%pingSlots {
				due = append(due, s)
			}
		}
		h.sessMu.Unlock()
		for _, s := range due {
			s.ping()
		}
		clear(due)
		due = due[:0]
	}
}

func (h *Hub) unregister(s *session) {
	h.sessMu.Lock()
	defer h.sessMu.Unlock()
	if _, ok := h.sessions[s]; ok {
		delete(h.sessions, s)
		metrics.HubSessions.Dec()
	}
}

// Shutdown closes every session with StatusGoingAway and waits for them to
// end; net/http's Shutdown does not know about hijacked connections. Later
// upgrade requests get 503. When ctx ends first it returns ctx.Err(); the
// sessions still closing finish on their own within the write and
// close-handshake timeouts.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.sessMu.Lock()
	if !h.closing {
		close(h.stopPing)
		h.fan.stop()
	}
	h.closing = true
	open := make([]*session, 0, len(h.sessions))
	for s := range h.sessions {
		open = append(open, s)
	}
	h.sessMu.Unlock()

	for _, s := range open {
		s.close(websocket.StatusGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() {
		h.active.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reset closes every session (of room, or all when room is empty) with 1012
// (service restart) when the bus's offsets restarted under a new epoch or
// this node lost events history no longer holds: each client reconnects, subscribes
// with its old since and epoch, is told recovered: false, and takes a fresh
// snapshot. Keeping the sessions would let new events under small offsets
// look like ones the clients already have.
func (h *Hub) reset(room string) {
	var open []*session
	if room == "" {
		h.sessMu.Lock()
		for s := range h.sessions {
			open = append(open, s)
		}
		h.sessMu.Unlock()
	} else {
		h.mu.RLock()
		for _, sub := range h.rooms[room] {
			open = append(open, sub.s)
		}
		h.mu.RUnlock()
	}
	h.log.Warn("bus lost events: closing sessions so that they recover", "room", room, "sessions", len(open))
	for _, s := range open {
		s.close(websocket.StatusServiceRestart, "event stream reset: reconnect and recover")
	}
}

// dispatch is the bus handler. It runs on the publisher's path (for the
// in-process bus, under the room's lock; for Redis, on its one delivery
// goroutine), so it only encodes the event's frame, once, and hands it to
// the fan-out workers; they never block either: a session whose queue is
// full is closed instead of waited for.
func (h *Hub) dispatch(ev bus.Event) {
	if ev.IsReset() {
		h.reset(ev.Room)
		return
	}
	h.mu.RLock()
	members := h.rooms[ev.Room]
	h.mu.RUnlock()
	if len(members) == 0 {
		return
	}
	frame, err := eventFrame(ev)
	if err != nil {
		h.log.Error("dropping event", "room", ev.Room, "offset", ev.Offset, "err", err)
		return
	}
	h.fan.offer(ev.Offset, frame, members)
}

func (h *Hub) stripe(room string) *sync.Mutex {
	return &h.stripes[maphash.String(h.seed, room)%uint64(len(h.stripes))]
}

// join adds sub to its room, subscribing the node on the bus if it is the
// room's first member. Events start reaching sub (as pending, while it is
// joining) as soon as join returns.
func (h *Hub) join(ctx context.Context, sub *subscription) error {
	l := h.stripe(sub.room)
	l.Lock()
	defer l.Unlock()

	h.mu.Lock()
	members := h.rooms[sub.room]
	// Appending in place is safe for readers of the old slice (dispatch, the
	// fan-out workers): they never look past its length, and elements are
	// never changed in place (removeMember makes a new slice). Copying here
	// would make filling a room of n sessions cost n²/2.
	h.rooms[sub.room] = append(members, sub)
	if len(members) == 0 {
		metrics.HubRooms.Inc()
	}
	h.mu.Unlock()
	if len(members) > 0 {
		return nil
	}
	if err := h.broker.Subscribe(ctx, sub.room); err != nil {
		h.removeMember(sub)
		return err
	}
	return nil
}

// leave removes sub from its room, unsubscribing the node on the bus if it
// was the last member.
func (h *Hub) leave(sub *subscription) {
	l := h.stripe(sub.room)
	l.Lock()
	defer l.Unlock()
	if !h.removeMember(sub) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	defer cancel()
	if err := h.broker.Unsubscribe(ctx, sub.room); err != nil && !errors.Is(err, bus.ErrClosed) {
		h.log.Warn("bus unsubscribe failed", "room", sub.room, "err", err)
	}
}

// removeMember reports whether the room became empty.
func (h *Hub) removeMember(sub *subscription) (empty bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	members := h.rooms[sub.room]
	i := slices.Index(members, sub)
	if i < 0 {
		return false
	}
	if len(members) == 1 {
		delete(h.rooms, sub.room)
		metrics.HubRooms.Dec()
		return true
	}
	// A fresh slice: dispatch may be iterating the old one.
	h.rooms[sub.room] = slices.Delete(slices.Clone(members), i, i+1)
	return false
}
