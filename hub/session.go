package hub

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"vigil/auth"
	"vigil/bus"
	"vigil/metrics"
)

// session is one WebSocket connection. One goroutine, the read goroutine
// (the ServeConn call), runs the protocol for as long as the session lives.
// Frames reach the client through queue, in the order they were queued; a
// writer goroutine exists only while the queue has frames (or the close frame
// is due), so an idle session costs its reader alone. The writer takes the
// whole queue at once and writes it in one system call.
type session struct {
	h    *Hub
	id   uint64
	conn *websocket.Conn
	fw   *frameWriter // every frame to conn goes through it

	// writerDone is closed when the close frame has been sent; it is made
	// when the session starts closing, as channels cost an idle session.
	writerDone chan struct{}
	pinging    atomic.Bool

	mu          sync.Mutex
	closing     bool
	closeCode   websocket.StatusCode
	closeReason string
	queue       [][]byte // frames waiting for the writer
	spare       [][]byte // the writer's last queue, for reuse
	writing     bool     // a writer goroutine is running
	// space is made by a reader waiting for room in queue and closed by the
	// writer when it takes the queue.
	space chan struct{}
	// busCancel cancels the bus call in progress for the session, so that a
	// closing session does not wait for it. (Not a context per session: it
	// would cost every idle session its allocations.)
	busCancel context.CancelFunc

	// Owned by the read goroutine.
	claims *auth.Claims
	expiry *time.Timer
	subs   []*subscription // a session joins a few rooms: no map
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

func newSession(h *Hub, conn *websocket.Conn, fw *frameWriter) *session {
	return &session{
		h:    h,
		id:   h.nextID.Add(1),
		conn: conn,
		fw:   fw,
	}
}

// logger is made when needed: a logger per session would cost every idle
// session a handler.
func (s *session) logger() *slog.Logger { return s.h.log.With("session", s.id) }

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
	s.writerDone = make(chan struct{})
	if s.space != nil {
		close(s.space) // a waiting reader sees closing
		s.space = nil
	}
	if s.busCancel != nil {
		s.busCancel()
	}
	// The writer sends the close frame once its write in progress is done;
	// the backlog is dropped.
	s.queue = nil
	s.kickLocked()
}

// kickLocked makes sure a writer goroutine is running.
func (s *session) kickLocked() {
	if !s.writing {
		s.writing = true
		go s.writeFrames()
	}
}

func (s *session) closeSlowLocked() {
	if s.closing {
		return
	}
	// The frame that did not fit, and the queue closing drops.
	metrics.HubFramesDropped.Add(float64(len(s.queue) + 1))
	s.closeLocked(StatusTooSlow, "send queue full")
	metrics.HubSlowClosed.Inc()
	s.logger().Warn("closing slow session", "queue", s.h.cfg.SendQueue)
}

// pushLocked queues a frame without waiting, closing the session as too slow
// when its queue is full.
func (s *session) pushLocked(frame []byte) bool {
	if len(s.queue) >= s.h.cfg.SendQueue {
		s.closeSlowLocked()
		return false
	}
	s.queue = append(s.queue, frame)
	s.kickLocked()
	return true
}

// enqueue queues a frame from the read goroutine, waiting for room: the
// reader may wait (it only delays this client's own commands), while dispatch
// may not.
func (s *session) enqueue(frame []byte) bool {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return false
		}
		// The reader's own frames (a history replay, replies) fill at most
		// half the queue, so that live events of the session's other rooms
		// still find room and a client reading well is not closed as slow.
		if len(s.queue) < max(1, s.h.cfg.SendQueue/2) {
			s.queue = append(s.queue, frame)
			s.kickLocked()
			s.mu.Unlock()
			return true
		}
		if s.space == nil {
			s.space = make(chan struct{})
		}
		space := s.space
		s.mu.Unlock()
		<-space
	}
}

func (s *session) reply(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		s.logger().Error("encoding reply", "err", err)
		return false
	}
	return s.enqueue(textFrame(b))
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
		if len(sub.pending) >= s.h.cfg.SendQueue {
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
	if !s.writing && len(s.queue) == 0 {
		// Nothing is ahead of this frame: write it now if the socket takes
		// it without waiting, and spare the session a writer goroutine.
		switch s.fw.tryWrite(frame) {
		case wroteAll:
			sub.last = offset
			return true
		case wrotePart:
			// The rest waits in the frame writer; a writer sends it.
			sub.last = offset
			s.kickLocked()
			return true
		}
	}
	if !s.pushLocked(frame) {
		return false
	}
	sub.last = offset
	return true
}

