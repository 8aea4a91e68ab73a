package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"vigil/scoring"
	"vigil/store"
)

func testInsertReading(t *testing.T, s store.Store) {
	first := newReading("P1", "T1", "S1", at(0))
	scored := newReading("P2", "T1", "S1", at(0))
	mustInsert(t, s, scored)
	mustSaveScore(t, s, newScore(scored.Reading, scoring.RiskLow, "r1"))

	// A retry arrives later than the original: the outcome must report when
	// the stored one was received.
	retry := first
	retry.ReceivedAt = first.ReceivedAt.Add(time.Minute)
	changed := first
	changed.Reading.Vitals.HeartRate = ptr(131.0)
	changed = withContent(changed)
	scoredRetry := scored
	scoredRetry.ReceivedAt = scored.ReceivedAt.Add(time.Hour)

	tests := []struct {
		name         string
		in           store.NewReading
		wantStatus   store.InsertStatus
		wantReceived time.Time
		wantScored   bool
	}{
		{"new reading is inserted", first, store.Inserted, first.ReceivedAt, false},
		{"same id and content is a duplicate", retry, store.Duplicate, first.ReceivedAt, false},
		{"same id, other content is a conflict", changed, store.Conflict, first.ReceivedAt, false},
		{"duplicate of a scored reading says scored", scoredRetry, store.Duplicate, scored.ReceivedAt, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := s.InsertReading(t.Context(), tc.in)
			if err != nil {
				t.Fatalf("InsertReading: %v", err)
			}
			if out.Status != tc.wantStatus {
				t.Errorf("status = %s, want %s", fmtStatus(out.Status), fmtStatus(tc.wantStatus))
			}
			if !out.ReceivedAt.Equal(tc.wantReceived) {
				t.Errorf("ReceivedAt = %v, want %v", out.ReceivedAt, tc.wantReceived)
			}
			if tc.wantStatus == store.Duplicate && out.Scored != tc.wantScored {
				t.Errorf("Scored = %v, want %v", out.Scored, tc.wantScored)
			}
		})
	}

	// Neither the duplicate nor the conflict may have touched the original.
	rec, err := s.Reading(t.Context(), first.Reading.ReadingID)
	if err != nil {
		t.Fatalf("Reading: %v", err)
	}
	sameReading(t, "after conflict", rec.Reading, first.Reading)
	if !rec.ReceivedAt.Equal(first.ReceivedAt) {
		t.Errorf("ReceivedAt = %v, want %v", rec.ReceivedAt, first.ReceivedAt)
	}
}

func testReading(t *testing.T, s store.Store) {
	nr := newReading("P1", "T1", "S1", time.Date(2026, 11, 26, 9, 30, 5, 123456789, time.FixedZone("CET", 3600)))
	nr.ReceivedAt = time.Date(2026, 11, 26, 8, 30, 7, 987654321, time.UTC)
	mustInsert(t, s, nr)

	rec, err := s.Reading(t.Context(), nr.Reading.ReadingID)
	if err != nil {
		t.Fatalf("Reading: %v", err)
	}
	sameReading(t, "stored", rec.Reading, nr.Reading)
	if !rec.Reading.MeasuredAt.Equal(nr.Reading.MeasuredAt) {
		t.Errorf("MeasuredAt = %v, want %v (nanoseconds must survive)", rec.Reading.MeasuredAt, nr.Reading.MeasuredAt)
	}
	if !rec.ReceivedAt.Equal(nr.ReceivedAt) {
		t.Errorf("ReceivedAt = %v, want %v", rec.ReceivedAt, nr.ReceivedAt)
	}
	if rec.Seq <= 0 {
		t.Errorf("Seq = %d, want > 0", rec.Seq)
	}
	if rec.Score != nil {
		t.Errorf("Score = %+v before scoring, want nil", rec.Score)
	}

	sc := newScore(nr.Reading, scoring.RiskMedium, "rules-7")
	sc.Model = nil
	sc.Degraded = true
	mustSaveScore(t, s, sc)
	rec, err = s.Reading(t.Context(), nr.Reading.ReadingID)
	if err != nil {
		t.Fatalf("Reading after score: %v", err)
	}
	sameScore(t, "after score", rec.Score, sc)

	if _, err := s.Reading(t.Context(), "no-such-reading"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Reading(unknown): err = %v, want ErrNotFound", err)
	}
}

