package bus

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"vigil/metrics"
)

// Retrier publishes through a broker and keeps what the broker refused (Redis
// unreachable, failing over) to publish again, in order, once it answers: a
// score or alert that is stored but never published would otherwise reach
// boards only when they next reload a snapshot. Events republished late carry
// later offsets than events published meanwhile; boards order what they show
// by the data's own times, so a late event updates them correctly.
type Retrier struct {
	b     Broker
	max   int
	every time.Duration
	log   *slog.Logger

	mu      sync.Mutex
	pending []pendingEvent
	wake    chan struct{}
}

type pendingEvent struct {
	room string
	data []byte
}

// NewRetrier keeps at most max refused events, retrying every every.
func NewRetrier(b Broker, max int, every time.Duration, log *slog.Logger) *Retrier {
	if log == nil {
		log = slog.Default()
	}
	return &Retrier{b: b, max: max, every: every, log: log, wake: make(chan struct{}, 1)}
}

// Publish publishes, or keeps the event for later and returns the broker's
// error. While events wait, new ones queue behind them, so a room's events
// are published in the order they were given.
func (r *Retrier) Publish(ctx context.Context, room string, data []byte) (Event, error) {
	r.mu.Lock()
	if len(r.pending) == 0 {
		r.mu.Unlock()
		start := time.Now()
		ev, err := r.b.Publish(ctx, room, data)
		metrics.BusPublishSeconds.Observe(time.Since(start).Seconds())
		if err == nil {
			metrics.BusPublished.WithLabelValues("ok").Inc()
			return ev, nil
		}
		metrics.BusPublished.WithLabelValues("error").Inc()
		r.mu.Lock()
		r.keep(room, data)
		r.mu.Unlock()
		return Event{}, err
	}
	metrics.BusPublished.WithLabelValues("queued").Inc()
	r.keep(room, data)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return Event{}, errQueued
}

var errQueued = errors.New("bus: queued behind events waiting for the broker")

// keep queues an event; over max, the oldest is dropped and logged: boards
// that missed it recover it from their next snapshot, the store has it.
func (r *Retrier) keep(room string, data []byte) {
	if len(r.pending) >= r.max {
		r.pending = r.pending[1:]
		r.log.Error("bus: republish queue full; dropped the oldest event (boards recover it from a snapshot)")
	}
	r.pending = append(r.pending, pendingEvent{room, append([]byte(nil), data...)})
	metrics.BusRepublishQueue.Set(float64(len(r.pending)))
}

// Pending is the number of events waiting.
func (r *Retrier) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// Run republishes waiting events until ctx ends.
func (r *Retrier) Run(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
		r.flush(ctx)
	}
}

// Flush publishes what is waiting now, in order, until the broker refuses
// one or ctx ends (a node shutting down tries once more).
func (r *Retrier) Flush(ctx context.Context) { r.flush(ctx) }

func (r *Retrier) flush(ctx context.Context) {
	for {
		r.mu.Lock()
		if len(r.pending) == 0 {
			r.mu.Unlock()
			return
		}
		ev := r.pending[0]
		r.mu.Unlock()
		if _, err := r.b.Publish(ctx, ev.room, ev.data); err != nil {
			return
		}
		metrics.BusPublished.WithLabelValues("ok").Inc()
		r.mu.Lock()
		r.pending = r.pending[1:]
		n := len(r.pending)
		metrics.BusRepublishQueue.Set(float64(n))
		r.mu.Unlock()
		if n == 0 {
			r.log.Info("bus: events refused by the broker are published")
		}
	}
}
