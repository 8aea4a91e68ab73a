// Package postgres owns the PostgreSQL store: store.Store over
// github.com/jackc/pgx/v5 (pgxpool), for several Vigil nodes sharing one
// database (VIGIL_DB=postgres://…). It owns its schema, migrated with goose
// (embedded migrations/*.sql; goose reaches the pool through pgx's
// database/sql adapter for that alone), the group commit of concurrent
// readings and scores, and the serialisation of audit-chain appends across
// nodes. It imports store, auditlog, reading, scoring and trial for their
// types and the hash chain, and nothing else of Vigil's.
//
// What several nodes rely on:
//
//   - reading ids are unique in the database, so a retry that reaches another
//     node is still a Duplicate (or a Conflict);
//   - the audit chain's head is one row (audit_head) that every append locks
//     (SELECT … FOR UPDATE) until its transaction ends, so two nodes can never
//     fork the chain;
//   - one unresolved alert per patient is a partial unique index, and
//     ApplyAlert serialises on the patient with a transaction-level advisory
//     lock, so two nodes scoring one patient see each other's alert;
//   - migrations run under goose's session advisory lock.
//
// Transaction-level advisory locks use the two-key form
// pg_advisory_xact_lock(class, key) with the classes below (lockClass*);
// other packages taking advisory locks on the same database should use other
// classes (the one-key form is a separate key space, which goose uses).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"vigil/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("postgres: store closed")

const (
	defaultMaxBatch     = 256
	defaultWriteTimeout = time.Minute
	defaultLimit        = 100
	maxLimit            = 1000
)

// Classes of transaction-level advisory locks (the first key of
// pg_advisory_xact_lock(int, int)); the second key is a hash of the record's
// id. A hash collision only serialises two unrelated writers.
const (
	lockClassPatientAlert int32 = 0x56470001 // ApplyAlert: one patient's unresolved alert
	lockClassProtocol     int32 = 0x56470002 // PutProtocol: one trial's protocol
	lockClassPatient      int32 = 0x56470003 // PutPatient: one registry record
	lockClassLease        int32 = 0x56470004 // Leases: once-per-cluster work (session lock)
)

// migrationLockID is goose's session advisory lock (one-key form).
const migrationLockID int64 = 0x5647_0000_6d696772 // "VG" … "migr"

// Option configures Open.
type Option func(*config)

type config struct {
	clock        func() time.Time
	maxBatch     int
	writeTimeout time.Duration
}

// WithClock sets the source of server-side times (received_at defaults,
// alert, audit, registry and outbox times), so tests can control them.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.clock = now
		}
	}
}

// WithMaxBatch caps how many queued writes share one transaction (default
// 256). 1 turns group commit off, which is useful only for comparison.
func WithMaxBatch(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxBatch = n
		}
	}
}

// WithWriteTimeout bounds one group-commit transaction (default one minute).
// A batch that times out is retried one write at a time, so a write that did
// commit is answered as a Duplicate rather than as a failure.
func WithWriteTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.writeTimeout = d
		}
	}
}

