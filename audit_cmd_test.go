package main

import (
	"bytes"
	"database/sql"
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	_ "modernc.org/sqlite"

	"vigil/scoring"
	"vigil/store/sqlite"
)

// auditDB writes a trail of five records (alerts of five patients) to a new
// database file and closes it.
func auditDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vigil.db")
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"P1", "P2", "P3", "P4", "P5"} {
		_, _, err := st.ApplyAlert(t.Context(), scoring.Alert{PatientID: p, TrialID: "T1", SiteID: "S1",
			Severity: "high", Reasons: []string{scoring.ReasonNEWS2High}, ReadingID: uuid.NewString()},
			func(cur *scoring.Alert, cand scoring.Alert) (scoring.Alert, bool) { return cand, cur == nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// tamper edits the file as an attacker with file access: the append-only
// triggers are only in the way.
func tamper(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func runAudit(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := auditCmd(t.Context(), args, &out)
	return out.String(), err
}

func TestAuditVerify(t *testing.T) {
	path := auditDB(t)
	out, err := runAudit(t, "verify", "--db", "sqlite://"+path)
	if err != nil || !strings.HasPrefix(out, "audit trail intact: 5 records\nhead: 5:") {
		t.Fatalf("untouched trail: %q, %v; want intact, 5 records, and the head", out, err)
	}
	head := strings.TrimSpace(strings.TrimPrefix(strings.Split(out, "\n")[1], "head: "))

	// The default database comes from VIGIL_DB, like the server's.
	t.Setenv("VIGIL_DB", "sqlite://"+path)
	if out, err := runAudit(t, "verify", "--anchor", head); err != nil ||
		!strings.Contains(out, "audit trail intact: 5 records") || !strings.Contains(out, "anchor 5 matches") {
		t.Fatalf("VIGIL_DB and a matching anchor: %q, %v", out, err)
	}

	tamper(t, path, `DROP TRIGGER audit_immutable_update`, `UPDATE audit SET reason = 'no reading' WHERE id = 3`)
	out, err = runAudit(t, "verify")
	if !errors.Is(err, errAuditBroken) || out != "audit trail BROKEN at record 3: hash mismatch: record edited\n" {
		t.Fatalf("edited record 3: %q, %v", out, err)
	}
}

func TestAuditVerifyDeletedRecord(t *testing.T) {
	path := auditDB(t)
	tamper(t, path, `DROP TRIGGER audit_immutable_delete`, `DELETE FROM audit WHERE id = 3`)
	out, err := runAudit(t, "verify", "--db", "sqlite://"+path)
	if !errors.Is(err, errAuditBroken) || out != "audit trail BROKEN at record 4: record 3 missing\n" {
		t.Fatalf("deleted record 3: %q, %v", out, err)
	}
}

func TestAuditVerifyAnchorCatchesARewrite(t *testing.T) {
	path := auditDB(t)
	// An attacker who rewrites record 5 and re-hashes it keeps the chain
	// consistent; only the head exported before shows the rewrite.
	tamper(t, path, `DROP TRIGGER audit_immutable_update`, `UPDATE audit SET reason = 'x', hash = 'f00' WHERE id = 5`)
	out, err := runAudit(t, "verify", "--db", "sqlite://"+path)
	if !errors.Is(err, errAuditBroken) || !strings.Contains(out, "BROKEN at record 5: hash mismatch") {
		t.Fatalf("re-hashed badly: %q, %v", out, err)
	}
	out, err = runAudit(t, "verify", "--db", "sqlite://"+path, "--anchor", "5:0123")
	if !errors.Is(err, errAuditBroken) || !strings.Contains(out, "BROKEN at record 5") {
		t.Fatalf("anchor on a broken trail: %q, %v", out, err)
	}
	fresh := auditDB(t)
	out, err = runAudit(t, "verify", "--db", "sqlite://"+fresh, "--anchor", "4:0123")
	if !errors.Is(err, errAuditBroken) ||
		out != "audit trail BROKEN at record 4: hash differs from the exported anchor: the chain was rewritten\n" {
		t.Fatalf("anchor mismatch: %q, %v", out, err)
	}
	out, err = runAudit(t, "verify", "--db", "sqlite://"+fresh, "--anchor", "9:0123")
	if !errors.Is(err, errAuditBroken) || !strings.Contains(out, "BROKEN at record 9: missing") {
		t.Fatalf("anchor past the end: %q, %v", out, err)
	}
}

func TestAuditVerifyUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.db")
	for _, args := range [][]string{
		nil,
		{"check"},
		{"verify", "--db", "postgres://h/db"},
		{"verify", "--db", "sqlite://" + missing},
		{"verify", "--anchor", "x"},
		{"verify", "extra"},
	} {
		if out, err := runAudit(t, args...); err == nil || errors.Is(err, errAuditBroken) {
			t.Errorf("%v: %q, %v; want a usage error", args, out, err)
		}
	}
	if _, err := runAudit(t, "verify", "--db", "sqlite://"+missing); err == nil {
		t.Error("a missing database verified")
	}
	if out, err := runAudit(t, "verify", "-h"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out, "-db") {
		t.Errorf("verify -h: %q, %v", out, err)
	}
}
