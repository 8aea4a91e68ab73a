package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"vigil/reading"
	"vigil/scoring"
	"vigil/store"
	"vigil/store/postgres/pgtest"
	"vigil/store/storetest"
	"vigil/trial"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	// A server of our own is gone with its databases; on a shared one the
	// template would outlive us.
	if u := os.Getenv(pgtest.EnvURL); u != "" && template.name != "" {
		if err := pgtest.DropDatabase(context.Background(), u, template.name); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// The conformance suite opens dozens of stores; each is a copy of one
// migrated template database, which is much faster than migrating each.
var template struct {
	once sync.Once
	name string
	err  error
}

// migratedTemplate returns the name of a database holding the migrated, empty
// schema, made once per test binary and server.
func migratedTemplate(tb testing.TB, serverURL string) string {
	tb.Helper()
	template.once.Do(func() {
		name := fmt.Sprintf("vigil_template_%d", os.Getpid())
		ctx := context.Background()
		u, err := pgtest.CreateDatabase(ctx, serverURL, name, "")
		if err != nil {
			template.err = err
			return
		}
		s, err := Open(ctx, u)
		if err != nil {
			template.err = err
			return
		}
		template.err = s.Close()
		template.name = name
	})
	if template.err != nil {
		tb.Fatalf("template database: %v", template.err)
	}
	return template.name
}

// newURL returns the URL of a fresh, migrated, empty database.
func newURL(tb testing.TB) string {
	tb.Helper()
	server := pgtest.Start(tb)
	return pgtest.NewDatabaseFrom(tb, server, migratedTemplate(tb, server))
}

// openTemp opens a store on a fresh database, closed when tb ends.
func openTemp(tb testing.TB, opts ...Option) (*Store, string) {
	tb.Helper()
	u := newURL(tb)
	s, err := Open(tb.Context(), u, opts...)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s, u
}

// openNode opens another store (another Vigil node) on the database at u.
func openNode(tb testing.TB, u string) *Store {
	tb.Helper()
	s, err := Open(tb.Context(), u)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
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

func TestMigrateFromEmptyAndReopen(t *testing.T) {
	ctx := t.Context()
	u := pgtest.NewDatabase(t, pgtest.Start(t))
	s, err := Open(ctx, u)
	if err != nil {
		t.Fatalf("Open on an empty database: %v", err)
	}
	nr := testReading(uuid.NewString(), time.Date(2026, 11, 26, 8, 0, 5, 0, time.UTC))
	nr.Payload = json.RawMessage(` {"reading_id": "as sent, spacing and all"} `)
	if _, err := s.InsertReading(ctx, nr); err != nil {
		t.Fatalf("InsertReading: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openNode(t, u)
	var versions, maxV int64
	if err := s.pool.QueryRow(ctx, `SELECT COUNT(*), MAX(version_id) FROM goose_db_version WHERE version_id > 0`).Scan(&versions, &maxV); err != nil {
		t.Fatalf("goose_db_version: %v", err)
	}
	if n, latest := embeddedMigrations(t); versions != int64(n) || maxV != latest {
		t.Errorf("goose_db_version: %d versions, max %d; want each of the %d migrations applied once, up to %d",
			versions, maxV, n, latest)
	}
	out, err := s.InsertReading(ctx, nr)
	if err != nil || out.Status != store.Duplicate {
		t.Errorf("retry after reopen = %+v, %v; want Duplicate", out, err)
	}
	// The original bytes are kept verbatim (ALCOA: original).
	var payload []byte
	if err := s.pool.QueryRow(ctx, `SELECT payload FROM readings WHERE reading_id = $1`, nr.Reading.ReadingID).Scan(&payload); err != nil {
		t.Fatalf("payload: %v", err)
	}
	if string(payload) != string(nr.Payload) {
		t.Errorf("payload = %q, want %q", payload, nr.Payload)
	}
}

func TestNodesMigrateAtOnce(t *testing.T) {
	u := pgtest.NewDatabase(t, pgtest.Start(t))
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			s, err := Open(t.Context(), u)
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
}

// TestAppendOnly: readings, scores and the audit trail refuse UPDATE, DELETE
// and TRUNCATE, as in the SQLite store.
func TestAppendOnly(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	nr := testReading(uuid.NewString(), time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC))
	if _, err := s.InsertReading(ctx, nr); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveScore(ctx, scoring.Score{ReadingID: nr.Reading.ReadingID, Risk: scoring.RiskLow, RulesVersion: "r1"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ApplyAlert(ctx, scoring.Alert{PatientID: "P1", TrialID: "T1", SiteID: "S1", Severity: "high"},
		func(cur *scoring.Alert, cand scoring.Alert) (scoring.Alert, bool) { return cand, cur == nil }); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`UPDATE readings SET content_hash = 'x'`,
		`DELETE FROM readings`,
		`TRUNCATE readings CASCADE`,
		`UPDATE scores SET risk = 'high'`,
		`DELETE FROM scores`,
		`TRUNCATE scores`,
		`UPDATE audit SET reason = 'edited'`,
		`DELETE FROM audit`,
		`TRUNCATE audit`,
	} {
		_, err := s.pool.Exec(ctx, stmt)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23001" {
			t.Errorf("%s: err = %v, want restrict_violation from the trigger", stmt, err)
		}
	}
	if n, err := s.VerifyAudit(ctx); err != nil || n != 1 {
		t.Errorf("VerifyAudit = %d, %v; want 1 intact record", n, err)
	}
}

func validProtocol(trialID string) trial.Protocol {
	return trial.Protocol{TrialID: trialID, Title: "x", Sites: []string{"S1"},
		Schedule: trial.Schedule{Every: trial.Duration(8 * time.Hour), Grace: trial.Duration(time.Hour)},
		Escalation: trial.Escalation{Tiers: []trial.Tier{{Name: "site", After: trial.Duration(15 * time.Minute),
			Channels: []trial.Channel{{Kind: trial.ChannelBoard}}}}}}
}

// TestVerifyAuditFindsEdits: with the triggers out of the way (a superuser
// tampering), the chain still shows an edit and a deletion from the end.
func TestVerifyAuditFindsEdits(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	for i := range 3 {
		p := validProtocol("T1")
		p.Title = fmt.Sprint("v", i)
		if _, err := s.PutProtocol(ctx, p, store.Change{Actor: store.System}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.VerifyAudit(ctx); err != nil || n != 3 {
		t.Fatalf("VerifyAudit = %d, %v; want 3", n, err)
	}
	exec := func(sql string) {
		t.Helper()
		if _, err := s.pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`ALTER TABLE audit DISABLE TRIGGER USER`)
	exec(`DELETE FROM audit WHERE id = 3`)
	var brk *store.AuditBreak
	if _, err := s.VerifyAudit(ctx); !errors.As(err, &brk) || brk.ID != 3 {
		t.Errorf("after deleting the last record: %v, want a break at 3", err)
	}
	exec(`UPDATE audit SET reason = 'rewritten' WHERE id = 2`)
	if _, err := s.VerifyAudit(ctx); !errors.As(err, &brk) || brk.ID != 2 {
		t.Errorf("after editing record 2: %v, want a break at 2", err)
	}
}

// TestNodesShareOneAuditChain: several stores on one database (several Vigil
// nodes) appending at once still make one chain.
func TestNodesShareOneAuditChain(t *testing.T) {
	s, u := openTemp(t)
	nodes := []*Store{s, openNode(t, u), openNode(t, u)}
	ctx := t.Context()
	const each = 30
	var wg sync.WaitGroup
	for n, node := range nodes {
		for i := range each {
			wg.Go(func() {
				var err error
				switch i % 3 {
				case 0:
					_, _, err = node.ApplyAlert(ctx, scoring.Alert{PatientID: fmt.Sprint("P", i%7), TrialID: "T1", SiteID: "S1",
						Severity: []string{"medium", "high", "critical"}[n], Reasons: []string{"x"}},
						func(cur *scoring.Alert, cand scoring.Alert) (scoring.Alert, bool) {
							if cur != nil && cur.Severity >= cand.Severity {
								return *cur, false
							}
							return cand, true
						})
				case 1:
					_, err = node.PutPatient(ctx, trial.PatientRecord{TrialID: "T1", SiteID: "S1",
						PatientID: fmt.Sprint("P", i%5), Status: trial.Enrolled, SpO2Scale: 1}, store.Change{Actor: store.System})
				default:
					_, err = node.PutProtocol(ctx, validProtocol(fmt.Sprint("T", i%4)), store.Change{Actor: store.System})
				}
				if err != nil {
					t.Errorf("node %d op %d: %v", n, i, err)
				}
			})
		}
	}
	wg.Wait()
	recs, err := s.AuditRecords(ctx, store.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.ID != int64(i+1) {
			t.Fatalf("record %d has id %d: ids must run 1, 2, … without gaps", i, r.ID)
		}
		if i > 0 && r.PrevHash != recs[i-1].Hash {
			t.Fatalf("record %d does not follow record %d: the chain forked", r.ID, recs[i-1].ID)
		}
	}
	for _, node := range nodes {
		if n, err := node.VerifyAudit(ctx); err != nil || n != len(recs) {
			t.Errorf("VerifyAudit = %d, %v; want %d", n, err, len(recs))
		}
	}
	// Every protocol's versions ran on without a repeat across nodes.
	ps, err := s.Protocols(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var versions int
	for _, p := range ps {
		versions += p.Version
	}
	if want := 3 * (each / 3); versions != want {
		t.Errorf("protocol versions add up to %d, want %d (one per put)", versions, want)
	}
}

// TestNodesInsertOneReading: the same reading sent to several nodes at once
// is stored once; exactly one caller hears Inserted.
func TestNodesInsertOneReading(t *testing.T) {
	s, u := openTemp(t)
	nodes := []*Store{s, openNode(t, u), openNode(t, u)}
	ctx := t.Context()
	for round := range 20 {
		nr := testReading(uuid.NewString(), time.Date(2026, 11, 26, 8, 0, round, 0, time.UTC))
		other := nr
		other.ContentHash = "different"
		var (
			mu     sync.Mutex
			counts = map[store.InsertStatus]int{}
			wg     sync.WaitGroup
		)
		for n, node := range nodes {
			for i := range 8 {
				wg.Go(func() {
					in := nr
					if n == 2 && i == 7 {
						in = other
					}
					out, err := node.InsertReading(ctx, in)
					if err != nil {
						t.Errorf("node %d: %v", n, err)
						return
					}
					mu.Lock()
					counts[out.Status]++
					mu.Unlock()
				})
			}
		}
		wg.Wait()
		if counts[store.Inserted] != 1 || counts[store.Inserted]+counts[store.Duplicate]+counts[store.Conflict] != 24 {
			t.Fatalf("round %d: outcomes %v, want exactly one Inserted of 24", round, counts)
		}
	}
}

// TestClaimDueNotifications: two dispatchers claiming at once never get the
// same notification, and a claim hides it until its lease ends.
func TestClaimDueNotifications(t *testing.T) {
	s, u := openTemp(t)
	other := openNode(t, u)
	ctx := t.Context()
	var ns []store.Notification
	for i := range 40 {
		ns = append(ns, store.Notification{AlertID: fmt.Sprint("A", i), TrialID: "T1",
			Channel: trial.Channel{Kind: trial.ChannelBoard}, Payload: json.RawMessage(`{}`)})
	}
	if err := s.EnqueueNotifications(ctx, ns); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Second)
	var (
		mu   sync.Mutex
		seen = map[int64]int{}
		wg   sync.WaitGroup
	)
	for _, node := range []*Store{s, other, s, other} {
		wg.Go(func() {
			for {
				got, err := node.ClaimDueNotifications(ctx, now, time.Hour, 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, n := range got {
					seen[n.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 40 {
		t.Errorf("%d notifications claimed, want 40", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("notification %d claimed %d times", id, n)
		}
	}
	if due, err := s.DueNotifications(ctx, now, 100); err != nil || len(due) != 0 {
		t.Errorf("due during the lease: %d, %v; want none", len(due), err)
	}
	if due, err := s.DueNotifications(ctx, now.Add(2*time.Hour), 100); err != nil || len(due) != 40 {
		t.Errorf("due after the lease: %d, %v; want 40", len(due), err)
	}
}

// TestTimesKeepNanoseconds: a reading's times come back to the nanosecond and
// order by them, below PostgreSQL's microsecond.
func TestTimesKeepNanoseconds(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	base := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	// Inserted in reverse, one nanosecond apart within one microsecond.
	var ids []string
	for i := 3; i >= 0; i-- {
		nr := testReading(uuid.NewString(), base.Add(time.Duration(i)))
		nr.ReceivedAt = base.Add(time.Duration(i))
		if _, err := s.InsertReading(ctx, nr); err != nil {
			t.Fatal(err)
		}
		ids = append([]string{nr.Reading.ReadingID}, ids...)
	}
	recs, err := s.PatientReadings(ctx, store.ReadingQuery{TrialID: "T008", SiteID: "S01", PatientID: "P1001"})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.Reading.ReadingID != ids[i] || !r.ReceivedAt.Equal(base.Add(time.Duration(i))) {
			t.Errorf("reading %d: %s received %v, want %s received %v", i, r.Reading.ReadingID,
				r.ReceivedAt, ids[i], base.Add(time.Duration(i)))
		}
	}
	recent, err := s.RecentReadings(ctx, "T008", "S01", "P1001", base.Add(1), base.Add(2), 10)
	if err != nil || len(recent) != 2 || recent[0].ReadingID != ids[1] || recent[1].ReadingID != ids[2] {
		t.Errorf("RecentReadings(+1ns, +2ns) = %d readings, %v; want readings 1 and 2", len(recent), err)
	}
	un, err := s.Unscored(ctx, base.Add(2), 10)
	if err != nil || len(un) != 2 {
		t.Errorf("Unscored(before +2ns) = %d, %v; want 2", len(un), err)
	}
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

// TestLeasesOneHolderAndTakeover: of two stores (two nodes) on one database,
// one runs a lease's work at a time; when its holder stops, the other takes
// the work over.
func TestLeasesOneHolderAndTakeover(t *testing.T) {
	url := pgtest.NewDatabase(t, pgtest.Start(t))
	holders := make(chan int, 10)
	var stops []context.CancelFunc
	var wg sync.WaitGroup
	for i := range 2 {
		st := openNode(t, url)
		ctx, cancel := context.WithCancel(t.Context())
		stops = append(stops, cancel)
		l := st.Leases(100*time.Millisecond, nil)
		wg.Go(func() {
			l.Run(ctx, "escalations", func(ctx context.Context) { holders <- i; <-ctx.Done() })
		})
	}
	defer func() {
		for _, s := range stops {
			s()
		}
		wg.Wait()
	}()
	first := <-holders
	select {
	case other := <-holders:
		t.Fatalf("node %d took the lease while node %d held it", other, first)
	case <-time.After(700 * time.Millisecond):
	}
	stops[first]()
	select {
	case next := <-holders:
		if next == first {
			t.Fatal("the stopped node took the lease again")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no node took the lease over")
	}
}
