package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"vigil/reading"
	"vigil/scoring"
	"vigil/store"
)

// InsertReading stores a reading durably through the group-commit writer. A
// zero ReceivedAt means now. It returns once the reading's transaction has
// committed, or ctx is done while it is still queued. The reading id is the
// table's unique key, so a retry that reaches any node sharing the database
// is a Duplicate (same content hash) or a Conflict.
func (s *Store) InsertReading(ctx context.Context, nr store.NewReading) (store.InsertOutcome, error) {
	r := nr.Reading
	if r.ReadingID == "" || r.PatientID == "" || r.TrialID == "" || r.SiteID == "" {
		return store.InsertOutcome{}, errors.New("postgres: insert reading: reading_id, patient_id, trial_id and site_id are required")
	}
	// Encoding happens here, on the caller's goroutine, to keep the single
	// writer busy only with SQL.
	doc, err := json.Marshal(r)
	if err != nil {
		return store.InsertOutcome{}, fmt.Errorf("postgres: insert reading: encode: %w", err)
	}
	receivedAt := nr.ReceivedAt
	if receivedAt.IsZero() {
		receivedAt = s.cfg.clock()
	}
	payload := []byte(nr.Payload)
	if payload == nil {
		payload = []byte{} // NOT NULL: an absent payload is stored as empty
	}
	row := &readingRow{
		id: r.ReadingID, patient: r.PatientID, trial: r.TrialID, site: r.SiteID,
		receivedAt: receivedAt.UTC(), payload: payload, doc: string(doc), hash: nr.ContentHash,
	}
	row.measuredAt, row.measuredNs = splitTime(r.MeasuredAt)

	res, err := s.submit(ctx, &op{reading: row})
	if err == nil {
		err = res.err
	}
	if err != nil {
		return store.InsertOutcome{}, fmt.Errorf("postgres: insert reading %s: %w", r.ReadingID, err)
	}
	return res.outcome, nil
}

// SaveScore stores the first score of a reading through the group-commit
// writer; later ones are dropped and report saved=false (the primary key
// decides, whichever node they come from). A score for a reading that does
// not exist fails with store.ErrNotFound.
func (s *Store) SaveScore(ctx context.Context, sc scoring.Score) (bool, error) {
	if sc.ReadingID == "" {
		return false, errors.New("postgres: save score: reading_id is required")
	}
	if sc.Kind == "" {
		sc.Kind = "score"
	}
	if sc.ScoredAt.IsZero() {
		sc.ScoredAt = s.cfg.clock()
	}
	doc, err := json.Marshal(sc)
	if err != nil {
		return false, fmt.Errorf("postgres: save score: encode: %w", err)
	}
	row := &scoreRow{readingID: sc.ReadingID, doc: string(doc), rulesVersion: sc.RulesVersion,
		risk: sc.Risk, scoredAt: micro(sc.ScoredAt)}
	if sc.Model != nil {
		row.modelVersion = pgtype.Text{String: sc.Model.Version, Valid: true}
	}
	res, err := s.submit(ctx, &op{score: row})
	if err == nil {
		err = res.err
	}
	if err != nil {
		return false, fmt.Errorf("postgres: save score %s: %w", sc.ReadingID, err)
	}
	return res.saved, nil
}

const recordColumns = `r.seq, r.reading_json, r.received_at, r.received_ns, s.score_json`

// Unscored returns readings received before olderThan without a score,
// oldest received first (at most 1000; limit <= 0 means 100).
func (s *Store) Unscored(ctx context.Context, olderThan time.Time, limit int) ([]store.Record, error) {
	at, ns := splitTime(olderThan)
	rows, err := s.pool.Query(ctx, `
		SELECT `+recordColumns+`
		FROM unscored u
		JOIN readings r ON r.seq = u.seq
		LEFT JOIN scores s ON s.reading_id = r.reading_id
		WHERE (u.received_at, u.received_ns) < ($1::timestamptz, $2::int2)
		ORDER BY u.received_at, u.received_ns, u.seq
		LIMIT $3`, at, ns, clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: unscored: %w", err)
	}
	recs, err := scanRecords(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: unscored: %w", err)
	}
	return recs, nil
}

// LatestByPatient returns each patient's latest reading at a site, by
// patient id.
func (s *Store) LatestByPatient(ctx context.Context, trialID, siteID string) ([]store.Record, error) {
	// A loose index scan: the recursive CTE hops from one patient id to the
	// next through the index, and each patient's latest reading is one probe
	// from the end of its range, so the cost grows with the number of
	// patients, not with the length of their histories.
	rows, err := s.pool.Query(ctx, `
		WITH RECURSIVE patients (pid) AS (
			(SELECT patient_id FROM readings WHERE trial_id = $1 AND site_id = $2
			 ORDER BY patient_id LIMIT 1)
			UNION ALL
			SELECT (SELECT l.patient_id FROM readings l
			        WHERE l.trial_id = $1 AND l.site_id = $2 AND l.patient_id > p.pid
			        ORDER BY l.patient_id LIMIT 1)
			FROM patients p WHERE p.pid IS NOT NULL
		)
		SELECT `+recordColumns+`
		FROM patients p
		CROSS JOIN LATERAL (
			SELECT l.* FROM readings l
			WHERE l.trial_id = $1 AND l.site_id = $2 AND l.patient_id = p.pid
			ORDER BY l.measured_at DESC, l.measured_ns DESC, l.seq DESC
			LIMIT 1) r
		LEFT JOIN scores s ON s.reading_id = r.reading_id
		WHERE p.pid IS NOT NULL
		ORDER BY p.pid`, trialID, siteID)
	if err != nil {
		return nil, fmt.Errorf("postgres: latest by patient: %w", err)
	}
	recs, err := scanRecords(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: latest by patient: %w", err)
	}
	return recs, nil
}

