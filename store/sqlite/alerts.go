package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"vigil/scoring"
	"vigil/store"
)

// ApplyAlert reads the patient's unresolved alert, asks merge what it becomes
// and, when merge reports a change, stores it with an audit record, all in one
// IMMEDIATE transaction on the single write connection, so two scorers of one
// patient see each other's result instead of both opening an alert.
//
// The store owns an alert's identity: whatever merge returns, the stored
// alert keeps the candidate's patient, trial and site, the current alert's
// AlertID (or a fresh UUID for a new one), and Kind "alert". Zero times and an
// empty status are filled in (now; the current status, or open). When merge
// reports no change, ApplyAlert returns the stored alert (zero if none) and
// false.
func (s *Store) ApplyAlert(ctx context.Context, candidate scoring.Alert, merge scoring.MergeFunc) (scoring.Alert, bool, error) {
	// Held shared for the whole call so that Close waits for it.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return scoring.Alert{}, false, ErrClosed
	}
	var (
		out     scoring.Alert
		changed bool
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, changed, err = s.applyAlert(ctx, tx, candidate, merge)
		return err
	})
	if err != nil {
		return scoring.Alert{}, false, fmt.Errorf("sqlite: apply alert (trial %s, site %s): %w", candidate.TrialID, candidate.SiteID, err)
	}
	return out, changed, nil
}

func (s *Store) applyAlert(ctx context.Context, tx *sql.Tx, cand scoring.Alert, merge scoring.MergeFunc) (scoring.Alert, bool, error) {
	var (
		current    *scoring.Alert
		currentDoc string
	)
	err := tx.QueryRowContext(ctx, `
		SELECT alert_json FROM alerts
		WHERE trial_id = ? AND site_id = ? AND patient_id = ? AND status <> 'resolved'`,
		cand.TrialID, cand.SiteID, cand.PatientID).Scan(&currentDoc)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return scoring.Alert{}, false, fmt.Errorf("read current: %w", err)
	default:
		current = new(scoring.Alert)
		if err := json.Unmarshal([]byte(currentDoc), current); err != nil {
			return scoring.Alert{}, false, fmt.Errorf("decode current: %w", err)
		}
	}

	next, c, changed, err := store.MergeAlert(current, cand, merge, s.cfg.clock().UTC(), monotonic)
	if err != nil || !changed {
		return next, false, err
	}
	if err := s.saveAlert(ctx, tx, next, currentDoc, c, nil); err != nil {
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
	var vis []string
	if n := len(q.Visible.Trials); n > 0 {
		vis = append(vis, "trial_id IN ("+placeholders(n)+")")
		for _, t := range q.Visible.Trials {
			args = append(args, t)
		}
	}
	for _, ts := range q.Visible.Sites {
		vis = append(vis, "(trial_id = ? AND site_id = ?)")
		args = append(args, ts[0], ts[1])
	}
	where = append(where, "("+strings.Join(vis, " OR ")+")")
	if q.TrialID != "" {
		where = append(where, "trial_id = ?")
		args = append(args, q.TrialID)
	}
	if q.SiteID != "" {
		where = append(where, "site_id = ?")
		args = append(args, q.SiteID)
	}
	if q.PatientID != "" {
		where = append(where, "patient_id = ?")
		args = append(args, q.PatientID)
	}
	if q.Status != "" {
		where = append(where, "status = ?")
		args = append(args, q.Status)
	}
	if q.AfterID != "" {
		var after string
		err := s.rdb.QueryRowContext(ctx,
			`SELECT updated_at FROM alerts WHERE alert_id = ?`, q.AfterID).Scan(&after)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sqlite: alerts: cursor %s: %w", q.AfterID, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: alerts: cursor: %w", err)
		}
		where = append(where, "(updated_at < ? OR (updated_at = ? AND alert_id > ?))")
		args = append(args, after, after, q.AfterID)
	}
	args = append(args, clampLimit(q.Limit))

	rows, err := s.rdb.QueryContext(ctx, `
		SELECT alert_json FROM alerts
		WHERE `+strings.Join(where, " AND ")+`
		ORDER BY updated_at DESC, alert_id
		LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: alerts: %w", err)
	}
	defer rows.Close()
	alerts := []scoring.Alert{}
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("sqlite: alerts: %w", err)
		}
		var a scoring.Alert
		if err := json.Unmarshal([]byte(doc), &a); err != nil {
			return nil, fmt.Errorf("sqlite: alerts: decode: %w", err)
		}
		alerts = append(alerts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: alerts: %w", err)
	}
	return alerts, nil
}

// Alert returns one alert.
func (s *Store) Alert(ctx context.Context, alertID string) (scoring.Alert, error) {
	var doc string
	err := s.rdb.QueryRowContext(ctx, `SELECT alert_json FROM alerts WHERE alert_id = ?`, alertID).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return scoring.Alert{}, fmt.Errorf("sqlite: alert %s: %w", alertID, store.ErrNotFound)
	}
	if err != nil {
		return scoring.Alert{}, fmt.Errorf("sqlite: alert %s: %w", alertID, err)
	}
	var a scoring.Alert
	if err := json.Unmarshal([]byte(doc), &a); err != nil {
		return scoring.Alert{}, fmt.Errorf("sqlite: alert %s: decode: %w", alertID, err)
	}
	return a, nil
}

// Audit returns an alert's audit trail, oldest first; empty for an unknown
// alert.
func (s *Store) Audit(ctx context.Context, alertID string) ([]store.AuditRecord, error) {
	rows, err := s.rdb.QueryContext(ctx, `
		SELECT id, entity_type, entity_id, actor, actor_name, actor_role, action, reason, meaning,
			old_value, new_value, at, prev_hash, hash
		FROM audit WHERE entity_type = 'alert' AND entity_id = ? ORDER BY id`, alertID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit %s: %w", alertID, err)
	}
	defer rows.Close()
	recs := []store.AuditRecord{}
	for rows.Next() {
		var (
			r                  store.AuditRecord
			oldValue, newValue sql.NullString
			at                 string
		)
		if err := rows.Scan(&r.ID, &r.EntityType, &r.EntityID, &r.Actor, &r.ActorName, &r.ActorRole, &r.Action,
			&r.Reason, &r.Meaning, &oldValue, &newValue, &at, &r.PrevHash, &r.Hash); err != nil {
			return nil, fmt.Errorf("sqlite: audit %s: %w", alertID, err)
		}
		// A missing value stays nil, which encodes as JSON null.
		if oldValue.Valid {
			r.OldValue = json.RawMessage(oldValue.String)
		}
		if newValue.Valid {
			r.NewValue = json.RawMessage(newValue.String)
		}
		t, err := parseTime(at)
		if err != nil {
			return nil, fmt.Errorf("sqlite: audit %s: %w", alertID, err)
		}
		r.At = t
		r.AlertID = r.EntityID
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit %s: %w", alertID, err)
	}
	return recs, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
