package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"time"

	"vigil/scoring"
	"vigil/store"
)

// saveAlert writes next (inserting it when oldDoc is "", else updating it),
// its audit record and its notifications, inside the caller's transaction.
// Every alert write goes through here, so no change escapes the trail.
func (s *Store) saveAlert(ctx context.Context, tx *sql.Tx, next scoring.Alert, oldDoc string, c store.Change, notify []store.Notification) error {
	newDoc, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	reasons, err := json.Marshal(next.Reasons)
	if err != nil {
		return fmt.Errorf("encode reasons: %w", err)
	}
	readingID := sql.NullString{String: next.ReadingID, Valid: next.ReadingID != ""}
	var due sql.NullString
	if next.NextEscalationAt != nil && next.Status != scoring.StatusResolved {
		due = sql.NullString{String: formatTime(*next.NextEscalationAt), Valid: true}
	}
	if oldDoc == "" {
		_, err = tx.ExecContext(ctx, `
			INSERT INTO alerts (alert_id, patient_id, trial_id, site_id, severity, status,
				reasons, reading_id, opened_at, updated_at, alert_json, next_escalation_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			next.AlertID, next.PatientID, next.TrialID, next.SiteID, next.Severity, next.Status,
			string(reasons), readingID, formatTime(next.OpenedAt), formatTime(next.UpdatedAt), string(newDoc), due)
		if err != nil {
			return fmt.Errorf("insert alert: %w", err)
		}
	} else {
		_, err = tx.ExecContext(ctx, `
			UPDATE alerts SET severity = ?, status = ?, reasons = ?, reading_id = ?,
				opened_at = ?, updated_at = ?, alert_json = ?, next_escalation_at = ?
			WHERE alert_id = ?`,
			next.Severity, next.Status, string(reasons), readingID,
			formatTime(next.OpenedAt), formatTime(next.UpdatedAt), string(newDoc), due, next.AlertID)
		if err != nil {
			return fmt.Errorf("update alert: %w", err)
		}
	}
	at := c.At
	if at.IsZero() {
		at = s.cfg.clock().UTC()
	}
	rec := store.AuditRecord{EntityType: store.EntityAlert, EntityID: next.AlertID,
		Actor: c.Actor.Sub, ActorName: c.Actor.Name, ActorRole: c.Actor.Role,
		Action: c.Action, Reason: c.Reason, Meaning: c.Meaning,
		NewValue: json.RawMessage(newDoc), At: at}
	if oldDoc != "" {
		rec.OldValue = json.RawMessage(oldDoc)
	}
	if err := s.appendAudit(ctx, tx, rec); err != nil {
		return err
	}
	if next.Status == scoring.StatusAcknowledged || next.Status == scoring.StatusResolved {
		if _, err := tx.ExecContext(ctx, `
			UPDATE notifications SET status = 'cancelled', last_error = ?
			WHERE alert_id = ? AND status = 'pending'`,
			"superseded: alert "+next.Status, next.AlertID); err != nil {
			return fmt.Errorf("cancel pending notifications: %w", err)
		}
	}
	if len(notify) > 0 {
		if err := s.enqueueTx(ctx, tx, notify, at); err != nil {
			return err
		}
	}
	return nil
}

// UpdateAlert implements store.LifecycleStore.
func (s *Store) UpdateAlert(ctx context.Context, alertID string, fn func(cur scoring.Alert) (store.AlertChange, error), c store.Change) (scoring.Alert, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return scoring.Alert{}, ErrClosed
	}
	var out scoring.Alert
	var fnErr error
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var doc string
		err := tx.QueryRowContext(ctx, `SELECT alert_json FROM alerts WHERE alert_id = ?`, alertID).Scan(&doc)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read alert: %w", err)
		}
		var cur scoring.Alert
		if err := json.Unmarshal([]byte(doc), &cur); err != nil {
			return fmt.Errorf("decode alert: %w", err)
		}
		change, err := fn(cur)
		if err != nil {
			fnErr = err
			return err
		}
		next := change.Alert
		// Identity is the store's, whatever fn returned.
		next.Kind, next.AlertID = "alert", cur.AlertID
		next.PatientID, next.TrialID, next.SiteID = cur.PatientID, cur.TrialID, cur.SiteID
		next.OpenedAt = cur.OpenedAt
		next.UpdatedAt = monotonic(next.UpdatedAt, cur.UpdatedAt)
		if change.Action != "" {
			c.Action = change.Action
		}
		if change.Reason != "" {
			c.Reason = change.Reason
		}
		if err := s.saveAlert(ctx, tx, next, doc, c, change.Notify); err != nil {
			return err
		}
		out = next
		return nil
	})
	if fnErr != nil {
		return scoring.Alert{}, fnErr
	}
	if errors.Is(err, store.ErrNotFound) {
		return scoring.Alert{}, err
	}
	if err != nil {
		return scoring.Alert{}, fmt.Errorf("sqlite: update alert %s: %w", alertID, err)
	}
	return out, nil
}

// DueEscalations implements store.LifecycleStore.
func (s *Store) DueEscalations(ctx context.Context, now time.Time, limit int) ([]scoring.Alert, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.rdb.QueryContext(ctx, `
		SELECT alert_json FROM alerts
		WHERE next_escalation_at IS NOT NULL AND status <> 'resolved' AND next_escalation_at <= ?
		ORDER BY next_escalation_at LIMIT ?`, formatTime(now.UTC()), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due escalations: %w", err)
	}
	defer rows.Close()
	var out []scoring.Alert
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("sqlite: due escalations: %w", err)
		}
		var a scoring.Alert
		if err := json.Unmarshal([]byte(doc), &a); err != nil {
			return nil, fmt.Errorf("sqlite: due escalations: decode: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

const unresolvedAlertSQL = `
	SELECT alert_json FROM alerts
	WHERE trial_id = ? AND site_id = ? AND patient_id = ? AND status <> 'resolved'`

// UnresolvedAlert implements store.LifecycleStore.
func (s *Store) UnresolvedAlert(ctx context.Context, trialID, siteID, patientID string) (scoring.Alert, error) {
	var doc string
	err := s.unresolved.QueryRowContext(ctx, trialID, siteID, patientID).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return scoring.Alert{}, store.ErrNotFound
	}
	if err != nil {
		return scoring.Alert{}, fmt.Errorf("sqlite: unresolved alert: %w", err)
	}
	var a scoring.Alert
	if err := json.Unmarshal([]byte(doc), &a); err != nil {
		return scoring.Alert{}, fmt.Errorf("sqlite: unresolved alert: decode: %w", err)
	}
	return a, nil
}

// ResolvedSince implements store.LifecycleStore.
func (s *Store) ResolvedSince(ctx context.Context, trialID, siteID, patientID, reason string, since time.Time) (bool, error) {
	reasonJSON, err := json.Marshal(reason)
	if err != nil {
		return false, err
	}
	var one int
	err = s.rdb.QueryRowContext(ctx, `
		SELECT 1 FROM alerts
		WHERE trial_id = ? AND site_id = ? AND patient_id = ? AND status = 'resolved'
			AND updated_at >= ? AND instr(reasons, ?) > 0
		LIMIT 1`, trialID, siteID, patientID, formatTime(since), string(reasonJSON)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: resolved since: %w", err)
	}
	return true, nil
}

// monotonic keeps an alert's updated_at rising with every committed change.
// Times are taken before the write transaction, so two changes racing for
// the writer can commit in the other order; boards keep the alert with the
// latest updated_at, which must therefore follow commit order.
func monotonic(next, cur time.Time) time.Time {
	if next.After(cur) {
		return next
	}
	return cur.Add(time.Microsecond)
}
