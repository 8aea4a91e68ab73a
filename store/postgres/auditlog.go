package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"vigil/auditlog"
	"vigil/store"
)

const auditColumns = `id, entity_type, entity_id, actor, actor_name, actor_role, action, reason, meaning,
	old_value, new_value, at, prev_hash, hash`

// AuditRecords implements store.AuditLog: records after q.AfterID in id
// order, optionally of one entity type and/or id, at most 1000 (Limit <= 0
// means 100). Any AfterID is a valid cursor, since ids only grow, and ids
// become visible in order (they are issued under the chain head's lock).
func (s *Store) AuditRecords(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	where := []string{"id > $1"}
	args := []any{q.AfterID}
	if q.EntityType != "" {
		args = append(args, q.EntityType)
		where = append(where, "entity_type = $"+strconv.Itoa(len(args)))
	}
	if q.EntityID != "" {
		args = append(args, q.EntityID)
		where = append(where, "entity_id = $"+strconv.Itoa(len(args)))
	}
	recs, err := s.auditRecords(ctx, strings.Join(where, " AND "), args, clampLimit(q.Limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: audit records: %w", err)
	}
	return recs, nil
}

// auditRecords returns the records matching where, in id order, at most
// limit (0: all). Never nil.
func (s *Store) auditRecords(ctx context.Context, where string, args []any, limit int) ([]store.AuditRecord, error) {
	sql := `SELECT ` + auditColumns + ` FROM audit WHERE ` + where + ` ORDER BY id`
	if limit > 0 {
		args = append(args, limit)
		sql += ` LIMIT $` + strconv.Itoa(len(args))
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	recs := []store.AuditRecord{}
	for rows.Next() {
		raw, err := scanAudit(rows)
		if err != nil {
			return nil, err
		}
		recs = append(recs, raw.record())
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return recs, nil
}

// AuditHead is the end of a verified audit trail.
type AuditHead struct {
	// Count is the number of records verified.
	Count int
	// ID and Hash are the last record's (0 and "" for an empty trail).
	// Whoever can rewrite the whole database can recompute the whole chain,
	// so the operator exports these periodically to a place the database's
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
// It reads one snapshot (a REPEATABLE READ, read-only transaction) spanning
// the issued-id counter and the one streaming query, so appends committed
// meanwhile are neither half seen nor taken for a deletion. Records are
// streamed, never all held.
func (s *Store) VerifyAuditHead(ctx context.Context) (AuditHead, error) {
	if err := s.open(); err != nil {
		return AuditHead{}, err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return AuditHead{}, fmt.Errorf("postgres: verify audit: %w", err)
	}
	// Read-only: rolling back only ends the snapshot.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	var issued int64
	if err := tx.QueryRow(ctx, `SELECT last_id FROM audit_head WHERE id = 1`).Scan(&issued); err != nil {
		return AuditHead{}, fmt.Errorf("postgres: verify audit: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT `+auditColumns+` FROM audit ORDER BY id`)
	if err != nil {
		return AuditHead{}, fmt.Errorf("postgres: verify audit: %w", err)
	}
	defer rows.Close()
	var chain auditlog.Chain
	head := func() AuditHead {
		return AuditHead{Count: chain.Count(), ID: chain.LastID(), Hash: chain.LastHash()}
	}
	for rows.Next() {
		raw, err := scanAudit(rows)
		if err != nil {
			return head(), fmt.Errorf("postgres: verify audit: %w", err)
		}
		if brk := chain.Next(raw.fields, raw.hash); brk != nil {
			return head(), brk
		}
	}
	if err := rows.Err(); err != nil {
		return head(), fmt.Errorf("postgres: verify audit: %w", err)
	}
	if brk := chain.End(issued); brk != nil {
		return head(), brk
	}
	return head(), nil
}

// rawAudit is one row as stored: the hashed fields (at in auditlog's layout,
// NULL values as nil) and the stored hash.
type rawAudit struct {
	fields auditlog.Fields
	at     time.Time
	hash   string
}

func scanAudit(rows pgx.Rows) (rawAudit, error) {
	var (
		r rawAudit
		f = &r.fields
	)
	if err := rows.Scan(&f.ID, &f.EntityType, &f.EntityID, &f.Actor, &f.ActorName, &f.ActorRole,
		&f.Action, &f.Reason, &f.Meaning, &f.OldValue, &f.NewValue, &r.at, &f.PrevHash, &r.hash); err != nil {
		return rawAudit{}, err
	}
	r.at = r.at.UTC()
	f.At = auditlog.FormatTime(r.at)
	return r, nil
}

// record converts the row to the exchanged type. A NULL value stays nil,
// which encodes as JSON null.
func (r rawAudit) record() store.AuditRecord {
	f := r.fields
	rec := store.AuditRecord{ID: f.ID, EntityType: f.EntityType, EntityID: f.EntityID, Actor: f.Actor,
		ActorName: f.ActorName, ActorRole: f.ActorRole, Action: f.Action, Reason: f.Reason,
		Meaning: f.Meaning, At: r.at, PrevHash: f.PrevHash, Hash: r.hash}
	if f.OldValue != nil {
		rec.OldValue = json.RawMessage(*f.OldValue)
	}
	if f.NewValue != nil {
		rec.NewValue = json.RawMessage(*f.NewValue)
	}
	if rec.EntityType == store.EntityAlert {
		rec.AlertID = rec.EntityID
	}
	return rec
}
