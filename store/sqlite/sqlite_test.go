package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"vigil/reading"
	"vigil/scoring"
	"vigil/store"
	"vigil/store/storetest"
)

// openTemp opens a store in a directory that does not exist yet, so every
// test also checks that Open creates it.
func openTemp(tb testing.TB, opts ...Option) (*Store, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "data", "vigil.db")
	s, err := Open(tb.Context(), path, opts...)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return s
	})
}

func testReading(id string, measuredAt time.Time) store.NewReading {
	hr := 88.0
	r := reading.Reading{
		ReadingID: id, PatientID: "P1001", TrialID: "T008", SiteID: "S01",
		MeasuredAt: measuredAt,
		Vitals:     reading.Vitals{HeartRate: &hr},
	}
	payload, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return store.NewReading{Reading: r, ReceivedAt: measuredAt.Add(time.Second), Payload: payload, ContentHash: "h-" + id}
}

func TestReopenFindsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	when := time.Date(2026, 11, 26, 8, 0, 5, 0, time.UTC)
	nr := testReading(uuid.NewString(), when)
	nr.Payload = json.RawMessage(` {"reading_id": "as sent, spacing and all"} `)
	if _, err := s.InsertReading(ctx, nr); err != nil {
		t.Fatalf("InsertReading: %v", err)
	}
	if _, err := s.SaveScore(ctx, scoring.Score{ReadingID: nr.Reading.ReadingID, Risk: scoring.RiskLow, RulesVersion: "r1"}); err != nil {
		t.Fatalf("SaveScore: %v", err)
	}
	a, _, err := s.ApplyAlert(ctx, scoring.Alert{PatientID: "P1001", TrialID: "T008", SiteID: "S01", Severity: "high", ReadingID: nr.Reading.ReadingID},
		func(cur *scoring.Alert, cand scoring.Alert) (scoring.Alert, bool) { return cand, cur == nil })
	if err != nil {
		t.Fatalf("ApplyAlert: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	rec, err := s.Reading(ctx, nr.Reading.ReadingID)
	if err != nil {
		t.Fatalf("Reading after reopen: %v", err)
	}
	if rec.Score == nil || rec.Score.RulesVersion != "r1" || !rec.ReceivedAt.Equal(nr.ReceivedAt) {
		t.Errorf("after reopen: %+v", rec)
	}
	out, err := s.InsertReading(ctx, nr)
	if err != nil || out.Status != store.Duplicate || !out.Scored {
		t.Errorf("retry after reopen = %+v, %v; want Duplicate, scored", out, err)
	}
	if _, err := s.Alert(ctx, a.AlertID); err != nil {
		t.Errorf("Alert after reopen: %v", err)
	}
	if recs, err := s.Audit(ctx, a.AlertID); err != nil || len(recs) != 1 {
		t.Errorf("Audit after reopen = %d records, %v; want 1", len(recs), err)
	}
	// The original bytes are kept verbatim (ALCOA: original).
	var payload []byte
	if err := s.rdb.QueryRowContext(ctx, `SELECT payload FROM readings WHERE reading_id = ?`, nr.Reading.ReadingID).Scan(&payload); err != nil {
		t.Fatalf("payload: %v", err)
	}
	if string(payload) != string(nr.Payload) {
		t.Errorf("payload = %q, want %q", payload, nr.Payload)
	}
}

func latestMigration(t *testing.T) int64 {
	t.Helper()
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("embedded migrations: %v %v", names, err)
	}
	sort.Strings(names)
	base := filepath.Base(names[len(names)-1])
	v, err := strconv.ParseInt(base[:strings.IndexByte(base, '_')], 10, 64)
	if err != nil {
		t.Fatalf("migration name %s: %v", base, err)
	}
	return v
}

