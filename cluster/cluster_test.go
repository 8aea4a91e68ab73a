package cluster_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"vigil/cluster"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestLeaseRunsOnceAndIsTakenOver: of three nodes competing for a lease,
// one runs the work at a time; when it stops (a node dying, or shutting
// down), another takes the work over.
func TestLeaseRunsOnceAndIsTakenOver(t *testing.T) {
	rdb := newRedis(t)
	var (
		mu            sync.Mutex
		running, most int
		holders       = make(chan int, 10)
	)
	work := func(node int) func(context.Context) {
		return func(ctx context.Context) {
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
			holders <- node
			<-ctx.Done()
			mu.Lock()
			running--
			mu.Unlock()
		}
	}
	ctxs := make([]context.CancelFunc, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		ctxs[i] = cancel
		l := cluster.NewLeases(rdb, "test:lease:", time.Second, quiet)
		wg.Go(func() { l.Run(ctx, "escalations", work(i)) })
	}
	defer func() {
		for _, c := range ctxs {
			c()
		}
		wg.Wait()
	}()
	first := <-holders
	time.Sleep(1500 * time.Millisecond) // several renewals: nobody else takes it
	select {
	case other := <-holders:
		t.Fatalf("node %d took the lease while node %d held it", other, first)
	default:
	}
	ctxs[first]() // the holder stops (and releases)
	select {
	case next := <-holders:
		if next == first {
			t.Fatalf("the stopped node %d took the lease again", first)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no node took the lease over")
	}
	mu.Lock()
	defer mu.Unlock()
	if most != 1 {
		t.Fatalf("%d nodes ran the work at once", most)
	}
}

// TestLeaseExpiresWhenItsHolderVanishes: a lease whose holder stopped
// renewing (a node killed) is taken over after its TTL.
func TestLeaseExpiresWhenItsHolderVanishes(t *testing.T) {
	rdb := newRedis(t)
	ctx := t.Context()
	// A dead node's lease: set, never renewed, never released.
	if err := rdb.Set(ctx, "test:lease:sweep", "dead-node", time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	taken := make(chan time.Time, 1)
	start := time.Now()
	l := cluster.NewLeases(rdb, "test:lease:", time.Second, quiet)
	go l.Run(ctx, "sweep", func(ctx context.Context) { taken <- time.Now(); <-ctx.Done() })
	select {
	case at := <-taken:
		if at.Sub(start) < 900*time.Millisecond {
			t.Fatalf("taken after %v, before the dead holder's TTL ran out", at.Sub(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the dead node's lease was never taken over")
	}
}

type spyCache struct {
	mu     sync.Mutex
	events []string
}

func (s *spyCache) add(e string)                    { s.mu.Lock(); s.events = append(s.events, e); s.mu.Unlock() }
func (s *spyCache) InvalidateProtocol(trial string) { s.add("protocol " + trial) }
func (s *spyCache) InvalidatePatient(trial, site, patient string) {
	s.add("patient " + trial + "/" + site + "/" + patient)
}
func (s *spyCache) InvalidateAll() { s.add("all") }
func (s *spyCache) has(e string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.events {
		if x == e {
			return true
		}
	}
	return false
}

// TestInvalidationsReachEveryNode: a change on node A clears node B's
// cache entry; a (re)subscription clears everything, since pub/sub may have
// lost messages meanwhile.
func TestInvalidationsReachEveryNode(t *testing.T) {
	rdb := newRedis(t)
	cacheA, cacheB := &spyCache{}, &spyCache{}
	a := cluster.NewInvalidations(rdb, "test:invalidate", cacheA, quiet)
	b := cluster.NewInvalidations(rdb, "test:invalidate", cacheB, quiet)
	go b.Run(t.Context())
	waitUntil(t, "B subscribed", func() bool { return cacheB.has("all") })
	a.InvalidateProtocol("T008")
	a.InvalidatePatient("T008", "S01", "P1001")
	if !cacheA.has("protocol T008") {
		t.Fatal("the changing node's own cache was not invalidated")
	}
	waitUntil(t, "B invalidated", func() bool {
		return cacheB.has("protocol T008") && cacheB.has("patient T008/S01/P1001")
	})
	// B's subscription is killed: it resubscribes and clears everything.
	cacheB.mu.Lock()
	cacheB.events = nil
	cacheB.mu.Unlock()
	if err := rdb.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "B resubscribed and cleared its cache", func() bool { return cacheB.has("all") })
	a.InvalidateProtocol("T009")
	waitUntil(t, "B invalidated after resubscribing", func() bool { return cacheB.has("protocol T009") })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
