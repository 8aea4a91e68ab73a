package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"vigil/store"
)

// maxLastError bounds the stored error text: it is for a person reading the
// dead letters, and a receiver's failure should not be able to grow the
// database without limit.
const maxLastError = 1000

// EnqueueNotifications stores ns as pending notifications due now (the
// store's clock), all or none: one invalid notification fails the call and
// stores nothing. Only AlertID, TrialID, Tier, Channel and Payload are taken
// from ns; the store owns the id, status, attempts and times.
func (s *Store) EnqueueNotifications(ctx context.Context, ns []store.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	// Held shared for the whole call so that Close waits for it.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	now := s.cfg.clock().UTC()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.enqueueTx(ctx, tx, ns, now)
	})
	if err != nil {
		return fmt.Errorf("sqlite: enqueue notifications: %w", err)
	}
	return nil
}

// enqueueTx inserts ns as pending notifications due at now, inside the
// caller's write transaction. UpdateAlert calls it so that an alert's
// escalation and the notifications it calls for commit (or roll back)
// together: an escalated alert is never left without its pages, and a page is
// never sent for a change that did not happen.
func (s *Store) enqueueTx(ctx context.Context, tx *sql.Tx, ns []store.Notification, now time.Time) error {
	if len(ns) == 0 {
		return nil
	}
	for i, n := range ns {
		if err := validNotification(n); err != nil {
			return fmt.Errorf("notification %d: %w", i, err)
		}
	}
	st, err := tx.PrepareContext(ctx, `
		INSERT INTO notifications (alert_id, trial_id, tier, channel, payload,
			status, attempts, next_attempt_at, created_at)
		VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)`)
	if err != nil {
		return fmt.Errorf("prepare insert notification: %w", err)
	}
	defer st.Close()
	at := formatTime(now)
	for i, n := range ns {
		channel, err := json.Marshal(n.Channel)
		if err != nil {
			return fmt.Errorf("notification %d: encode channel: %w", i, err)
		}
		if _, err := st.ExecContext(ctx, n.AlertID, n.TrialID, n.Tier, string(channel), string(n.Payload), at, at); err != nil {
			return fmt.Errorf("insert notification %d: %w", i, err)
		}
	}
	return nil
}

// validNotification rejects what could never be delivered, so the mistake
// shows at the write that made it rather than as a dead letter later.
func validNotification(n store.Notification) error {
	switch {
	case n.AlertID == "":
		return errors.New("no alert id")
	case n.TrialID == "":
		return errors.New("no trial id")
	case n.Tier < 0:
		return fmt.Errorf("tier %d is negative", n.Tier)
	case n.Channel.Kind == "":
		return errors.New("channel has no kind")
	case len(n.Payload) == 0 || !json.Valid(n.Payload):
		return errors.New("payload is not JSON")
	}
	return nil
}

// DueNotifications returns pending notifications whose next attempt is at or
// before now, in the order they fell due (ties by id), at most 1000 (limit <=
// 0 means 100).
func (s *Store) DueNotifications(ctx context.Context, now time.Time, limit int) ([]store.Notification, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `
		SELECT `+notificationColumns+` FROM notifications
		WHERE status = 'pending' AND next_attempt_at <= ?
		ORDER BY next_attempt_at, id
		LIMIT ?`, formatTime(now), clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: due notifications: %w", err)
	}
	ns, err := scanNotifications(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due notifications: %w", err)
	}
	return ns, nil
}

