//go:build linux

package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// The WebSocket side of the load generator: thousands of staff sessions. Each
// connects, authenticates and subscribes on a goroutine of its own, reading
// the handshake's frames with gobwas/ws through a small bufio.Reader; then its
// socket leaves Go's netpoller and one of a few readers (wsreader.go) reads
// it, with every other session's, from an epoll instance (no goroutine per
// session, no per-message allocation). A session answers pings and close
// frames itself; the events it receives are scanned without JSON decoding
// (frame.go) and recorded in the tracker.

const (
	// maxMessage bounds one message from the server; Vigil's events are a
	// few KB.
	maxMessage   = 1 << 20
	readBufSize  = 2048
	writeTimeout = 5 * time.Second
	// Reconnection after the server closed a session: a few attempts with
	// growing, jittered delays, so that a server that closed many sessions
	// at once is not hit by all of them in the same millisecond.
	maxReconnects    = 8
	reconnectBackoff = 100 * time.Millisecond
)

// hubClient is the set of sessions of one scenario.
type hubClient struct {
	url            string // ws://host:port/ws
	t              *tracker
	connectTimeout time.Duration

	sessions []*session
	readers  []*reader
	ctx      context.Context // connectAll's: bounds reconnections
	wg       sync.WaitGroup  // readers, handshakes, reconnections
	stopping atomic.Bool
	stopped  chan struct{} // closed by stop
	stopOnce sync.Once

	mu         sync.Mutex
	closes     map[string]int // close code (or "error: …") → sessions closed by the server
	firstError string

	reconnects  atomic.Int64 // successful reconnections
	unrecovered atomic.Int64 // reconnections the server could not replay (recovered: false)
	gaveUp      atomic.Int64 // sessions that stayed disconnected
	gaps        atomic.Int64 // events skipped in a room's offsets
	duplicates  atomic.Int64 // events at or below the offset already seen
	slowFrames  atomic.Int64 // frames that took the JSON path after subscribing
}

// sessionSpec says which room a session joins with which token.
type sessionSpec struct {
	room  string
	token string
}

// session is one staff WebSocket session.
type session struct {
	c     *hubClient
	spec  sessionSpec
	shard int
	// subscribed: the first connection succeeded (set before connectAll
	// returns, read after).
	subscribed bool

	// The handshake: its connection (closed by stop) and reading.
	connMu sync.Mutex
	conn   net.Conn
	br     *bufio.Reader
	hdr    [ws.MaxHeaderSize]byte
	ctrl   [125]byte // control frames carry at most 125 bytes
	msg    []byte

	// The receive path, once subscribed, owned by the session's reader (or
	// the goroutine connecting it): the socket's descriptor, taken out of
	// the netpoller, and what was read of a frame not yet complete.
	fd   int
	rx   recvState
	more bool // in its reader's list of sessions to read again

	epoch      string
	lastOffset uint64
	// alertSeen holds the readings whose alert this session has already
	// received: Vigil publishes an alert again when it changes (the
	// escalation scheduler notifying tier 0 a moment after it opened), and
	// only the first one is a delivery.
	alertSeen map[uint64]struct{}
}

func newHubClient(base string, t *tracker, connectTimeout time.Duration) *hubClient {
	u := strings.Replace(strings.Replace(base, "https://", "wss://", 1), "http://", "ws://", 1) + "/ws"
	return &hubClient{url: u, t: t, connectTimeout: connectTimeout, closes: map[string]int{}, stopped: make(chan struct{})}
}

// connectAll opens, authenticates and subscribes every session, at most
// parallel handshakes at a time, and leaves each one with a reader. It
// returns when every session is subscribed or has failed; failed says how
// many failed. It is called once per hubClient.
func (c *hubClient) connectAll(ctx context.Context, specs []sessionSpec, parallel int) (failed int) {
	c.ctx = ctx
	for range readerCount() {
		r, err := newReader(c)
		if err != nil {
			c.noteError(err)
			return len(specs)
		}
		c.readers = append(c.readers, r)
		c.wg.Add(1)
		go r.run()
	}
	sem := make(chan struct{}, max(1, parallel))
	var bad atomic.Int64
	var ready sync.WaitGroup
	for i, sp := range specs {
		s := &session{c: c, spec: sp, shard: i, fd: -1}
		c.sessions = append(c.sessions, s)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			bad.Add(int64(len(specs) - i))
			ready.Wait()
			return int(bad.Load())
		}
		ready.Add(1)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			err := s.connect(ctx, false)
			s.subscribed = err == nil
			if err != nil {
				bad.Add(1)
				c.noteError(err)
			}
			<-sem
			ready.Done()
			if err == nil {
				if err := s.start(); err != nil {
					s.recover(err)
				}
			}
		}()
	}
	ready.Wait()
	return int(bad.Load())
}

