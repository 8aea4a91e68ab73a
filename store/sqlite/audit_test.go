package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/auditlog"
	"vigil/scoring"
	"vigil/store"
)

// These tests play an attacker with write access to the database file: they
// drop the append-only triggers and edit or delete audit rows behind the
// store's back, then check that VerifyAudit names the first record affected.

// openAt opens the store at path and closes it when the test ends.
func openAt(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openOrThis opens an alert, or returns the current one unchanged.
func openOrThis(cur *scoring.Alert, cand scoring.Alert) (scoring.Alert, bool) {
	if cur != nil {
		return *cur, false
	}
	return cand, true
}

// closeIt resolves the current alert.
func closeIt(cur *scoring.Alert, _ scoring.Alert) (scoring.Alert, bool) {
	if cur == nil {
		return scoring.Alert{}, false
	}
	next := *cur
	next.Status = scoring.StatusResolved
	return next, true
}

// auditTrail writes n audit records through ApplyAlert: the patient's alerts,
// alternately opened and resolved.
func auditTrail(t *testing.T, s *Store, patient string, n int) {
	t.Helper()
	for i := range n {
		merge := openOrThis
		if i%2 == 1 {
			merge = closeIt
		}
		cand := scoring.Alert{PatientID: patient, TrialID: "T1", SiteID: "S1", Severity: "high",
			Reasons: []string{"news2_high"}, ReadingID: "r" + string(rune('a'+i))}
		if _, changed, err := s.ApplyAlert(t.Context(), cand, merge); err != nil || !changed {
			t.Fatalf("ApplyAlert %d: changed %v, err %v", i, changed, err)
		}
	}
}

// newTrail makes a closed database file holding an n-record trail.
func newTrail(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	auditTrail(t, s, "P1", n)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return path
}

// rawDB opens the file as any SQLite client would, without the store.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func execAll(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, st := range stmts {
		if _, err := db.ExecContext(t.Context(), st); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
}