// RecordAttempt stores the outcome of one delivery attempt and counts it:
// status sent (SentAt becomes the store's now), pending (due again at next,
// which must be set) or dead (given up). lastErr replaces the stored error
// only when it is not empty, so a notification sent on a retry still shows
// why the earlier attempts failed.
//
// Sent and dead are final: an outcome for a notification that already has
// one changes nothing and is not an error, so a late or repeated report (two
// dispatchers, a retried call) can never revive or re-deliver it. An unknown
// id gives store.ErrNotFound.
func (s *Store) RecordAttempt(ctx context.Context, id int64, status string, next time.Time, lastErr string) error {
	switch status {
	case store.NotifySent, store.NotifyDead:
	case store.NotifyPending:
		if next.IsZero() {
			return fmt.Errorf("sqlite: record attempt %d: pending needs a next attempt time", id)
		}
	default:
		return fmt.Errorf("sqlite: record attempt %d: unknown status %q", id, status)
	}
	lastErr = store.TruncateUTF8(lastErr, maxLastError)

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	now := s.cfg.clock().UTC()
	var (
		nextAt sql.NullString
		sentAt sql.NullString
	)
	switch status {
	case store.NotifyPending:
		nextAt = sql.NullString{String: formatTime(next), Valid: true}
	case store.NotifySent:
		sentAt = sql.NullString{String: formatTime(now), Valid: true}
	}
	var affected int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE notifications SET
				status = ?,
				attempts = attempts + 1,
				next_attempt_at = COALESCE(?, next_attempt_at),
				last_error = CASE WHEN ? = '' THEN last_error ELSE ? END,
				sent_at = COALESCE(?, sent_at)
			WHERE id = ? AND status = 'pending'`,
			status, nextAt, lastErr, lastErr, sentAt, id)
		if err != nil {
			return err
		}
		if affected, err = res.RowsAffected(); err != nil {
			return err
		}
		if affected == 0 {
			var exists bool
			if err := tx.QueryRowContext(ctx,
				`SELECT EXISTS (SELECT 1 FROM notifications WHERE id = ?)`, id).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return store.ErrNotFound
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: record attempt %d: %w", id, err)
	}
	return nil
}

// Notifications returns the notifications q selects, newest first, at most
// 1000 (Limit <= 0 means 100).
func (s *Store) Notifications(ctx context.Context, q store.NotificationQuery) ([]store.Notification, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	var (
		where []string
		args  []any
	)
	if q.Status != "" {
		where = append(where, "status = ?")
		args = append(args, q.Status)
	}
	if q.AlertID != "" {
		where = append(where, "alert_id = ?")
		args = append(args, q.AlertID)
	}
	if q.TrialID != "" {
		where = append(where, "trial_id = ?")
		args = append(args, q.TrialID)
	}
	cond := ""
	if len(where) > 0 {
		cond = "WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, clampLimit(q.Limit))
	rows, err := s.rdb.QueryContext(ctx, `
		SELECT `+notificationColumns+` FROM notifications
		`+cond+`
		ORDER BY id DESC
		LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: notifications: %w", err)
	}
	ns, err := scanNotifications(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: notifications: %w", err)
	}
	return ns, nil
}

// open reports ErrClosed after Close, which is clearer to a caller than the
// database/sql error a closed pool would give.
func (s *Store) open() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

const notificationColumns = `id, alert_id, trial_id, tier, channel, payload, status, attempts,
	next_attempt_at, last_error, created_at, sent_at`

func scanNotifications(rows *sql.Rows) ([]store.Notification, error) {
	defer rows.Close()
	ns := []store.Notification{}
	for rows.Next() {
		var (
			n                          store.Notification
			channel, payload           string
			nextAt, createdAt          string
			sentAt                     sql.NullString
			errNext, errCreate, errSet error
		)
		if err := rows.Scan(&n.ID, &n.AlertID, &n.TrialID, &n.Tier, &channel, &payload, &n.Status,
			&n.Attempts, &nextAt, &n.LastError, &createdAt, &sentAt); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(channel), &n.Channel); err != nil {
			return nil, fmt.Errorf("notification %d: decode channel: %w", n.ID, err)
		}
		n.Payload = json.RawMessage(payload)
		n.NextAttemptAt, errNext = parseTime(nextAt)
		n.CreatedAt, errCreate = parseTime(createdAt)
		if sentAt.Valid {
			var t time.Time
			t, errSet = parseTime(sentAt.String)
			n.SentAt = &t
		}
		if err := errors.Join(errNext, errCreate, errSet); err != nil {
			return nil, fmt.Errorf("notification %d: %w", n.ID, err)
		}
		ns = append(ns, n)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return ns, nil
}
