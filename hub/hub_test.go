package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"vigil/auth"
	"vigil/bus"
	"vigil/metrics"
)

func TestAuth(t *testing.T) {
	e := newEnv(t, Config{AuthTimeout: 200 * time.Millisecond}, envOptions{})
	patient := auth.Claims{Role: auth.RolePatient, Trial: "T008", Site: "S01"}
	patient.Subject = "P1001"
	good := e.token(pi(), time.Hour)
	other := auth.Issuer{Secret: []byte("another-secret-entirely-xxxxxxxx"), Issuer: "vigil", Audience: "vigil"}
	forged, err := other.Mint(pi(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired := e.token(pi(), -time.Minute)

	tests := []struct {
		name   string
		header string // Authorization header token
		first  any    // first frame; nil sends nothing
		ok     bool
	}{
		{name: "frame", first: map[string]any{"type": "auth", "token": good}, ok: true},
		{name: "header", header: good, ok: true},
		{name: "frame, garbage token", first: map[string]any{"type": "auth", "token": "not.a.jwt"}},
		{name: "frame, empty token", first: map[string]any{"type": "auth"}},
		{name: "frame, wrong key", first: map[string]any{"type": "auth", "token": forged}},
		{name: "frame, expired", first: map[string]any{"type": "auth", "token": expired}},
		{name: "frame, patient token", first: map[string]any{"type": "auth", "token": e.token(patient, time.Hour)}},
		{name: "header, patient token", header: e.token(patient, time.Hour)},
		{name: "header, bad token", header: forged},
		{name: "subscribe before auth", first: map[string]any{"type": "subscribe", "room": "site:T008:S01"}},
		{name: "malformed first frame", first: "{"},
		{name: "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts *websocket.DialOptions
			if tt.header != "" {
				opts = &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tt.header}}}
			}
			c := e.dial(opts)
			c.t = t
			switch first := tt.first.(type) {
			case nil:
			case string:
				if err := c.c.Write(context.Background(), websocket.MessageText, []byte(first)); err != nil {
					t.Fatal(err)
				}
			default:
				c.send(first)
			}
			if !tt.ok {
				c.expectClose(StatusUnauthorized)
				return
			}
			f := c.expect("ready")
			if f.Sub != "u42" || f.Role != auth.RolePI || f.Exp == 0 {
				t.Errorf("ready = %+v", f)
			}
		})
	}
}

