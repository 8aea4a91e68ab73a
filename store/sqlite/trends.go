package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"vigil/store"
)

// trendsSQL reads a site's readings in a time range, newest first, by the
// readings_site_measured index (migration 00007): one range scan, in index
// order, so no sort. The documents come out whole: store.CollectTrends takes
// the few values a trend needs out of them faster than json_extract does.
const trendsSQL = `
	SELECT r.patient_id, r.measured_at, r.reading_json, s.score_json
	FROM readings r
	LEFT JOIN scores s ON s.reading_id = r.reading_id
	WHERE r.trial_id = ?1 AND r.site_id = ?2
	  AND r.measured_at >= ?3 AND r.measured_at < ?4
	ORDER BY r.measured_at DESC, r.seq DESC
	LIMIT ?5`

// Trends returns the site's trend over q's window (store.CollectTrends).
func (s *Store) Trends(ctx context.Context, q store.TrendQuery) (store.Trends, error) {
	rows, err := s.rdb.QueryContext(ctx, trendsSQL, q.TrialID, q.SiteID,
		formatTime(q.From), formatTime(q.To()), q.Limit())
	if err != nil {
		return store.Trends{}, fmt.Errorf("sqlite: trends: %w", err)
	}
	defer rows.Close()
	// RawBytes: the row's own buffers, valid until the next Next, which is
	// all CollectTrends needs.
	var patient, measured, readingDoc, scoreDoc sql.RawBytes
	tr, err := store.CollectTrends(q, func(row *store.TrendRow) (bool, error) {
		if !rows.Next() {
			return false, rows.Err()
		}
		if err := rows.Scan(&patient, &measured, &readingDoc, &scoreDoc); err != nil {
			return false, err
		}
		t, err := parseTime(string(measured))
		if err != nil {
			return false, err
		}
		*row = store.TrendRow{PatientID: patient, MeasuredAt: t, Reading: readingDoc, Score: scoreDoc}
		return true, nil
	})
	if err != nil {
		return store.Trends{}, fmt.Errorf("sqlite: trends: %w", err)
	}
	return tr, nil
}
