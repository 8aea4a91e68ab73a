//go:build linux

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// fakeHub is a WebSocket server speaking Vigil's protocol from a script: it
// checks the auth and subscribe frames, sends events, answers a ping, and
// closes the first connection 4008 (too slow) so that the client must
// reconnect and recover from its last offset.
type fakeHub struct {
	t      *testing.T
	token  string
	room   string
	ids    *idCodec
	mu     sync.Mutex
	conns  int
	sinces []any // the since of each subscribe (nil when absent)
	epochs []any
	pinged chan error
}

func (f *fakeHub) event(offset uint64, kind string, seq uint64) []byte {
	return encodeFrame(f.room, offset, fmt.Appendf(nil, `{"kind":%q,"reading_id":%q,"patient_id":"P1","vitals":{"kind":"x"}}`, kind, f.ids.id(seq)))
}

func (f *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		f.t.Errorf("accept: %v", err)
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	var m map[string]any
	read := func() bool {
		_, b, err := c.Read(ctx)
		if err != nil {
			return false
		}
		m = nil
		if err := json.Unmarshal(b, &m); err != nil {
			f.t.Errorf("client frame %q: %v", b, err)
			return false
		}
		return true
	}
	write := func(b []byte) { _ = c.Write(ctx, websocket.MessageText, b) }
	if !read() || m["type"] != "auth" || m["token"] != f.token {
		f.t.Errorf("first frame %v, want auth with the token", m)
		return
	}
	write([]byte(`{"type":"ready","sub":"u1","role":"pi"}`))
	if !read() || m["type"] != "subscribe" || m["room"] != f.room {
		f.t.Errorf("second frame %v, want subscribe to %s", m, f.room)
		return
	}
	f.mu.Lock()
	f.conns++
	n := f.conns
	f.sinces = append(f.sinces, m["since"])
	f.epochs = append(f.epochs, m["epoch"])
	f.mu.Unlock()
	switch n {
	case 1:
		write([]byte(`{"type":"subscribed","room":"` + f.room + `","offset":10,"epoch":"E1","recovered":false}`))
		write(f.event(11, "score", 0))
		write(f.event(12, "alert", 1))
		write(f.event(13, "score", 1))
		// The client reads in its own goroutine; Ping needs it reading.
		go func() {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			f.pinged <- c.Ping(pctx)
		}()
		time.Sleep(100 * time.Millisecond)
		c.Close(4008, "send queue full")
	default:
		// Recovery: what was published while the client was away, then
		// a duplicate, a repeated alert and an event of another run.
		write([]byte(`{"type":"subscribed","room":"` + f.room + `","offset":15,"epoch":"E1","recovered":true}`))
		write(f.event(14, "score", 2))
		write(f.event(15, "score", 3))
		write(f.event(15, "score", 3))
		write(f.event(16, "alert", 1))
		other := newIDCodec(999)
		write(encodeFrame(f.room, 17, []byte(`{"kind":"score","reading_id":"`+other.id(0)+`"}`)))
		write([]byte(`{"type":"error","code":"bad_request"}`))
		write(f.event(19, "score", 4)) // 18 never sent: a gap of one
		// An event larger than a reader's buffer, in fragments.
		big := encodeFrame(f.room, 20, fmt.Appendf(nil, `{"kind":"score","reading_id":%q,"pad":"%s"}`, f.ids.id(5), strings.Repeat("x", 40_000)))
		if w, err := c.Writer(ctx, websocket.MessageText); err == nil {
			_, _ = w.Write(big[:len(big)/2])
			_, _ = w.Write(big[len(big)/2:])
			_ = w.Close()
		}
		// Until the client goes (its close ends the read).
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}
}

func TestSessionProtocolAndRecovery(t *testing.T) {
	tr := newTracker(42, 16)
	ph := tr.startPhase(1, "test")
	for range 6 {
		seq, _ := tr.take()
		tr.flags[seq].Store(flagSent | flagAccepted | uint32(ph.index))
		tr.sent[seq].Store(tr.now())
	}
	fh := &fakeHub{t: t, token: "tok", room: "site:T:S0001", ids: &tr.ids, pinged: make(chan error, 1)}
	srv := httptest.NewServer(fh)
	defer srv.Close()
	fds0, g0 := openFDs(t), runtime.NumGoroutine()

	hub := newHubClient(srv.URL, tr, 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if failed := hub.connectAll(ctx, []sessionSpec{{room: fh.room, token: "tok"}}, 4); failed != 0 {
		t.Fatalf("connect failed: %s", hub.firstError)
	}
	if err := <-fh.pinged; err != nil {
		t.Errorf("ping not answered: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tr.scores[5].Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	hub.stop()

	for seq, want := range []int32{1, 1, 1, 1, 1, 1} {
		if got := tr.scores[seq].Load(); got != want {
			t.Errorf("scores[%d] = %d, want %d", seq, got, want)
		}
	}
	if got := tr.alerts[1].Load(); got != 1 {
		t.Errorf("alerts[1] = %d, want 1 (the repeat is an update)", got)
	}
	if got := ph.alertUpdates.Load(); got != 1 {
		t.Errorf("alert updates = %d, want 1", got)
	}
	if n, s := hub.closeSummary(); n != 1 || s != "4008 ×1" {
		t.Errorf("closes = %d %q, want one 4008", n, s)
	}
	for name, got := range map[string]int64{
		"reconnects": hub.reconnects.Load(), "duplicates": hub.duplicates.Load(), "gaps": hub.gaps.Load(),
		"foreign": tr.foreign.Load(), "slow frames": hub.slowFrames.Load(), "unrecovered": hub.unrecovered.Load(),
		"gave up": hub.gaveUp.Load(),
	} {
		want := map[string]int64{"reconnects": 1, "duplicates": 1, "gaps": 1, "foreign": 1, "slow frames": 1}[name]
		if got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	fh.mu.Lock()
	if len(fh.sinces) != 2 || fh.sinces[0] != nil || fh.sinces[1] != float64(13) || fh.epochs[1] != "E1" {
		t.Errorf("subscribes: since %v, epoch %v; want none, then since 13 in epoch E1", fh.sinces, fh.epochs)
	}
	fh.mu.Unlock()
	// Every descriptor and goroutine of the sessions and readers is gone
	// (and the fake hub's, once it reads the end of the connection).
	for deadline := time.Now().Add(5 * time.Second); openFDs(t) > fds0 || runtime.NumGoroutine() > g0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors, %d goroutines after stop; %d and %d before", openFDs(t), runtime.NumGoroutine(), fds0, g0)
		}
	}
}

func TestSessionRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		_, _, _ = c.Read(r.Context())
		c.Close(4001, "invalid token")
	}))
	defer srv.Close()
	hub := newHubClient(srv.URL, newTracker(1, 1), 5*time.Second)
	defer hub.stop()
	if failed := hub.connectAll(context.Background(), []sessionSpec{{room: "r", token: "bad"}}, 1); failed != 1 {
		t.Fatalf("failed = %d, want 1", failed)
	}
	if hub.firstError == "" || hub.sessions[0].subscribed {
		t.Errorf("first error %q, subscribed %v", hub.firstError, hub.sessions[0].subscribed)
	}
}