func testConcurrentInserts(t *testing.T, s store.Store) {
	t.Run("distinct readings", func(t *testing.T) {
		const n = 200
		in := make([]store.NewReading, n)
		for i := range in {
			in[i] = newReading(fmt.Sprintf("P%03d", i%20), "T1", "S1", at(i))
		}
		outs := make([]store.InsertOutcome, n)
		errs := make([]error, n)
		parallel(n, func(i int) {
			outs[i], errs[i] = s.InsertReading(t.Context(), in[i])
		})
		seqs := map[int64]bool{}
		for i := range in {
			if errs[i] != nil {
				t.Fatalf("insert %d: %v", i, errs[i])
			}
			if outs[i].Status != store.Inserted {
				t.Fatalf("insert %d: status %s, want Inserted", i, fmtStatus(outs[i].Status))
			}
			// Once answered, the reading must be readable.
			rec, err := s.Reading(t.Context(), in[i].Reading.ReadingID)
			if err != nil {
				t.Fatalf("Reading %d after insert: %v", i, err)
			}
			sameReading(t, fmt.Sprintf("reading %d", i), rec.Reading, in[i].Reading)
			if seqs[rec.Seq] {
				t.Fatalf("Seq %d given twice", rec.Seq)
			}
			seqs[rec.Seq] = true
		}
	})

	t.Run("one reading retried at once", func(t *testing.T) {
		const n = 50
		nr := newReading("P1", "T1", "S2", at(0))
		statuses := make([]store.InsertStatus, n)
		parallel(n, func(i int) {
			out, err := s.InsertReading(t.Context(), nr)
			if err != nil {
				t.Errorf("insert %d: %v", i, err)
			}
			statuses[i] = out.Status
		})
		counts := map[store.InsertStatus]int{}
		for _, st := range statuses {
			counts[st]++
		}
		if counts[store.Inserted] != 1 || counts[store.Duplicate] != n-1 {
			t.Errorf("outcomes = %v, want 1 Inserted and %d Duplicate", counts, n-1)
		}
	})

	t.Run("one id with different contents at once", func(t *testing.T) {
		const n = 20
		nr := newReading("P2", "T1", "S2", at(0))
		variants := make([]store.NewReading, n)
		for i := range variants {
			v := nr
			v.Reading.Vitals.HeartRate = ptr(float64(60 + i))
			variants[i] = withContent(v)
		}
		statuses := make([]store.InsertStatus, n)
		parallel(n, func(i int) {
			out, err := s.InsertReading(t.Context(), variants[i])
			if err != nil {
				t.Errorf("insert %d: %v", i, err)
			}
			statuses[i] = out.Status
		})
		winner := -1
		for i, st := range statuses {
			switch st {
			case store.Inserted:
				if winner >= 0 {
					t.Fatalf("variants %d and %d both inserted", winner, i)
				}
				winner = i
			case store.Conflict:
			default:
				t.Errorf("variant %d: status %s, want Conflict", i, fmtStatus(st))
			}
		}
		if winner < 0 {
			t.Fatal("no variant inserted")
		}
		rec, err := s.Reading(t.Context(), nr.Reading.ReadingID)
		if err != nil {
			t.Fatalf("Reading: %v", err)
		}
		sameReading(t, "winner", rec.Reading, variants[winner].Reading)
	})
}

