package hub

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"vigil/auth"
	"vigil/bus"
)

const testTimeout = 10 * time.Second

var testSecret = []byte("hub-test-secret-of-reasonable-length")

type env struct {
	t      testing.TB
	hub    *Hub
	broker *bus.Memory
	srv    *httptest.Server
	url    string
	iss    auth.Issuer
}

type envOptions struct {
	history int
	// wrap lets a test put a spy between the hub and the broker.
	wrap func(bus.Broker) bus.Broker
	// listener lets a test tune the server's sockets.
	listener func(net.Listener) net.Listener
}

func newEnv(t testing.TB, cfg Config, opts envOptions) *env {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierConfig{Secret: testSecret, Issuer: "vigil", Audience: "vigil"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Verifier = v
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := bus.NewMemory(opts.history)
	var b bus.Broker = m
	if opts.wrap != nil {
		b = opts.wrap(m)
	}
	h := New(b, cfg)
	srv := httptest.NewUnstartedServer(h)
	if opts.listener != nil {
		srv.Listener = opts.listener(srv.Listener)
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
		srv.Close()
	})
	return &env{t: t, hub: h, broker: m, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws",
		iss: auth.Issuer{Secret: testSecret, Issuer: "vigil", Audience: "vigil"}}
}

func (e *env) token(c auth.Claims, ttl time.Duration) string {
	e.t.Helper()
	tok, err := e.iss.Mint(c, ttl)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func staff(sub, role string, trials, sites []string) auth.Claims {
	c := auth.Claims{Role: role, Trials: trials, Sites: sites}
	c.Subject = sub
	return c
}

func pi() auth.Claims { return staff("u42", auth.RolePI, []string{"T008"}, []string{"T008/S01"}) }

func (e *env) publish(room string, data string) bus.Event {
	e.t.Helper()
	ev, err := e.broker.Publish(context.Background(), room, []byte(data))
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

func (e *env) publishN(room string, n int) {
	e.t.Helper()
	for range n {
		e.publish(room, `{"kind":"score"}`)
	}
}

// frame is every server frame, decoded loosely.
type frame struct {
	Type      string          `json:"type"`
	Sub       string          `json:"sub"`
	Role      string          `json:"role"`
	Room      string          `json:"room"`
	Offset    uint64          `json:"offset"`
	Epoch     string          `json:"epoch"`
	Recovered bool            `json:"recovered"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Reason    string          `json:"reason"`
	Exp       int64           `json:"exp"`
	Data      json.RawMessage `json:"data"`
}

type client struct {
	t testing.TB
	c *websocket.Conn
}

func (e *env) dial(opts *websocket.DialOptions) *client {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, e.url, opts)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	e.t.Cleanup(func() { c.CloseNow() })
	return &client{t: e.t, c: c}
}

// connect dials and authenticates with an auth frame.
func (e *env) connect(c auth.Claims) *client {
	e.t.Helper()
	cl := e.dial(nil)
	cl.send(map[string]any{"type": "auth", "token": e.token(c, time.Hour)})
	cl.expect("ready")
	return cl
}

func (c *client) send(v any) {
	c.t.Helper()
	if err := c.trySend(v); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) trySend(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return c.c.Write(ctx, websocket.MessageText, b)
}

func (c *client) tryRead() (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, b, err := c.c.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, err
	}
	return f, nil
}

func (c *client) read() frame {
	c.t.Helper()
	f, err := c.tryRead()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

func (c *client) expect(typ string) frame {
	c.t.Helper()
	f := c.read()
	if f.Type != typ {
		c.t.Fatalf("got %+v, want a %q frame", f, typ)
	}
	return f
}

func (c *client) expectEvent(room string, offset uint64) frame {
	c.t.Helper()
	f := c.expect("event")
	if f.Room != room || f.Offset != offset {
		c.t.Fatalf("got event %s/%d, want %s/%d", f.Room, f.Offset, room, offset)
	}
	return f
}

func (c *client) subscribe(msg map[string]any) frame {
	c.t.Helper()
	msg["type"] = "subscribe"
	c.send(msg)
	return c.expect("subscribed")
}

// expectClose reads, discarding frames, until the connection closes, and
// checks the close code.
func (c *client) expectClose(code websocket.StatusCode) {
	c.t.Helper()
	for {
		_, err := c.tryRead()
		if err == nil {
			continue
		}
		if got := websocket.CloseStatus(err); got != code {
			c.t.Fatalf("closed with %v (%v), want %v", got, err, code)
		}
		return
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// spyBroker counts the node's bus subscriptions and can slow History down
// to widen the window between joining a room and reading its history.
type spyBroker struct {
	bus.Broker
	historyDelay time.Duration
	subscribeErr error

	mu      sync.Mutex
	subs    map[string]int
	unsubs  map[string]int
	handler bus.Handler
}

// SetHandler keeps the hub's handler, so a test can deliver what a broker
// would (a Reset) besides passing it on.
func (s *spyBroker) SetHandler(h bus.Handler) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
	s.Broker.SetHandler(h)
}

// deliver hands ev to the hub as the broker's delivery path would.
func (s *spyBroker) deliver(ev bus.Event) {
	s.mu.Lock()
	h := s.handler
	s.mu.Unlock()
	h(ev)
}

func newSpy(b bus.Broker) *spyBroker {
	return &spyBroker{Broker: b, subs: map[string]int{}, unsubs: map[string]int{}}
}

func (s *spyBroker) Subscribe(ctx context.Context, room string) error {
	s.mu.Lock()
	if err := s.subscribeErr; err != nil {
		s.mu.Unlock()
		return err
	}
	s.subs[room]++
	s.mu.Unlock()
	return s.Broker.Subscribe(ctx, room)
}

func (s *spyBroker) Unsubscribe(ctx context.Context, room string) error {
	s.mu.Lock()
	s.unsubs[room]++
	s.mu.Unlock()
	return s.Broker.Unsubscribe(ctx, room)
}

func (s *spyBroker) History(ctx context.Context, room string, since uint64) ([]bus.Event, uint64, error) {
	if s.historyDelay > 0 {
		time.Sleep(s.historyDelay)
	}
	return s.Broker.History(ctx, room, since)
}

func (s *spyBroker) counts(room string) (subs, unsubs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs[room], s.unsubs[room]
}

// waitFor polls cond until it holds or the test timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// smallBuffers shrinks socket buffers so that a client that stops reading
// blocks the server's writes after a few kilobytes rather than megabytes.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func smallReadBufferClient() *http.Client {
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			return c, err
		},
	}}
}