func TestRoomPermissions(t *testing.T) {
	e := newEnv(t, Config{}, envOptions{})

	t.Run("pi sees its site only", func(t *testing.T) {
		c := e.connect(pi())
		for _, room := range []string{"site:T008:S02", "trial:T008", "site:T009:S01", "nonsense"} {
			c.send(map[string]any{"type": "subscribe", "room": room})
			if f := c.expect("error"); f.Code != "forbidden" || f.Room != room {
				t.Errorf("subscribe %s: %+v, want forbidden", room, f)
			}
		}
		f := c.subscribe(map[string]any{"room": "site:T008:S01"})
		if f.Room != "site:T008:S01" || f.Offset != 0 || f.Recovered || f.Epoch != e.broker.Epoch() {
			t.Errorf("subscribed = %+v", f)
		}
		e.publish("site:T008:S02", `{"site":"S02"}`)
		e.publish("site:T008:S01", `{"site":"S01"}`)
		if f := c.expectEvent("site:T008:S01", 1); string(f.Data) != `{"site":"S01"}` {
			t.Errorf("data = %s", f.Data)
		}
	})

	t.Run("safety sees trial and its sites", func(t *testing.T) {
		c := e.connect(staff("s7", auth.RoleSafety, []string{"T008"}, nil))
		c.subscribe(map[string]any{"room": "trial:T008"})
		c.subscribe(map[string]any{"room": "site:T008:S05"})
		c.send(map[string]any{"type": "subscribe", "room": "trial:T009"})
		if f := c.expect("error"); f.Code != "forbidden" {
			t.Errorf("trial:T009: %+v", f)
		}
		ev := e.publish("trial:T008", `{"kind":"alert"}`)
		c.expectEvent("trial:T008", ev.Offset)
	})
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, Config{}, envOptions{})
	c := e.connect(pi())
	tests := []struct {
		name  string
		frame string
		typ   websocket.MessageType
	}{
		{"not JSON", "hello", websocket.MessageText},
		{"JSON array", "[1]", websocket.MessageText},
		{"unknown type", `{"type":"dance"}`, websocket.MessageText},
		{"no type", `{"room":"site:T008:S01"}`, websocket.MessageText},
		{"subscribe without room", `{"type":"subscribe"}`, websocket.MessageText},
		{"negative since", `{"type":"subscribe","room":"site:T008:S01","since":-1}`, websocket.MessageText},
		{"fractional since", `{"type":"subscribe","room":"site:T008:S01","since":1.5}`, websocket.MessageText},
		{"room of wrong type", `{"type":"subscribe","room":5}`, websocket.MessageText},
		{"unsubscribe without room", `{"type":"unsubscribe"}`, websocket.MessageText},
		{"auth again", `{"type":"auth","token":"x"}`, websocket.MessageText},
		{"binary frame", `{"type":"subscribe","room":"site:T008:S01"}`, websocket.MessageBinary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.c.Write(context.Background(), tt.typ, []byte(tt.frame)); err != nil {
				t.Fatal(err)
			}
			if f := c.expect("error"); f.Code != "bad_request" || f.Message == "" {
				t.Errorf("got %+v", f)
			}
		})
	}
	// The session survived all of that, and answers an application ping.
	c.send(map[string]any{"type": "ping"})
	c.expect("pong")
	c.subscribe(map[string]any{"room": "site:T008:S01"})

	t.Run("oversized frame closes", func(t *testing.T) {
		c := e.connect(pi())
		big := `{"type":"subscribe","room":"` + strings.Repeat("x", 70<<10) + `"}`
		if err := c.c.Write(context.Background(), websocket.MessageText, []byte(big)); err != nil {
			t.Fatal(err)
		}
		c.expectClose(websocket.StatusMessageTooBig)
	})
}

func TestRecovery(t *testing.T) {
	const room = "site:T008:S01"
	wrongEpoch := "not-" + "the-epoch"
	u := func(n uint64) *uint64 { return &n }
	tests := []struct {
		name      string
		history   int
		since     *uint64
		epoch     *string // nil: the broker's; "" omits it
		recovered bool
		replay    []uint64
	}{
		{name: "since 4 with epoch", since: u(4), recovered: true, replay: []uint64{5, 6, 7, 8, 9, 10}},
		{name: "since 4 without epoch", since: u(4), epoch: new(""), recovered: true, replay: []uint64{5, 6, 7, 8, 9, 10}},
		{name: "since 0", since: u(0), recovered: true, replay: []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{name: "since latest", since: u(10), recovered: true},
		{name: "since beyond latest", since: u(11)},
		{name: "wrong epoch", since: u(4), epoch: &wrongEpoch},
		{name: "history overflow", history: 5, since: u(2)},
		{name: "history just covers", history: 5, since: u(5), recovered: true, replay: []uint64{6, 7, 8, 9, 10}},
		{name: "no since"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{}, envOptions{history: tt.history})
			for i := 1; i <= 10; i++ {
				e.publish(room, fmt.Sprintf(`{"n":%d}`, i))
			}
			c := e.connect(pi())
			msg := map[string]any{"room": room}
			if tt.since != nil {
				msg["since"] = *tt.since
			}
			switch {
			case tt.epoch == nil:
				msg["epoch"] = e.broker.Epoch()
			case *tt.epoch != "":
				msg["epoch"] = *tt.epoch
			}
			f := c.subscribe(msg)
			if f.Offset != 10 || f.Recovered != tt.recovered || f.Epoch != e.broker.Epoch() {
				t.Fatalf("subscribed = %+v, want offset 10, recovered %v", f, tt.recovered)
			}
			for _, o := range tt.replay {
				if f := c.expectEvent(room, o); string(f.Data) != fmt.Sprintf(`{"n":%d}`, o) {
					t.Errorf("event %d data = %s", o, f.Data)
				}
			}
			e.publish(room, `{"n":11}`)
			c.expectEvent(room, 11)
		})
	}
}

