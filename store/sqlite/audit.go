package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"vigil/store"
)

// appendAudit appends one audit record inside the caller's write
// transaction, so the record and the change it describes commit together.
// Every write path that changes an alert, a protocol or a registry record
// calls it.
func (s *Store) appendAudit(ctx context.Context, tx *sql.Tx, r store.AuditRecord) error {
	old := sql.NullString{String: string(r.OldValue), Valid: len(r.OldValue) > 0}
	nw := sql.NullString{String: string(r.NewValue), Valid: len(r.NewValue) > 0}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO audit (entity_type, entity_id, actor, actor_name, actor_role, action, reason, meaning,
			old_value, new_value, at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.EntityType, r.EntityID, r.Actor, r.ActorName, r.ActorRole, r.Action, r.Reason, r.Meaning,
		old, nw, formatTime(r.At))
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}