func testSaveScore(t *testing.T, s store.Store) {
	nr := newReading("P1", "T1", "S1", at(0))
	mustInsert(t, s, nr)
	first := newScore(nr.Reading, scoring.RiskLow, "rules-1")
	second := newScore(nr.Reading, scoring.RiskHigh, "rules-2")

	tests := []struct {
		name      string
		in        scoring.Score
		wantSaved bool
		wantErr   error
	}{
		{"first score is saved", first, true, nil},
		{"second score is dropped", second, false, nil},
		{"same score again is dropped", first, false, nil},
		{"score of an unknown reading", newScore(newReading("P1", "T1", "S1", at(1)).Reading, scoring.RiskLow, "rules-1"), false, store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			saved, err := s.SaveScore(t.Context(), tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("SaveScore: %v", err)
			}
			if saved != tc.wantSaved {
				t.Errorf("saved = %v, want %v", saved, tc.wantSaved)
			}
		})
	}
	rec, err := s.Reading(t.Context(), nr.Reading.ReadingID)
	if err != nil {
		t.Fatalf("Reading: %v", err)
	}
	sameScore(t, "first wins", rec.Score, first)

	out, err := s.InsertReading(t.Context(), nr)
	if err != nil {
		t.Fatalf("InsertReading retry: %v", err)
	}
	if out.Status != store.Duplicate || !out.Scored {
		t.Errorf("retry after score = %s scored=%v, want Duplicate scored=true", fmtStatus(out.Status), out.Scored)
	}
}

func testSaveScoreConcurrent(t *testing.T, s store.Store) {
	const readings, scorers = 10, 20
	rs := make([]store.NewReading, readings)
	for i := range rs {
		rs[i] = newReading(fmt.Sprintf("P%d", i), "T1", "S1", at(i))
		mustInsert(t, s, rs[i])
	}
	// Every scorer scores every reading with its own rules version, so the
	// stored score tells which call won.
	winners := make([]atomic.Int32, readings)
	for i := range winners {
		winners[i].Store(-1)
	}
	var savedCount [readings]atomic.Int32
	parallel(readings*scorers, func(k int) {
		ri, si := k%readings, k/readings
		saved, err := s.SaveScore(t.Context(), newScore(rs[ri].Reading, scoring.RiskLow, fmt.Sprintf("rules-%d", si)))
		if err != nil {
			t.Errorf("SaveScore(reading %d, scorer %d): %v", ri, si, err)
			return
		}
		if saved {
			savedCount[ri].Add(1)
			winners[ri].Store(int32(si))
		}
	})
	for i := range rs {
		if n := savedCount[i].Load(); n != 1 {
			t.Errorf("reading %d: %d scorers saved, want exactly 1", i, n)
			continue
		}
		rec, err := s.Reading(t.Context(), rs[i].Reading.ReadingID)
		if err != nil {
			t.Fatalf("Reading: %v", err)
		}
		want := fmt.Sprintf("rules-%d", winners[i].Load())
		if rec.Score == nil || rec.Score.RulesVersion != want {
			t.Errorf("reading %d: stored score %+v, want the winner's (%s)", i, rec.Score, want)
		}
	}
}

func testUnscored(t *testing.T, s store.Store) {
	// Inserted out of received order, so that "oldest first" cannot be
	// insertion order by accident.
	r1 := newReading("P1", "T1", "S1", at(0))
	r2 := newReading("P2", "T1", "S1", at(0))
	r3 := newReading("P3", "T2", "S9", at(0))
	r1.ReceivedAt, r2.ReceivedAt, r3.ReceivedAt = at(1), at(2), at(3)
	for _, nr := range []store.NewReading{r3, r2, r1} {
		mustInsert(t, s, nr)
	}
	mustSaveScore(t, s, newScore(r2.Reading, scoring.RiskLow, "rules-1"))

	tests := []struct {
		name      string
		olderThan time.Time
		limit     int
		want      []string
	}{
		{"all unscored, oldest first", at(10), 100, []string{r1.Reading.ReadingID, r3.Reading.ReadingID}},
		{"received before, strictly", at(3), 100, []string{r1.Reading.ReadingID}},
		{"limit", at(10), 1, []string{r1.Reading.ReadingID}},
		{"nothing old enough", at(1), 100, []string{}},
		{"zero limit means a default", at(10), 0, []string{r1.Reading.ReadingID, r3.Reading.ReadingID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := s.Unscored(t.Context(), tc.olderThan, tc.limit)
			if err != nil {
				t.Fatalf("Unscored: %v", err)
			}
			if got := readingIDs(recs); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			for _, rec := range recs {
				if rec.Score != nil {
					t.Errorf("%s has a score", rec.Reading.ReadingID)
				}
			}
		})
	}
}

