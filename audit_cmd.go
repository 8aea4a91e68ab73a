package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"vigil/config"
	"vigil/store"
	"vigil/store/sqlite"
)

const auditUsage = `usage: vigil audit verify [--db sqlite://PATH] [--anchor ID:HASH]

verify recomputes the audit trail's hash chain and reports the first record
that was edited or follows deleted records. It prints the chain head (last
record id and hash): keep it somewhere the database's writers cannot reach,
and pass it back as --anchor to detect a rewrite of the whole chain.
`

// errAuditBroken makes the command exit 1 after it printed where the trail
// breaks.
var errAuditBroken = errors.New("audit verify: the audit trail failed verification")

// auditCmd runs `vigil audit verify`. It opens the store file directly, so it
// works whether or not a server is running on it, and prints one verdict
// line to out: "audit trail intact: N records" or "audit trail BROKEN at
// record ID: reason" (then returns an error, for exit status 1).
func auditCmd(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(out, auditUsage)
			return flag.ErrHelp
		}
		return errors.New("audit: usage: vigil audit verify [--db sqlite://PATH] [--anchor ID:HASH] (vigil audit -h for more)")
	}
	cfg, _, err := config.Load("audit-env", nil)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(out)
	db := fs.String("db", cfg.DB, "VIGIL_DB: the database, sqlite://PATH")
	anchor := fs.String("anchor", "", "ID:HASH of a chain head printed by an earlier run: record ID must still have HASH")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("audit verify: unexpected argument %q", fs.Arg(0))
	}
	var (
		anchorID   int64
		anchorHash string
	)
	if *anchor != "" {
		id, h, ok := strings.Cut(*anchor, ":")
		n, err := strconv.ParseInt(id, 10, 64)
		if !ok || err != nil || n < 1 || h == "" {
			return fmt.Errorf("audit verify: --anchor %q must be ID:HASH as printed by verify", *anchor)
		}
		anchorID, anchorHash = n, h
	}
	cfg.DB = *db
	path := cfg.SQLitePath()
	if path == "" {
		return errors.New("audit verify: --db must be sqlite://PATH (only the embedded store is available)")
	}
	// Open would create an empty database, which would verify as intact.
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	defer st.Close()

	head, err := st.VerifyAuditHead(ctx)
	var brk *store.AuditBreak
	if errors.As(err, &brk) {
		fmt.Fprintf(out, "audit trail BROKEN at record %d: %s\n", brk.ID, brk.Reason)
		return errAuditBroken
	}
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	if anchorID > 0 {
		if why := checkAnchor(ctx, st, head, anchorID, anchorHash); why != "" {
			fmt.Fprintf(out, "audit trail BROKEN at record %d: %s\n", anchorID, why)
			return errAuditBroken
		}
	}
	fmt.Fprintf(out, "audit trail intact: %d records\n", head.Count)
	if head.ID > 0 {
		fmt.Fprintf(out, "head: %d:%s\n", head.ID, head.Hash)
	}
	if anchorID > 0 {
		fmt.Fprintf(out, "anchor %d matches\n", anchorID)
	}
	return nil
}

// checkAnchor compares record id of a trail just verified intact with the
// hash exported earlier. The chain links every record to all before it, so
// a match vouches for records 1 to id; a mismatch means they were rewritten
// and re-hashed since.
func checkAnchor(ctx context.Context, st *sqlite.Store, head sqlite.AuditHead, id int64, hash string) string {
	if id > head.ID {
		return fmt.Sprintf("missing: the anchor names record %d but the trail ends at %d", id, head.ID)
	}
	recs, err := st.AuditRecords(ctx, store.AuditQuery{AfterID: id - 1, Limit: 1})
	if err != nil {
		return "cannot be read: " + err.Error()
	}
	if len(recs) == 0 || recs[0].ID != id {
		return "missing"
	}
	if recs[0].Hash != hash {
		return "hash differs from the exported anchor: the chain was rewritten"
	}
	return ""
}
