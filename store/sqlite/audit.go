package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"vigil/auditlog"
	"vigil/store"
)

// appendAudit appends one audit record inside the caller's write
// transaction, so the record and the change it describes commit together.
// Every write path that changes an alert, a protocol or a registry record
// calls it.
//
// It links the record into the hash chain (package auditlog): it reads the
// last record's hash, assigns the id itself (the id is hashed, so it must be
// known before the insert) and stores the record's hash. Appends are
// serialised because every write runs on the single write connection in a
// BEGIN IMMEDIATE transaction, so two records can never claim one
// predecessor.
func (s *Store) appendAudit(ctx context.Context, tx *sql.Tx, r store.AuditRecord) error {
	// issued is the highest id AUTOINCREMENT ever handed out. It equals the
	// last record's id unless records were deleted from the end of the trail
	// (with the triggers dropped); numbering on from issued then keeps that
	// deletion visible as a gap instead of reusing the deleted ids.
	var (
		issued, lastID int64
		lastHash       string
	)
	err := tx.QueryRowContext(ctx, `
		SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0),
			COALESCE((SELECT id FROM audit ORDER BY id DESC LIMIT 1), 0),
			COALESCE((SELECT hash FROM audit ORDER BY id DESC LIMIT 1), '')`).Scan(&issued, &lastID, &lastHash)
	if err != nil {
		return fmt.Errorf("append audit: read chain head: %w", err)
	}
	// Values are kept in the form a GET /v1/audit reply shows them, so the
	// chain can be recomputed from the API as well as from the file.
	if r.OldValue, err = auditlog.Canonical(r.OldValue); err != nil {
		return fmt.Errorf("append audit: old value: %w", err)
	}
	if r.NewValue, err = auditlog.Canonical(r.NewValue); err != nil {
		return fmt.Errorf("append audit: new value: %w", err)
	}
	r.ID = max(issued, lastID) + 1
	r.PrevHash = lastHash
	f := auditlog.FromRecord(r)
	hash := auditlog.Hash(f)

	_, err = tx.ExecContext(ctx, `
		INSERT INTO audit (id, entity_type, entity_id, actor, actor_name, actor_role, action, reason, meaning,
			old_value, new_value, at, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.ID, f.EntityType, f.EntityID, f.Actor, f.ActorName, f.ActorRole, f.Action, f.Reason, f.Meaning,
		nullString(f.OldValue), nullString(f.NewValue), f.At, f.PrevHash, hash)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// nullString stores a nil value as NULL, which the hash keeps apart from "".
func nullString(p *string) sql.NullString {
	if p == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: *p, Valid: true}
}