func testLatestByPatient(t *testing.T, s store.Store) {
	p1old := newReading("P1", "T1", "S1", at(0))
	p1new := newReading("P1", "T1", "S1", at(30))
	p1mid := newReading("P1", "T1", "S1", at(15)) // arrives last, measured earlier
	p2a := newReading("P2", "T1", "S1", at(10))
	p2b := newReading("P2", "T1", "S1", at(10)) // same instant, stored later: wins
	p3 := newReading("P3", "T1", "S1", at(5))
	otherSite := newReading("P4", "T1", "S2", at(50))
	otherTrial := newReading("P1", "T2", "S1", at(60))
	for _, nr := range []store.NewReading{p3, p1old, p2a, p1new, otherSite, p2b, otherTrial, p1mid} {
		mustInsert(t, s, nr)
	}
	p3score := newScore(p3.Reading, scoring.RiskHigh, "rules-1")
	mustSaveScore(t, s, p3score)

	tests := []struct {
		name, trial, site string
		want              []string
	}{
		{"latest per patient, by patient id", "T1", "S1", []string{p1new.Reading.ReadingID, p2b.Reading.ReadingID, p3.Reading.ReadingID}},
		{"other site", "T1", "S2", []string{otherSite.Reading.ReadingID}},
		{"other trial", "T2", "S1", []string{otherTrial.Reading.ReadingID}},
		{"empty site", "T1", "S3", []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := s.LatestByPatient(t.Context(), tc.trial, tc.site)
			if err != nil {
				t.Fatalf("LatestByPatient: %v", err)
			}
			if got := readingIDs(recs); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	recs, err := s.LatestByPatient(t.Context(), "T1", "S1")
	if err != nil {
		t.Fatalf("LatestByPatient: %v", err)
	}
	if len(recs) == 3 {
		if recs[0].Score != nil {
			t.Errorf("P1's latest has a score, want none")
		}
		sameScore(t, "P3's latest", recs[2].Score, p3score)
		sameReading(t, "P1's latest", recs[0].Reading, p1new.Reading)
	}
}

func testPatientReadings(t *testing.T, s store.Store) {
	// P1's readings by measured minute, in the order they arrive: two late
	// arrivals (an app back online) and a tie at minute 20.
	minutes := []int{10, 20, 30, 40, 5, 20, 25}
	var p1 []store.NewReading
	for i, m := range minutes {
		nr := newReading("P1", "T1", "S1", at(m))
		mustInsert(t, s, nr)
		p1 = append(p1, nr)
		// Other patients' readings in between must never show up.
		mustInsert(t, s, newReading("P2", "T1", "S1", at(m)))
		mustInsert(t, s, newReading("P1", "T1", "S2", at(i)))
	}
	mustSaveScore(t, s, newScore(p1[2].Reading, scoring.RiskLow, "rules-1"))
	// Oldest first by measured_at; the tie at 20 in arrival order.
	order := []int{4, 0, 1, 5, 6, 2, 3}
	want := make([]string, len(order))
	for i, k := range order {
		want[i] = p1[k].Reading.ReadingID
	}
	q := store.ReadingQuery{TrialID: "T1", SiteID: "S1", PatientID: "P1"}

	t.Run("all, oldest first", func(t *testing.T) {
		recs, err := s.PatientReadings(t.Context(), q)
		if err != nil {
			t.Fatalf("PatientReadings: %v", err)
		}
		if got := readingIDs(recs); !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		sameScore(t, "scored reading", recs[5].Score, newScore(p1[2].Reading, scoring.RiskLow, "rules-1"))
		if recs[0].Score != nil {
			t.Errorf("unscored reading has a score")
		}
	})

	pageThrough := func(t *testing.T, q store.ReadingQuery) []string {
		t.Helper()
		got := []string{}
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatal("paging does not end")
			}
			recs, err := s.PatientReadings(t.Context(), q)
			if err != nil {
				t.Fatalf("PatientReadings page %d: %v", pages, err)
			}
			if len(recs) == 0 {
				return got
			}
			got = append(got, readingIDs(recs)...)
			q.AfterSeq = recs[len(recs)-1].Seq
		}
	}

	tests := []struct {
		name  string
		limit int
		since time.Time
		want  []string
	}{
		{"pages of 2 cover everything once, late arrivals included", 2, time.Time{}, want},
		{"pages of 1", 1, time.Time{}, want},
		{"pages of 3", 3, time.Time{}, want},
		{"since is inclusive", 2, at(20), want[2:]},
		{"since between readings", 100, at(26), want[5:]},
		{"since after everything", 100, at(41), []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := q
			q.Limit, q.Since = tc.limit, tc.since
			if got := pageThrough(t, q); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("other patient", func(t *testing.T) {
		recs, err := s.PatientReadings(t.Context(), store.ReadingQuery{TrialID: "T1", SiteID: "S1", PatientID: "P9"})
		if err != nil {
			t.Fatalf("PatientReadings: %v", err)
		}
		if len(recs) != 0 {
			t.Errorf("got %d readings, want none", len(recs))
		}
	})
}

func testPatientReadingsLimits(t *testing.T, s store.Store) {
	const n = 1005
	in := make([]store.NewReading, n)
	for i := range in {
		in[i] = newReading("P1", "T1", "S1", at(i))
	}
	// Concurrent, so that group commit makes this quick.
	var failed atomic.Bool
	const workers = 32
	parallel(workers, func(w int) {
		for i := w; i < n; i += workers {
			if _, err := s.InsertReading(t.Context(), in[i]); err != nil {
				failed.Store(true)
				t.Errorf("insert %d: %v", i, err)
				return
			}
		}
	})
	if failed.Load() {
		t.FailNow()
	}
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{"zero limit means 100", 0, 100},
		{"negative limit means 100", -5, 100},
		{"limit is kept", 7, 7},
		{"limit over 1000 is capped", 5000, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := s.PatientReadings(t.Context(), store.ReadingQuery{TrialID: "T1", SiteID: "S1", PatientID: "P1", Limit: tc.limit})
			if err != nil {
				t.Fatalf("PatientReadings: %v", err)
			}
			if len(recs) != tc.want {
				t.Fatalf("got %d readings, want %d", len(recs), tc.want)
			}
			if !slices.IsSortedFunc(recs, func(a, b store.Record) int {
				return a.Reading.MeasuredAt.Compare(b.Reading.MeasuredAt)
			}) {
				t.Errorf("not oldest first")
			}
			if recs[0].Reading.ReadingID != in[0].Reading.ReadingID {
				t.Errorf("first = %s, want the oldest", recs[0].Reading.ReadingID)
			}
		})
	}
}

