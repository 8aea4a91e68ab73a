package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"vigil/reading"
	"vigil/scoring"
	"vigil/store"
)

// InsertReading stores a reading durably through the group-commit writer. A
// zero ReceivedAt means now. It returns once the reading's transaction has
// committed, or ctx is done.
func (s *Store) InsertReading(ctx context.Context, nr store.NewReading) (store.InsertOutcome, error) {
	r := nr.Reading
	if r.ReadingID == "" || r.PatientID == "" || r.TrialID == "" || r.SiteID == "" {
		return store.InsertOutcome{}, errors.New("sqlite: insert reading: reading_id, patient_id, trial_id and site_id are required")
	}
	// Encoding happens here, on the caller's goroutine, to keep the single
	// writer busy only with SQL.
	canonical, err := json.Marshal(r)
	if err != nil {
		return store.InsertOutcome{}, fmt.Errorf("sqlite: insert reading: encode: %w", err)
	}
	receivedAt := nr.ReceivedAt
	if receivedAt.IsZero() {
		receivedAt = s.cfg.clock()
	}
	receivedAt = receivedAt.UTC()
	payload := []byte(nr.Payload)
	if payload == nil {
		payload = []byte{} // NOT NULL: an absent payload is stored as empty
	}
	args := []any{
		r.ReadingID, r.PatientID, r.TrialID, r.SiteID,
		formatTime(r.MeasuredAt), formatTime(receivedAt),
		payload, string(canonical), nr.ContentHash,
	}

	o := &op{apply: func(ctx context.Context, tx *sql.Tx) (result, error) {
		out, err := s.insertReading(ctx, tx, r.ReadingID, nr.ContentHash, receivedAt, args)
		return result{outcome: out}, err
	}}
	res, err := s.submit(ctx, o)
	if err == nil {
		err = res.err
	}
	if err != nil {
		return store.InsertOutcome{}, fmt.Errorf("sqlite: insert reading %s: %w", r.ReadingID, err)
	}
	return res.outcome, nil
}

