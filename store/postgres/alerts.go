package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"vigil/scoring"
	"vigil/store"
)

// applyAlertAttempts bounds ApplyAlert's retries after losing the race for
// the unresolved-alert index (possible only when another writer re-opens a
// resolved alert of the patient outside ApplyAlert).
const applyAlertAttempts = 3

// ApplyAlert reads the patient's unresolved alert, asks merge what it becomes
// and, when merge reports a change, stores it with an audit record, all in one
// transaction. The transaction first takes an advisory lock on the patient
// and then locks the alert row, so two scorers of one patient, on one node or
// on several, see each other's result instead of both opening an alert; the
// partial unique index alerts_unresolved_patient backs that up.
//
// The store owns an alert's identity: whatever merge returns, the stored
// alert keeps the candidate's patient, trial and site, the current alert's
// AlertID (or a fresh UUID for a new one), and Kind "alert". Zero times and an
// empty status are filled in (now; the current status, or open). When merge
// reports no change, ApplyAlert returns the stored alert (zero if none) and
// false.
func (s *Store) ApplyAlert(ctx context.Context, candidate scoring.Alert, merge scoring.MergeFunc) (scoring.Alert, bool, error) {
	var (
		out     scoring.Alert
		changed bool
		err     error
	)
	for range applyAlertAttempts {
		err = s.inTx(ctx, func(tx pgx.Tx) error {
			var err error
			out, changed, err = s.applyAlert(ctx, tx, candidate, merge)
			return err
		})
		if !isUniqueViolation(err, "alerts_unresolved_patient") {
			break
		}
	}
	if errors.Is(err, ErrClosed) {
		return scoring.Alert{}, false, err
	}
	if err != nil {
		return scoring.Alert{}, false, fmt.Errorf("postgres: apply alert (trial %s, site %s): %w", candidate.TrialID, candidate.SiteID, err)
	}
	return out, changed, nil
}

func (s *Store) applyAlert(ctx context.Context, tx pgx.Tx, cand scoring.Alert, merge scoring.MergeFunc) (scoring.Alert, bool, error) {
	if err := lockKey(ctx, tx, lockClassPatientAlert, cand.TrialID+"\x00"+cand.SiteID+"\x00"+cand.PatientID); err != nil {
		return scoring.Alert{}, false, err
	}
	// A statement after the lock: its snapshot sees whatever the previous
	// holder committed.
	var current *scoring.Alert
	var doc []byte
	err := tx.QueryRow(ctx, `
		SELECT alert_json FROM alerts
		WHERE trial_id = $1 AND site_id = $2 AND patient_id = $3 AND status <> 'resolved'
		FOR UPDATE`,
		cand.TrialID, cand.SiteID, cand.PatientID).Scan(&doc)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return scoring.Alert{}, false, fmt.Errorf("read current: %w", err)
	default:
		current = new(scoring.Alert)
		if err := json.Unmarshal(doc, current); err != nil {
			return scoring.Alert{}, false, fmt.Errorf("decode current: %w", err)
		}
	}

	next, c, changed, err := store.MergeAlert(current, cand, merge, s.now(), monotonic)
	if err != nil || !changed {
		return next, false, err
	}
	if err := s.saveAlert(ctx, tx, next, current, c, nil); err != nil {
		return scoring.Alert{}, false, err
	}
	return next, true, nil
}

// Alerts returns the alerts q selects, most recently updated first (ties by
// alert id), at most 1000 (Limit <= 0 means 100). An AfterID that names no
// alert fails with store.ErrNotFound.
func (s *Store) Alerts(ctx context.Context, q store.AlertQuery) ([]scoring.Alert, error) {
	if len(q.Visible.Trials) == 0 && len(q.Visible.Sites) == 0 {
		return []scoring.Alert{}, nil
	}
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	var vis []string
	if len(q.Visible.Trials) > 0 {
		vis = append(vis, "trial_id = ANY("+arg(q.Visible.Trials)+"::text[])")
	}
	if len(q.Visible.Sites) > 0 {
		trials := make([]string, len(q.Visible.Sites))
		sites := make([]string, len(q.Visible.Sites))
		for i, ts := range q.Visible.Sites {
			trials[i], sites[i] = ts[0], ts[1]
		}
		vis = append(vis, "(trial_id, site_id) IN (SELECT * FROM unnest("+arg(trials)+"::text[], "+arg(sites)+"::text[]))")
	}
	where = append(where, "("+strings.Join(vis, " OR ")+")")
	if q.TrialID != "" {
		where = append(where, "trial_id = "+arg(q.TrialID))
	}
	if q.SiteID != "" {
		where = append(where, "site_id = "+arg(q.SiteID))
	}
	if q.PatientID != "" {
		where = append(where, "patient_id = "+arg(q.PatientID))
	}
	if q.Status != "" {
		where = append(where, "status = "+arg(q.Status))
	}
	if q.AfterID != "" {
		var after time.Time
		err := s.pool.QueryRow(ctx, `SELECT updated_at FROM alerts WHERE alert_id = $1`, q.AfterID).Scan(&after)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("postgres: alerts: cursor %s: %w", q.AfterID, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: alerts: cursor: %w", err)
		}
		a, id := arg(after), arg(q.AfterID)
		where = append(where, "(updated_at < "+a+"::timestamptz OR (updated_at = "+a+"::timestamptz AND alert_id > "+id+"))")
	}
	limit := arg(clampLimit(q.Limit))
	rows, err := s.pool.Query(ctx, `
		SELECT alert_json FROM alerts
		WHERE `+strings.Join(where, " AND ")+`
		ORDER BY updated_at DESC, alert_id
		LIMIT `+limit, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: alerts: %w", err)
	}
	alerts, err := scanAlerts(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: alerts: %w", err)
	}
	return alerts, nil
}

// scanAlerts decodes rows of one alert_json column and closes rows; never nil.
func scanAlerts(rows pgx.Rows) ([]scoring.Alert, error) {
	defer rows.Close()
	alerts := []scoring.Alert{}
	for rows.Next() {
		var doc []byte
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var a scoring.Alert
		if err := json.Unmarshal(doc, &a); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		alerts = append(alerts, a)
	}
	return alerts, rows.Err()
}

// Alert returns one alert.
func (s *Store) Alert(ctx context.Context, alertID string) (scoring.Alert, error) {
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT alert_json FROM alerts WHERE alert_id = $1`, alertID).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return scoring.Alert{}, fmt.Errorf("postgres: alert %s: %w", alertID, store.ErrNotFound)
	}
	if err != nil {
		return scoring.Alert{}, fmt.Errorf("postgres: alert %s: %w", alertID, err)
	}
	var a scoring.Alert
	if err := json.Unmarshal(doc, &a); err != nil {
		return scoring.Alert{}, fmt.Errorf("postgres: alert %s: decode: %w", alertID, err)
	}
	return a, nil
}

// Audit returns an alert's audit trail, oldest first; empty for an unknown
// alert.
func (s *Store) Audit(ctx context.Context, alertID string) ([]store.AuditRecord, error) {
	recs, err := s.auditRecords(ctx, `entity_type = 'alert' AND entity_id = $1`, []any{alertID}, 0)
	if err != nil {
		return nil, fmt.Errorf("postgres: audit %s: %w", alertID, err)
	}
	return recs, nil
}