// Store is the PostgreSQL implementation of store.Store. It is safe for
// concurrent use, and several Stores (in one process or on several nodes)
// may share one database.
type Store struct {
	cfg  config
	pool *pgxpool.Pool

	ops        chan *op
	writerDone chan struct{}

	// mu guards closed. Callers hold it shared while they enqueue or run a
	// transaction, so Close (exclusive) knows nobody is about to send on ops
	// and waits for transactions in flight.
	mu        sync.RWMutex
	closed    bool
	closeOnce sync.Once

	stats struct {
		batches, ops, fallbacks, maxBatch atomic.Uint64
	}
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (postgres://… or postgresql://…, with
// pgxpool's parameters such as pool_max_conns), migrates it to the latest
// version and starts the writer.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg := config{clock: time.Now, maxBatch: defaultMaxBatch, writeTimeout: defaultWriteTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The URL may carry a password: say only that it did not parse.
		return nil, errors.New("postgres: open: the database URL does not parse")
	}
	// Every session runs in UTC, so times the server prints (logs, psql)
	// read like the ones Vigil returns.
	if pcfg.ConnConfig.RuntimeParams == nil {
		pcfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	pcfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	// pgx prepares every statement once per connection, and after five runs
	// PostgreSQL may keep a generic plan made while a table was small: a
	// sequential scan that stays cached (for the connection's life) as the
	// table grows, turning every lookup by reading id into a full scan. A
	// custom plan per run costs a little planning and follows the table.
	if _, set := pcfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !set {
		pcfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	}
	// pgxpool's default (the number of CPUs, at least 4) is too few: each
	// lease a node holds keeps a session of its own (Leases), besides the
	// writer and the readers.
	if !strings.Contains(url, "pool_max_conns") {
		pcfg.MaxConns = max(pcfg.MaxConns, 20)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{
		cfg:        cfg,
		pool:       pool,
		ops:        make(chan *op, 4*cfg.maxBatch),
		writerDone: make(chan struct{}),
	}
	go s.writer()
	return s, nil
}

// migrate runs the embedded migrations under goose's session advisory lock,
// so nodes starting together migrate once.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close() // does not close the pool
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}

// Ping reports whether the store can serve and is not closed.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.open(); err != nil {
		return err
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close stops accepting writes, waits until every queued write is committed
// and answered and every transaction in flight has ended, then closes the
// pool. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.ops)
		s.mu.Unlock()
		<-s.writerDone
		s.pool.Close()
	})
	return nil
}

// open reports ErrClosed after Close, which is clearer to a caller than the
// error a closed pool would give.
func (s *Store) open() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// Stats counts the writer's work since Open.
type Stats struct {
	// Batches is the number of group-commit transactions attempted.
	Batches uint64
	// Ops is the number of InsertReading and SaveScore calls written.
	Ops uint64
	// Fallbacks counts batches that failed and were retried one op per
	// transaction.
	Fallbacks uint64
	// MaxBatch is the largest number of ops committed together.
	MaxBatch uint64
}

// Stats returns the writer's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Batches:   s.stats.batches.Load(),
		Ops:       s.stats.ops.Load(),
		Fallbacks: s.stats.fallbacks.Load(),
		MaxBatch:  s.stats.maxBatch.Load(),
	}
}

// inTx runs fn in one read-committed transaction on a pooled connection,
// holding mu shared so that Close waits for it. Rolling back after a commit
// is a no-op.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// lockKey takes a transaction-level advisory lock on (class, hash of key),
// held until the transaction ends.
func lockKey(ctx context.Context, tx pgx.Tx, class int32, key string) error {
	h := fnv.New32a()
	h.Write([]byte(key))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, $2::int4)`, class, int32(h.Sum32())); err != nil {
		return fmt.Errorf("advisory lock: %w", err)
	}
	return nil
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation on
// the named constraint or index ("" for any).
func isUniqueViolation(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && (constraint == "" || pe.ConstraintName == constraint)
}

// Times. timestamptz keeps microseconds; a Go time has nanoseconds.

// now is the store's clock in UTC, to the microsecond, so a time the store
// makes is returned exactly as stored.
func (s *Store) now() time.Time { return micro(s.cfg.clock()) }

// micro returns t in UTC truncated to the microsecond: what timestamptz keeps.
func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// ceilMicro returns the first microsecond at or after t, so that for a stored
// (microsecond) time x, x >= t exactly when x >= ceilMicro(t), and x < t
// exactly when x < ceilMicro(t).
func ceilMicro(t time.Time) time.Time {
	m := micro(t)
	if m.Before(t) {
		m = m.Add(time.Microsecond)
	}
	return m
}

// splitTime returns t as a timestamptz and the nanoseconds below it, for the
// columns that keep a caller's time exactly.
func splitTime(t time.Time) (time.Time, int16) {
	m := micro(t)
	return m, int16(t.Sub(m))
}

// joinTime is splitTime's inverse, in UTC.
func joinTime(t time.Time, ns int16) time.Time {
	return t.UTC().Add(time.Duration(ns))
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return defaultLimit
	case n > maxLimit:
		return maxLimit
	}
	return n
}
