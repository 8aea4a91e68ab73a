// Package storetest owns the conformance suite of store.Store: every
// implementation (store/sqlite, the PostgreSQL store) runs Run against itself,
// so they keep one contract. It uses only the store interface and the types it
// exchanges; it imports store, reading and scoring.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"vigil/reading"
	"vigil/scoring"
	"vigil/store"
)

// Run runs the conformance suite. open must return a new, empty store on each
// call and close it when t ends (t.Cleanup); the suite also closes stores
// itself, so Close must be idempotent.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"InsertReading", testInsertReading},
		{"InsertReadingCanceled", testInsertReadingCanceled},
		{"Reading", testReading},
		{"ConcurrentInserts", testConcurrentInserts},
		{"SaveScore", testSaveScore},
		{"SaveScoreConcurrent", testSaveScoreConcurrent},
		{"Unscored", testUnscored},
		{"LatestByPatient", testLatestByPatient},
		{"PatientReadings", testPatientReadings},
		{"PatientReadingsLimits", testPatientReadingsLimits},
		{"RecentReadings", testRecentReadings},
		{"ApplyAlert", testApplyAlert},
		{"ApplyAlertResolvedIsNotCurrent", testApplyAlertResolved},
		{"ApplyAlertConcurrent", testApplyAlertConcurrent},
		{"Alerts", testAlerts},
		{"AlertsPaging", testAlertsPaging},
		{"Alert", testAlert},
		{"AlertSAEFields", testAlertSAEFields},
		{"AlertsByPatient", testAlertsByPatient},
		{"TrialOverview", testTrialOverview},
		{"Audit", testAudit},
		{"VerifyAuditEmpty", testVerifyAuditEmpty},
		{"AuditChain", testAuditChain},
		{"AuditRecordsPaging", testAuditRecordsPaging},
		{"AuditRecordsFilters", testAuditRecordsFilters},
		{"AuditChainConcurrent", testAuditChainConcurrent},
		{"RoomOffsets", testRoomOffsets},
		{"UpdateAlert", testUpdateAlert},
		{"OutboxLifecycle", testOutboxLifecycle},
		{"OutboxDead", testOutboxDead},
		{"OutboxFinal", testOutboxFinal},
		{"OutboxQuery", testOutboxQuery},
		{"OutboxDueOrder", testOutboxDueOrder},
		{"OutboxAllOrNothing", testOutboxAllOrNothing},
		{"OutboxWithUpdateAlert", testOutboxWithUpdateAlert},
		{"OutboxClosed", testOutboxClosed},
		{"ProtocolPut", testProtocolPut},
		{"ProtocolAudit", testProtocolAudit},
		{"ProtocolRefused", testProtocolRefused},
		{"ProtocolPutConcurrent", testProtocolPutConcurrent},
		{"PatientPut", testPatientPut},
		{"PatientRefused", testPatientRefused},
		{"SilentPatients", testSilentPatients},
		{"TrialStoreClosed", testTrialStoreClosed},
		{"Ping", testPing},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// base is a fixed instant so that orderings in the tests do not depend on
// the wall clock.
var base = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)

func at(minutes int) time.Time { return base.Add(time.Duration(minutes) * time.Minute) }

func ptr[T any](v T) *T { return &v }

// newReading builds a reading as ingest would hand it over: the payload is the
// client's bytes and the hash identifies them.
func newReading(patient, trial, site string, measuredAt time.Time) store.NewReading {
	r := reading.Reading{
		ReadingID:  uuid.NewString(),
		PatientID:  patient,
		TrialID:    trial,
		SiteID:     site,
		MeasuredAt: measuredAt,
		Vitals: reading.Vitals{
			RespiratoryRate: ptr(18.0),
			SpO2:            ptr(96.0),
			SpO2Scale:       ptr(1),
			OnOxygen:        ptr(false),
			SystolicBP:      ptr(118.0),
			DiastolicBP:     ptr(76.0),
			HeartRate:       ptr(88.0),
			Consciousness:   ptr(reading.Alert),
			Temperature:     ptr(37.2),
		},
		Symptoms: []reading.Symptom{{Term: "nausea", Grade: 2}},
	}
	return withContent(store.NewReading{Reading: r, ReceivedAt: measuredAt.Add(3 * time.Second)})
}

// withContent recomputes payload and hash after the reading changed.
func withContent(nr store.NewReading) store.NewReading {
	payload, err := json.Marshal(nr.Reading)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(payload)
	nr.Payload = payload
	nr.ContentHash = hex.EncodeToString(sum[:])
	return nr
}

func newScore(r reading.Reading, risk, rulesVersion string) scoring.Score {
	return scoring.Score{
		Kind:       "score",
		ReadingID:  r.ReadingID,
		PatientID:  r.PatientID,
		TrialID:    r.TrialID,
		SiteID:     r.SiteID,
		MeasuredAt: r.MeasuredAt,
		ScoredAt:   r.MeasuredAt.Add(5 * time.Second),
		NEWS2: scoring.NEWS2{
			Total:      1,
			Band:       scoring.BandLow,
			Parameters: map[string]int{scoring.ParamTemperature: 0, scoring.ParamHeartRate: 1},
			SpO2Scale:  1,
		},
		Model:        &scoring.Model{Probability: 0.12, Version: "m-1"},
		Risk:         risk,
		Registered:   true,
		RulesVersion: rulesVersion,
	}
}

