package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"

	"vigil/store"
)

// op is one queued write. apply runs inside the batch transaction; it returns
// an error only for a failure of the database, which aborts the batch. An
// outcome that is the caller's problem (a score for an unknown reading) is
// carried in result.err instead, so it does not cost the others a retry.
type op struct {
	ctx   context.Context
	apply func(ctx context.Context, tx *sql.Tx) (result, error)
	done  chan result // buffered: the writer never waits for a caller
	// state settles the race between a caller giving up and the writer
	// taking the op: whoever moves it from opQueued first wins, so a caller
	// is never told "failed" about a write that was committed.
	state atomic.Int32
}

const (
	opQueued int32 = iota
	opClaimed
	opAbandoned
)

type result struct {
	outcome store.InsertOutcome
	saved   bool
	err     error
}

// submit queues o and waits for its commit. A caller whose ctx ends while its
// op is still queued gets ctx's error and the op is never written; once the
// writer has taken the op, the caller waits for its outcome, however late,
// because "not stored" must never be said of a stored reading.
func (s *Store) submit(ctx context.Context, o *op) (result, error) {
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	o.ctx = ctx
	o.done = make(chan result, 1)

	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return result{}, ErrClosed
	}
	select {
	case s.ops <- o:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return result{}, ctx.Err()
	}

	select {
	case r := <-o.done:
		return r, nil
	case <-ctx.Done():
		if o.state.CompareAndSwap(opQueued, opAbandoned) {
			return result{}, ctx.Err()
		}
		return <-o.done, nil
	}
}

// writer is the only goroutine that commits InsertReading and SaveScore. It
// takes whatever is queued, up to maxBatch ops, and commits them together, so
// that one fsync serves every caller that arrived while the last one ran.
// It returns when ops is closed and drained.
func (s *Store) writer() {
	defer close(s.writerDone)
	batch := make([]*op, 0, s.cfg.maxBatch)
	for first := range s.ops {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < s.cfg.maxBatch {
			select {
			case o, ok := <-s.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.commit(batch)
		clear(batch) // drop references so answered ops can be collected
	}
}

func (s *Store) commit(batch []*op) {
	s.stats.batches.Add(1)
	results := make([]result, len(batch))
	var written uint64
	// The batch outlives any one caller's ctx, so it runs on its own.
	ctx := context.Background()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		written = 0
		for i, o := range batch {
			r, ok, err := s.applyLive(ctx, tx, o)
			if err != nil {
				return err
			}
			results[i] = r
			if ok {
				written++
			}
		}
		return nil
	})
	if err == nil {
		s.stats.ops.Add(written)
		for {
			cur := s.stats.maxBatch.Load()
			if written <= cur || s.stats.maxBatch.CompareAndSwap(cur, written) {
				break
			}
		}
		for i, o := range batch {
			o.done <- results[i]
		}
		return
	}
	if len(batch) == 1 {
		batch[0].done <- result{err: err}
		return
	}

	// One bad op must not fail the others: retry each on its own.
	s.stats.fallbacks.Add(1)
	for _, o := range batch {
		var (
			r  result
			ok bool
		)
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			var err error
			r, ok, err = s.applyLive(ctx, tx, o)
			return err
		})
		switch {
		case err != nil:
			r = result{err: err}
		case ok:
			s.stats.ops.Add(1)
		}
		o.done <- r
	}
}

// applyLive applies o unless its caller has given up, in which case the call
// has already failed with ctx's error and nothing need be written. This is
// checked inside the transaction because waiting for the write lock is where
// the time goes.
func (s *Store) applyLive(ctx context.Context, tx *sql.Tx, o *op) (r result, applied bool, err error) {
	if !o.state.CompareAndSwap(opQueued, opClaimed) && o.state.Load() != opClaimed {
		return result{err: context.Canceled}, false, nil
	}
	r, err = o.apply(ctx, tx)
	return r, err == nil, err
}

// inTx runs fn in one write transaction (BEGIN IMMEDIATE, from the DSN).
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	// Rollback after Commit is a no-op; on panic or error it frees the one
	// write connection, without which every writer would hang.
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// The writer's statements are prepared once on the single write connection:
// parsing them (triggers included) for every op was a quarter of the
// writer's CPU time.
type writeStmts struct {
	insertReading, lookupReading, insertScore, readingExists *sql.Stmt
}

var writeSQL = map[string]string{
	"insertReading": `
		INSERT INTO readings (reading_id, patient_id, trial_id, site_id,
			measured_at, received_at, payload, reading_json, content_hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (reading_id) DO NOTHING`,
	"lookupReading": `
		SELECT r.content_hash, r.received_at,
			EXISTS (SELECT 1 FROM scores s WHERE s.reading_id = r.reading_id)
		FROM readings r WHERE r.reading_id = ?`,
	// The EXISTS guard turns a score for an unknown reading into "no row"
	// rather than a foreign-key error, which would abort the whole batch.
	// (A WHERE is also what keeps SQLite from reading ON CONFLICT as a
	// join's ON.)
	"insertScore": `
		INSERT INTO scores (reading_id, score_json, rules_version, model_version, risk, scored_at)
		SELECT ?, ?, ?, ?, ?, ?
		WHERE EXISTS (SELECT 1 FROM readings WHERE reading_id = ?)
		ON CONFLICT (reading_id) DO NOTHING`,
	"readingExists": `SELECT EXISTS (SELECT 1 FROM readings WHERE reading_id = ?)`,
}

func prepareWrites(ctx context.Context, db *sql.DB) (*writeStmts, error) {
	var ws writeStmts
	for name, dst := range map[string]**sql.Stmt{
		"insertReading": &ws.insertReading,
		"lookupReading": &ws.lookupReading,
		"insertScore":   &ws.insertScore,
		"readingExists": &ws.readingExists,
	} {
		st, err := db.PrepareContext(ctx, writeSQL[name])
		if err != nil {
			ws.close()
			return nil, fmt.Errorf("sqlite: prepare %s: %w", name, err)
		}
		*dst = st
	}
	return &ws, nil
}

func (ws *writeStmts) close() {
	for _, st := range []*sql.Stmt{ws.insertReading, ws.lookupReading, ws.insertScore, ws.readingExists} {
		if st != nil {
			_ = st.Close()
		}
	}
}
