package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"vigil/auditlog"
	"vigil/store"
)

const auditColumns = `id, entity_type, entity_id, actor, actor_name, actor_role, action, reason, meaning,
	old_value, new_value, at, prev_hash, hash`

// AuditRecords implements store.AuditLog: records after q.AfterID in id
// order, optionally of one entity type and/or id, at most 1000 (Limit <= 0
// means 100). Any AfterID is a valid cursor, since ids only grow.
func (s *Store) AuditRecords(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	where := []string{"id > ?"}
	args := []any{q.AfterID}
	if q.EntityType != "" {
		where = append(where, "entity_type = ?")
		args = append(args, q.EntityType)
	}
	if q.EntityID != "" {
		where = append(where, "entity_id = ?")
		args = append(args, q.EntityID)
	}
	args = append(args, clampLimit(q.Limit))
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit
		WHERE `+strings.Join(where, " AND ")+` ORDER BY id LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit records: %w", err)
	}
	defer rows.Close()
	recs := []store.AuditRecord{}
	for rows.Next() {
		raw, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: audit records: %w", err)
		}
		r, err := raw.record()
		if err != nil {
			return nil, fmt.Errorf("sqlite: audit records: %w", err)
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit records: %w", err)
	}
	return recs, nil
}

// AuditHead is the end of a verified audit trail.
type AuditHead struct {
	// Count is the number of records verified.
	Count int
	// ID and Hash are the last record's (0 and "" for an empty trail).
	// Whoever can rewrite the whole file can recompute the whole chain, so
	// the operator exports these periodically to a place the database's
	// writers cannot reach, and later checks that record ID still has Hash.
	ID   int64
	Hash string
}

// VerifyAudit implements store.AuditLog.
func (s *Store) VerifyAudit(ctx context.Context) (int, error) {
	h, err := s.VerifyAuditHead(ctx)
	return h.Count, err
}

// VerifyAuditHead recomputes the hash chain of the whole trail, in id order,
// and returns where it ends, or an *store.AuditBreak naming the first record
// that was edited or follows deleted records (with the count of the intact
// records before it).
//
// It reads one snapshot: a read transaction spans the issued-id counter and
// the one streaming query, so appends committed meanwhile are neither half
// seen nor taken for a deletion. Records are streamed, never all held.
func (s *Store) VerifyAuditHead(ctx context.Context) (AuditHead, error) {
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return AuditHead{}, fmt.Errorf("sqlite: verify audit: %w", err)
	}
	// Read-only: rolling back only ends the snapshot.
	defer func() { _ = tx.Rollback() }()

	// The snapshot starts at this first read, so the counter and the records
	// agree.
	var issued int64
	err = tx.QueryRowContext(ctx,
		`SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0)`).Scan(&issued)
	if err != nil {
		return AuditHead{}, fmt.Errorf("sqlite: verify audit: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit ORDER BY id`)
	if err != nil {
		return AuditHead{}, fmt.Errorf("sqlite: verify audit: %w", err)
	}
	defer rows.Close()
	var chain auditlog.Chain
	head := func() AuditHead {
		return AuditHead{Count: chain.Count(), ID: chain.LastID(), Hash: chain.LastHash()}
	}
	for rows.Next() {
		raw, err := scanAudit(rows)
		if err != nil {
			return head(), fmt.Errorf("sqlite: verify audit: %w", err)
		}
		if brk := chain.Next(raw.fields, raw.hash); brk != nil {
			return head(), brk
		}
	}
	if err := rows.Err(); err != nil {
		return head(), fmt.Errorf("sqlite: verify audit: %w", err)
	}
	if brk := chain.End(issued); brk != nil {
		return head(), brk
	}
	return head(), nil
}

// rawAudit is one row as stored: the hashed fields byte for byte (at as
// text, NULL values as nil) and the stored hash.
type rawAudit struct {
	fields auditlog.Fields
	hash   string
}

func scanAudit(rows *sql.Rows) (rawAudit, error) {
	var (
		r        rawAudit
		old, nw  sql.NullString
		f        = &r.fields
		scanDest = []any{&f.ID, &f.EntityType, &f.EntityID, &f.Actor, &f.ActorName, &f.ActorRole,
			&f.Action, &f.Reason, &f.Meaning, &old, &nw, &f.At, &f.PrevHash, &r.hash}
	)
	if err := rows.Scan(scanDest...); err != nil {
		return rawAudit{}, err
	}
	if old.Valid {
		f.OldValue = &old.String
	}
	if nw.Valid {
		f.NewValue = &nw.String
	}
	return r, nil
}

// record converts the row to the exchanged type. A NULL value stays nil,
// which encodes as JSON null.
func (r rawAudit) record() (store.AuditRecord, error) {
	f := r.fields
	at, err := parseTime(f.At)
	if err != nil {
		return store.AuditRecord{}, fmt.Errorf("audit record %d: %w", f.ID, err)
	}
	rec := store.AuditRecord{ID: f.ID, EntityType: f.EntityType, EntityID: f.EntityID, Actor: f.Actor,
		ActorName: f.ActorName, ActorRole: f.ActorRole, Action: f.Action, Reason: f.Reason,
		Meaning: f.Meaning, At: at, PrevHash: f.PrevHash, Hash: r.hash}
	if f.OldValue != nil {
		rec.OldValue = json.RawMessage(*f.OldValue)
	}
	if f.NewValue != nil {
		rec.NewValue = json.RawMessage(*f.NewValue)
	}
	if rec.EntityType == store.EntityAlert {
		rec.AlertID = rec.EntityID
	}
	return rec, nil
}
