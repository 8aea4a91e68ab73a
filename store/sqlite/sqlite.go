// Package sqlite owns the embedded store: store.Store over modernc.org/sqlite
// (pure Go), with versioned goose migrations and group commit of concurrent
// writes. It imports store, reading and scoring for their types, and nothing
// else of Vigil's.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"vigil/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("sqlite: store closed")

// Every connection of both pools gets these, because pragmas are per
// connection and database/sql opens connections whenever it likes.
// synchronous(FULL) makes each commit fsync the WAL: a 2xx for a reading
// must mean the reading survives a power cut.
const basePragmas = "_pragma=busy_timeout(5000)" +
	"&_pragma=journal_mode(WAL)" +
	"&_pragma=foreign_keys(1)" +
	"&_pragma=synchronous(FULL)"

// BEGIN IMMEDIATE takes the write lock up front, so a write transaction never
// fails half-way with SQLITE_BUSY when upgrading from a read lock.
const writeParams = basePragmas + "&_txlock=immediate"

// query_only turns a stray write on the read pool into an error instead of a
// second writer competing for the lock.
const readParams = basePragmas + "&_query_only=1"

const (
	defaultMaxBatch = 256
	defaultLimit    = 100
	maxLimit        = 1000
)

// Option configures Open.
type Option func(*config)

type config struct {
	clock     func() time.Time
	maxBatch  int
	readConns int
}

// WithClock sets the source of server-side times (received_at defaults,
// alert and audit times), so tests can control them.
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

// WithReadConns sets the size of the read pool (default GOMAXPROCS, at least 4).
func WithReadConns(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.readConns = n
		}
	}
}

// Store is the SQLite implementation of store.Store. It is safe for
// concurrent use.
type Store struct {
	cfg config
	// wdb has exactly one connection: SQLite allows one writer at a time, and
	// queueing for it in Go is cheaper and fairer than spinning on busy_timeout.
	wdb   *sql.DB
	rdb   *sql.DB
	stmts *writeStmts
	// The queries every reading runs, prepared once: parsing each one each
	// time cost more than running it (pprof). recent is RecentReadings'
	// (readings scored with the model), unresolved UnresolvedAlert's and
	// patient the registry lookup's.
	recent, unresolved, patient *sql.Stmt

	ops        chan *op
	writerDone chan struct{}

	// mu guards closed. Submitters hold it shared while they enqueue, so
	// Close (exclusive) knows nobody is about to send on ops when it closes it.
	mu        sync.RWMutex
	closed    bool
	closeOnce sync.Once
	closeErr  error

	stats struct {
		batches, ops, fallbacks, maxBatch atomic.Uint64
	}
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path, migrates it to the
// latest version and starts the writer.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := config{
		clock:     time.Now,
		maxBatch:  defaultMaxBatch,
		readConns: max(4, runtime.GOMAXPROCS(0)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	// The read and write pools must reach the same file; an in-memory
	// database would give each connection its own, and '?' would be taken for
	// the start of the DSN parameters.
	if path == "" || path == ":memory:" || strings.ContainsRune(path, '?') || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open: %q is not a plain file path", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlite: open: create directory: %w", err)
		}
	}
	// Pseudonymised readings are still personal data: create the file
	// owner-only, since SQLite would create it world-readable under the usual
	// umask. Its -wal and -shm files copy the database file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}

	wdb, err := sql.Open("sqlite", path+"?"+writeParams)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open write pool: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if err := migrate(ctx, wdb); err != nil {
		_ = wdb.Close()
		return nil, err
	}

	stmts, err := prepareWrites(ctx, wdb)
	if err != nil {
		_ = wdb.Close()
		return nil, err
	}

	// Opened after migrating so that the file is already in WAL mode and has
	// its schema when readers first look at it.
	rdb, err := sql.Open("sqlite", path+"?"+readParams)
	if err != nil {
		stmts.close()
		_ = wdb.Close()
		return nil, fmt.Errorf("sqlite: open read pool: %w", err)
	}
	rdb.SetMaxOpenConns(cfg.readConns)
	rdb.SetMaxIdleConns(cfg.readConns)
	var recent, unresolved, patient *sql.Stmt
	err = rdb.PingContext(ctx)
	if err == nil {
		recent, err = rdb.PrepareContext(ctx, recentReadingsSQL)
	}
	if err == nil {
		unresolved, err = rdb.PrepareContext(ctx, unresolvedAlertSQL)
	}
	if err == nil {
		patient, err = rdb.PrepareContext(ctx, patientSQL)
	}
	if err != nil {
		for _, st := range []*sql.Stmt{recent, unresolved, patient} {
			if st != nil {
				_ = st.Close()
			}
		}
		_ = rdb.Close()
		stmts.close()
		_ = wdb.Close()
		return nil, fmt.Errorf("sqlite: open read pool: %w", err)
	}

	s := &Store{
		cfg:        cfg,
		wdb:        wdb,
		rdb:        rdb,
		stmts:      stmts,
		recent:     recent,
		unresolved: unresolved,
		patient:    patient,
		ops:        make(chan *op, 4*cfg.maxBatch),
		writerDone: make(chan struct{}),
	}
	go s.writer()
	return s, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return nil
}

// Ping reports whether the store can serve reads and is not closed.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	var one int
	if err := s.rdb.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close stops accepting writes, waits until every queued write is committed
// and answered, then closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.ops)
		s.mu.Unlock()
		<-s.writerDone
		s.stmts.close()
		s.closeErr = errors.Join(s.recent.Close(), s.unresolved.Close(), s.patient.Close(), s.rdb.Close(), s.wdb.Close())
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", s.closeErr)
		}
	})
	return s.closeErr
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

// The fixed-width layout keeps text order equal to time order; RFC3339Nano
// trims trailing zeros and would not.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
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
