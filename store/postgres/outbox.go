package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
	now := s.now()
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		return enqueueTx(ctx, tx, ns, now)
	})
	if err != nil {
		return fmt.Errorf("postgres: enqueue notifications: %w", err)
	}
	return nil
}

// enqueueTx inserts ns as pending notifications due at now, inside the
// caller's transaction, in one statement. UpdateAlert calls it so that an
// alert's escalation and the notifications it calls for commit (or roll back)
// together. Ids follow the order of ns.
func enqueueTx(ctx context.Context, tx pgx.Tx, ns []store.Notification, now time.Time) error {
	if len(ns) == 0 {
		return nil
	}
	var (
		alerts, trials, channels, payloads = make([]string, len(ns)), make([]string, len(ns)), make([]string, len(ns)), make([]string, len(ns))
		tiers                              = make([]int32, len(ns))
	)
	for i, n := range ns {
		if err := validNotification(n); err != nil {
			return fmt.Errorf("notification %d: %w", i, err)
		}
		channel, err := json.Marshal(n.Channel)
		if err != nil {
			return fmt.Errorf("notification %d: encode channel: %w", i, err)
		}
		alerts[i], trials[i], tiers[i] = n.AlertID, n.TrialID, int32(n.Tier)
		channels[i], payloads[i] = string(channel), string(n.Payload)
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO notifications (alert_id, trial_id, tier, channel, payload,
			status, attempts, next_attempt_at, created_at)
		SELECT u.alert_id, u.trial_id, u.tier, u.channel::jsonb, u.payload::jsonb, 'pending', 0, $6, $6
		FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::text[])
			WITH ORDINALITY AS u(alert_id, trial_id, tier, channel, payload, ord)
		ORDER BY u.ord`,
		alerts, trials, tiers, channels, payloads, now)
	if err != nil {
		return fmt.Errorf("insert notifications: %w", err)
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
// 0 means 100). It only reads: two nodes calling it at once get the same
// rows. A dispatcher on several nodes uses ClaimDueNotifications instead (or
// runs on one node, under a lease).
func (s *Store) DueNotifications(ctx context.Context, now time.Time, limit int) ([]store.Notification, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `
		SELECT `+notificationColumns+` FROM notifications
		WHERE status = 'pending' AND next_attempt_at <= $1
		ORDER BY next_attempt_at, id
		LIMIT $2`, micro(now), clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: due notifications: %w", err)
	}
	ns, err := scanNotifications(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: due notifications: %w", err)
	}
	return ns, nil
}

// ClaimDueNotifications is DueNotifications for dispatchers on several nodes:
// it takes the due notifications (oldest due first, at most limit) that no
// other claimer is taking at this moment (FOR UPDATE SKIP LOCKED), and in the
// same statement moves their next attempt to now+lease, so that other nodes
// skip them until the lease runs out. The claimer then reports each with
// RecordAttempt as usual; one it never reports (its node died) falls due
// again when the lease ends, and is delivered at least once.
//
// The returned notifications carry the leased NextAttemptAt.
func (s *Store) ClaimDueNotifications(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.Notification, error) {
	if lease <= 0 {
		return nil, fmt.Errorf("postgres: claim due notifications: lease %v is not positive", lease)
	}
	var ns []store.Notification
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			WITH due AS (
				SELECT id, next_attempt_at AS due_at FROM notifications
				WHERE status = 'pending' AND next_attempt_at <= $1
				ORDER BY next_attempt_at, id
				LIMIT $2
				FOR UPDATE SKIP LOCKED
			)
			UPDATE notifications n SET next_attempt_at = $3
			FROM due WHERE n.id = due.id
			RETURNING `+prefixed("n.", notificationColumns)+`, due.due_at`,
			micro(now), clampLimit(limit), micro(now.Add(lease)))
		if err != nil {
			return err
		}
		type claimed struct {
			n   store.Notification
			due time.Time
		}
		var cs []claimed
		for rows.Next() {
			var c claimed
			n, err := scanNotification(rows, &c.due)
			if err != nil {
				rows.Close()
				return err
			}
			c.n = n
			cs = append(cs, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		// RETURNING has no order: restore the order they fell due in.
		slices.SortFunc(cs, func(a, b claimed) int {
			if c := a.due.Compare(b.due); c != 0 {
				return c
			}
			return cmp.Compare(a.n.ID, b.n.ID)
		})
		ns = make([]store.Notification, len(cs))
		for i, c := range cs {
			ns[i] = c.n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim due notifications: %w", err)
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
			return fmt.Errorf("postgres: record attempt %d: pending needs a next attempt time", id)
		}
	default:
		return fmt.Errorf("postgres: record attempt %d: unknown status %q", id, status)
	}
	// PostgreSQL text cannot hold NUL, which a receiver's reply may.
	lastErr = store.TruncateUTF8(strings.ReplaceAll(lastErr, "\x00", ""), maxLastError)

	now := s.now()
	var nextAt, sentAt *time.Time
	switch status {
	case store.NotifyPending:
		t := micro(next)
		nextAt = &t
	case store.NotifySent:
		sentAt = &now
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE notifications SET
				status = $1,
				attempts = attempts + 1,
				next_attempt_at = COALESCE($2, next_attempt_at),
				last_error = CASE WHEN $3 = '' THEN last_error ELSE $3 END,
				sent_at = COALESCE($4, sent_at)
			WHERE id = $5 AND status = 'pending'`,
			status, nextAt, lastErr, sentAt, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() > 0 {
			return nil
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM notifications WHERE id = $1)`, id).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return store.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: record attempt %d: %w", id, err)
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
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Status != "" {
		where = append(where, "status = "+arg(q.Status))
	}
	if q.AlertID != "" {
		where = append(where, "alert_id = "+arg(q.AlertID))
	}
	if q.TrialID != "" {
		where = append(where, "trial_id = "+arg(q.TrialID))
	}
	cond := ""
	if len(where) > 0 {
		cond = "WHERE " + strings.Join(where, " AND ")
	}
	limit := arg(clampLimit(q.Limit))
	rows, err := s.pool.Query(ctx, `
		SELECT `+notificationColumns+` FROM notifications
		`+cond+`
		ORDER BY id DESC
		LIMIT `+limit, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: notifications: %w", err)
	}
	ns, err := scanNotifications(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: notifications: %w", err)
	}
	return ns, nil
}