// rawFields reads record id's stored fields and hash.
func rawFields(t *testing.T, db *sql.DB, id int64) (auditlog.Fields, string) {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT `+auditColumns+` FROM audit WHERE id = ?`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatalf("no audit record %d", id)
	}
	raw, err := scanAudit(rows)
	if err != nil {
		t.Fatal(err)
	}
	return raw.fields, raw.hash
}

// rehash recomputes and stores the hashes of records from id on, as an
// attacker who knows the scheme would after an edit.
func rehash(t *testing.T, db *sql.DB, from, to int64) {
	t.Helper()
	prev := ""
	if from > 1 {
		_, prev = rawFields(t, db, from-1)
	}
	for id := from; id <= to; id++ {
		f, _ := rawFields(t, db, id)
		f.PrevHash = prev
		prev = auditlog.Hash(f)
		if _, err := db.ExecContext(t.Context(), `UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?`,
			f.PrevHash, prev, id); err != nil {
			t.Fatal(err)
		}
	}
}

func verifyBreak(t *testing.T, s *Store) *store.AuditBreak {
	t.Helper()
	n, err := s.VerifyAudit(t.Context())
	if err == nil {
		t.Fatalf("VerifyAudit = %d records intact, want a break", n)
	}
	var brk *store.AuditBreak
	if !errors.As(err, &brk) {
		t.Fatalf("VerifyAudit error %v is not an *store.AuditBreak", err)
	}
	return brk
}

const (
	dropUpdateTrigger = `DROP TRIGGER audit_immutable_update`
	dropDeleteTrigger = `DROP TRIGGER audit_immutable_delete`
)

func TestAuditHashFollowsTheScheme(t *testing.T) {
	path := newTrail(t, 4)
	s := openAt(t, path)
	recs, err := s.AuditRecords(t.Context(), store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	for i, r := range recs {
		if r.ID != int64(i+1) {
			t.Fatalf("record %d at position %d: ids start at 1 and run on", r.ID, i)
		}
		f, stored := rawFields(t, db, r.ID)
		if h := auditlog.Hash(f); h != stored || h != r.Hash {
			t.Errorf("record %d: stored hash %s, returned %s, recomputed from the row %s", r.ID, stored, r.Hash, h)
		}
		// The API's view of a record is enough to recompute its hash.
		if h := auditlog.Hash(auditlog.FromRecord(r)); h != r.Hash {
			t.Errorf("record %d: recomputed from the record %s, want %s", r.ID, h, r.Hash)
		}
		if f.OldValue != nil && i == 0 {
			t.Errorf("record 1 (opened) has an old value %q, want NULL", *f.OldValue)
		}
	}
	if h, err := s.VerifyAuditHead(t.Context()); err != nil || h.Count != 4 || h.ID != 4 || h.Hash != recs[3].Hash {
		t.Errorf("VerifyAuditHead = %+v, %v; want 4 records ending at record 4 with %s", h, err, recs[3].Hash)
	}
}

func TestVerifyAuditDetectsTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB)
		wantID int64
		want   string
	}{
		{"reason edited", func(t *testing.T, db *sql.DB) {
			execAll(t, db, dropUpdateTrigger, `UPDATE audit SET reason = 'routine check' WHERE id = 3`)
		}, 3, auditlog.ReasonEdited},
		{"new value edited", func(t *testing.T, db *sql.DB) {
			execAll(t, db, dropUpdateTrigger, `UPDATE audit SET new_value = replace(new_value, 'high', 'medium') WHERE id = 2`)
		}, 2, auditlog.ReasonEdited},
		{"missing old value made empty", func(t *testing.T, db *sql.DB) {
			execAll(t, db, dropUpdateTrigger, `UPDATE audit SET old_value = '' WHERE id = 1`)
		}, 1, auditlog.ReasonEdited},
		{"time moved by a nanosecond", func(t *testing.T, db *sql.DB) {
			execAll(t, db, dropUpdateTrigger, `UPDATE audit SET at = substr(at, 1, 28) || CASE WHEN substr(at, 29, 1) = '9' THEN '8Z' ELSE '9Z' END WHERE id = 4`)
		}, 4, auditlog.ReasonEdited},
		{"actor edited", func(t *testing.T, db *sql.DB) {
			execAll(t, db, dropUpdateTrigger, `UPDATE audit SET actor = 'u-someone-else' WHERE id = 5`)
		}, 5, auditlog.ReasonEdited},
		{"hash removed", func(t *testing.T, db *sql.DB) {
			execAll(t, db, dropUpdateTrigger, `UPDATE audit SET hash = '' WHERE id = 2`)
		}, 2, auditlog.ReasonUnhashed},
		{"edited and re-hashed", func(t *testing.T, db *sql.DB) {
			execAll(t, db, dropUpdateTrigger, `UPDATE audit SET reason = 'routine check' WHERE id = 3`)
			rehash(t, db, 3, 3)
		}, 4, "prev_hash does not match record 3"},
		{"middle record deleted", func(t *testing.T, db *sql.DB) {
			execAll(t, db, dropDeleteTrigger, `DELETE FROM audit WHERE id = 3`)
		}, 4, "record 3 missing"},
		{"two records deleted", func(t *testing.T, db *sql.DB) {
			execAll(t, db, dropDeleteTrigger, `DELETE FROM audit WHERE id IN (2, 3)`)
		}, 4, "records 2 to 3 missing"},
		{"first record deleted", func(t *testing.T, db *sql.DB) {
			execAll(t, db, dropDeleteTrigger, `DELETE FROM audit WHERE id = 1`)
		}, 2, "record 1 missing"},
		{"last record deleted", func(t *testing.T, db *sql.DB) {
			execAll(t, db, dropDeleteTrigger, `DELETE FROM audit WHERE id = 5`)
		}, 5, "record 5 missing (deleted from the end of the trail)"},
		{"middle record deleted and the rest renumbered and re-hashed", func(t *testing.T, db *sql.DB) {
			execAll(t, db, dropDeleteTrigger, dropUpdateTrigger, `DELETE FROM audit WHERE id = 3`,
				`UPDATE audit SET id = id - 1 WHERE id > 3`)
			rehash(t, db, 3, 4)
		}, 5, "record 5 missing (deleted from the end of the trail)"},
		{"forged record inserted in a gap", func(t *testing.T, db *sql.DB) {
			execAll(t, db, dropDeleteTrigger, `DELETE FROM audit WHERE id = 3`,
				`INSERT INTO audit (id, entity_type, entity_id, actor, action, at, prev_hash, hash)
					VALUES (3, 'alert', 'x', 'system', 'opened', '2026-01-01T00:00:00.000000000Z', '', '')`)
		}, 3, auditlog.ReasonUnhashed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := newTrail(t, 5)
			tc.tamper(t, rawDB(t, path))
			brk := verifyBreak(t, openAt(t, path))
			if brk.ID != tc.wantID || brk.Reason != tc.want {
				t.Errorf("break at record %d: %q, want record %d: %q", brk.ID, brk.Reason, tc.wantID, tc.want)
			}
		})
	}
}

func TestVerifyAuditIntactAfterReopen(t *testing.T) {
	path := newTrail(t, 3)
	s := openAt(t, path)
	auditTrail(t, s, "P2", 1) // the chain continues across restarts
	if n, err := s.VerifyAudit(t.Context()); err != nil || n != 4 {
		t.Fatalf("VerifyAudit = %d, %v; want 4 intact", n, err)
	}
}

func TestDeletedTailStaysVisibleAfterNewRecords(t *testing.T) {
	// Deleting the newest records leaves no gap between the records that
	// remain; the next append must not reuse the deleted ids and so hide the
	// deletion.
	path := newTrail(t, 5)
	execAll(t, rawDB(t, path), dropDeleteTrigger, `DELETE FROM audit WHERE id = 5`)
	s := openAt(t, path)
	auditTrail(t, s, "P2", 1)
	recs, err := s.AuditRecords(t.Context(), store.AuditQuery{AfterID: 4})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != 6 {
		t.Fatalf("after the deletion the next record is %v, want id 6", auditIDsOf(recs))
	}
	brk := verifyBreak(t, s)
	if brk.ID != 6 || brk.Reason != "record 5 missing" {
		t.Errorf("break at record %d: %q, want record 6: record 5 missing", brk.ID, brk.Reason)
	}
}

func TestWholeChainRewriteNeedsAnExternalAnchor(t *testing.T) {
	// The limit of a hash chain kept beside the data: whoever can rewrite
	// every record from the edit on can recompute every hash. Only a head
	// hash exported earlier (AuditHead) shows it, which docs/compliance.md
	// tells operators to keep.
	path := newTrail(t, 5)
	s := openAt(t, path)
	before, err := s.VerifyAuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	db := rawDB(t, path)
	execAll(t, db, dropUpdateTrigger, `UPDATE audit SET reason = 'routine check' WHERE id = 2`)
	rehash(t, db, 2, 5)

	after, err := openAt(t, path).VerifyAuditHead(t.Context())
	if err != nil {
		t.Fatalf("VerifyAuditHead after a whole rewrite: %v (expected to pass: the chain alone cannot tell)", err)
	}
	if after.ID != before.ID || after.Hash == before.Hash {
		t.Errorf("head before %+v, after %+v: want the same record with a different hash", before, after)
	}
}

func TestAuditTriggersStillRefuseEdits(t *testing.T) {
	s, _ := openTemp(t)
	auditTrail(t, s, "P1", 2)
	for _, stmt := range []string{`UPDATE audit SET reason = 'x'`, `DELETE FROM audit`} {
		if _, err := s.wdb.ExecContext(t.Context(), stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want refused", stmt, err)
		}
	}
}

func TestVerifyAuditSeesOneSnapshot(t *testing.T) {
	// Appends racing a verification must never look like a broken chain.
	s, _ := openTemp(t)
	auditTrail(t, s, "P1", 2)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		for i := range 40 {
			cand := scoring.Alert{PatientID: "Q" + string(rune('A'+i)), TrialID: "T1", SiteID: "S1",
				Severity: "high", Reasons: []string{"news2_high"}}
			if _, _, err := s.ApplyAlert(ctx, cand, openOrThis); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for {
		if _, err := s.VerifyAudit(ctx); err != nil {
			t.Fatalf("VerifyAudit during appends: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if n, err := s.VerifyAudit(ctx); err != nil || n != 42 {
				t.Fatalf("VerifyAudit = %d, %v; want 42 intact", n, err)
			}
			return
		default:
		}
	}
}

func auditIDsOf(recs []store.AuditRecord) []int64 {
	ids := make([]int64, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids
}

func TestAppendAuditStoresCanonicalValues(t *testing.T) {
	s, path := openTemp(t)
	appendOne := func(old, nw string) error {
		return s.inTx(t.Context(), func(tx *sql.Tx) error {
			return s.appendAudit(t.Context(), tx, store.AuditRecord{EntityType: store.EntityProtocol, EntityID: "T1",
				Actor: "u-admin", Action: "put", OldValue: json.RawMessage(old), NewValue: json.RawMessage(nw),
				At: time.Now()})
		})
	}
	if err := appendOne("null", "{\n  \"title\": \"A & B\"\n}"); err != nil {
		t.Fatal(err)
	}
	if err := appendOne("", `{"title":`); err == nil {
		t.Error("a value that is not JSON was stored")
	}
	f, _ := rawFields(t, rawDB(t, path), 1)
	if f.OldValue != nil || f.NewValue == nil || *f.NewValue != `{"title":"A \u0026 B"}` {
		t.Errorf("stored old %v new %q, want NULL and the compact, escaped value", f.OldValue, deref(f.NewValue))
	}
	if n, err := s.VerifyAudit(t.Context()); err != nil || n != 1 {
		t.Errorf("VerifyAudit = %d, %v; want 1 intact (the refused append left nothing)", n, err)
	}
}

func deref(p *string) string {
	if p == nil {
		return "<NULL>"
	}
	return *p
}
