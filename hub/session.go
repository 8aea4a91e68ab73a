package hub

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"vigil/auth"
	"vigil/bus"
	"vigil/metrics"
)

// session is one WebSocket connection. Two goroutines serve it: the read
// goroutine (the ServeHTTP call) runs the protocol, and writeLoop is the only
// writer of data frames. Everything reaches the client through send, so the
// client sees frames in the order they were queued.
type session struct {
	h    *Hub
	id   uint64
	conn *websocket.Conn
	log  *slog.Logger

	send       chan []byte
	done       chan struct{} // closed when the session starts closing
	writerDone chan struct{}
	// ctx bounds the bus calls made for the session; cancelled with done.
	ctx     context.Context
	cancel  context.CancelFunc
	pinging atomic.Bool

	mu          sync.Mutex
	closing     bool
	closeCode   websocket.StatusCode
	closeReason string

	// Owned by the read goroutine.
	claims *auth.Claims
	expiry *time.Timer
	subs   map[string]*subscription
}

// subscription is a session's membership of a room. The hub's room lists
// point at it, so dispatch reaches it without a map lookup per session.
type subscription struct {
	s    *session
	room string

	// Guarded by s.mu.
	//
	// While joining, live events wait in pending instead of the send queue
	// until the history replay has been queued; gone marks a subscription
	// dispatch may still see in a stale room list after it was dropped.
	joining bool
	gone    bool
	pending []pendingEvent
	// last is the offset of the newest event queued for the room; from is the
	// offset after which everything has been queued in this session, which
	// answers a repeated subscribe's since.
	last uint64
	from uint64
}

type pendingEvent struct {
	offset uint64
	frame  []byte
}

func newSession(h *Hub, conn *websocket.Conn) *session {
	id := h.nextID.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	return &session{
		h:          h,
		id:         id,
		conn:       conn,
		log:        h.log.With("session", id),
		send:       make(chan []byte, h.cfg.SendQueue),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		ctx:        ctx,
		cancel:     cancel,
		subs:       make(map[string]*subscription),
	}
}

// close starts closing the session with code; the first call wins.
func (s *session) close(code websocket.StatusCode, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked(code, reason)
}

func (s *session) closeLocked(code websocket.StatusCode, reason string) {
	if s.closing {
		return
	}
	s.closing = true
	s.closeCode, s.closeReason = code, reason
	close(s.done)
	s.cancel()
}

func (s *session) closeSlowLocked() {
	if s.closing {
		return
	}
	s.closeLocked(StatusTooSlow, "send queue full")
	metrics.HubSlowClosed.Inc()
	s.log.Warn("closing slow session", "queue", cap(s.send))
}

// enqueue queues a frame from the read goroutine, waiting for room: the
// reader may wait (it only delays this client's own commands), while dispatch
// may not.
func (s *session) enqueue(frame []byte) bool {
	select {
	case s.send <- frame:
		return true
	case <-s.done:
		return false
	}
}

func (s *session) reply(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encoding reply", "err", err)
		return false
	}
	return s.enqueue(b)
}

func (s *session) badRequest(msg string) {
	s.reply(errorMsg{Type: "error", Code: codeBadRequest, Message: msg})
}

// deliver offers a live event to the subscription. It runs on the bus's
// delivery path and never blocks.
func (sub *subscription) deliver(offset uint64, frame []byte) bool {
	s := sub.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || sub.gone {
		return false
	}
	if sub.joining {
		if len(sub.pending) >= cap(s.send) {
			s.closeSlowLocked()
			return false
		}
		sub.pending = append(sub.pending, pendingEvent{offset, frame})
		return false
	}
	if offset <= sub.last {
		// Already sent: a bus may redeliver after a reconnect.
		return false
	}
	select {
	case s.send <- frame:
		sub.last = offset
		return true
	default:
		s.closeSlowLocked()
		return false
	}
}

func (s *session) writeLoop() {
	defer close(s.writerDone)
	ticker := time.NewTicker(s.h.cfg.PingInterval)
	defer ticker.Stop()
	for {
		select {
		case <-s.done:
			s.finish()
			return
		case frame := <-s.send:
			// select picks among ready cases at random; a closing session
			// must not keep writing its backlog.
			select {
			case <-s.done:
				s.finish()
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.h.cfg.WriteTimeout)
			err := s.conn.Write(ctx, websocket.MessageText, frame)
			cancel()
			if err != nil {
				s.log.Debug("write failed", "err", err)
				s.close(websocket.StatusGoingAway, "write failed")
			}
		case <-ticker.C:
			s.ping()
		}
	}
}

// finish sends the close frame. A session closed 4008 reaches this only once
// its pending write completes (or times out), so the close frame is not
// stuck behind a half-written message.
func (s *session) finish() {
	s.mu.Lock()
	code, reason := s.closeCode, s.closeReason
	s.mu.Unlock()
	s.conn.Close(code, reason)
}