const notificationColumns = `id, alert_id, trial_id, tier, channel, payload, status, attempts,
	next_attempt_at, last_error, created_at, sent_at`

// prefixed qualifies each of a comma-separated column list with p.
func prefixed(p, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = p + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

func scanNotifications(rows pgx.Rows) ([]store.Notification, error) {
	defer rows.Close()
	ns := []store.Notification{}
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, err
		}
		ns = append(ns, n)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return ns, nil
}

// scanNotification scans one row of notificationColumns, then extra.
func scanNotification(rows pgx.Rows, extra ...any) (store.Notification, error) {
	var (
		n                 store.Notification
		channel, payload  []byte
		nextAt, createdAt time.Time
		sentAt            *time.Time
	)
	dest := append([]any{&n.ID, &n.AlertID, &n.TrialID, &n.Tier, &channel, &payload, &n.Status,
		&n.Attempts, &nextAt, &n.LastError, &createdAt, &sentAt}, extra...)
	if err := rows.Scan(dest...); err != nil {
		return store.Notification{}, err
	}
	if err := json.Unmarshal(channel, &n.Channel); err != nil {
		return store.Notification{}, fmt.Errorf("notification %d: decode channel: %w", n.ID, err)
	}
	n.Payload = json.RawMessage(payload)
	n.NextAttemptAt, n.CreatedAt, n.SentAt = nextAt.UTC(), createdAt.UTC(), utcPtr(sentAt)
	return n, nil
}
