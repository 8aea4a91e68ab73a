package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"vigil/store"
)

// op is one queued write: a reading to insert or a score to save.
type op struct {
	reading *readingRow
	score   *scoreRow
	done    chan result // buffered: the writer never waits for a caller
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
	// err is the op's own failure (a score of an unknown reading, or the
	// database's error when the op failed alone).
	err error
}

type readingRow struct {
	id, patient, trial, site string
	measuredAt               time.Time
	measuredNs               int16
	receivedAt               time.Time // exact, UTC
	payload                  []byte
	doc                      string
	hash                     string
}

type scoreRow struct {
	readingID, doc, rulesVersion, risk string
	modelVersion                       pgtype.Text
	scoredAt                           time.Time
}

// submit queues o and waits for its commit. A caller whose ctx ends while its
// op is still queued gets ctx's error and the op is never written; once the
// writer has taken the op, the caller waits for its outcome, however late,
// because "not stored" must never be said of a stored reading.
func (s *Store) submit(ctx context.Context, o *op) (result, error) {
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
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
// takes whatever is queued, up to maxBatch ops, and writes them in one
// transaction of a few set-based statements, so one commit (one WAL flush)
// serves every caller that arrived while the last one ran. It returns when
// ops is closed and drained.
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
	// Claim the ops whose callers still wait; the others have already been
	// told their ctx's error and are never written.
	live := batch[:0:0]
	for _, o := range batch {
		if o.state.CompareAndSwap(opQueued, opClaimed) {
			live = append(live, o)
		}
	}
	if len(live) == 0 {
		return
	}
	s.stats.batches.Add(1)
	results, err := s.writeBatch(live)
	if err == nil {
		s.count(uint64(len(live)))
		for i, o := range live {
			o.done <- results[i]
		}
		return
	}
	if len(live) == 1 {
		live[0].done <- result{err: err}
		return
	}

	// One bad op (text PostgreSQL refuses, say) must not fail the others,
	// and a batch whose commit went unanswered may have committed: retry each
	// op on its own. A reading that did commit comes back as a Duplicate of
	// itself, not as a failure, unless the database stopped answering.
	// The retries share one write timeout, so a database that stopped
	// answering fails the batch within it instead of holding the writer for
	// a timeout per op. A write reported failed this way may have committed:
	// its client retries and gets the duplicate's 200, nothing is lost.
	s.stats.fallbacks.Add(1)
	giveUp := time.Now().Add(s.cfg.writeTimeout)
	for _, o := range live {
		if time.Now().After(giveUp) {
			o.done <- result{err: fmt.Errorf("postgres: write: gave up retrying a failed batch: %w", err)}
			continue
		}
		rs, err := s.writeBatch([]*op{o})
		if err != nil {
			o.done <- result{err: err}
			continue
		}
		s.count(1)
		o.done <- rs[0]
	}
}

func (s *Store) count(n uint64) {
	s.stats.ops.Add(n)
	for {
		cur := s.stats.maxBatch.Load()
		if n <= cur || s.stats.maxBatch.CompareAndSwap(cur, n) {
			return
		}
	}
}

// Statements of the writer. Each is one statement for the whole batch, with
// the rows as arrays. READ COMMITTED takes a new snapshot per statement, so
// the lookups see rows another node committed while our INSERT waited on its
// conflicting insert.
const (
	insertReadingsSQL = `
		INSERT INTO readings (reading_id, patient_id, trial_id, site_id,
			measured_at, measured_ns, received_at, received_ns, payload, reading_json, content_hash)
		SELECT u.reading_id, u.patient_id, u.trial_id, u.site_id, u.measured_at, u.measured_ns,
			u.received_at, u.received_ns, u.payload, u.reading_json::json, u.content_hash
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::int2[],
			$7::timestamptz[], $8::int2[], $9::bytea[], $10::text[], $11::text[])
			AS u(reading_id, patient_id, trial_id, site_id, measured_at, measured_ns,
				received_at, received_ns, payload, reading_json, content_hash)
		ON CONFLICT (reading_id) DO NOTHING
		RETURNING reading_id`

	// The EXISTS guard turns a score of an unknown reading into "no row"
	// rather than a foreign-key error, which would abort the whole batch.
	insertScoresSQL = `
		INSERT INTO scores (reading_id, score_json, rules_version, model_version, risk, scored_at)
		SELECT u.reading_id, u.score_json::json, u.rules_version, u.model_version, u.risk, u.scored_at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
			AS u(reading_id, score_json, rules_version, model_version, risk, scored_at)
		WHERE EXISTS (SELECT 1 FROM readings r WHERE r.reading_id = u.reading_id)
		ON CONFLICT (reading_id) DO NOTHING
		RETURNING reading_id`

	lookupReadingsSQL = `
		SELECT r.reading_id, r.content_hash, r.received_at, r.received_ns,
			EXISTS (SELECT 1 FROM scores s WHERE s.reading_id = r.reading_id)
		FROM readings r WHERE r.reading_id = ANY($1::text[])`
)

