// Package ratelimit owns per-key request limits (per patient, per client IP):
// on one node a token bucket per key (golang.org/x/time/rate) held in a
// bounded cache that forgets idle keys (otter); on several nodes one limit per
// key shared through Redis (go-redis/redis_rate, GCRA), so N nodes enforce one
// limit, not N. It imports nothing of Vigil's.
package ratelimit

import (
	"context"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/time/rate"
)

// Allower limits requests per key.
type Allower interface {
	// Allow takes n tokens for key at now. When refused, it returns how long
	// to wait before n tokens are there.
	Allow(ctx context.Context, key string, n int, now time.Time) (ok bool, retryAfter time.Duration)
}

// Limiter limits requests per key to perMinute, with a burst of the same size.
// A nil *Limiter allows everything, which is what a limit of 0 means.
type Limiter struct {
	limit   rate.Limit
	burst   int
	buckets *otter.Cache[string, *rate.Limiter]
}

// New returns a limiter of perMinute per key, or nil when perMinute <= 0.
// maxKeys bounds memory; an evicted idle key starts again with a full bucket,
// which only ever errs on the side of accepting a reading.
func New(perMinute, maxKeys int) *Limiter {
	if perMinute <= 0 {
		return nil
	}
	return &Limiter{
		limit: rate.Limit(float64(perMinute) / 60),
		burst: perMinute,
		buckets: otter.Must(&otter.Options[string, *rate.Limiter]{
			MaximumSize: maxKeys,
			// A bucket refills fully within a minute, so an entry idle for
			// longer carries no state worth keeping.
			ExpiryCalculator: otter.ExpiryAccessing[string, *rate.Limiter](2 * time.Minute),
		}),
	}
}

// Allow takes n tokens for key at now. When refused, it returns how long to
// wait before n tokens are there.
func (l *Limiter) Allow(_ context.Context, key string, n int, now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	b, _ := l.buckets.Get(context.Background(), key, otter.LoaderFunc[string, *rate.Limiter](
		func(context.Context, string) (*rate.Limiter, error) {
			return rate.NewLimiter(l.limit, l.burst), nil
		}))
	if n > l.burst {
		n = l.burst
	}
	r := b.ReserveN(now, n)
	if !r.OK() {
		return false, time.Minute
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
