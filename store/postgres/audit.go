package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"vigil/auditlog"
	"vigil/store"
)

// appendAudit appends one audit record inside the caller's transaction, so
// the record and the change it describes commit together. Every write path
// that changes an alert, a protocol or a registry record calls it, last.
//
// It links the record into the hash chain (package auditlog) exactly as the
// SQLite store does: it reads the chain head, assigns the id itself (the id
// is hashed, so it must be known before the insert) and stores the record's
// hash.
//
// Appends are serialised across every node sharing the database by the row
// lock on audit_head (SELECT … FOR UPDATE), held until the transaction ends:
// a second appender waits, then reads the head the first one committed, so
// two records can never claim one predecessor and ids are issued without
// gaps in commit order. The last record is read by a second statement, after
// the lock is held, because READ COMMITTED gives each statement the snapshot
// of its start.
//
// The record's time is kept to the microsecond (timestamptz), and it is that
// time that is hashed, so the stored row reproduces the hash.
func appendAudit(ctx context.Context, tx pgx.Tx, r store.AuditRecord) error {
	// issued is the highest id ever handed out. It equals the last record's
	// id unless records were deleted from the end of the trail (with the
	// triggers dropped); numbering on from issued then keeps that deletion
	// visible as a gap instead of reusing the deleted ids.
	var issued int64
	if err := tx.QueryRow(ctx, `SELECT last_id FROM audit_head WHERE id = 1 FOR UPDATE`).Scan(&issued); err != nil {
		return fmt.Errorf("append audit: lock chain head: %w", err)
	}
	var (
		lastID   int64
		lastHash string
	)
	err := tx.QueryRow(ctx, `
		SELECT COALESCE(MAX(id), 0), COALESCE((SELECT hash FROM audit ORDER BY id DESC LIMIT 1), '')
		FROM audit`).Scan(&lastID, &lastHash)
	if err != nil {
		return fmt.Errorf("append audit: read chain head: %w", err)
	}
	// Values are kept in the form a GET /v1/audit reply shows them, so the
	// chain can be recomputed from the API as well as from the database.
	if r.OldValue, err = auditlog.Canonical(r.OldValue); err != nil {
		return fmt.Errorf("append audit: old value: %w", err)
	}
	if r.NewValue, err = auditlog.Canonical(r.NewValue); err != nil {
		return fmt.Errorf("append audit: new value: %w", err)
	}
	r.ID = max(issued, lastID) + 1
	r.PrevHash = lastHash
	r.At = micro(r.At)
	f := auditlog.FromRecord(r)
	hash := auditlog.Hash(f)

	b := &pgx.Batch{}
	b.Queue(`
		INSERT INTO audit (id, entity_type, entity_id, actor, actor_name, actor_role, action, reason, meaning,
			old_value, new_value, at, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		f.ID, f.EntityType, f.EntityID, f.Actor, f.ActorName, f.ActorRole, f.Action, f.Reason, f.Meaning,
		f.OldValue, f.NewValue, r.At, f.PrevHash, hash)
	b.Queue(`UPDATE audit_head SET last_id = $1, last_hash = $2 WHERE id = 1`, f.ID, hash)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}