func (c *hubClient) noteError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.firstError == "" {
		c.firstError = err.Error()
	}
}

func (c *hubClient) noteClose(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closes[what]++
}

// closeSummary renders the closures by cause, e.g. "4008 ×12, EOF ×1".
func (c *hubClient) closeSummary() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.closes))
	n := 0
	for k, v := range c.closes {
		keys = append(keys, k)
		n += v
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, c.closes[k])
	}
	return n, strings.Join(parts, ", ")
}

// stop closes every session and waits for the readers and the goroutines
// still connecting.
func (c *hubClient) stop() {
	c.stopping.Store(true)
	c.stopOnce.Do(func() { close(c.stopped) })
	for _, s := range c.sessions {
		s.connMu.Lock()
		if s.conn != nil {
			_ = s.conn.Close()
		}
		s.connMu.Unlock()
	}
	for _, r := range c.readers {
		r.stop()
	}
	c.wg.Wait()
}

// closeError is a close frame from the server.
type closeError struct {
	code   ws.StatusCode
	reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("closed by the server: %d %s", e.code, e.reason)
}

// ctrlFrame is any frame other than an event: decoded with encoding/json,
// since there are a handful per session.
type ctrlFrame struct {
	Type      string `json:"type"`
	Code      string `json:"code"`
	Room      string `json:"room"`
	Offset    uint64 `json:"offset"`
	Epoch     string `json:"epoch"`
	Recovered bool   `json:"recovered"`
	Message   string `json:"message"`
}

// connect dials, authenticates and subscribes. resume asks the server to
// replay what the session missed since its last offset.
func (s *session) connect(ctx context.Context, resume bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.c.connectTimeout)
	defer cancel()
	d := ws.Dialer{Timeout: s.c.connectTimeout}
	conn, br, _, err := d.Dial(ctx, s.c.url)
	if err != nil {
		return fmt.Errorf("dial %s: %w", s.c.url, err)
	}
	s.connMu.Lock()
	if s.c.stopping.Load() {
		s.connMu.Unlock()
		_ = conn.Close()
		return errors.New("stopping")
	}
	s.conn = conn
	s.connMu.Unlock()
	hbr := br
	var src io.Reader = conn
	if br != nil {
		// The server's first frames arrived with the handshake reply.
		src = io.MultiReader(br, conn)
	}
	if s.br == nil {
		s.br = bufio.NewReaderSize(src, readBufSize)
	} else {
		s.br.Reset(src)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	fail := func(err error) error {
		_ = conn.Close()
		return err
	}
	// The token goes in the first frame, as a browser's board sends it
	// (browsers cannot set an Authorization header on a WebSocket).
	auth := append(append([]byte(`{"type":"auth","token":"`), s.spec.token...), `"}`...)
	if err := s.write(ws.OpText, auth); err != nil {
		return fail(fmt.Errorf("auth: %w", err))
	}
	f, err := s.readCtrl()
	if err != nil {
		return fail(fmt.Errorf("auth: %w", err))
	}
	if f.Type != "ready" {
		return fail(fmt.Errorf("auth: got %q (%s), not ready", f.Type, f.Code))
	}
	sub := map[string]any{"type": "subscribe", "room": s.spec.room}
	if resume {
		sub["since"] = s.lastOffset
		sub["epoch"] = s.epoch
	}
	b, _ := json.Marshal(sub)
	if err := s.write(ws.OpText, b); err != nil {
		return fail(fmt.Errorf("subscribe: %w", err))
	}
	if f, err = s.readCtrl(); err != nil {
		return fail(fmt.Errorf("subscribe: %w", err))
	}
	if f.Type != "subscribed" {
		return fail(fmt.Errorf("subscribe %s: got %q (%s %s)", s.spec.room, f.Type, f.Code, f.Message))
	}
	switch {
	case !resume:
		s.lastOffset = f.Offset
	case !f.Recovered:
		// The server could not replay what was missed: those events are
		// lost to this session, and counted as such.
		s.c.unrecovered.Add(1)
		if f.Offset > s.lastOffset {
			s.c.gaps.Add(int64(f.Offset - s.lastOffset))
		}
		s.lastOffset = f.Offset
	}
	s.epoch = f.Epoch
	_ = conn.SetDeadline(time.Time{})
	// From here on the session's reader reads the socket, from the bytes
	// the handshake's readers already hold.
	if err := s.detach(conn, s.br, hbr); err != nil {
		return fail(fmt.Errorf("detach: %w", err))
	}
	s.br = nil // until the next handshake, if any
	return nil
}