// PatientReadings returns one patient's readings ordered by (measured_at,
// seq). AfterSeq is a keyset cursor: the page continues after the reading with
// that seq in this order, so a reading that arrived late (an app coming back
// online) with an older measured_at is neither skipped nor repeated. An
// AfterSeq that names no reading of this patient fails with store.ErrNotFound.
func (s *Store) PatientReadings(ctx context.Context, q store.ReadingQuery) ([]store.Record, error) {
	where := []string{"r.trial_id = $1", "r.site_id = $2", "r.patient_id = $3"}
	args := []any{q.TrialID, q.SiteID, q.PatientID}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.AfterSeq > 0 {
		var (
			at time.Time
			ns int16
		)
		err := s.pool.QueryRow(ctx, `
			SELECT measured_at, measured_ns FROM readings
			WHERE seq = $1 AND trial_id = $2 AND site_id = $3 AND patient_id = $4`,
			q.AfterSeq, q.TrialID, q.SiteID, q.PatientID).Scan(&at, &ns)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("postgres: patient readings: cursor %d: %w", q.AfterSeq, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: patient readings: cursor: %w", err)
		}
		where = append(where, fmt.Sprintf("(r.measured_at, r.measured_ns, r.seq) > (%s::timestamptz, %s::int2, %s::int8)",
			arg(at), arg(ns), arg(q.AfterSeq)))
	}
	if !q.Since.IsZero() {
		at, ns := splitTime(q.Since)
		where = append(where, fmt.Sprintf("(r.measured_at, r.measured_ns) >= (%s::timestamptz, %s::int2)", arg(at), arg(ns)))
	}
	limit := arg(clampLimit(q.Limit))
	rows, err := s.pool.Query(ctx, `
		SELECT `+recordColumns+`
		FROM readings r
		LEFT JOIN scores s ON s.reading_id = r.reading_id
		WHERE `+strings.Join(where, " AND ")+`
		ORDER BY r.measured_at, r.measured_ns, r.seq
		LIMIT `+limit, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: patient readings: %w", err)
	}
	recs, err := scanRecords(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: patient readings: %w", err)
	}
	return recs, nil
}

// RecentReadings returns at most limit of the patient's most recent readings
// measured in [from, to], oldest first, without scores: newest first by the
// readings_patient_measured index, reversed.
func (s *Store) RecentReadings(ctx context.Context, trialID, siteID, patientID string, from, to time.Time, limit int) ([]reading.Reading, error) {
	fromAt, fromNs := splitTime(from)
	toAt, toNs := splitTime(to)
	rows, err := s.pool.Query(ctx, `
		SELECT reading_json FROM readings
		WHERE trial_id = $1 AND site_id = $2 AND patient_id = $3
		  AND (measured_at, measured_ns) >= ($4::timestamptz, $5::int2)
		  AND (measured_at, measured_ns) <= ($6::timestamptz, $7::int2)
		ORDER BY measured_at DESC, measured_ns DESC, seq DESC
		LIMIT $8`, trialID, siteID, patientID, fromAt, fromNs, toAt, toNs, clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: recent readings: %w", err)
	}
	defer rows.Close()
	out := []reading.Reading{}
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("postgres: recent readings: %w", err)
		}
		var r reading.Reading
		if err := json.Unmarshal(doc, &r); err != nil {
			return nil, fmt.Errorf("postgres: recent readings: decode: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: recent readings: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

// Reading returns one reading with its score.
func (s *Store) Reading(ctx context.Context, readingID string) (store.Record, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+recordColumns+`
		FROM readings r
		LEFT JOIN scores s ON s.reading_id = r.reading_id
		WHERE r.reading_id = $1`, readingID)
	if err != nil {
		return store.Record{}, fmt.Errorf("postgres: reading %s: %w", readingID, err)
	}
	recs, err := scanRecords(rows)
	if err != nil {
		return store.Record{}, fmt.Errorf("postgres: reading %s: %w", readingID, err)
	}
	if len(recs) == 0 {
		return store.Record{}, fmt.Errorf("postgres: reading %s: %w", readingID, store.ErrNotFound)
	}
	return recs[0], nil
}

// scanRecords reads rows of recordColumns and closes rows. The result is
// never nil, so an empty list encodes as [] rather than null.
func scanRecords(rows pgx.Rows) ([]store.Record, error) {
	defer rows.Close()
	recs := []store.Record{}
	for rows.Next() {
		var (
			rec        store.Record
			readingDoc []byte
			receivedAt time.Time
			receivedNs int16
			scoreDoc   []byte
		)
		if err := rows.Scan(&rec.Seq, &readingDoc, &receivedAt, &receivedNs, &scoreDoc); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(readingDoc, &rec.Reading); err != nil {
			return nil, fmt.Errorf("decode reading %d: %w", rec.Seq, err)
		}
		rec.ReceivedAt = joinTime(receivedAt, receivedNs)
		if scoreDoc != nil {
			var sc scoring.Score
			if err := json.Unmarshal(scoreDoc, &sc); err != nil {
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
