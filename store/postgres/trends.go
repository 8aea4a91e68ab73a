package postgres

import (
	"context"
	"fmt"
	"time"

	"vigil/store"
)

// trendsSQL reads a site's readings in a time range, newest first, by the
// readings_site_measured index (migration 00003): one range scan, in index
// order, so no sort. The documents come out whole: store.CollectTrends takes
// the few values a trend needs out of them on this node, which is faster
// than json_to_record and spends none of the shared database's CPU on it.
// The range is on the stored microseconds, widened to whole microseconds;
// CollectTrends drops what lies outside the exact window.
const trendsSQL = `
	SELECT r.patient_id, r.measured_at, r.measured_ns, r.reading_json, s.score_json
	FROM readings r
	LEFT JOIN scores s ON s.reading_id = r.reading_id
	WHERE r.trial_id = $1 AND r.site_id = $2
	  AND r.measured_at >= $3 AND r.measured_at < $4
	ORDER BY r.measured_at DESC, r.measured_ns DESC, r.seq DESC
	LIMIT $5`

// Trends returns the site's trend over q's window (store.CollectTrends).
func (s *Store) Trends(ctx context.Context, q store.TrendQuery) (store.Trends, error) {
	rows, err := s.pool.Query(ctx, trendsSQL, q.TrialID, q.SiteID, micro(q.From), ceilMicro(q.To()), q.Limit())
	if err != nil {
		return store.Trends{}, fmt.Errorf("postgres: trends: %w", err)
	}
	defer rows.Close()
	var (
		at time.Time
		ns int16
	)
	tr, err := store.CollectTrends(q, func(row *store.TrendRow) (bool, error) {
		if !rows.Next() {
			return false, rows.Err()
		}
		// text and json arrive as their bytes in either wire format, so
		// those columns are used raw, uncopied (nil: NULL, an unscored
		// reading); nil in Scan skips them.
		if err := rows.Scan(nil, &at, &ns, nil, nil); err != nil {
			return false, err
		}
		raw := rows.RawValues()
		*row = store.TrendRow{PatientID: raw[0], MeasuredAt: joinTime(at, ns), Reading: raw[3], Score: raw[4]}
		return true, nil
	})
	if err != nil {
		return store.Trends{}, fmt.Errorf("postgres: trends: %w", err)
	}
	return tr, nil
}