// readCtrl reads the next message, which must be a control (non-event)
// frame: during the handshake, no events can come before "subscribed".
func (s *session) readCtrl() (ctrlFrame, error) {
	msg, err := s.readMessage()
	if err != nil {
		return ctrlFrame{}, err
	}
	var f ctrlFrame
	if err := json.Unmarshal(msg, &f); err != nil {
		return ctrlFrame{}, fmt.Errorf("malformed frame from the server: %w", err)
	}
	return f, nil
}

// reconnect connects the session again, resuming from its last offset,
// after a few growing, jittered delays; false when it could not.
func (s *session) reconnect(ctx context.Context) bool {
	for attempt := range maxReconnects {
		d := reconnectBackoff << attempt
		d = d/2 + time.Duration(rand.Int64N(int64(d)))
		tm := time.NewTimer(d)
		select {
		case <-tm.C:
		case <-ctx.Done():
			tm.Stop()
			return false
		case <-s.c.stopped:
			tm.Stop()
			return false
		}
		if s.c.stopping.Load() {
			return false
		}
		err := s.connect(ctx, true)
		if err == nil {
			s.c.reconnects.Add(1)
			return true
		}
		s.c.noteError(err)
	}
	return false
}

// handle is the hot path: one call per message received after subscribing,
// as soon as it is parsed after the read that completed it.
func (s *session) handle(msg []byte) {
	t := s.c.t
	now := t.now()
	ev, ok := scanEvent(msg)
	if !ok {
		s.c.slowFrames.Add(1)
		return // an error or unsubscribed frame: nothing to time
	}
	if ev.offset <= s.lastOffset {
		s.c.duplicates.Add(1)
		return
	}
	if ev.offset > s.lastOffset+1 {
		s.c.gaps.Add(int64(ev.offset - s.lastOffset - 1))
	}
	s.lastOffset = ev.offset
	seq, ok := t.ids.parse(ev.readingID)
	if !ok {
		t.foreign.Add(1)
		return
	}
	switch string(ev.kind) {
	case "score":
		t.deliverScore(seq, now, s.shard)
	case "alert":
		if _, seen := s.alertSeen[seq]; seen {
			if _, p := t.lookup(seq); p != nil {
				p.alertUpdates.Add(1)
			}
			return
		}
		if s.alertSeen == nil {
			s.alertSeen = make(map[uint64]struct{})
		}
		s.alertSeen[seq] = struct{}{}
		t.deliverAlert(seq, now, s.shard)
	}
}

// readMessage returns the next data message of the handshake, answering
// control frames on the way. The slice is valid until the next call.
func (s *session) readMessage() ([]byte, error) {
	s.msg = s.msg[:0]
	for {
		h, err := ws.ReadHeaderBuffer(s.br, s.hdr[:])
		if err != nil {
			return nil, err
		}
		if h.Length > maxMessage || int64(len(s.msg))+h.Length > maxMessage {
			return nil, fmt.Errorf("message over %d bytes", maxMessage)
		}
		n := int(h.Length)
		if h.OpCode.IsControl() {
			if n > len(s.ctrl) {
				return nil, errors.New("control frame over 125 bytes")
			}
			p := s.ctrl[:n]
			if _, err := io.ReadFull(s.br, p); err != nil {
				return nil, err
			}
			if h.Masked {
				ws.Cipher(p, h.Mask, 0)
			}
			switch h.OpCode {
			case ws.OpPing:
				if err := s.write(ws.OpPong, p); err != nil {
					return nil, err
				}
			case ws.OpClose:
				code, reason := ws.ParseCloseFrameData(p)
				// Echo the close (RFC 6455 §5.5.1); the connection is
				// done either way.
				_ = s.write(ws.OpClose, ws.NewCloseFrameBody(code, ""))
				return nil, &closeError{code: code, reason: reason}
			}
			continue
		}
		start := len(s.msg)
		if cap(s.msg) < start+n {
			s.msg = append(make([]byte, 0, max(start+n, 2*cap(s.msg))), s.msg...)
		}
		s.msg = s.msg[:start+n]
		if _, err := io.ReadFull(s.br, s.msg[start:]); err != nil {
			return nil, err
		}
		if h.Masked {
			ws.Cipher(s.msg[start:], h.Mask, 0)
		}
		if h.Fin {
			return s.msg, nil
		}
	}
}

// write sends one masked frame of the handshake (clients must mask, RFC 6455
// §5.3). Only the session's own goroutine writes, so there is no lock. The
// payload is copied before masking: callers pass buffers they still own.
func (s *session) write(op ws.OpCode, payload []byte) error {
	p := append([]byte(nil), payload...)
	f := ws.MaskFrameInPlace(ws.NewFrame(op, true, p))
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	err := ws.WriteFrame(s.conn, f)
	_ = s.conn.SetWriteDeadline(time.Time{})
	return err
}
