package sqlite

import (
	"context"
	"errors"

	"vigil/store"
)

// AuditRecords implements store.AuditLog.
func (s *Store) AuditRecords(ctx context.Context, q store.AuditQuery) ([]store.AuditRecord, error) {
	return nil, errors.New("sqlite: audit records not implemented yet")
}

// VerifyAudit implements store.AuditLog.
func (s *Store) VerifyAudit(ctx context.Context) (int, error) {
	return 0, errors.New("sqlite: audit verification not implemented yet")
}
