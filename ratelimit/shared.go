package ratelimit

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

// sharedTimeout bounds one shared-limit check.
const sharedTimeout = 100 * time.Millisecond

// Shared limits requests per key to perMinute across every node sharing one
// Redis, with a burst of the same size (GCRA, one round trip per request).
// A nil *Shared allows everything.
type Shared struct {
	l      *redis_rate.Limiter
	limit  redis_rate.Limit
	prefix string
	log    *slog.Logger
	// failures limits the log of Redis errors to one a minute.
	failures rate.Sometimes
}

// NewShared returns a shared limiter of perMinute per key under keys
// prefix+key, or nil when perMinute <= 0.
func NewShared(rdb redis.UniversalClient, prefix string, perMinute int, log *slog.Logger) *Shared {
	if perMinute <= 0 {
		return nil
	}
	if log == nil {
		log = slog.Default()
	}
	return &Shared{l: redis_rate.NewLimiter(rdb), limit: redis_rate.PerMinute(perMinute), prefix: prefix, log: log,
		failures: rate.Sometimes{Interval: time.Minute}}
}

// Allow takes n tokens for key. When Redis cannot answer, it allows: a
// limit exists to protect the service, and refusing patients' readings
// because the limiter is down would do the harm it guards against.
func (s *Shared) Allow(ctx context.Context, key string, n int, _ time.Time) (ok bool, retryAfter time.Duration) {
	if s == nil {
		return true, 0
	}
	n = min(n, s.limit.Burst)
	// A limiter that waits out a black-holed Redis's retries would turn
	// every request slow: it answers within its budget or allows.
	ctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	defer cancel()
	res, err := s.l.AllowN(ctx, s.prefix+key, s.limit, n)
	if err != nil {
		s.failures.Do(func() { s.log.Warn("shared rate limit unavailable: allowing requests", "err", err) })
		return true, 0
	}
	if res.Allowed < n {
		return false, max(res.RetryAfter, time.Second)
	}
	return true, 0
}
