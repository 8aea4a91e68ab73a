package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"vigil/store"
)

// overviewLatestSQL counts each site's patients by the risk of their latest
// reading (s.risk NULL: not scored yet), with the newest of those readings.
// Loose index scans: the recursive CTEs hop from one site, then from one
// patient, to the next through readings_patient_measured, and each patient's
// latest reading is one probe from the end of its range, so the cost grows
// with the number of patients, not with the length of their histories.
// Withdrawn patients are left out.
const overviewLatestSQL = `
	WITH RECURSIVE
	sites (sid) AS (
		SELECT MIN(site_id) FROM readings WHERE trial_id = ?1
		UNION ALL
		SELECT (SELECT MIN(site_id) FROM readings WHERE trial_id = ?1 AND site_id > sites.sid)
		FROM sites WHERE sites.sid IS NOT NULL
	),
	patients_of (sid, pid) AS (
		SELECT sites.sid, (SELECT MIN(patient_id) FROM readings WHERE trial_id = ?1 AND site_id = sites.sid)
		FROM sites WHERE sites.sid IS NOT NULL
		UNION ALL
		SELECT p.sid, (SELECT MIN(patient_id) FROM readings
		               WHERE trial_id = ?1 AND site_id = p.sid AND patient_id > p.pid)
		FROM patients_of p WHERE p.pid IS NOT NULL
	)
	SELECT p.sid, COALESCE(s.risk, ''), COUNT(*), MAX(r.measured_at)
	FROM patients_of p
	JOIN readings r ON r.seq = (
		SELECT l.seq FROM readings l
		WHERE l.trial_id = ?1 AND l.site_id = p.sid AND l.patient_id = p.pid
		ORDER BY l.measured_at DESC, l.seq DESC LIMIT 1)
	LEFT JOIN scores s ON s.reading_id = r.reading_id
	LEFT JOIN patients pt ON pt.trial_id = ?1 AND pt.site_id = p.sid AND pt.patient_id = p.pid
	WHERE p.pid IS NOT NULL AND (pt.status IS NULL OR pt.status <> 'withdrawn')
	GROUP BY p.sid, s.risk`

// overviewAlertsSQL counts unresolved alerts by site, status and severity,
// from the partial index of unresolved alerts.
const overviewAlertsSQL = `
	SELECT site_id, status, severity, COUNT(*) FROM alerts
	WHERE trial_id = ? AND status <> 'resolved'
	GROUP BY site_id, status, severity`

// overviewAckSQL lists each alert opened since ?2 that a person acknowledged,
// with its first acknowledgement.
const overviewAckSQL = `
	SELECT a.site_id, a.opened_at, MIN(au.at)
	FROM alerts a
	JOIN audit au ON au.entity_type = 'alert' AND au.entity_id = a.alert_id AND au.action = ?3
	WHERE a.trial_id = ?1 AND a.opened_at >= ?2
	GROUP BY a.alert_id`

// TrialOverview implements store.Store, in one read transaction so that its
// three queries see one snapshot.
func (s *Store) TrialOverview(ctx context.Context, trialID string, now time.Time) ([]store.SiteOverview, error) {
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: trial overview %s: %w", trialID, err)
	}
	defer func() { _ = tx.Rollback() }()
	b := store.NewOverviewBuilder()
	if err := overviewLatest(ctx, tx, trialID, b); err != nil {
		return nil, fmt.Errorf("sqlite: trial overview %s: latest readings: %w", trialID, err)
	}
	if err := overviewAlerts(ctx, tx, trialID, b); err != nil {
		return nil, fmt.Errorf("sqlite: trial overview %s: alerts: %w", trialID, err)
	}
	if err := overviewAcks(ctx, tx, trialID, now.Add(-store.AckWindow), b); err != nil {
		return nil, fmt.Errorf("sqlite: trial overview %s: acknowledgements: %w", trialID, err)
	}
	return b.Sites(), nil
}

func overviewLatest(ctx context.Context, tx *sql.Tx, trialID string, b *store.OverviewBuilder) error {
	rows, err := tx.QueryContext(ctx, overviewLatestSQL, trialID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			site, risk, last string
			n                int
		)
		if err := rows.Scan(&site, &risk, &n, &last); err != nil {
			return err
		}
		t, err := parseTime(last)
		if err != nil {
			return err
		}
		b.AddLatest(site, risk, n, t)
	}
	return rows.Err()
}

func overviewAlerts(ctx context.Context, tx *sql.Tx, trialID string, b *store.OverviewBuilder) error {
	rows, err := tx.QueryContext(ctx, overviewAlertsSQL, trialID)
	if err != nil {
		return err
	}
	defer rows.Close()
	return b.AddAlertRows(rows)
}

func overviewAcks(ctx context.Context, tx *sql.Tx, trialID string, since time.Time, b *store.OverviewBuilder) error {
	rows, err := tx.QueryContext(ctx, overviewAckSQL, trialID, formatTime(since), store.ActionAlertAcknowledged)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var site, opened, acked string
		if err := rows.Scan(&site, &opened, &acked); err != nil {
			return err
		}
		o, err := parseTime(opened)
		if err != nil {
			return err
		}
		a, err := parseTime(acked)
		if err != nil {
			return err
		}
		b.AddAck(site, o, a)
	}
	return rows.Err()
}