// writeFrames is the session's writer while it has frames to write: it
// writes everything queued in one batch, and again until the queue is empty.
// A closing session's writer sends the close frame instead, after the write
// in progress, so the close frame is not stuck behind a half-written message.
func (s *session) writeFrames() {
	for {
		s.mu.Lock()
		if s.closing {
			done := s.writerDone
			s.mu.Unlock()
			s.finish()
			close(done)
			return // writing stays set: nothing writes after the close frame
		}
		frames := s.queue
		if len(frames) == 0 && !s.fw.pending() {
			s.writing = false
			s.mu.Unlock()
			return
		}
		s.queue, s.spare = s.spare, nil
		if s.space != nil {
			close(s.space)
			s.space = nil
		}
		s.mu.Unlock()

		err := s.writeBatch(frames)
		clear(frames)
		s.mu.Lock()
		if cap(frames) <= 8 {
			s.spare = frames[:0]
		}
		s.mu.Unlock()
		if err != nil {
			s.logger().Debug("write failed", "err", err)
			s.close(websocket.StatusGoingAway, "write failed")
		}
	}
}

// writeBatch writes prepared frames (textFrame) in one writev. The frames
// bypass coder/websocket's writer, which would frame and copy each message
// again for every session; coder/websocket still writes the control frames
// and the close frame, and the frame writer keeps the two from interleaving.
// The socket's write deadline bounds the write: no timer per message.
func (s *session) writeBatch(frames [][]byte) error {
	if done, err := s.fw.writePrepared(frames); done {
		return err
	}
	// A control frame is half-written: queue behind it in coder/websocket's
	// writer, batched into one write still.
	s.fw.begin()
	for _, f := range frames {
		if err := s.conn.Write(context.Background(), websocket.MessageText, framePayload(f)); err != nil {
			s.fw.end()
			return err
		}
	}
	return s.fw.end()
}

// finish sends the close frame and waits for the client's.
func (s *session) finish() {
	s.mu.Lock()
	code, reason := s.closeCode, s.closeReason
	s.mu.Unlock()
	s.conn.Close(code, reason)
}

// ping keeps the connection alive through proxies (the hub's pinger calls
// it once per PingInterval). The ping waits for the pong on a goroutine of its
// own while the session's writer, if any, goes on writing.
func (s *session) ping() {
	if s.isClosing() || !s.pinging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.pinging.Store(false)
		// Not a context the session cancels: cancelling a context during a
		// write tears the connection down without a close frame.
		ctx, cancel := context.WithTimeout(context.Background(), s.h.cfg.WriteTimeout)
		defer cancel()
		if err := s.conn.Ping(ctx); err != nil {
			s.logger().Debug("ping failed", "err", err)
			s.close(websocket.StatusPolicyViolation, "ping timeout")
		}
	}()
}

// readLoop authenticates the session and serves its commands until the
// connection ends. A bearer token from the upgrade request stands in for the
// auth frame.
//
// The goroutine waiting in Read lives as long as the session, and a stack
// once grown stays grown while it is in use: each frame is handled on a
// short-lived goroutine (handle), so the JSON, JWT and bus calls a command
// needs do not leave every idle session with their stack.
func (s *session) readLoop(headerToken string) {
	if headerToken == "" {
		timer := time.AfterFunc(s.h.cfg.AuthTimeout, func() {
			s.unauthorized("authentication timeout", nil)
		})
		_, data, err := s.conn.Read(context.Background())
		timer.Stop()
		if err != nil || s.isClosing() {
			return
		}
		if !s.offStack(func() bool { return s.authFrame(data) }) {
			return
		}
	} else if !s.offStack(func() bool { return s.authenticate(headerToken) }) {
		return
	}
	for {
		typ, data, err := s.conn.Read(context.Background())
		if err != nil {
			return
		}
		if !s.offStack(func() bool { s.handle(typ, data); return true }) {
			return
		}
	}
}

// offStack runs f on a new goroutine and waits for it. f may use whatever
// the calling goroutine owns, which waits meanwhile.
func (s *session) offStack(f func() bool) bool {
	ok := make(chan bool, 1)
	go func() { ok <- s.guard(f) }()
	return <-ok
}

// guard runs f; if it panics, the panic is logged and the session closed
// (1011: the client reconnects and recovers) instead of the process dying,
// as net/http would have done for a handler.
func (s *session) guard(f func() bool) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			s.logger().Error("session panicked", "panic", r, "stack", string(debug.Stack()))
			s.close(websocket.StatusInternalError, "internal error")
			ok = false
		}
	}()
	return f()
}

// authFrame authenticates the session with its first frame.
func (s *session) authFrame(data []byte) bool {
	var m clientMsg
	if err := json.Unmarshal(data, &m); err != nil || m.Type != "auth" {
		s.unauthorized("authentication required", nil)
		return false
	}
	return s.authenticate(m.Token)
}

