package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"vigil/store"
)

// overviewLatestSQL counts each site's patients by the risk of their latest
// reading (s.risk NULL: not scored yet), with the newest of those readings
// (measured_at, and the nanoseconds of the same reading). Loose index scans:
// the recursive CTEs hop from one site, then from one patient, to the next
// through readings_patient_measured, and each patient's latest reading is
// one probe from the end of its range, so the cost grows with the number of
// patients, not with the length of their histories. Withdrawn patients are
// left out.
const overviewLatestSQL = `
	WITH RECURSIVE
	sites (sid) AS (
		(SELECT site_id FROM readings WHERE trial_id = $1 ORDER BY site_id LIMIT 1)
		UNION ALL
		SELECT (SELECT r.site_id FROM readings r
		        WHERE r.trial_id = $1 AND r.site_id > s.sid ORDER BY r.site_id LIMIT 1)
		FROM sites s WHERE s.sid IS NOT NULL
	),
	patients_of (sid, pid) AS (
		SELECT s.sid, (SELECT r.patient_id FROM readings r
		               WHERE r.trial_id = $1 AND r.site_id = s.sid ORDER BY r.patient_id LIMIT 1)
		FROM sites s WHERE s.sid IS NOT NULL
		UNION ALL
		SELECT p.sid, (SELECT r.patient_id FROM readings r
		               WHERE r.trial_id = $1 AND r.site_id = p.sid AND r.patient_id > p.pid
		               ORDER BY r.patient_id LIMIT 1)
		FROM patients_of p WHERE p.pid IS NOT NULL
	)
	SELECT p.sid, COALESCE(s.risk, ''), count(*), max(r.measured_at),
		(array_agg(r.measured_ns ORDER BY r.measured_at DESC, r.measured_ns DESC))[1]
	FROM patients_of p
	CROSS JOIN LATERAL (
		SELECT l.reading_id, l.measured_at, l.measured_ns FROM readings l
		WHERE l.trial_id = $1 AND l.site_id = p.sid AND l.patient_id = p.pid
		ORDER BY l.measured_at DESC, l.measured_ns DESC, l.seq DESC
		LIMIT 1) r
	LEFT JOIN scores s ON s.reading_id = r.reading_id
	LEFT JOIN patients pt ON pt.trial_id = $1 AND pt.site_id = p.sid AND pt.patient_id = p.pid
	WHERE p.pid IS NOT NULL AND (pt.status IS NULL OR pt.status <> 'withdrawn')
	GROUP BY p.sid, s.risk`

// overviewAlertsSQL counts unresolved alerts by site, status and severity,
// from the partial index of unresolved alerts.
const overviewAlertsSQL = `
	SELECT site_id, status, severity, count(*) FROM alerts
	WHERE trial_id = $1 AND status <> 'resolved'
	GROUP BY site_id, status, severity`

// overviewAckSQL lists each alert opened since $2 that a person
// acknowledged, with its first acknowledgement.
const overviewAckSQL = `
	SELECT a.site_id, a.opened_at, min(au.at)
	FROM alerts a
	JOIN audit au ON au.entity_type = 'alert' AND au.entity_id = a.alert_id AND au.action = $3
	WHERE a.trial_id = $1 AND a.opened_at >= $2
	GROUP BY a.alert_id`

// TrialOverview implements store.Store, in one repeatable-read, read-only
// transaction so that its three queries see one snapshot.
func (s *Store) TrialOverview(ctx context.Context, trialID string, now time.Time) ([]store.SiteOverview, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	b := store.NewOverviewBuilder()
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			if err := overviewLatest(ctx, tx, trialID, b); err != nil {
				return fmt.Errorf("latest readings: %w", err)
			}
			if err := overviewAlerts(ctx, tx, trialID, b); err != nil {
				return fmt.Errorf("alerts: %w", err)
			}
			if err := overviewAcks(ctx, tx, trialID, ceilMicro(now.Add(-store.AckWindow)), b); err != nil {
				return fmt.Errorf("acknowledgements: %w", err)
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("postgres: trial overview %s: %w", trialID, err)
	}
	return b.Sites(), nil
}

func overviewLatest(ctx context.Context, tx pgx.Tx, trialID string, b *store.OverviewBuilder) error {
	rows, err := tx.Query(ctx, overviewLatestSQL, trialID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			site, risk string
			n          int
			last       time.Time
			ns         int16
		)
		if err := rows.Scan(&site, &risk, &n, &last, &ns); err != nil {
			return err
		}
		b.AddLatest(site, risk, n, joinTime(last, ns))
	}
	return rows.Err()
}

func overviewAlerts(ctx context.Context, tx pgx.Tx, trialID string, b *store.OverviewBuilder) error {
	rows, err := tx.Query(ctx, overviewAlertsSQL, trialID)
	if err != nil {
		return err
	}
	defer rows.Close()
	return b.AddAlertRows(rows)
}

func overviewAcks(ctx context.Context, tx pgx.Tx, trialID string, since time.Time, b *store.OverviewBuilder) error {
	rows, err := tx.Query(ctx, overviewAckSQL, trialID, since, store.ActionAlertAcknowledged)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			site          string
			opened, acked time.Time
		)
		if err := rows.Scan(&site, &opened, &acked); err != nil {
			return err
		}
		b.AddAck(site, opened, acked)
	}
	return rows.Err()
}
