package bus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
)

func publishN(t *testing.T, m *Memory, room string, n int) {
	t.Helper()
	for i := range n {
		if _, err := m.Publish(context.Background(), room, fmt.Appendf(nil, `{"i":%d}`, i+1)); err != nil {
			t.Fatal(err)
		}
	}
}

func offsets(events []Event) []uint64 {
	out := make([]uint64, len(events))
	for i, e := range events {
		out[i] = e.Offset
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

func TestMemoryHistory(t *testing.T) {
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
		{"empty room, since 1", 5, 0, 1, nil, 0, ErrUnrecoverable},
		{"all from the start", 5, 3, 0, span(1, 3), 3, nil},
		{"some", 5, 3, 1, span(2, 3), 3, nil},
		{"since latest", 5, 3, 3, []uint64{}, 3, nil},
		{"since beyond latest", 5, 3, 4, nil, 3, ErrUnrecoverable},
		{"latest only", 5, 3, math.MaxUint64, nil, 3, ErrUnrecoverable},
		{"ring full, oldest-1 still covered", 5, 12, 7, span(8, 12), 12, nil},
		{"ring full, one too old", 5, 12, 6, nil, 12, ErrUnrecoverable},
		{"ring full, since 0", 5, 12, 0, nil, 12, ErrUnrecoverable},
		{"exactly full, since 0", 5, 5, 0, span(1, 5), 5, nil},
		{"default size", 0, 1001, 1, span(2, 1001), 1001, nil},
		{"default size, too old", -1, 1001, 0, nil, 1001, ErrUnrecoverable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMemory(tt.size)
			publishN(t, m, "site:T1:S1", tt.published)
			publishN(t, m, "site:T1:S2", 2) // another room must not interfere
			events, latest, err := m.History(context.Background(), "site:T1:S1", tt.since)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if latest != tt.wantLatest {
				t.Errorf("latest = %d, want %d", latest, tt.wantLatest)
			}
			if tt.wantErr != nil {
				return
			}
			if got := offsets(events); !slices.Equal(got, tt.want) {
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

func TestMemoryDelivery(t *testing.T) {
	m := NewMemory(10)
	var got []Event
	m.SetHandler(func(e Event) { got = append(got, e) })
	ctx := context.Background()

	publishN(t, m, "a", 1) // before Subscribe: history only
	if err := m.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	buf := []byte(`{"x":1}`)
	ev, err := m.Publish(ctx, "a", buf)
	if err != nil {
		t.Fatal(err)
	}
	buf[2] = 'y' // the broker must have copied
	publishN(t, m, "b", 1)
	if err := m.Unsubscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	publishN(t, m, "a", 1)

	if len(got) != 1 || got[0].Offset != 2 || got[0].Room != "a" || string(got[0].Data) != `{"x":1}` {
		t.Fatalf("delivered %+v, want only a/2", got)
	}
	if ev.Offset != 2 || ev.Room != "a" {
		t.Errorf("Publish returned %+v", ev)
	}
	if _, latest, _ := m.History(ctx, "a", 0); latest != 3 {
		t.Errorf("latest = %d, want 3", latest)
	}
}

func TestMemoryConcurrentPublishers(t *testing.T) {
	const publishers, each = 8, 500
	m := NewMemory(publishers * each)
	rooms := []string{"r1", "r2"}
	var mu sync.Mutex
	delivered := map[string][]uint64{}
	m.SetHandler(func(e Event) {
		mu.Lock()
		delivered[e.Room] = append(delivered[e.Room], e.Offset)
		mu.Unlock()
	})
	for _, r := range rooms {
		if err := m.Subscribe(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	returned := make([][]uint64, publishers)
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				ev, err := m.Publish(context.Background(), rooms[i%2], []byte(`{}`))
				if err != nil {
					t.Error(err)
					return
				}
				if ev.Room == "r1" {
					returned[p] = append(returned[p], ev.Offset)
				}
			}
		})
	}
	wg.Wait()

	want := span(1, publishers*each/2)
	all := slices.Concat(returned...)
	slices.Sort(all)
	if !slices.Equal(all, want) {
		t.Errorf("offsets returned to publishers are not unique and contiguous")
	}
	for _, r := range rooms {
		// Delivery order, not just the set, must be offset order.
		if !slices.Equal(delivered[r], want) {
			t.Errorf("room %s delivered out of order or incompletely", r)
		}
		events, _, err := m.History(context.Background(), r, 0)
		if err != nil || !slices.Equal(offsets(events), want) {
			t.Errorf("room %s history: err %v, %d events", r, err, len(events))
		}
	}
}

func TestMemoryEpochAndClose(t *testing.T) {
	a, b := NewMemory(1), NewMemory(1)
	if a.Epoch() == "" || a.Epoch() == b.Epoch() {
		t.Errorf("epochs %q and %q must be non-empty and distinct", a.Epoch(), b.Epoch())
	}
	ctx := context.Background()
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	publishN(t, a, "r", 1)
	for range 2 {
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Publish(ctx, "r", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if err := a.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close: %v", err)
	}
	if events, _, err := a.History(ctx, "r", 0); err != nil || len(events) != 1 {
		t.Errorf("History after Close: %v, %d events", err, len(events))
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Publish(cancelled, "r", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with cancelled context: %v", err)
	}
}

func TestMemoryStartOffsets(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(10, WithStartOffsets(map[string]uint64{"site:T:S1": 100}, 5000))
	if _, latest, err := m.History(ctx, "site:T:S1", 100); err != nil || latest != 100 {
		t.Fatalf("before any publish: latest %d, err %v", latest, err)
	}
	for _, room := range []string{"site:T:S1", "site:T:S1", "site:T:S2"} {
		if _, err := m.Publish(ctx, room, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		room    string
		since   uint64
		want    []uint64
		latest  uint64
		unrecov bool
	}{
		{"site:T:S1", 100, []uint64{101, 102}, 102, false},
		{"site:T:S1", 101, []uint64{102}, 102, false},
		{"site:T:S1", 102, nil, 102, false},
		{"site:T:S1", 99, nil, 102, true}, // from before the restart: not here
		{"site:T:S1", 1, nil, 102, true},  // a client of the old sequence
		{"site:T:S2", 5000, []uint64{5001}, 5001, false},
		{"site:T:S2", 3, nil, 5001, true},
		{"site:T:S3", 5000, nil, 5000, false}, // untouched room
		{"site:T:S3", 0, nil, 5000, true},
	}
	for _, tc := range cases {
		evs, latest, err := m.History(ctx, tc.room, tc.since)
		if latest != tc.latest || (err != nil) != tc.unrecov {
			t.Fatalf("%s since %d: latest %d err %v", tc.room, tc.since, latest, err)
		}
		var got []uint64
		for _, e := range evs {
			got = append(got, e.Offset)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Fatalf("%s since %d: offsets %v, want %v", tc.room, tc.since, got, tc.want)
		}
	}
	if got := m.Offsets(); got["site:T:S1"] != 102 || got["site:T:S2"] != 5001 || len(got) != 2 {
		t.Fatalf("Offsets() = %v", got)
	}
}

// TestMemoryRingAfterStartOffset: the ring grows from empty and then wraps,
// indexed from the offset the room continued after.
func TestMemoryRingAfterStartOffset(t *testing.T) {
	tests := []struct {
		published int
		since     uint64
		want      []uint64
		unrecov   bool
	}{
		{3, 100, span(101, 103), false},
		{10, 100, span(101, 110), false},
		{25, 115, span(116, 125), false},
		{25, 114, nil, true},
		{25, 124, span(125, 125), false},
		{25, 100, nil, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d after %d", tt.published, tt.since), func(t *testing.T) {
			m := NewMemory(10, WithStartOffsets(nil, 100))
			for i := range tt.published {
				if _, err := m.Publish(context.Background(), "r", fmt.Appendf(nil, `{"i":%d}`, 101+i)); err != nil {
					t.Fatal(err)
				}
			}
			evs, latest, err := m.History(context.Background(), "r", tt.since)
			if latest != uint64(100+tt.published) || errors.Is(err, ErrUnrecoverable) != tt.unrecov {
				t.Fatalf("latest %d, err %v", latest, err)
			}
			if got := offsets(evs); !tt.unrecov && !slices.Equal(got, tt.want) {
				t.Fatalf("offsets %v, want %v", got, tt.want)
			}
			for _, e := range evs {
				if want := fmt.Sprintf(`{"i":%d}`, e.Offset); string(e.Data) != want {
					t.Errorf("event %d holds %s", e.Offset, e.Data)
				}
			}
		})
	}
}