func TestResubscribe(t *testing.T) {
	const room = "site:T008:S01"
	e := newEnv(t, Config{}, envOptions{})
	e.publishN(room, 3)
	c := e.connect(pi())
	c.subscribe(map[string]any{"room": room, "since": 1})
	c.expectEvent(room, 2)
	c.expectEvent(room, 3)
	e.publishN(room, 1)
	c.expectEvent(room, 4)

	tests := []struct {
		name      string
		msg       map[string]any
		recovered bool
	}{
		{"no since", map[string]any{"room": room}, false},
		{"since within what the session got", map[string]any{"room": room, "since": 2}, true},
		{"since the latest", map[string]any{"room": room, "since": 4}, true},
		{"since before the session's start", map[string]any{"room": room, "since": 0}, false},
		{"wrong epoch", map[string]any{"room": room, "since": 2, "epoch": "other"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := c.subscribe(tt.msg)
			if f.Offset != 4 || f.Recovered != tt.recovered {
				t.Errorf("subscribed = %+v, want offset 4, recovered %v", f, tt.recovered)
			}
		})
	}
	// Still exactly one delivery per event.
	e.publishN(room, 1)
	c.expectEvent(room, 5)
	e.publish("site:T008:S02", `{}`)
	c.subscribe(map[string]any{"room": room})
}

func TestUnsubscribe(t *testing.T) {
	const a, b = "site:T008:S01", "site:T008:S02"
	var spy *spyBroker
	e := newEnv(t, Config{}, envOptions{wrap: func(m bus.Broker) bus.Broker { spy = newSpy(m); return spy }})
	claims := staff("u1", auth.RoleCRA, []string{"T008"}, []string{"T008/S01", "T008/S02"})
	c1, c2 := e.connect(claims), e.connect(claims)
	for _, c := range []*client{c1, c2} {
		c.subscribe(map[string]any{"room": a})
		c.subscribe(map[string]any{"room": b})
	}
	if subs, _ := spy.counts(a); subs != 1 {
		t.Errorf("node subscribed to %s %d times, want once for two sessions", a, subs)
	}

	c1.send(map[string]any{"type": "unsubscribe", "room": a})
	if f := c1.expect("unsubscribed"); f.Room != a {
		t.Errorf("unsubscribed = %+v", f)
	}
	if _, unsubs := spy.counts(a); unsubs != 0 {
		t.Errorf("node left %s while c2 is still in it", a)
	}
	e.publish(a, `{}`)
	e.publish(b, `{}`)
	c1.expectEvent(b, 1) // and not a's
	c2.expectEvent(a, 1)
	c2.expectEvent(b, 1)

	c2.send(map[string]any{"type": "unsubscribe", "room": a})
	c2.expect("unsubscribed")
	if _, unsubs := spy.counts(a); unsubs != 1 {
		t.Errorf("node unsubscribed from %s %d times, want once", a, unsubs)
	}
	// Unsubscribing from a room the session is not in is not an error.
	c2.send(map[string]any{"type": "unsubscribe", "room": a})
	c2.expect("unsubscribed")

	// A closed session leaves its rooms.
	c1.c.Close(websocket.StatusNormalClosure, "")
	c2.c.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "sessions to end", func() bool { return e.hub.Sessions() == 0 })
	if _, unsubs := spy.counts(b); unsubs != 1 {
		t.Errorf("node unsubscribed from %s %d times after its sessions ended, want once", b, unsubs)
	}
}

