package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"vigil/scoring"
	"vigil/store"
)

// saveAlert writes next (inserting it when current is nil, else updating it),
// its notifications and its audit record, inside the caller's transaction.
// Every alert write goes through here, so no change escapes the trail. The
// audit record is appended last, so the chain's head stays locked for as
// short a time as possible.
//
// The old value is current as Go encodes it, which is byte for byte the new
// value of the record before (the jsonb column keeps the value, not the
// bytes).
func (s *Store) saveAlert(ctx context.Context, tx pgx.Tx, next scoring.Alert, current *scoring.Alert, c store.Change, notify []store.Notification) error {
	newDoc, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	var oldDoc []byte
	if current != nil {
		if oldDoc, err = json.Marshal(current); err != nil {
			return fmt.Errorf("encode current alert: %w", err)
		}
	}
	reasons, err := json.Marshal(next.Reasons)
	if err != nil {
		return fmt.Errorf("encode reasons: %w", err)
	}
	var readingID *string
	if next.ReadingID != "" {
		readingID = &next.ReadingID
	}
	var due *time.Time
	if next.NextEscalationAt != nil && next.Status != scoring.StatusResolved {
		due = utcPtr(next.NextEscalationAt)
	}
	if current == nil {
		_, err = tx.Exec(ctx, `
			INSERT INTO alerts (alert_id, patient_id, trial_id, site_id, severity, status,
				reasons, reading_id, opened_at, updated_at, alert_json, next_escalation_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9, $10, $11::text::jsonb, $12)`,
			next.AlertID, next.PatientID, next.TrialID, next.SiteID, next.Severity, next.Status,
			string(reasons), readingID, next.OpenedAt, next.UpdatedAt, string(newDoc), due)
		if err != nil {
			return fmt.Errorf("insert alert: %w", err)
		}
	} else {
		_, err = tx.Exec(ctx, `
			UPDATE alerts SET severity = $1, status = $2, reasons = $3::text::jsonb, reading_id = $4,
				opened_at = $5, updated_at = $6, alert_json = $7::text::jsonb, next_escalation_at = $8
			WHERE alert_id = $9`,
			next.Severity, next.Status, string(reasons), readingID,
			next.OpenedAt, next.UpdatedAt, string(newDoc), due, next.AlertID)
		if err != nil {
			return fmt.Errorf("update alert: %w", err)
		}
	}
	at := c.At
	if at.IsZero() {
		at = s.now()
	}
	if next.Status == scoring.StatusAcknowledged || next.Status == scoring.StatusResolved {
		if _, err := tx.Exec(ctx, `
			UPDATE notifications SET status = 'cancelled', last_error = $1
			WHERE alert_id = $2 AND status = 'pending'`,
			"superseded: alert "+next.Status, next.AlertID); err != nil {
			return fmt.Errorf("cancel pending notifications: %w", err)
		}
	}
	if len(notify) > 0 {
		if err := enqueueTx(ctx, tx, notify, micro(at)); err != nil {
			return err
		}
	}
	rec := store.AuditRecord{EntityType: store.EntityAlert, EntityID: next.AlertID,
		Actor: c.Actor.Sub, ActorName: c.Actor.Name, ActorRole: c.Actor.Role,
		Action: c.Action, Reason: c.Reason, Meaning: c.Meaning,
		NewValue: json.RawMessage(newDoc), At: at}
	if oldDoc != nil {
		rec.OldValue = json.RawMessage(oldDoc)
	}
	return appendAudit(ctx, tx, rec)
}