func mustInsert(t *testing.T, s store.Store, nr store.NewReading) {
	t.Helper()
	out, err := s.InsertReading(t.Context(), nr)
	if err != nil {
		t.Fatalf("InsertReading(%s): %v", nr.Reading.ReadingID, err)
	}
	if out.Status != store.Inserted {
		t.Fatalf("InsertReading(%s) status = %v, want Inserted", nr.Reading.ReadingID, out.Status)
	}
}

func mustSaveScore(t *testing.T, s store.Store, sc scoring.Score) {
	t.Helper()
	saved, err := s.SaveScore(t.Context(), sc)
	if err != nil {
		t.Fatalf("SaveScore(%s): %v", sc.ReadingID, err)
	}
	if !saved {
		t.Fatalf("SaveScore(%s) = false, want true", sc.ReadingID)
	}
}

// parallel runs fn(i) for i in [0, n) at once and waits for all of them.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// canonical encodes v with every time in UTC, so that values equal as
// instants compare equal however a store keeps zones.
func canonical(t *testing.T, v any) string {
	t.Helper()
	var r any
	switch x := v.(type) {
	case reading.Reading:
		x.MeasuredAt = x.MeasuredAt.UTC()
		r = x
	case scoring.Score:
		x.MeasuredAt, x.ScoredAt = x.MeasuredAt.UTC(), x.ScoredAt.UTC()
		r = x
	case scoring.Alert:
		x.OpenedAt, x.UpdatedAt = x.OpenedAt.UTC(), x.UpdatedAt.UTC()
		r = x
	default:
		t.Fatalf("canonical: unexpected %T", v)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("canonical: %v", err)
	}
	return string(b)
}

func sameReading(t *testing.T, what string, got, want reading.Reading) {
	t.Helper()
	if g, w := canonical(t, got), canonical(t, want); g != w {
		t.Errorf("%s: reading\n got %s\nwant %s", what, g, w)
	}
}

func sameScore(t *testing.T, what string, got *scoring.Score, want scoring.Score) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: score is nil, want %s", what, canonical(t, want))
		return
	}
	if g, w := canonical(t, *got), canonical(t, want); g != w {
		t.Errorf("%s: score\n got %s\nwant %s", what, g, w)
	}
}

func sameAlert(t *testing.T, what string, got, want scoring.Alert) {
	t.Helper()
	if g, w := canonical(t, got), canonical(t, want); g != w {
		t.Errorf("%s: alert\n got %s\nwant %s", what, g, w)
	}
}

func readingIDs(recs []store.Record) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.Reading.ReadingID
	}
	return ids
}

func alertIDs(alerts []scoring.Alert) []string {
	ids := make([]string, len(alerts))
	for i, a := range alerts {
		ids[i] = a.AlertID
	}
	return ids
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testClose(t *testing.T, s store.Store) {
	nr := newReading("P1", "T1", "S1", at(0))
	mustInsert(t, s, nr)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.InsertReading(t.Context(), newReading("P1", "T1", "S1", at(1))); err == nil {
		t.Errorf("InsertReading after Close: no error")
	}
	if _, err := s.SaveScore(t.Context(), newScore(nr.Reading, scoring.RiskLow, "r1")); err == nil {
		t.Errorf("SaveScore after Close: no error")
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Errorf("Ping after Close: no error")
	}
}

func testInsertReadingCanceled(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.InsertReading(ctx, newReading("P1", "T1", "S1", at(0)))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("InsertReading with canceled ctx: err = %v, want context.Canceled", err)
	}
	_, err = s.SaveScore(ctx, newScore(newReading("P1", "T1", "S1", at(0)).Reading, scoring.RiskLow, "r1"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("SaveScore with canceled ctx: err = %v, want context.Canceled", err)
	}
}

func fmtStatus(st store.InsertStatus) string {
	switch st {
	case store.Inserted:
		return "Inserted"
	case store.Duplicate:
		return "Duplicate"
	case store.Conflict:
		return "Conflict"
	}
	return fmt.Sprintf("InsertStatus(%d)", int(st))
}

func testRoomOffsets(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, clean, err := s.RoomOffsets(ctx)
	if err != nil || len(got) != 0 || !clean {
		t.Fatalf("new store: %v clean=%v err=%v, want none, clean", got, clean, err)
	}
	steps := []struct {
		save  map[string]uint64
		clean bool
		want  map[string]uint64
	}{
		{map[string]uint64{"site:T:S1": 5, "trial:T": 2}, false, map[string]uint64{"site:T:S1": 5, "trial:T": 2}},
		{map[string]uint64{"site:T:S1": 9}, true, map[string]uint64{"site:T:S1": 9, "trial:T": 2}},
		{map[string]uint64{"site:T:S1": 3, "site:T:S2": 1}, false, map[string]uint64{"site:T:S1": 9, "trial:T": 2, "site:T:S2": 1}},
	}
	for i, st := range steps {
		if err := s.SaveRoomOffsets(ctx, st.save, st.clean); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got, clean, err := s.RoomOffsets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if clean != st.clean || fmt.Sprint(got) != fmt.Sprint(st.want) {
			t.Fatalf("step %d: %v clean=%v, want %v clean=%v", i, got, clean, st.want, st.clean)
		}
	}
}