func TestBusFailure(t *testing.T) {
	var spy *spyBroker
	e := newEnv(t, Config{}, envOptions{wrap: func(m bus.Broker) bus.Broker { spy = newSpy(m); return spy }})
	spy.mu.Lock()
	spy.subscribeErr = errors.New("bus down")
	spy.mu.Unlock()
	c := e.connect(pi())
	c.send(map[string]any{"type": "subscribe", "room": "site:T008:S01"})
	if f := c.expect("error"); f.Code != "unavailable" || f.Room != "site:T008:S01" {
		t.Errorf("got %+v", f)
	}
	spy.mu.Lock()
	spy.subscribeErr = nil
	spy.mu.Unlock()
	c.subscribe(map[string]any{"room": "site:T008:S01"})
}

// TestNoLossUnderRace has a publisher racing sessions that subscribe,
// unsubscribe and resubscribe with since; each session must see every event
// after its first subscription exactly once and in order. History is slowed
// so that events land in the joining window, in history, or in both.
func TestNoLossUnderRace(t *testing.T) {
	const (
		room     = "trial:T008"
		events   = 3000
		sessions = 12
		rounds   = 4
	)
	e := newEnv(t, Config{SendQueue: 2 * events}, envOptions{
		history: 2 * events,
		wrap: func(m bus.Broker) bus.Broker {
			s := newSpy(m)
			s.historyDelay = 2 * time.Millisecond
			return s
		},
	})
	claims := staff("s1", auth.RoleSafety, []string{"T008"}, nil)
	clients := make([]*client, sessions)
	for i := range clients {
		clients[i] = e.connect(claims)
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		<-start
		for i := range events {
			e.publish(room, `{"kind":"score"}`)
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // spread publishes over the subscriptions
			}
		}
	})
	errs := make(chan error, sessions)
	for i, c := range clients {
		wg.Go(func() {
			errs <- raceClient(c, room, i, events, rounds, start)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func raceClient(c *client, room string, i, total, rounds int, start <-chan struct{}) error {
	<-start
	var last uint64 // offset of the last event seen
	started := false
	for round := range rounds {
		msg := map[string]any{"type": "subscribe", "room": room}
		if started || i%2 == 0 {
			msg["since"] = last
		}
		if err := c.trySend(msg); err != nil {
			return err
		}
		sub, err := c.tryRead()
		if err != nil {
			return err
		}
		if sub.Type != "subscribed" {
			return fmt.Errorf("client %d: got %+v, want subscribed", i, sub)
		}
		if _, ok := msg["since"]; ok && !sub.Recovered {
			return fmt.Errorf("client %d round %d: since %d not recovered", i, round, last)
		}
		if !sub.Recovered {
			last = sub.Offset
		}
		started = true
		target := uint64(total)
		if round < rounds-1 {
			target = min(uint64(total), last+uint64(total/rounds))
		}
		for last < target {
			f, err := c.tryRead()
			if err != nil {
				return fmt.Errorf("client %d: %w after %d", i, err, last)
			}
			if f.Type != "event" || f.Offset != last+1 {
				return fmt.Errorf("client %d round %d: got %s %d after %d", i, round, f.Type, f.Offset, last)
			}
			last = f.Offset
		}
		if round == rounds-1 {
			return nil
		}
		if err := c.trySend(map[string]any{"type": "unsubscribe", "room": room}); err != nil {
			return err
		}
		// Events queued before the unsubscribe may still arrive; they must
		// still be in order.
		for {
			f, err := c.tryRead()
			if err != nil {
				return err
			}
			if f.Type == "unsubscribed" {
				break
			}
			if f.Type != "event" || f.Offset != last+1 {
				return fmt.Errorf("client %d: got %s %d after %d while unsubscribing", i, f.Type, f.Offset, last)
			}
			last = f.Offset
		}
	}
	return nil
}

func TestSlowClient(t *testing.T) {
	const room = "site:T008:S01"
	e := newEnv(t, Config{SendQueue: 4}, envOptions{
		history:  8,
		listener: func(l net.Listener) net.Listener { return smallBufListener{l} },
	})
	slow := e.dial(&websocket.DialOptions{HTTPClient: smallReadBufferClient()})
	slow.send(map[string]any{"type": "auth", "token": e.token(pi(), time.Hour)})
	slow.expect("ready")
	slow.subscribe(map[string]any{"room": room})
	fast := e.connect(pi())
	fast.subscribe(map[string]any{"room": room})

	before := counterValue(metrics.HubSlowClosed)
	payload := `{"pad":"` + strings.Repeat("x", 8<<10) + `"}`
	var n uint64
	// The slow client never reads, so the server's writes to it stall once
	// the socket buffers fill, and then its queue fills. The fast client is
	// read in lock-step with the publisher, so its queue never holds more
	// than one event.
	for counterValue(metrics.HubSlowClosed) == before {
		if n == 5000 {
			t.Fatal("the slow session was never closed")
		}
		n = e.publish(room, payload).Offset
		fast.expectEvent(room, n)
	}
	slow.expectClose(StatusTooSlow)

	n = e.publish(room, `{}`).Offset
	fast.expectEvent(room, n)
	waitFor(t, "the slow session to end", func() bool { return e.hub.Sessions() == 1 })
}

func TestExpiryAndRefresh(t *testing.T) {
	const s1, s2 = "site:T008:S01", "site:T008:S02"
	e := newEnv(t, Config{}, envOptions{})
	both := staff("u42", auth.RolePI, []string{"T008"}, []string{"T008/S01", "T008/S02"})

	t.Run("expiry closes 4009", func(t *testing.T) {
		c := e.dial(nil)
		c.t = t
		c.send(map[string]any{"type": "auth", "token": e.token(both, 2*time.Second)})
		c.expect("ready")
		c.expectClose(StatusExpired)
	})

	t.Run("refresh", func(t *testing.T) {
		c := e.dial(nil)
		c.t = t
		short := e.token(both, 2*time.Second)
		c.send(map[string]any{"type": "auth", "token": short})
		ready := c.expect("ready")
		c.subscribe(map[string]any{"room": s1})
		c.subscribe(map[string]any{"room": s2})

		patient := auth.Claims{Role: auth.RolePatient, Trial: "T008", Site: "S01"}
		patient.Subject = "u42"
		for _, bad := range []string{"garbage", e.token(staff("u43", auth.RolePI, nil, []string{"T008/S01"}), time.Hour), e.token(patient, time.Hour)} {
			c.send(map[string]any{"type": "refresh", "token": bad})
			if f := c.expect("error"); f.Code != "invalid_token" {
				t.Errorf("bad refresh: %+v", f)
			}
		}

		// The new token no longer holds S02: the session leaves that room.
		c.send(map[string]any{"type": "refresh", "token": e.token(pi(), time.Hour)})
		f := c.expect("refreshed")
		if f.Exp < time.Now().Add(59*time.Minute).Unix() {
			t.Errorf("refreshed exp = %d, want about an hour from now", f.Exp)
		}
		if f := c.expect("unsubscribed"); f.Room != s2 || f.Reason != "forbidden" {
			t.Errorf("got %+v, want %s dropped", f, s2)
		}

		// Outlive the first token's expiry; the session must still serve.
		time.Sleep(time.Until(time.Unix(ready.Exp, 0).Add(300 * time.Millisecond)))
		e.publish(s2, `{}`)
		ev := e.publish(s1, `{}`)
		c.expectEvent(s1, ev.Offset)
		c.subscribe(map[string]any{"room": s1})
	})
}

func TestOrigin(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		origin  string
		ok      bool
	}{
		{"same origin by default", nil, "", true},
		{"other origin refused by default", nil, "https://evil.example", false},
		{"listed origin", []string{"board.example"}, "https://board.example", true},
		{"unlisted origin", []string{"board.example"}, "https://evil.example", false},
		{"wildcard", []string{"*"}, "https://anything.example", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{AllowedOrigins: tt.allowed}, envOptions{})
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{HTTPHeader: h})
			if tt.ok {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				c.CloseNow()
				return
			}
			if err == nil {
				c.CloseNow()
				t.Fatal("dial succeeded, want 403")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("dial: %v, want 403", err)
			}
		})
	}
}