// UpdateAlert implements store.LifecycleStore. The alert row is locked (FOR
// UPDATE) for the whole transaction, so changes from several nodes apply one
// after the other, each to the state the previous one left.
func (s *Store) UpdateAlert(ctx context.Context, alertID string, fn func(cur scoring.Alert) (store.AlertChange, error), c store.Change) (scoring.Alert, error) {
	var (
		out   scoring.Alert
		fnErr error
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var doc []byte
		err := tx.QueryRow(ctx, `SELECT alert_json FROM alerts WHERE alert_id = $1 FOR UPDATE`, alertID).Scan(&doc)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("read alert: %w", err)
		}
		var cur scoring.Alert
		if err := json.Unmarshal(doc, &cur); err != nil {
			return fmt.Errorf("decode alert: %w", err)
		}
		// fn gets a copy, so it cannot alter what we write as old_value.
		arg := cur
		arg.Reasons = append([]string(nil), cur.Reasons...)
		change, err := fn(arg)
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
		if next.Reasons == nil {
			next.Reasons = []string{}
		}
		if change.Action != "" {
			c.Action = change.Action
		}
		if change.Reason != "" {
			c.Reason = change.Reason
		}
		if err := s.saveAlert(ctx, tx, next, &cur, c, change.Notify); err != nil {
			return err
		}
		out = next
		return nil
	})
	if fnErr != nil {
		return scoring.Alert{}, fnErr
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrClosed) {
		return scoring.Alert{}, err
	}
	if err != nil {
		return scoring.Alert{}, fmt.Errorf("postgres: update alert %s: %w", alertID, err)
	}
	return out, nil
}

// DueEscalations implements store.LifecycleStore: unresolved alerts due at or
// before now, oldest due first (ties by alert id).
func (s *Store) DueEscalations(ctx context.Context, now time.Time, limit int) ([]scoring.Alert, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	// A stored time is whole microseconds, so <= now is <= now truncated,
	// which is how pgx sends now.
	rows, err := s.pool.Query(ctx, `
		SELECT alert_json FROM alerts
		WHERE next_escalation_at IS NOT NULL AND status <> 'resolved' AND next_escalation_at <= $1
		ORDER BY next_escalation_at, alert_id LIMIT $2`, micro(now), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: due escalations: %w", err)
	}
	alerts, err := scanAlerts(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: due escalations: %w", err)
	}
	return alerts, nil
}

// UnresolvedAlert implements store.LifecycleStore.
func (s *Store) UnresolvedAlert(ctx context.Context, trialID, siteID, patientID string) (scoring.Alert, error) {
	var doc []byte
	err := s.pool.QueryRow(ctx, `
		SELECT alert_json FROM alerts
		WHERE trial_id = $1 AND site_id = $2 AND patient_id = $3 AND status <> 'resolved'`,
		trialID, siteID, patientID).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return scoring.Alert{}, store.ErrNotFound
	}
	if err != nil {
		return scoring.Alert{}, fmt.Errorf("postgres: unresolved alert: %w", err)
	}
	var a scoring.Alert
	if err := json.Unmarshal(doc, &a); err != nil {
		return scoring.Alert{}, fmt.Errorf("postgres: unresolved alert: decode: %w", err)
	}
	return a, nil
}

// ResolvedSince implements store.LifecycleStore.
func (s *Store) ResolvedSince(ctx context.Context, trialID, siteID, patientID, reason string, since time.Time) (bool, error) {
	var found bool
	err := s.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM alerts
			WHERE trial_id = $1 AND site_id = $2 AND patient_id = $3 AND status = 'resolved'
				AND updated_at >= $4 AND reasons ? $5)`,
		trialID, siteID, patientID, ceilMicro(since), reason).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("postgres: resolved since: %w", err)
	}
	return found, nil
}

// monotonic keeps an alert's updated_at rising with every committed change.
// Times are taken before the alert is locked, so two changes racing for it
// can commit in the other order; boards keep the alert with the latest
// updated_at, which must therefore follow commit order. The step is a
// microsecond, the column's precision, so the order survives storage.
func monotonic(next, cur time.Time) time.Time {
	if micro(next).After(micro(cur)) {
		return next
	}
	return micro(cur).Add(time.Microsecond)
}
