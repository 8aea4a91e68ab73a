package redisbus

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"vigil/bus"
	"vigil/bus/redisbus/redistest"
)

// Fast probes keep the connection-loss tests short.
const (
	testProbeInterval = 100 * time.Millisecond
	testProbeTimeout  = 500 * time.Millisecond
)

func testPrefix() string { return "test:" + rand.Text()[:10] + ":" }

// newNode starts a broker on url with fast probes; prefix isolates the test's
// keys when the server is shared.
func newNode(t testing.TB, url, prefix string, opts ...Option) *Broker {
	t.Helper()
	opts = append([]Option{WithKeyPrefix(prefix), WithProbe(testProbeInterval, testProbeTimeout)}, opts...)
	b, err := New(context.Background(), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// recorder is a handler that keeps what it receives.
type recorder struct {
	mu     sync.Mutex
	events []bus.Event
}

func (r *recorder) handle(ev bus.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []bus.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// offsetsOf returns the offsets of room's events, with 0 for a reset
// notification of the room or of every room.
func offsetsOf(events []bus.Event, room string) []uint64 {
	out := []uint64{}
	for _, e := range events {
		if e.Room == room || e.Offset == 0 && e.Room == "" {
			out = append(out, e.Offset)
		}
	}
	return out
}

func span(from, to uint64) []uint64 {
	out := []uint64{}
	for o := from; o <= to; o++ {
		out = append(out, o)
	}
	return out
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func publishN(t testing.TB, b *Broker, room string, n int) {
	t.Helper()
	for i := range n {
		if _, err := b.Publish(context.Background(), room, fmt.Appendf(nil, `{"i":%d}`, i+1)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHistory is the in-process broker's history table, run on Redis.
func TestHistory(t *testing.T) {
	srv := redistest.Start(t)
	tests := []struct {
		name       string
		size       int
		published  int
		since      uint64
		want       []uint64
		wantLatest uint64
		wantErr    error
	}{
		{"empty room, since 0", 5, 0, 0, []uint64{}, 0, nil},
		{"empty room, since 1", 5, 0, 1, nil, 0, bus.ErrUnrecoverable},
		{"all from the start", 5, 3, 0, span(1, 3), 3, nil},
		{"some", 5, 3, 1, span(2, 3), 3, nil},
		{"since latest", 5, 3, 3, []uint64{}, 3, nil},
		{"since beyond latest", 5, 3, 4, nil, 3, bus.ErrUnrecoverable},
		{"latest only", 5, 3, math.MaxUint64, nil, 3, bus.ErrUnrecoverable},
		{"beyond Lua's exact integers", 5, 3, 1<<53 + 1, nil, 3, bus.ErrUnrecoverable},
		{"ring full, oldest-1 still covered", 5, 12, 7, span(8, 12), 12, nil},
		{"ring full, one too old", 5, 12, 6, nil, 12, bus.ErrUnrecoverable},
		{"ring full, since 0", 5, 12, 0, nil, 12, bus.ErrUnrecoverable},
		{"exactly full, since 0", 5, 5, 0, span(1, 5), 5, nil},
		{"default size", 0, 1001, 1, span(2, 1001), 1001, nil},
		{"default size, too old", -1, 1001, 0, nil, 1001, bus.ErrUnrecoverable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newNode(t, srv.URL, testPrefix(), WithHistorySize(tt.size))
			publishN(t, b, "site:T1:S1", tt.published)
			publishN(t, b, "site:T1:S2", 2) // another room must not interfere
			events, latest, err := b.History(context.Background(), "site:T1:S1", tt.since)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if latest != tt.wantLatest {
				t.Errorf("latest = %d, want %d", latest, tt.wantLatest)
			}
			if tt.wantErr != nil {
				return
			}
			if got := offsetsOf(events, "site:T1:S1"); !slices.Equal(got, tt.want) {
				t.Errorf("offsets = %v, want %v", got, tt.want)
			}
			for _, e := range events {
				if want := fmt.Sprintf(`{"i":%d}`, e.Offset); string(e.Data) != want || e.Room != "site:T1:S1" {
					t.Errorf("event %d = %s %s, want %s", e.Offset, e.Room, e.Data, want)
				}
			}
		})
	}
}

func TestHistoryExpiredList(t *testing.T) {
	srv := redistest.Start(t)
	prefix := testPrefix()
	b := newNode(t, srv.URL, prefix)
	ctx := context.Background()
	publishN(t, b, "r", 3)
	// The history list expires with an abandoned room; the offsets do not.
	_, hist := b.roomKeys("r")
	if err := b.client.Del(ctx, hist).Err(); err != nil {
		t.Fatal(err)
	}
	if _, latest, err := b.History(ctx, "r", 1); !errors.Is(err, bus.ErrUnrecoverable) || latest != 3 {
		t.Fatalf("History after expiry: latest %d, err %v", latest, err)
	}
	ev, err := b.Publish(ctx, "r", []byte(`{"i":4}`))
	if err != nil || ev.Offset != 4 {
		t.Fatalf("Publish after expiry: %+v, %v", ev, err)
	}
	if events, _, err := b.History(ctx, "r", 3); err != nil || !slices.Equal(offsetsOf(events, "r"), []uint64{4}) {
		t.Fatalf("History(3): %v, %v", events, err)
	}
	if ttl := b.client.TTL(ctx, hist).Val(); ttl <= 0 || ttl > DefaultHistoryTTL {
		t.Errorf("history TTL = %v", ttl)
	}
}

func TestTwoNodes(t *testing.T) {
	srv := redistest.Start(t)
	prefix := testPrefix()
	a, b := newNode(t, srv.URL, prefix), newNode(t, srv.URL, prefix)
	if a.Epoch() == "" || a.Epoch() != b.Epoch() {
		t.Fatalf("epochs %q and %q must be equal and non-empty", a.Epoch(), b.Epoch())
	}
	var gotA, gotB recorder
	a.SetHandler(gotA.handle)
	b.SetHandler(gotB.handle)
	ctx := context.Background()
	const room, n = "site:T1:S1", 100

	publishN(t, a, room, 2) // before B subscribes: history only
	if err := b.Subscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	if err := b.Subscribe(ctx, room); err != nil { // idempotent
		t.Fatal(err)
	}
	buf := []byte(`{"x":1}`)
	ev, err := a.Publish(ctx, room, buf)
	if err != nil || ev.Offset != 3 || ev.Room != room {
		t.Fatalf("Publish = %+v, %v", ev, err)
	}
	buf[2] = 'y' // the broker must have copied
	if string(ev.Data) != `{"x":1}` {
		t.Errorf("returned data %s", ev.Data)
	}
	for i := 4; i <= n; i++ {
		if _, err := a.Publish(ctx, room, fmt.Appendf(nil, `{"i":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "B to receive every event", func() bool { return len(gotB.snapshot()) >= n-2 })
	got := gotB.snapshot()
	if offs := offsetsOf(got, room); !slices.Equal(offs, span(3, n)) {
		t.Fatalf("B received offsets %v, want 3..%d", offs, n)
	}
	if string(got[0].Data) != `{"x":1}` || string(got[1].Data) != `{"i":4}` {
		t.Errorf("B received data %s, %s", got[0].Data, got[1].Data)
	}
	if len(gotA.snapshot()) != 0 {
		t.Errorf("A is not subscribed but received %d events", len(gotA.snapshot()))
	}
}

func TestUnsubscribe(t *testing.T) {
	srv := redistest.Start(t)
	prefix := testPrefix()
	a, b := newNode(t, srv.URL, prefix), newNode(t, srv.URL, prefix)
	var got recorder
	b.SetHandler(got.handle)
	ctx := context.Background()
	for _, r := range []string{"r1", "fence"} {
		if err := b.Subscribe(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	publishN(t, a, "r1", 1)
	eventually(t, 5*time.Second, "r1/1", func() bool { return len(got.snapshot()) == 1 })
	if err := b.Unsubscribe(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Unsubscribe(ctx, "never-subscribed"); err != nil {
		t.Fatal(err)
	}
	publishN(t, a, "r1", 1)
	// Pub/sub is ordered: once the fence's event arrives, r1/2 would have.
	publishN(t, a, "fence", 1)
	eventually(t, 5*time.Second, "the fence", func() bool { return len(offsetsOf(got.snapshot(), "fence")) == 1 })
	if offs := offsetsOf(got.snapshot(), "r1"); !slices.Equal(offs, []uint64{1}) {
		t.Fatalf("r1 offsets after Unsubscribe: %v", offs)
	}
	// Subscribing again continues after the latest offset.
	if err := b.Subscribe(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	publishN(t, a, "r1", 1)
	eventually(t, 5*time.Second, "r1/3", func() bool { return len(offsetsOf(got.snapshot(), "r1")) == 2 })
	if offs := offsetsOf(got.snapshot(), "r1"); !slices.Equal(offs, []uint64{1, 3}) {
		t.Fatalf("r1 offsets after resubscribing: %v", offs)
	}
}

func TestConcurrentPublishers(t *testing.T) {
	srv := redistest.Start(t)
	prefix := testPrefix()
	const perNode, each = 4, 100
	a, b := newNode(t, srv.URL, prefix), newNode(t, srv.URL, prefix)
	watcher := newNode(t, srv.URL, prefix)
	var got recorder
	watcher.SetHandler(got.handle)
	ctx := context.Background()
	rooms := []string{"r1", "r2"}
	for _, r := range rooms {
		if err := watcher.Subscribe(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	returned := map[string][]uint64{}
	for _, node := range []*Broker{a, b} {
		for range perNode {
			wg.Go(func() {
				for i := range each {
					ev, err := node.Publish(ctx, rooms[i%2], []byte(`{}`))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					returned[ev.Room] = append(returned[ev.Room], ev.Offset)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()

	total := uint64(2 * perNode * each / 2) // per room
	want := span(1, total)
	for _, r := range rooms {
		all := slices.Sorted(slices.Values(returned[r]))
		if !slices.Equal(all, want) {
			t.Errorf("room %s: offsets returned to publishers are not unique and contiguous", r)
		}
	}
	eventually(t, 10*time.Second, "every event at the watcher", func() bool {
		return len(got.snapshot()) >= int(2*total)
	})
	for _, r := range rooms {
		if offs := offsetsOf(got.snapshot(), r); !slices.Equal(offs, want) {
			t.Errorf("room %s delivered out of order, incompletely or twice", r)
		}
		events, _, err := a.History(ctx, r, 0)
		if err != nil || !slices.Equal(offsetsOf(events, r), want) {
			t.Errorf("room %s history: err %v, %d events", r, err, len(events))
		}
	}
}

// TestRedisRestart loses every key: the epoch changes, subscribed nodes get
// the reset notification, and offsets restart at 1.
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	if srv.External() {
		t.Skip("needs a redis-server of its own to restart")
	}
	prefix := testPrefix()
	a, b := newNode(t, srv.URL, prefix), newNode(t, srv.URL, prefix)
	var got recorder
	a.SetHandler(got.handle)
	ctx := context.Background()
	const room = "site:T1:S1"
	if err := a.Subscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	publishN(t, b, room, 5)
	eventually(t, 5*time.Second, "the first events", func() bool { return len(got.snapshot()) == 5 })
	old := a.Epoch()

	srv.Restart()

	// A publish may race the nodes' reconnection; retry until Redis answers.
	var ev bus.Event
	eventually(t, 10*time.Second, "a publish after the restart", func() bool {
		var err error
		ev, err = b.Publish(ctx, room, []byte(`{"after":1}`))
		return err == nil
	})
	if ev.Offset != 1 {
		t.Fatalf("first offset after the restart = %d, want 1", ev.Offset)
	}
	eventually(t, 10*time.Second, "both nodes to adopt the new epoch", func() bool {
		return a.Epoch() != old && b.Epoch() == a.Epoch()
	})
	eventually(t, 10*time.Second, "the reset and the new event at A", func() bool {
		return slices.Equal(offsetsOf(got.snapshot(), room), []uint64{1, 2, 3, 4, 5, 0, 1})
	})
	evs := got.snapshot()
	if reset := evs[5]; reset.Room != "" || reset.Data != nil {
		t.Errorf("reset notification = %+v", reset)
	}
	if string(evs[6].Data) != `{"after":1}` {
		t.Errorf("event after the reset carries %s", evs[6].Data)
	}

	// An old-epoch since beyond the new latest.
	if _, latest, err := a.History(ctx, room, 5); !errors.Is(err, bus.ErrUnrecoverable) || latest != 1 {
		t.Errorf("History(5) after the restart: latest %d, err %v", latest, err)
	}
	// A node whose cached epoch is stale cannot vouch for a since.
	eventually(t, 10*time.Second, "B to be ready", func() bool { return b.Ping(ctx) == nil })
	b.epoch.Store(&old)
	if _, latest, err := b.History(ctx, room, 0); !errors.Is(err, bus.ErrUnrecoverable) || latest != 1 {
		t.Errorf("History with a stale epoch: latest %d, err %v", latest, err)
	}
	if b.Epoch() != a.Epoch() {
		t.Errorf("History did not refresh the epoch")
	}
	if events, _, err := b.History(ctx, room, 0); err != nil || len(events) != 1 {
		t.Errorf("History(0) in the new epoch: %v, %v", events, err)
	}
	eventually(t, 10*time.Second, "A to be ready", func() bool { return a.Ping(ctx) == nil })
}

// TestEpochKeyLost covers losing the epoch key alone: rooms restart under the
// new epoch even though their keys survived.
func TestEpochKeyLost(t *testing.T) {
	srv := redistest.Start(t)
	prefix := testPrefix()
	a := newNode(t, srv.URL, prefix)
	var got recorder
	a.SetHandler(got.handle)
	ctx := context.Background()
	if err := a.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	publishN(t, a, "r", 3)
	eventually(t, 5*time.Second, "r/1..3", func() bool { return len(got.snapshot()) == 3 })
	if err := a.client.Del(ctx, a.epochKey).Err(); err != nil {
		t.Fatal(err)
	}
	ev, err := a.Publish(ctx, "r", []byte(`{}`))
	if err != nil || ev.Offset != 1 {
		t.Fatalf("Publish after losing the epoch: %+v, %v", ev, err)
	}
	eventually(t, 5*time.Second, "reset then r/1", func() bool {
		return slices.Equal(offsetsOf(got.snapshot(), "r"), []uint64{1, 2, 3, 0, 1})
	})
}

// TestSubscriberLoss breaks the subscriber connection while another node
// publishes: the node notices, resubscribes, and delivers every event once,
// in order.
func TestSubscriberLoss(t *testing.T) {
	tests := []struct {
		name string
		// viaProxy connects the subscribing node through a proxy.
		viaProxy bool
		kill     func(t *testing.T, srv *redistest.Server, proxy *redistest.Proxy)
	}{
		{"CLIENT KILL TYPE pubsub", false, func(t *testing.T, srv *redistest.Server, _ *redistest.Proxy) {
			c := redis.NewClient(&redis.Options{Addr: srv.Addr})
			defer c.Close()
			n, err := c.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Result()
			if err != nil || n == 0 {
				t.Errorf("CLIENT KILL: %d, %v", n, err)
			}
		}},
		{"silently dead connection, found by the probe", true, func(t *testing.T, _ *redistest.Server, p *redistest.Proxy) {
			if n := p.BlackholeSubscribers(); n != 1 {
				t.Errorf("blackholed %d connections, want 1", n)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			prefix := testPrefix()
			url := srv.URL
			var proxy *redistest.Proxy
			if tt.viaProxy {
				proxy = redistest.NewProxy(t, srv.Addr)
				url = proxy.URL
			}
			pub, sub := newNode(t, srv.URL, prefix), newNode(t, url, prefix)
			var got recorder
			sub.SetHandler(got.handle)
			ctx := context.Background()
			const room, n = "site:T1:S1", 300
			if err := sub.Subscribe(ctx, room); err != nil {
				t.Fatal(err)
			}
			gens := sub.generations.Load()
			for i := range n {
				if i == 100 {
					tt.kill(t, srv, proxy)
				}
				if _, err := pub.Publish(ctx, room, fmt.Appendf(nil, `{"i":%d}`, i+1)); err != nil {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Millisecond)
			}
			eventually(t, 10*time.Second, "every event at the subscriber", func() bool {
				return len(got.snapshot()) >= n
			})
			time.Sleep(50 * time.Millisecond) // room for duplicates to show
			events := got.snapshot()
			if offs := offsetsOf(events, room); !slices.Equal(offs, span(1, n)) {
				t.Fatalf("delivered %d events, not exactly 1..%d in order: %v", len(offs), n, offs)
			}
			for _, e := range events {
				if want := fmt.Sprintf(`{"i":%d}`, e.Offset); string(e.Data) != want {
					t.Fatalf("event %d carries %s", e.Offset, e.Data)
				}
			}
			if sub.generations.Load() == gens {
				t.Errorf("the subscriber connection was not replaced")
			}
			eventually(t, 5*time.Second, "the node to be ready", func() bool { return sub.Ping(ctx) == nil })
		})
	}
}

// TestRoomReset: the node missed more events of a room than history holds.
func TestRoomReset(t *testing.T) {
	srv := redistest.Start(t)
	prefix := testPrefix()
	proxy := redistest.NewProxy(t, srv.Addr)
	pub := newNode(t, srv.URL, prefix, WithHistorySize(5))
	sub := newNode(t, proxy.URL, prefix, WithHistorySize(5), WithProbe(time.Second, time.Second))
	var got recorder
	sub.SetHandler(got.handle)
	ctx := context.Background()
	const room = "r"
	if err := sub.Subscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	publishN(t, pub, room, 1)
	eventually(t, 5*time.Second, "r/1", func() bool { return len(got.snapshot()) == 1 })
	gens := sub.generations.Load()
	proxy.BlackholeSubscribers()
	publishN(t, pub, room, 20) // offsets 2..21; history keeps 17..21
	eventually(t, 10*time.Second, "the probe to replace the connection", func() bool {
		return sub.generations.Load() > gens && sub.Ping(ctx) == nil
	})
	publishN(t, pub, room, 1) // 22
	eventually(t, 5*time.Second, "r/22", func() bool {
		evs := got.snapshot()
		return evs[len(evs)-1].Offset == 22
	})
	time.Sleep(20 * time.Millisecond) // room for duplicates to show
	// 1, the room reset, then what history still held when the node
	// re-synced (17..21, or 18..22 if 22 was published by then), then 22.
	events := got.snapshot()
	offs := offsetsOf(events, room)
	if len(offs) < 4 || offs[0] != 1 || offs[1] != 0 || events[1].Room != room ||
		!slices.Equal(offs[2:], span(offs[2], 22)) || offs[2] < 17 {
		t.Fatalf("offsets %v, want 1, a room reset, then a contiguous tail from 17 or 18 to 22", offs)
	}
}

func TestPingWhileRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	if srv.External() {
		t.Skip("needs a redis-server of its own to stop")
	}
	b := newNode(t, srv.URL, testPrefix())
	ctx := context.Background()
	eventually(t, 5*time.Second, "ready", func() bool { return b.Ping(ctx) == nil })
	srv.Stop()
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	err := b.Ping(pctx)
	cancel()
	if err == nil {
		t.Fatal("Ping succeeded while Redis is down")
	}
	if _, err := b.Publish(ctx, "r", nil); err == nil {
		t.Fatal("Publish succeeded while Redis is down")
	}
	srv.Restart()
	eventually(t, 10*time.Second, "ready again", func() bool { return b.Ping(ctx) == nil })
}

func TestSubscribeWhileRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	if srv.External() {
		t.Skip("needs a redis-server of its own to stop")
	}
	b := newNode(t, srv.URL, testPrefix())
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := b.Subscribe(ctx, "r"); err == nil {
		t.Fatal("Subscribe succeeded while Redis is down")
	}
	b.mu.Lock()
	n := len(b.rooms)
	b.mu.Unlock()
	if n != 0 {
		t.Errorf("a failed Subscribe left %d rooms", n)
	}
}

func TestNewFails(t *testing.T) {
	if _, err := New(context.Background(), "http://[::1"); err == nil {
		t.Error("New accepted a malformed URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// A port nothing listens on.
	if _, err := New(ctx, "redis://127.0.0.1:1/0"); err == nil {
		t.Error("New succeeded without Redis")
	}
}

func TestCloseStopsEverything(t *testing.T) {
	srv := redistest.Start(t)
	prefix := testPrefix()
	ctx := context.Background()
	other := newNode(t, srv.URL, prefix)
	before := runtime.NumGoroutine()

	b, err := New(ctx, srv.URL, WithKeyPrefix(prefix), WithProbe(testProbeInterval, testProbeTimeout))
	if err != nil {
		t.Fatal(err)
	}
	var got recorder
	b.SetHandler(got.handle)
	if err := b.Subscribe(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	publishN(t, other, "r", 3)
	eventually(t, 5*time.Second, "delivery", func() bool { return len(got.snapshot()) == 3 })
	time.Sleep(3 * testProbeInterval) // let the probe run
	for range 2 {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Publish(ctx, "r", nil); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if err := b.Subscribe(ctx, "r2"); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
	if _, _, err := b.History(ctx, "r", 0); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("History after Close: %v", err)
	}
	if err := b.Ping(ctx); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Ping after Close: %v", err)
	}
	if err := b.Unsubscribe(ctx, "r"); err != nil {
		t.Errorf("Unsubscribe after Close: %v", err)
	}
	publishN(t, other, "r", 1)
	time.Sleep(50 * time.Millisecond)
	if len(got.snapshot()) != 3 {
		t.Errorf("the handler ran after Close")
	}
	eventually(t, 5*time.Second, "the broker's goroutines to end", func() bool {
		return runtime.NumGoroutine() <= before
	})

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := other.Publish(cancelled, "r", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context: %v", err)
	}
}

func TestParseMessage(t *testing.T) {
	tests := []struct {
		in     string
		epoch  string
		offset uint64
		data   string
		ok     bool
	}{
		{"E:1:{}", "E", 1, "{}", true},
		{"E:42:a:b:c", "E", 42, "a:b:c", true},
		{"E:7:", "E", 7, "", true},
		{"E:0:x", "", 0, "", false},
		{"E:x:y", "", 0, "", false},
		{":1:y", "", 0, "", false},
		{"E1", "", 0, "", false},
		{"E:1", "", 0, "", false},
	}
	for _, tt := range tests {
		epoch, offset, data, ok := parseMessage(tt.in)
		if epoch != tt.epoch || offset != tt.offset || data != tt.data || ok != tt.ok {
			t.Errorf("parseMessage(%q) = %q %d %q %v", tt.in, epoch, offset, data, ok)
		}
	}
}

func BenchmarkPublish(b *testing.B) {
	srv := redistest.Start(b)
	node := newNode(b, srv.URL, testPrefix())
	data := []byte(`{"kind":"score","reading_id":"r-0001","patient_id":"P1001","score":0.42}`)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := node.Publish(ctx, "site:T1:S1", data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel-8-rooms", func(b *testing.B) {
		b.ReportAllocs()
		var next sync.Mutex
		i := 0
		b.RunParallel(func(pb *testing.PB) {
			next.Lock()
			room := fmt.Sprintf("site:T1:S%d", i%8)
			i++
			next.Unlock()
			for pb.Next() {
				if _, err := node.Publish(ctx, room, data); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