func (s *Store) insertReading(ctx context.Context, tx *sql.Tx, id, hash string, receivedAt time.Time, args []any) (store.InsertOutcome, error) {
	res, err := tx.StmtContext(ctx, s.stmts.insertReading).ExecContext(ctx, args...)
	if err != nil {
		return store.InsertOutcome{}, fmt.Errorf("insert: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return store.InsertOutcome{}, fmt.Errorf("insert: %w", err)
	}
	if n == 1 {
		return store.InsertOutcome{Status: store.Inserted, ReceivedAt: receivedAt}, nil
	}

	var (
		storedHash, storedAt string
		scored               bool
	)
	err = tx.StmtContext(ctx, s.stmts.lookupReading).QueryRowContext(ctx, id).Scan(&storedHash, &storedAt, &scored)
	if err != nil {
		return store.InsertOutcome{}, fmt.Errorf("look up existing: %w", err)
	}
	at, err := parseTime(storedAt)
	if err != nil {
		return store.InsertOutcome{}, fmt.Errorf("look up existing: %w", err)
	}
	out := store.InsertOutcome{Status: store.Conflict, ReceivedAt: at, Scored: scored}
	if storedHash == hash {
		out.Status = store.Duplicate
	}
	return out, nil
}

// SaveScore stores the first score of a reading through the group-commit
// writer; later ones are dropped and report saved=false. A score for a
// reading that does not exist fails with store.ErrNotFound.
func (s *Store) SaveScore(ctx context.Context, sc scoring.Score) (bool, error) {
	if sc.ReadingID == "" {
		return false, errors.New("sqlite: save score: reading_id is required")
	}
	if sc.Kind == "" {
		sc.Kind = "score"
	}
	if sc.ScoredAt.IsZero() {
		sc.ScoredAt = s.cfg.clock()
	}
	doc, err := json.Marshal(sc)
	if err != nil {
		return false, fmt.Errorf("sqlite: save score: encode: %w", err)
	}
	var modelVersion sql.NullString
	if sc.Model != nil {
		modelVersion = sql.NullString{String: sc.Model.Version, Valid: true}
	}
	args := []any{
		sc.ReadingID, string(doc), sc.RulesVersion, modelVersion, sc.Risk,
		formatTime(sc.ScoredAt), sc.ReadingID,
	}

	o := &op{apply: func(ctx context.Context, tx *sql.Tx) (result, error) {
		return s.saveScore(ctx, tx, sc.ReadingID, args)
	}}
	res, err := s.submit(ctx, o)
	if err == nil {
		err = res.err
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: save score %s: %w", sc.ReadingID, err)
	}
	return res.saved, nil
}

func (s *Store) saveScore(ctx context.Context, tx *sql.Tx, id string, args []any) (result, error) {
	res, err := tx.StmtContext(ctx, s.stmts.insertScore).ExecContext(ctx, args...)
	if err != nil {
		return result{}, fmt.Errorf("insert: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return result{}, fmt.Errorf("insert: %w", err)
	}
	if n == 1 {
		return result{saved: true}, nil
	}
	var exists bool
	if err := tx.StmtContext(ctx, s.stmts.readingExists).QueryRowContext(ctx, id).Scan(&exists); err != nil {
		return result{}, fmt.Errorf("look up reading: %w", err)
	}
	if !exists {
		return result{err: fmt.Errorf("reading: %w", store.ErrNotFound)}, nil
	}
	return result{saved: false}, nil
}

const recordColumns = `r.seq, r.reading_json, r.received_at, s.score_json`

// Unscored returns readings received before olderThan without a score,
// oldest received first (at most 1000; limit <= 0 means 100).
func (s *Store) Unscored(ctx context.Context, olderThan time.Time, limit int) ([]store.Record, error) {
	rows, err := s.rdb.QueryContext(ctx, `
		SELECT `+recordColumns+`
		FROM unscored u
		JOIN readings r ON r.seq = u.seq
		LEFT JOIN scores s ON s.reading_id = r.reading_id
		WHERE u.received_at < ?
		ORDER BY u.received_at, u.seq
		LIMIT ?`, formatTime(olderThan), clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: unscored: %w", err)
	}
	recs, err := scanRecords(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: unscored: %w", err)
	}
	return recs, nil
}

// LatestByPatient returns each patient's latest reading at a site.
func (s *Store) LatestByPatient(ctx context.Context, trialID, siteID string) ([]store.Record, error) {
	// A loose index scan: the recursive CTE hops from one patient id to the
	// next through the index, and each patient's latest reading is one probe
	// from the end of its range, so the cost grows with the number of
	// patients, not with the length of their histories.
	rows, err := s.rdb.QueryContext(ctx, `
		WITH RECURSIVE patients (pid) AS (
			SELECT MIN(patient_id) FROM readings WHERE trial_id = ?1 AND site_id = ?2
			UNION ALL
			SELECT (SELECT MIN(patient_id) FROM readings
			        WHERE trial_id = ?1 AND site_id = ?2 AND patient_id > patients.pid)
			FROM patients WHERE patients.pid IS NOT NULL
		)
		SELECT `+recordColumns+`
		FROM patients p
		JOIN readings r ON r.seq = (
			SELECT l.seq FROM readings l
			WHERE l.trial_id = ?1 AND l.site_id = ?2 AND l.patient_id = p.pid
			ORDER BY l.measured_at DESC, l.seq DESC LIMIT 1)
		LEFT JOIN scores s ON s.reading_id = r.reading_id
		WHERE p.pid IS NOT NULL
		ORDER BY p.pid`, trialID, siteID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: latest by patient: %w", err)
	}
	recs, err := scanRecords(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: latest by patient: %w", err)
	}
	return recs, nil
}

// PatientReadings returns one patient's readings ordered by (measured_at,
// seq). AfterSeq is a keyset cursor: the page continues after the reading with
// that seq in this order, so a reading that arrived late (an app coming back
// online) with an older measured_at is neither skipped nor repeated. An
// AfterSeq that names no reading of this patient fails with store.ErrNotFound.
func (s *Store) PatientReadings(ctx context.Context, q store.ReadingQuery) ([]store.Record, error) {
	// An empty cursor sorts before every stored time, so "after" is always true.
	cursorAt, cursorSeq := "", int64(0)
	if q.AfterSeq > 0 {
		err := s.rdb.QueryRowContext(ctx, `
			SELECT measured_at FROM readings
			WHERE seq = ? AND trial_id = ? AND site_id = ? AND patient_id = ?`,
			q.AfterSeq, q.TrialID, q.SiteID, q.PatientID).Scan(&cursorAt)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sqlite: patient readings: cursor %d: %w", q.AfterSeq, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: patient readings: cursor: %w", err)
		}
		cursorSeq = q.AfterSeq
	}
	since := ""
	if !q.Since.IsZero() {
		since = formatTime(q.Since)
	}
	rows, err := s.rdb.QueryContext(ctx, `
		SELECT `+recordColumns+`
		FROM readings r
		LEFT JOIN scores s ON s.reading_id = r.reading_id
		WHERE r.trial_id = ? AND r.site_id = ? AND r.patient_id = ?
		  AND r.measured_at >= ?
		  AND r.measured_at >= ?
		  AND (r.measured_at > ? OR r.seq > ?)
		ORDER BY r.measured_at, r.seq
		LIMIT ?`,
		q.TrialID, q.SiteID, q.PatientID,
		since,
		cursorAt,
		cursorAt, cursorSeq,
		clampLimit(q.Limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: patient readings: %w", err)
	}
	recs, err := scanRecords(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: patient readings: %w", err)
	}
	return recs, nil
}

// recentReadingsSQL selects a patient's most recent readings in a time range,
// newest first, by the readings_patient_measured index.
const recentReadingsSQL = `
	SELECT reading_json FROM readings
	WHERE trial_id = ? AND site_id = ? AND patient_id = ?
	  AND measured_at >= ? AND measured_at <= ?
	ORDER BY measured_at DESC, seq DESC
	LIMIT ?`

// RecentReadings returns at most limit of the patient's most recent readings
// measured in [from, to], oldest first, without scores.
func (s *Store) RecentReadings(ctx context.Context, trialID, siteID, patientID string, from, to time.Time, limit int) ([]reading.Reading, error) {
	rows, err := s.recent.QueryContext(ctx, trialID, siteID, patientID, formatTime(from), formatTime(to), clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: recent readings: %w", err)
	}
	defer rows.Close()
	out := []reading.Reading{}
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("sqlite: recent readings: %w", err)
		}
		var r reading.Reading
		if err := json.Unmarshal(doc, &r); err != nil {
			return nil, fmt.Errorf("sqlite: recent readings: decode: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: recent readings: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

// Reading returns one reading with its score.
func (s *Store) Reading(ctx context.Context, readingID string) (store.Record, error) {
	rows, err := s.rdb.QueryContext(ctx, `
		SELECT `+recordColumns+`
		FROM readings r
		LEFT JOIN scores s ON s.reading_id = r.reading_id
		WHERE r.reading_id = ?`, readingID)
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite: reading %s: %w", readingID, err)
	}
	recs, err := scanRecords(rows)
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite: reading %s: %w", readingID, err)
	}
	if len(recs) == 0 {
		return store.Record{}, fmt.Errorf("sqlite: reading %s: %w", readingID, store.ErrNotFound)
	}
	return recs[0], nil
}

// scanRecords reads rows of recordColumns and closes rows. The result is
// never nil, so an empty list encodes as [] rather than null.
func scanRecords(rows *sql.Rows) ([]store.Record, error) {
	defer rows.Close()
	recs := []store.Record{}
	for rows.Next() {
		var (
			rec        store.Record
			readingDoc string
			receivedAt string
			scoreDoc   sql.NullString
		)
		if err := rows.Scan(&rec.Seq, &readingDoc, &receivedAt, &scoreDoc); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(readingDoc), &rec.Reading); err != nil {
			return nil, fmt.Errorf("decode reading %d: %w", rec.Seq, err)
		}
		t, err := parseTime(receivedAt)
		if err != nil {
			return nil, err
		}
		rec.ReceivedAt = t
		if scoreDoc.Valid {
			var sc scoring.Score
			if err := json.Unmarshal([]byte(scoreDoc.String), &sc); err != nil {
				return nil, fmt.Errorf("decode score of reading %d: %w", rec.Seq, err)
			}
			rec.Score = &sc
		}
		recs = append(recs, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return recs, nil
}