func TestShutdown(t *testing.T) {
	e := newEnv(t, Config{}, envOptions{})
	c1, c2 := e.connect(pi()), e.connect(pi())
	c1.subscribe(map[string]any{"room": "site:T008:S01"})
	if got := e.hub.Sessions(); got != 2 {
		t.Fatalf("Sessions() = %d, want 2", got)
	}
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		errc <- e.hub.Shutdown(ctx)
	}()
	c1.expectClose(websocket.StatusGoingAway)
	c2.expectClose(websocket.StatusGoingAway)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if got := e.hub.Sessions(); got != 0 {
		t.Errorf("Sessions() = %d after Shutdown", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, e.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Shutdown: %v, want 503", err)
	}
}

// TestBusReset: when the bus's offsets restart under a new epoch, every
// session is closed 1012 so that it reconnects and is told it cannot
// recover; the hub keeps serving.
func TestBusReset(t *testing.T) {
	var spy *spyBroker
	e := newEnv(t, Config{}, envOptions{wrap: func(m bus.Broker) bus.Broker { spy = newSpy(m); return spy }})
	c1, c2 := e.connect(pi()), e.connect(pi())
	c1.subscribe(map[string]any{"room": "site:T008:S01"})
	spy.deliver(bus.Reset)
	c1.expectClose(websocket.StatusServiceRestart)
	c2.expectClose(websocket.StatusServiceRestart)
	c3, c4 := e.connect(pi()), e.connect(pi())
	c3.subscribe(map[string]any{"room": "site:T008:S01"})
	// A reset of one room closes its sessions only.
	spy.deliver(bus.Event{Room: "site:T008:S01"})
	c3.expectClose(websocket.StatusServiceRestart)
	c4.send(map[string]any{"type": "subscribe", "room": "site:T008:S01"})
	c4.expect("subscribed")
}

