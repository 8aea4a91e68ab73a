package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vigil/bus"
)

// flaky is a broker that refuses publishes while down.
type flaky struct {
	bus.Broker
	down atomic.Bool
}

func (f *flaky) Publish(ctx context.Context, room string, data []byte) (bus.Event, error) {
	if f.down.Load() {
		return bus.Event{}, errors.New("redis: connection refused")
	}
	return f.Broker.Publish(ctx, room, data)
}

func TestRetrierRepublishesInOrder(t *testing.T) {
	mem := bus.NewMemory(100)
	var (
		mu  sync.Mutex
		got []string
	)
	mem.SetHandler(func(e bus.Event) { mu.Lock(); got = append(got, string(e.Data)); mu.Unlock() })
	ctx := context.Background()
	if err := mem.Subscribe(ctx, "site:T:S"); err != nil {
		t.Fatal(err)
	}
	f := &flaky{Broker: mem}
	r := bus.NewRetrier(f, 3, 10*time.Millisecond, nil)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go r.Run(runCtx)

	if _, err := r.Publish(ctx, "site:T:S", []byte("e1")); err != nil {
		t.Fatal(err)
	}
	f.down.Store(true)
	for i := 2; i <= 5; i++ { // e2 is dropped: at most 3 wait
		if _, err := r.Publish(ctx, "site:T:S", []byte(fmt.Sprint("e", i))); err == nil {
			t.Fatal("a refused publish reported success")
		}
	}
	if r.Pending() != 3 {
		t.Fatalf("%d waiting, want 3 (the bound)", r.Pending())
	}
	f.down.Store(false)
	for deadline := time.Now().Add(5 * time.Second); r.Pending() > 0; {
		if time.Now().After(deadline) {
			t.Fatal("waiting events never published")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := r.Publish(ctx, "site:T:S", []byte("e6")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"e1", "e3", "e4", "e5", "e6"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}