// ping runs in its own goroutine because Ping waits for the pong, and the
// writer must keep draining the queue meanwhile.
func (s *session) ping() {
	if !s.pinging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.pinging.Store(false)
		// Not s.ctx: cancelling a context during a write tears the connection
		// down without a close frame.
		ctx, cancel := context.WithTimeout(context.Background(), s.h.cfg.WriteTimeout)
		defer cancel()
		if err := s.conn.Ping(ctx); err != nil {
			s.log.Debug("ping failed", "err", err)
			s.close(websocket.StatusPolicyViolation, "ping timeout")
		}
	}()
}

// readLoop authenticates the session and serves its commands until the
// connection ends. A bearer token from the upgrade request stands in for the
// auth frame.
func (s *session) readLoop(headerToken string) {
	var claims *auth.Claims
	if headerToken != "" {
		c, err := s.verify(headerToken)
		if err != nil {
			s.unauthorized("invalid token", err)
			return
		}
		claims = c
	} else {
		timer := time.AfterFunc(s.h.cfg.AuthTimeout, func() {
			s.unauthorized("authentication timeout", nil)
		})
		_, data, err := s.conn.Read(context.Background())
		timer.Stop()
		if err != nil || s.isClosing() {
			return
		}
		var m clientMsg
		if err := json.Unmarshal(data, &m); err != nil || m.Type != "auth" {
			s.unauthorized("authentication required", nil)
			return
		}
		if claims, err = s.verify(m.Token); err != nil {
			s.unauthorized("invalid token", err)
			return
		}
	}
	s.claims = claims
	s.log.Debug("session authenticated", "sub", claims.Subject, "role", claims.Role)
	s.armExpiry()
	if !s.reply(readyMsg{Type: "ready", Sub: claims.Subject, Role: claims.Role, Exp: expUnix(claims)}) {
		return
	}

	for {
		typ, data, err := s.conn.Read(context.Background())
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			s.badRequest("frames must be text")
			continue
		}
		var m clientMsg
		if err := json.Unmarshal(data, &m); err != nil {
			s.badRequest("malformed frame: " + jsonProblem(err))
			continue
		}
		switch m.Type {
		case "subscribe":
			s.subscribe(m)
		case "unsubscribe":
			s.unsubscribe(m)
		case "refresh":
			s.refresh(m)
		case "auth":
			s.badRequest("already authenticated; send refresh to extend the session")
		default:
			s.badRequest("unknown type")
		}
	}
}

// jsonProblem describes a decoding error without echoing the frame, which
// might hold a token.
func jsonProblem(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return "wrong type for " + typeErr.Field
	}
	return "not a JSON object"
}

func (s *session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *session) verify(token string) (*auth.Claims, error) {
	claims, err := s.h.cfg.Verifier.Verify(token)
	if err != nil {
		return nil, err
	}
	if !claims.IsStaff() {
		return nil, errors.New("hub: staff token required")
	}
	return claims, nil
}

func (s *session) unauthorized(reason string, err error) {
	s.log.Debug("session refused", "reason", reason, "err", err)
	s.close(StatusUnauthorized, reason)
}

func expUnix(c *auth.Claims) int64 {
	if c.ExpiresAt == nil {
		return 0
	}
	return c.ExpiresAt.Unix()
}

// armExpiry (re)starts the deadline of the current claims.
func (s *session) armExpiry() {
	if s.claims.ExpiresAt == nil {
		if s.expiry != nil {
			s.expiry.Stop()
		}
		return
	}
	d := time.Until(s.claims.ExpiresAt.Time)
	if s.expiry == nil {
		s.expiry = time.AfterFunc(d, func() { s.close(StatusExpired, "token expired") })
		return
	}
	s.expiry.Reset(d)
}

// subscribe joins a room so that the client gets every event after its
// since, exactly once and in order. The node's bus subscription is in place
// before history is read, and live events wait in pending meanwhile; an event
// is in history before any node receives it, so history and pending overlap
// rather than leave a hole, and the overlap is dropped by offset.
func (s *session) subscribe(m clientMsg) {
	if m.Room == "" {
		s.badRequest("room is required")
		return
	}
	if !s.claims.CanJoin(m.Room) {
		s.reply(errorMsg{Type: "error", Code: codeForbidden, Room: m.Room})
		return
	}
	if sub := s.subs[m.Room]; sub != nil {
		s.resubscribe(sub, m)
		return
	}

	sub := &subscription{s: s, room: m.Room, joining: true}
	ctx, cancel := context.WithTimeout(s.ctx, brokerTimeout)
	defer cancel()
	if err := s.h.join(ctx, sub); err != nil {
		s.unavailable(m.Room, "bus subscribe failed", err)
		return
	}
	s.subs[m.Room] = sub

	recovered, latest, events, err := s.fetch(ctx, m)
	if err != nil {
		s.drop(sub)
		s.unavailable(m.Room, "bus history failed", err)
		return
	}
	from := latest
	if recovered {
		from = *m.Since
	}
	s.mu.Lock()
	sub.last, sub.from = latest, from
	s.mu.Unlock()

	if !s.reply(subscribedMsg{Type: "subscribed", Room: m.Room, Offset: latest, Epoch: s.h.broker.Epoch(), Recovered: recovered}) {
		return
	}
	n := 0
	for _, ev := range events {
		frame, err := encodeEvent(ev)
		if err != nil {
			s.log.Error("dropping event", "room", ev.Room, "offset", ev.Offset, "err", err)
			continue
		}
		if !s.enqueue(frame) {
			break
		}
		n++
	}
	metrics.HubDelivered.Add(float64(n))
	s.goLive(sub)
}

