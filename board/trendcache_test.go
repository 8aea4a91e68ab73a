package board

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vigil/store"
)

// countingStore counts the trend scans that reach the store.
type countingStore struct {
	store.Store
	scans atomic.Int32
}

func (s *countingStore) Trends(ctx context.Context, q store.TrendQuery) (store.Trends, error) {
	s.scans.Add(1)
	return s.Store.Trends(ctx, q)
}

// A site's boards share one scan per window: concurrent and later requests
// within trendTTL are answered from the first, and another window or site
// scans again.
func TestTrendCacheSharesScans(t *testing.T) {
	e := newTrendEnv(t)
	e.add(t, "T1", "S1", "P1", trendNow.Add(-time.Hour), 80, 37, 1)
	cs := &countingStore{Store: e.store}
	tc := newTrendCache()
	q := store.NewTrendQuery("T1", "S1", trendNow, 24, 48)

	var wg sync.WaitGroup
	replies := make([][]byte, 8)
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := tc.get(t.Context(), cs, q)
			if err != nil {
				t.Error(err)
			}
			replies[i] = b
		}()
	}
	wg.Wait()
	if _, err := tc.get(t.Context(), cs, q); err != nil {
		t.Fatal(err)
	}
	if n := cs.scans.Load(); n != 1 {
		t.Fatalf("%d scans for one window, want 1", n)
	}
	for _, b := range replies {
		if string(b) != string(replies[0]) || len(b) == 0 {
			t.Fatalf("replies differ: %s vs %s", b, replies[0])
		}
	}
	for _, other := range []store.TrendQuery{
		store.NewTrendQuery("T1", "S2", trendNow, 24, 48),
		store.NewTrendQuery("T1", "S1", trendNow, 24, 24),
		store.NewTrendQuery("T1", "S1", trendNow.Add(31*time.Minute), 24, 48),
	} {
		before := cs.scans.Load()
		if _, err := tc.get(t.Context(), cs, other); err != nil {
			t.Fatal(err)
		}
		if cs.scans.Load() != before+1 {
			t.Errorf("%+v was answered from another window's reply", other)
		}
	}
}
