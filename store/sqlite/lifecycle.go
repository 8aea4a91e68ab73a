package sqlite

import (
	"context"
	"errors"
	"time"

	"vigil/scoring"
	"vigil/store"
)

// UpdateAlert implements store.LifecycleStore.
func (s *Store) UpdateAlert(ctx context.Context, alertID string, fn func(cur scoring.Alert) (store.AlertChange, error), c store.Change) (scoring.Alert, error) {
	return scoring.Alert{}, errors.New("sqlite: update alert not implemented yet")
}

// DueEscalations implements store.LifecycleStore.
func (s *Store) DueEscalations(ctx context.Context, now time.Time, limit int) ([]scoring.Alert, error) {
	return nil, nil
}
