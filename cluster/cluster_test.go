package cluster_test

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"vigil/cluster"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

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
