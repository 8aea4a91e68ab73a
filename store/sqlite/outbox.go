package sqlite

import (
	"context"
	"errors"
	"time"

	"vigil/store"
)

var errOutboxTODO = errors.New("sqlite: outbox not implemented yet")

// EnqueueNotifications implements store.Outbox.
func (s *Store) EnqueueNotifications(ctx context.Context, ns []store.Notification) error {
	return errOutboxTODO
}

// DueNotifications implements store.Outbox.
func (s *Store) DueNotifications(ctx context.Context, now time.Time, limit int) ([]store.Notification, error) {
	return nil, nil
}

// RecordAttempt implements store.Outbox.
func (s *Store) RecordAttempt(ctx context.Context, id int64, status string, next time.Time, lastErr string) error {
	return errOutboxTODO
}

// Notifications implements store.Outbox.
func (s *Store) Notifications(ctx context.Context, q store.NotificationQuery) ([]store.Notification, error) {
	return nil, nil
}