// writeBatch writes ops in one transaction and returns each op's result, or
// the error that rolled the transaction back.
//
// Within the batch the first op of each reading id tries the insert; the
// others, like ops whose id was stored before, are answered from the stored
// row (Duplicate or Conflict). Rows are sent sorted by id, so two nodes'
// batches take their unique-index locks in one order and cannot deadlock.
func (s *Store) writeBatch(ops []*op) ([]result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.writeTimeout)
	defer cancel()

	var readingOps, scoreOps []int
	for i, o := range ops {
		if o.reading != nil {
			readingOps = append(readingOps, i)
		} else {
			scoreOps = append(scoreOps, i)
		}
	}
	firstOf := func(idx []int, id func(int) string) []int {
		seen := make(map[string]bool, len(idx))
		var first []int
		for _, i := range idx {
			if k := id(i); !seen[k] {
				seen[k] = true
				first = append(first, i)
			}
		}
		slices.SortFunc(first, func(a, b int) int { return cmp.Compare(id(a), id(b)) })
		return first
	}
	readingID := func(i int) string { return ops[i].reading.id }
	scoreID := func(i int) string { return ops[i].score.readingID }
	insertR := firstOf(readingOps, readingID)
	insertS := firstOf(scoreOps, scoreID)

	b := &pgx.Batch{}
	if len(insertR) > 0 {
		n := len(insertR)
		var (
			ids, patients, trials, sites, docs, hashes = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			measured, received                         = make([]time.Time, n), make([]time.Time, n)
			measuredNs, receivedNs                     = make([]int16, n), make([]int16, n)
			payloads                                   = make([][]byte, n)
		)
		for k, i := range insertR {
			r := ops[i].reading
			ids[k], patients[k], trials[k], sites[k] = r.id, r.patient, r.trial, r.site
			measured[k], measuredNs[k] = r.measuredAt, r.measuredNs
			received[k], receivedNs[k] = splitTime(r.receivedAt)
			payloads[k], docs[k], hashes[k] = r.payload, r.doc, r.hash
		}
		b.Queue(insertReadingsSQL, ids, patients, trials, sites, measured, measuredNs,
			received, receivedNs, payloads, docs, hashes)
	}
	if len(insertS) > 0 {
		n := len(insertS)
		var (
			ids, docs, rules, risks = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
			models                  = make([]pgtype.Text, n)
			scored                  = make([]time.Time, n)
		)
		for k, i := range insertS {
			sc := ops[i].score
			ids[k], docs[k], rules[k], risks[k] = sc.readingID, sc.doc, sc.rulesVersion, sc.risk
			models[k], scored[k] = sc.modelVersion, sc.scoredAt
		}
		b.Queue(insertScoresSQL, ids, docs, rules, models, risks, scored)
	}
	// Looked up after both inserts, so a Duplicate says whether the stored
	// reading is scored, this batch's scores included.
	var lookupIDs []string
	for _, i := range readingOps {
		lookupIDs = append(lookupIDs, ops[i].reading.id)
	}
	for _, i := range scoreOps {
		lookupIDs = append(lookupIDs, ops[i].score.readingID)
	}
	slices.Sort(lookupIDs)
	lookupIDs = slices.Compact(lookupIDs)
	b.Queue(lookupReadingsSQL, lookupIDs)

	type stored struct {
		hash   string
		at     time.Time
		scored bool
	}
	var (
		insertedR = map[string]bool{}
		insertedS = map[string]bool{}
		found     = map[string]stored{}
	)
	// Sent as one pipeline without BEGIN: PostgreSQL runs the statements up
	// to the pipeline's Sync as one implicit transaction and commits it at
	// the Sync, so the whole batch costs one round trip, and any error rolls
	// all of it back.
	err := func() error {
		br := s.pool.SendBatch(ctx, b)
		defer br.Close()
		collect := func(into map[string]bool) error {
			rows, err := br.Query()
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			for _, id := range ids {
				into[id] = true
			}
			return err
		}
		if len(insertR) > 0 {
			if err := collect(insertedR); err != nil {
				return fmt.Errorf("insert readings: %w", err)
			}
		}
		if len(insertS) > 0 {
			if err := collect(insertedS); err != nil {
				return fmt.Errorf("insert scores: %w", err)
			}
		}
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("look up readings: %w", err)
		}
		for rows.Next() {
			var (
				id string
				st stored
				ns int16
			)
			if err := rows.Scan(&id, &st.hash, &st.at, &ns, &st.scored); err != nil {
				rows.Close()
				return fmt.Errorf("look up readings: %w", err)
			}
			st.at = joinTime(st.at, ns)
			found[id] = st
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("look up readings: %w", err)
		}
		// Close reads up to the Sync: the commit's outcome.
		if err := br.Close(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	}()
	if err != nil {
		return nil, err
	}

	results := make([]result, len(ops))
	answered := make([]bool, len(ops))
	for _, i := range insertR {
		if r := ops[i].reading; insertedR[r.id] {
			results[i] = result{outcome: store.InsertOutcome{Status: store.Inserted, ReceivedAt: r.receivedAt}}
			answered[i] = true
		}
	}
	for _, i := range readingOps {
		r := ops[i].reading
		if answered[i] {
			continue
		}
		st, ok := found[r.id]
		if !ok {
			// Not inserted and not there: cannot happen short of a
			// deletion, which the triggers forbid.
			results[i] = result{err: fmt.Errorf("reading %s neither inserted nor found", r.id)}
			continue
		}
		out := store.InsertOutcome{Status: store.Conflict, ReceivedAt: st.at, Scored: st.scored}
		if st.hash == r.hash {
			out.Status = store.Duplicate
		}
		results[i] = result{outcome: out}
	}
	for _, i := range insertS {
		if insertedS[ops[i].score.readingID] {
			results[i] = result{saved: true}
			answered[i] = true
		}
	}
	for _, i := range scoreOps {
		sc := ops[i].score
		if answered[i] {
			continue
		}
		if _, ok := found[sc.readingID]; !ok {
			results[i] = result{err: fmt.Errorf("reading: %w", store.ErrNotFound)}
			continue
		}
		results[i] = result{saved: false}
	}
	return results, nil
}
