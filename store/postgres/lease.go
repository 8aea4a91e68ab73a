package postgres

import (
	"context"
	"hash/fnv"
	"log/slog"
	"time"
)

// Leases runs once-per-cluster work (escalations, missed-reading checks, the
// notification dispatcher, the sweep) on one node at a time, under a
// PostgreSQL session advisory lock. The lock lives in the same failure domain
// as the work, which is all reads and writes of this database: paging never
// waits for another service, and a node whose session dies (crash, SIGKILL,
// network loss) loses the lock with it, so another node takes the work over
// at its next try.
type Leases struct {
	s     *Store
	every time.Duration
	log   *slog.Logger
}

// Leases returns the store's leases, tried (and checked while held) every
// every.
func (s *Store) Leases(every time.Duration, log *slog.Logger) *Leases {
	if log == nil {
		log = slog.Default()
	}
	return &Leases{s: s, every: max(every, 100*time.Millisecond), log: log}
}

// Run calls fn while this node holds the lease named name, with a context
// cancelled when the lock's session is lost or ctx ends; it returns when ctx
// ends.
func (l *Leases) Run(ctx context.Context, name string, fn func(context.Context)) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	key := int32(h.Sum32())
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		l.try(ctx, name, key, fn, t)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// try takes the lock on a connection of its own if it is free, runs fn while
// a check of that connection succeeds every tick, and unlocks.
func (l *Leases) try(ctx context.Context, name string, key int32, fn func(context.Context), t *time.Ticker) {
	conn, err := l.s.pool.Acquire(ctx)
	if err != nil {
		return
	}
	// The session's lock must not outlive this use of the connection: on
	// any doubt the connection is closed rather than returned to the pool.
	healthy := false
	defer func() {
		if healthy {
			conn.Release()
		} else {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
			conn.Release()
		}
	}()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockClassLease, key).Scan(&got); err != nil {
		return
	}
	if !got {
		healthy = true
		return
	}
	l.log.Info("lease taken", "lease", name)
	work, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); fn(work) }()
	defer func() { cancel(); <-done }()
	for {
		select {
		case <-done:
		case <-ctx.Done():
		case <-t.C:
			cctx, ccancel := context.WithTimeout(ctx, l.every)
			_, err := conn.Exec(cctx, `SELECT 1`)
			ccancel()
			if err != nil {
				if ctx.Err() == nil {
					l.log.Warn("lease lost: its database session failed", "lease", name)
				}
				cancel()
				<-done
				return
			}
			continue
		}
		cancel()
		<-done
		uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1, $2)`, lockClassLease, key)
		ucancel()
		healthy = err == nil
		return
	}
}