func testRecentReadings(t *testing.T, s store.Store) {
	// P1's readings by measured minute, in arrival order: late arrivals and a
	// tie at minute 20, as in testPatientReadings.
	minutes := []int{10, 20, 30, 40, 5, 20, 25}
	var p1 []string
	for _, m := range minutes {
		nr := newReading("P1", "T1", "S1", at(m))
		mustInsert(t, s, nr)
		p1 = append(p1, nr.Reading.ReadingID)
		mustInsert(t, s, newReading("P2", "T1", "S1", at(m)))
		mustInsert(t, s, newReading("P1", "T1", "S2", at(m)))
	}
	// Oldest first by measured_at; the tie at 20 in arrival order.
	order := []int{4, 0, 1, 5, 6, 2, 3}
	all := make([]string, len(order))
	for i, k := range order {
		all[i] = p1[k]
	}
	tests := []struct {
		name     string
		from, to time.Time
		limit    int
		want     []string
	}{
		{"everything", at(0), at(60), 100, all},
		{"the most recent 3", at(0), at(60), 3, all[4:]},
		{"bounds are inclusive", at(10), at(25), 100, all[1:5]},
		{"the most recent 2 up to minute 20: the tie's later arrival last", at(0), at(20), 2, all[2:4]},
		{"nothing in range", at(41), at(60), 100, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.RecentReadings(t.Context(), "T1", "S1", "P1", tc.from, tc.to, tc.limit)
			if err != nil {
				t.Fatalf("RecentReadings: %v", err)
			}
			ids := []string{}
			for _, r := range got {
				ids = append(ids, r.ReadingID)
				if r.PatientID != "P1" || r.SiteID != "S1" || r.Vitals.HeartRate == nil {
					t.Fatalf("reading %+v: another patient's, or without its vitals", r)
				}
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("got %v, want %v", ids, tc.want)
			}
		})
	}
}