func TestMigrationsAreVersioned(t *testing.T) {
	s, path := openTemp(t)
	want := latestMigration(t)
	version := func(s *Store) (maxV int64, rows int) {
		t.Helper()
		err := s.rdb.QueryRowContext(t.Context(),
			`SELECT MAX(version_id), COUNT(*) FROM goose_db_version`).Scan(&maxV, &rows)
		if err != nil {
			t.Fatalf("goose_db_version: %v", err)
		}
		return maxV, rows
	}
	v, rows := version(s)
	if v != want {
		t.Fatalf("database at version %d, want %d", v, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening must find nothing to apply.
	s2, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	if v2, rows2 := version(s2); v2 != want || rows2 != rows {
		t.Errorf("after reopen: version %d with %d rows, want %d with %d", v2, rows2, want, rows)
	}
	var mode string
	if err := s2.rdb.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v, want owner-only", filepath.Base(f), perm)
		}
	}
}

func TestPragmasOnEveryConnection(t *testing.T) {
	s, _ := openTemp(t, WithReadConns(3))
	want := map[string]string{"busy_timeout": "5000", "journal_mode": "wal", "foreign_keys": "1", "synchronous": "2"}
	check := func(pool string, q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) {
		for name, w := range want {
			var got string
			if err := q.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&got); err != nil {
				t.Fatalf("%s: PRAGMA %s: %v", pool, name, err)
			}
			if got != w {
				t.Errorf("%s: %s = %s, want %s", pool, name, got, w)
			}
		}
	}
	check("write", s.wdb)
	// Hold several read connections at once so that each is a distinct one.
	for i := range 3 {
		c, err := s.rdb.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		check(fmt.Sprintf("read %d", i), c)
	}
}

// holdWriter parks the writer inside a transaction of its own, so that
// everything submitted meanwhile queues up and forms the next batch. release
// lets it go on.
func holdWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	go func() {
		_, _ = s.submit(context.Background(), &op{apply: func(context.Context, *sql.Tx) (result, error) {
			close(entered)
			<-gate
			return result{}, nil
		}})
	}()
	<-entered
	release = sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release)
	return release
}

