// Package cluster owns what several Vigil nodes coordinate through Redis
// besides events: leases, so that work which must happen once per cluster
// (escalation timers, missed-reading checks, the notification dispatcher, the
// rescoring sweep) runs on one node at a time and is taken over when that
// node dies; and cache invalidations, so that a protocol or registry change
// made on one node reaches every node's cache within a second. Without Redis
// (one node) a lease is always held and invalidations stay local. It imports
// nothing of Vigil's.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// Leaser runs work while this node holds the right to.
type Leaser interface {
	// Run calls fn while this node holds the lease named name, with a
	// context cancelled when the lease is lost or ctx ends; it returns when
	// ctx ends.
	Run(ctx context.Context, name string, fn func(context.Context))
}

// Solo is the Leaser of a lone node: the lease is always held.
type Solo struct{}

// Run calls fn at once.
func (Solo) Run(ctx context.Context, _ string, fn func(context.Context)) { fn(ctx) }

// renew extends the lease only if this node still holds it; release deletes
// it only then, so a node whose lease expired cannot drop its successor's.
var (
	renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)
	releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)
)

// Leases are Redis leases: a key set with NX and a TTL, renewed every TTL/3
// by its holder. A node that dies stops renewing, and another takes the
// lease over within TTL.
//
// A lease is not a fence: a holder cut off from Redis stops its work at its
// next failed renewal (at most TTL/3 later), while another node may take
// over only after the TTL, so the two overlap only if a renewal round trip
// takes longer than 2·TTL/3. The work run under leases is idempotent against
// the database (alert transitions are conditional updates, notifications
// carry delivery ids the receivers dedupe), so an overlap at worst repeats a
// notification; it never loses one.
type Leases struct {
	rdb    redis.UniversalClient
	ttl    time.Duration
	prefix string
	log    *slog.Logger
}

// NewLeases returns leases with the given TTL (at least a second) under
// keys prefix+name.
func NewLeases(rdb redis.UniversalClient, prefix string, ttl time.Duration, log *slog.Logger) *Leases {
	ttl = max(ttl, time.Second)
	if log == nil {
		log = slog.Default()
	}
	return &Leases{rdb: rdb, ttl: ttl, prefix: prefix, log: log}
}

// Run takes the lease when it is free (trying every TTL/3), runs fn while
// holding it, renews it every TTL/3, and cancels fn's context at the first
// renewal that fails. It releases the lease when ctx ends, so a node shutting
// down hands its work over at once rather than after the TTL.
func (l *Leases) Run(ctx context.Context, name string, fn func(context.Context)) {
	key := l.prefix + name
	every := l.ttl / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		token, err := newToken()
		if err != nil {
			l.log.Error("lease token", "lease", name, "err", err)
			return
		}
		ok, err := l.rdb.SetNX(ctx, key, token, l.ttl).Result()
		if err != nil && ctx.Err() == nil {
			l.log.Warn("lease: redis", "lease", name, "err", err)
		}
		if ok {
			l.log.Info("lease taken", "lease", name)
			l.hold(ctx, key, token, name, fn, t)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// hold runs fn while renewing the lease, and returns when either ends.
func (l *Leases) hold(ctx context.Context, key, token, name string, fn func(context.Context), t *time.Ticker) {
	work, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); fn(work) }()
	defer func() {
		cancel()
		<-done
		// Released on a fresh context: ctx may be the one that just ended.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer rcancel()
		if err := releaseScript.Run(rctx, l.rdb, []string{key}, token).Err(); err != nil && !errors.Is(err, redis.Nil) {
			l.log.Warn("lease release", "lease", name, "err", err)
		}
	}()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held, err := renewScript.Run(ctx, l.rdb, []string{key}, token, l.ttl.Milliseconds()).Int()
		if err != nil || held == 0 {
			if ctx.Err() == nil {
				l.log.Warn("lease lost", "lease", name, "err", err)
			}
			return
		}
	}
}

func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cluster: token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