func TestEncodeEvent(t *testing.T) {
	tests := []struct {
		name string
		ev   bus.Event
		want string
		err  bool
	}{
		{"object", bus.Event{Room: "site:T1:S1", Offset: 7, Data: []byte(`{"a":1}`)},
			`{"type":"event","room":"site:T1:S1","offset":7,"data":{"a":1}}`, false},
		{"empty data", bus.Event{Room: "r", Offset: 1}, `{"type":"event","room":"r","offset":1,"data":null}`, false},
		{"room escaped", bus.Event{Room: `a"<b>`, Offset: 1, Data: []byte(`1`)},
			`{"type":"event","room":"a\"\u003cb\u003e","offset":1,"data":1}`, false},
		{"invalid data", bus.Event{Room: "r", Offset: 1, Data: []byte(`{`)}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeEvent(tt.ev)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			if !bytes.Equal(got, []byte(tt.want)) {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestKeepAlive(t *testing.T) {
	tests := []struct {
		name string
		pong bool
	}{
		{"answered pings keep the session", true},
		{"unanswered pings close it", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Config{PingInterval: 20 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}, envOptions{})
			pings := make(chan struct{}, 100)
			c := e.dial(&websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
				select {
				case pings <- struct{}{}:
				default:
				}
				return tt.pong
			}})
			c.t = t
			c.send(map[string]any{"type": "auth", "token": e.token(pi(), time.Hour)})
			c.expect("ready")
			if !tt.pong {
				c.expectClose(websocket.StatusPolicyViolation)
				return
			}
			// Reading runs the client's ping handling; stop once a few
			// pings have been answered.
			done := make(chan struct{})
			go func() {
				for range 3 {
					<-pings
				}
				close(done)
			}()
			go func() {
				<-done
				e.publish("site:T008:S01", `{}`)
			}()
			c.subscribe(map[string]any{"room": "site:T008:S01", "since": 0})
			c.expectEvent("site:T008:S01", 1)
		})
	}
}