// waitQueued waits until n ops sit in the queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.ops) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d ops queued", len(s.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCloseDrainsQueuedWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	release := holdWriter(t, s)

	const n = 100
	in := make([]store.NewReading, n)
	outs := make([]store.InsertOutcome, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range in {
		in[i] = testReading(uuid.NewString(), time.Date(2026, 11, 26, 8, i, 0, 0, time.UTC))
		wg.Go(func() { outs[i], errs[i] = s.InsertReading(context.Background(), in[i]) })
	}
	waitQueued(t, s, n)

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Once Close has marked the store closed, new writes are refused while
	// the queued ones wait for the writer.
	for {
		s.mu.RLock()
		c := s.closed
		s.mu.RUnlock()
		if c {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := s.InsertReading(t.Context(), testReading(uuid.NewString(), time.Now())); !errors.Is(err, ErrClosed) {
		t.Errorf("InsertReading during Close: err = %v, want ErrClosed", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before queued writes were committed", err)
	case <-time.After(50 * time.Millisecond):
	}

	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	for i := range in {
		if errs[i] != nil || outs[i].Status != store.Inserted {
			t.Errorf("queued insert %d: %+v, %v; want Inserted", i, outs[i], errs[i])
		}
	}
	st := s.Stats()
	if st.Batches != 2 || st.MaxBatch != n || st.Ops != n+1 {
		t.Errorf("stats = %+v, want the held op, then all %d queued ones in one batch", st, n)
	}

	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	for i := range in {
		if _, err := s.Reading(t.Context(), in[i].Reading.ReadingID); err != nil {
			t.Errorf("reading %d after reopen: %v", i, err)
		}
	}
}

func TestBadOpDoesNotFailItsBatch(t *testing.T) {
	s, _ := openTemp(t)
	release := holdWriter(t, s)

	const good = 10
	ids := make([]string, good)
	errs := make([]error, good)
	var wg sync.WaitGroup
	for i := range ids {
		ids[i] = uuid.NewString()
		wg.Go(func() {
			_, errs[i] = s.InsertReading(context.Background(), testReading(ids[i], time.Date(2026, 11, 26, 8, i, 0, 0, time.UTC)))
		})
	}
	// An op that breaks the database's rules, as a bug might.
	var badErr error
	wg.Go(func() {
		o := &op{apply: func(ctx context.Context, tx *sql.Tx) (result, error) {
			_, err := tx.ExecContext(ctx, `INSERT INTO scores (reading_id, score_json, rules_version, risk, scored_at)
				VALUES ('no-such-reading', '{}', 'r', 'low', 'x')`)
			return result{}, err
		}}
		var r result
		r, badErr = s.submit(context.Background(), o)
		if badErr == nil {
			badErr = r.err
		}
	})
	waitQueued(t, s, good+1)
	release()
	wg.Wait()

	if badErr == nil || !strings.Contains(badErr.Error(), "FOREIGN KEY") {
		t.Errorf("bad op: err = %v, want a foreign key error", badErr)
	}
	for i := range ids {
		if errs[i] != nil {
			t.Errorf("good op %d failed with the bad one: %v", i, errs[i])
		}
		if _, err := s.Reading(t.Context(), ids[i]); err != nil {
			t.Errorf("good op %d not stored: %v", i, err)
		}
	}
	if st := s.Stats(); st.Fallbacks != 1 {
		t.Errorf("stats = %+v, want one fallback", st)
	}
}

func TestCanceledWhileQueued(t *testing.T) {
	s, _ := openTemp(t)
	release := holdWriter(t, s)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	id := uuid.NewString()
	if _, err := s.InsertReading(ctx, testReading(id, time.Now())); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	release()
	// The abandoned op is answered and skipped, not left to block the writer.
	if _, err := s.InsertReading(t.Context(), testReading(uuid.NewString(), time.Now())); err != nil {
		t.Fatalf("insert after abandoned op: %v", err)
	}
	if _, err := s.Reading(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("abandoned reading: err = %v, want ErrNotFound (never written)", err)
	}
}

func TestRecordsAreAppendOnly(t *testing.T) {
	s, _ := openTemp(t)
	nr := testReading(uuid.NewString(), time.Now())
	if _, err := s.InsertReading(t.Context(), nr); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveScore(t.Context(), scoring.Score{ReadingID: nr.Reading.ReadingID, RulesVersion: "r"}); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE readings SET patient_id = 'X'`,
		`DELETE FROM readings`,
		`UPDATE scores SET risk = 'none'`,
		`DELETE FROM scores`,
	} {
		if _, err := s.wdb.ExecContext(t.Context(), stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: err = %v, want refused", stmt, err)
		}
	}
	// And the read pool refuses writes of any kind.
	if _, err := s.rdb.ExecContext(t.Context(), `INSERT INTO goose_db_version (version_id, is_applied) VALUES (99, 1)`); err == nil {
		t.Errorf("write on the read pool succeeded")
	}
}

func TestOpenRejectsNonFilePaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", "x.db?mode=memory"} {
		if s, err := Open(t.Context(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

func TestLatestByPatientUsesIndex(t *testing.T) {
	s, _ := openTemp(t)
	plan := queryPlan(t, s, `SELECT l.seq FROM readings l
		WHERE l.trial_id = 'T' AND l.site_id = 'S' AND l.patient_id = 'P'
		ORDER BY l.measured_at DESC, l.seq DESC LIMIT 1`)
	joined := strings.Join(plan, "; ")
	if !strings.Contains(joined, "readings_patient_measured") || strings.Contains(joined, "TEMP B-TREE") {
		t.Errorf("plan %q: want the patient index and no sort", joined)
	}
}

// queryPlan returns the steps of SQLite's plan for query with args.
func queryPlan(t *testing.T, s *Store, query string, args ...any) []string {
	t.Helper()
	rows, err := s.rdb.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

func BenchmarkInsertReadingParallel(b *testing.B) {
	for _, maxBatch := range []int{1, defaultMaxBatch} {
		b.Run(fmt.Sprintf("maxBatch=%d", maxBatch), func(b *testing.B) {
			s, _ := openTemp(b, WithMaxBatch(maxBatch))
			when := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
			// Many more callers than CPUs, as under HTTP load: group commit
			// pays off only when calls overlap.
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					nr := testReading(uuid.NewString(), when)
					if _, err := s.InsertReading(context.Background(), nr); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			st := s.Stats()
			if st.Batches > 0 {
				b.ReportMetric(float64(st.Ops)/float64(st.Batches), "readings/commit")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}