// fetch reads what the client missed, or just the latest offset when it
// cannot recover: no since, or offsets from another epoch.
func (s *session) fetch(ctx context.Context, m clientMsg) (recovered bool, latest uint64, events []bus.Event, err error) {
	b := s.h.broker
	if m.Since != nil && (m.Epoch == nil || *m.Epoch == b.Epoch()) {
		events, latest, err = b.History(ctx, m.Room, *m.Since)
		switch {
		case err == nil:
			return true, latest, events, nil
		case errors.Is(err, bus.ErrUnrecoverable):
			return false, latest, nil, nil
		default:
			return false, 0, nil, err
		}
	}
	_, latest, err = b.History(ctx, m.Room, math.MaxUint64)
	if errors.Is(err, bus.ErrUnrecoverable) {
		err = nil
	}
	return false, latest, nil, err
}

// goLive queues the events that arrived during the replay, then lets
// dispatch queue directly. It drains pending in rounds because dispatch keeps
// adding to it until the round that finds it empty.
func (s *session) goLive(sub *subscription) {
	for {
		s.mu.Lock()
		if s.closing || sub.gone {
			s.mu.Unlock()
			return
		}
		batch, last := sub.pending, sub.last
		sub.pending = nil
		if len(batch) == 0 {
			sub.joining = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()

		n := 0
		for _, p := range batch {
			if p.offset <= last {
				continue
			}
			if !s.enqueue(p.frame) {
				return
			}
			last = p.offset
			n++
		}
		metrics.HubDelivered.Add(float64(n))
		s.mu.Lock()
		sub.last = last
		s.mu.Unlock()
	}
}

// resubscribe answers a subscribe to a room the session is already in. The
// reply is queued under the lock so that no event of the room slips between
// reading last and queueing the reply; recovered says whether everything
// after the client's since has been queued in this session.
func (s *session) resubscribe(sub *subscription, m clientMsg) {
	epoch := s.h.broker.Epoch()
	s.mu.Lock()
	defer s.mu.Unlock()
	recovered := m.Since != nil && (m.Epoch == nil || *m.Epoch == epoch) &&
		*m.Since >= sub.from && *m.Since <= sub.last
	b, err := json.Marshal(subscribedMsg{Type: "subscribed", Room: sub.room, Offset: sub.last, Epoch: epoch, Recovered: recovered})
	if err != nil {
		return
	}
	select {
	case s.send <- b:
	default:
		s.closeSlowLocked()
	}
}

func (s *session) unavailable(room, what string, err error) {
	if s.isClosing() {
		return
	}
	s.log.Warn(what, "room", room, "err", err)
	s.reply(errorMsg{Type: "error", Code: codeUnavailable, Room: room})
}

func (s *session) unsubscribe(m clientMsg) {
	if m.Room == "" {
		s.badRequest("room is required")
		return
	}
	if sub := s.subs[m.Room]; sub != nil {
		s.drop(sub)
	}
	s.reply(unsubscribedMsg{Type: "unsubscribed", Room: m.Room})
}

func (s *session) drop(sub *subscription) {
	s.mu.Lock()
	sub.gone = true
	sub.pending = nil
	s.mu.Unlock()
	delete(s.subs, sub.room)
	s.h.leave(sub)
}

// refresh replaces the claims with a newer token's for the same subject. The
// new claims may allow fewer rooms; those are dropped.
func (s *session) refresh(m clientMsg) {
	claims, err := s.verify(m.Token)
	if err != nil || claims.Subject != s.claims.Subject {
		s.log.Debug("refresh refused", "err", err)
		s.reply(errorMsg{Type: "error", Code: codeInvalidToken})
		return
	}
	s.claims = claims
	s.armExpiry()
	s.reply(refreshedMsg{Type: "refreshed", Exp: expUnix(claims)})
	for room, sub := range s.subs {
		if !claims.CanJoin(room) {
			s.drop(sub)
			s.reply(unsubscribedMsg{Type: "unsubscribed", Room: room, Reason: codeForbidden})
		}
	}
}

// cleanup runs on the read goroutine after the writer has stopped.
func (s *session) cleanup() {
	if s.expiry != nil {
		s.expiry.Stop()
	}
	for _, sub := range s.subs {
		s.drop(sub)
	}
}