func (s *session) authenticate(token string) bool {
	claims, err := s.verify(token)
	if err != nil {
		s.unauthorized("invalid token", err)
		return false
	}
	s.claims = claims
	s.logger().Debug("session authenticated", "sub", claims.Subject, "role", claims.Role)
	s.armExpiry()
	return s.reply(readyMsg{Type: "ready", Sub: claims.Subject, Role: claims.Role, Exp: expUnix(claims)})
}

// handle serves one client frame.
func (s *session) handle(typ websocket.MessageType, data []byte) {
	if typ != websocket.MessageText {
		s.badRequest("frames must be text")
		return
	}
	var m clientMsg
	if err := json.Unmarshal(data, &m); err != nil {
		s.badRequest("malformed frame: " + jsonProblem(err))
		return
	}
	switch m.Type {
	case "subscribe":
		s.subscribe(m)
	case "unsubscribe":
		s.unsubscribe(m)
	case "refresh":
		s.refresh(m)
	case "ping":
		// A browser sees none of the protocol's pings, so a board that
		// wants to know its socket still reaches the hub asks here.
		s.reply(pongMsg{Type: "pong"})
	case "auth":
		s.badRequest("already authenticated; send refresh to extend the session")
	default:
		s.badRequest("unknown type")
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
	s.logger().Debug("session refused", "reason", reason, "err", err)
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
	if sub := s.sub(m.Room); sub != nil {
		s.resubscribe(sub, m)
		return
	}

	sub := &subscription{s: s, room: m.Room, joining: true}
	ctx, done := s.busCall()
	defer done()
	if err := s.h.join(ctx, sub); err != nil {
		// Fan-out jobs made while it was a member may still reach it.
		s.mu.Lock()
		sub.gone, sub.pending = true, nil
		s.mu.Unlock()
		s.unavailable(m.Room, "bus subscribe failed", err)
		return
	}
	s.subs = append(s.subs, sub)

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
		frame, err := eventFrame(ev)
		if err != nil {
			s.logger().Error("dropping event", "room", ev.Room, "offset", ev.Offset, "err", err)
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
	if !s.closing {
		s.pushLocked(textFrame(b))
	}
}

func (s *session) unavailable(room, what string, err error) {
	if s.isClosing() {
		return
	}
	s.logger().Warn(what, "room", room, "err", err)
	s.reply(errorMsg{Type: "error", Code: codeUnavailable, Room: room})
}

func (s *session) unsubscribe(m clientMsg) {
	if m.Room == "" {
		s.badRequest("room is required")
		return
	}
	if sub := s.sub(m.Room); sub != nil {
		s.drop(sub)
	}
	s.reply(unsubscribedMsg{Type: "unsubscribed", Room: m.Room})
}

func (s *session) drop(sub *subscription) {
	s.mu.Lock()
	sub.gone = true
	sub.pending = nil
	s.mu.Unlock()
	s.subs = slices.DeleteFunc(s.subs, func(x *subscription) bool { return x == sub })
	s.h.leave(sub)
}

// sub returns the session's subscription to room, or nil.
func (s *session) sub(room string) *subscription {
	for _, sub := range s.subs {
		if sub.room == room {
			return sub
		}
	}
	return nil
}

// busCall returns the context of a bus call made for the session, which
// closing the session cancels, and the function that ends the call.
func (s *session) busCall() (context.Context, func()) {
	ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
	s.mu.Lock()
	if s.closing {
		cancel()
	} else {
		s.busCancel = cancel
	}
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		s.busCancel = nil
		s.mu.Unlock()
		cancel()
	}
}

// refresh replaces the claims with a newer token's for the same subject. The
// new claims may allow fewer rooms; those are dropped.
func (s *session) refresh(m clientMsg) {
	claims, err := s.verify(m.Token)
	if err != nil || claims.Subject != s.claims.Subject {
		s.logger().Debug("refresh refused", "err", err)
		s.reply(errorMsg{Type: "error", Code: codeInvalidToken})
		return
	}
	s.claims = claims
	s.armExpiry()
	s.reply(refreshedMsg{Type: "refreshed", Exp: expUnix(claims)})
	for _, sub := range slices.Clone(s.subs) {
		if !claims.CanJoin(sub.room) {
			s.drop(sub)
			s.reply(unsubscribedMsg{Type: "unsubscribed", Room: sub.room, Reason: codeForbidden})
		}
	}
}

// cleanup runs on the read goroutine after the writer has stopped.
func (s *session) cleanup() {
	if s.expiry != nil {
		s.expiry.Stop()
	}
	for _, sub := range slices.Clone(s.subs) {
		s.drop(sub)
	}
}
