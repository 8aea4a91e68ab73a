package storetest

import (
	"fmt"
	"math"
	"testing"
	"time"

	"vigil/reading"
	"vigil/scoring"
	"vigil/store"
)

// RunTrends runs the conformance tests of Store.Trends, with open as in Run.
func RunTrends(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Buckets", testTrendBuckets},
		{"Truncated", testTrendTruncated},
		{"Empty", testTrendEmpty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// trendReading is a reading of P at t with only the given vitals.
func trendReading(patient, trial, site string, t time.Time, v reading.Vitals) store.NewReading {
	nr := newReading(patient, trial, site, t)
	nr.Reading.Vitals = v
	nr.Reading.Symptoms = nil
	return withContent(nr)
}

// scoredTrend stores a reading and, with total >= 0, a score of that NEWS2
// total.
func scoredTrend(t *testing.T, s store.Store, nr store.NewReading, total int) {
	t.Helper()
	mustInsert(t, s, nr)
	if total >= 0 {
		sc := newScore(nr.Reading, scoring.RiskLow, "r1")
		sc.NEWS2.Total = total
		mustSaveScore(t, s, sc)
	}
}

// series is a want of one series: bucket index → value; every other bucket
// is null.
type series map[int]float64

func checkSeries(t *testing.T, what string, got []float64, buckets int, want series) {
	t.Helper()
	if len(got) != buckets {
		t.Errorf("%s: %d values, want %d", what, len(got), buckets)
		return
	}
	for i, v := range got {
		w, ok := want[i]
		switch {
		case !ok && !math.IsNaN(v):
			t.Errorf("%s[%d] = %v, want null", what, i, v)
		case ok && v != w:
			t.Errorf("%s[%d] = %v, want %v", what, i, v, w)
		}
	}
}

func testTrendBuckets(t *testing.T, s store.Store) {
	// 24 hours in 48 half-hour buckets, ending with the bucket holding now.
	now := base.Add(10*time.Minute + 7*time.Second)
	q := store.NewTrendQuery("T1", "S1", now, 24, 48)
	from, to := q.From, q.To()
	if want := base.Add(30 * time.Minute); !to.Equal(want) || !from.Equal(want.Add(-24*time.Hour)) || q.Bucket != 30*time.Minute {
		t.Fatalf("NewTrendQuery: [%v, %v) by %v, want [%v, %v) by 30m", from, to, q.Bucket, want.Add(-24*time.Hour), want)
	}
	bucket := func(i int) time.Time { return from.Add(time.Duration(i) * q.Bucket) }
	hr := func(v float64) reading.Vitals { return reading.Vitals{HeartRate: ptr(v)} }

	// P1: the edges of the window and of a bucket, one heart rate each.
	scoredTrend(t, s, trendReading("P1", "T1", "S1", from, hr(61)), -1)                        // on the start: bucket 0
	scoredTrend(t, s, trendReading("P1", "T1", "S1", from.Add(-time.Nanosecond), hr(200)), -1) // before the window
	scoredTrend(t, s, trendReading("P1", "T1", "S1", bucket(1).Add(-time.Nanosecond), hr(63)), -1)
	scoredTrend(t, s, trendReading("P1", "T1", "S1", bucket(1), hr(71)), -1) // on a boundary: the later bucket
	scoredTrend(t, s, trendReading("P1", "T1", "S1", to.Add(-time.Nanosecond), hr(99)), -1)
	scoredTrend(t, s, trendReading("P1", "T1", "S1", to, hr(201)), -1) // the end is excluded

	// P2: several readings in one bucket are averaged; missing vitals are
	// null; only scored readings count for news2.
	full := func(rr, spo2, sbp, hrv, temp float64) reading.Vitals {
		return reading.Vitals{RespiratoryRate: ptr(rr), SpO2: ptr(spo2), SpO2Scale: ptr(1), OnOxygen: ptr(false),
			SystolicBP: ptr(sbp), DiastolicBP: ptr(70.0), HeartRate: ptr(hrv), Consciousness: ptr(reading.Alert),
			Temperature: ptr(temp)}
	}
	b10 := bucket(10)
	scoredTrend(t, s, trendReading("P2", "T1", "S1", b10.Add(time.Minute), full(16, 95, 120, 80, 37.0)), 3)
	scoredTrend(t, s, trendReading("P2", "T1", "S1", b10.Add(12*time.Minute), full(18, 96, 110, 81, 37.2)), 6)
	scoredTrend(t, s, trendReading("P2", "T1", "S1", b10.Add(29*time.Minute), full(19, 98, 121, 83, 37.6)), -1) // unscored
	// Bucket 20: only SpO2 and an unscored reading: everything else null.
	scoredTrend(t, s, trendReading("P2", "T1", "S1", bucket(20), reading.Vitals{SpO2: ptr(91.0)}), -1)
	// Bucket 30: a score but no temperature.
	v := full(20, 94, 100, 90, 0)
	v.Temperature = nil
	scoredTrend(t, s, trendReading("P2", "T1", "S1", bucket(30).Add(time.Second), v), 5)

	// Not this site's: another site, another trial; and P3 only outside the
	// window, so absent.
	scoredTrend(t, s, trendReading("P1", "T1", "S2", bucket(5), hr(150)), 9)
	scoredTrend(t, s, trendReading("P1", "T2", "S1", bucket(5), hr(151)), 9)
	scoredTrend(t, s, trendReading("P3", "T1", "S1", from.Add(-time.Hour), hr(152)), 9)

	tr, err := s.Trends(t.Context(), q)
	if err != nil {
		t.Fatalf("Trends: %v", err)
	}
	if tr.TrialID != "T1" || tr.SiteID != "S1" || !tr.From.Equal(from) || !tr.To.Equal(to) || tr.Bucket != q.Bucket ||
		tr.Buckets != 48 || tr.Truncated {
		t.Errorf("trend %s/%s [%v, %v) by %v ×%d truncated=%v, want T1/S1 [%v, %v) by %v ×48, not truncated",
			tr.TrialID, tr.SiteID, tr.From, tr.To, tr.Bucket, tr.Buckets, tr.Truncated, from, to, q.Bucket)
	}
	if len(tr.Patients) != 2 || tr.Patients[0].PatientID != "P1" || tr.Patients[1].PatientID != "P2" {
		ids := []string{}
		for _, p := range tr.Patients {
			ids = append(ids, p.PatientID)
		}
		t.Fatalf("patients %v, want [P1 P2]", ids)
	}
	p1, p2 := tr.Patients[0], tr.Patients[1]
	checkSeries(t, "P1 heart_rate", p1.Series[store.TrendHeartRate], 48, series{0: 62, 1: 71, 47: 99})
	for _, i := range []int{store.TrendRespiratoryRate, store.TrendSpO2, store.TrendSystolicBP, store.TrendTemperature, store.TrendNEWS2} {
		checkSeries(t, "P1 "+store.TrendVitals[i], p1.Series[i], 48, series{})
	}
	checkSeries(t, "P2 respiratory_rate", p2.Series[store.TrendRespiratoryRate], 48, series{10: 17.7, 30: 20})
	checkSeries(t, "P2 spo2", p2.Series[store.TrendSpO2], 48, series{10: 96.3, 20: 91, 30: 94})
	checkSeries(t, "P2 systolic_bp", p2.Series[store.TrendSystolicBP], 48, series{10: 117, 30: 100})
	checkSeries(t, "P2 heart_rate", p2.Series[store.TrendHeartRate], 48, series{10: 81.3, 30: 90})
	checkSeries(t, "P2 temperature", p2.Series[store.TrendTemperature], 48, series{10: 37.3})
	checkSeries(t, "P2 news2", p2.Series[store.TrendNEWS2], 48, series{10: 4.5, 30: 5})
	// Rows read: P1's four in the window (a store may also read the two
	// just outside it) and P2's five.
	if tr.Rows < 9 || tr.Rows > 11 {
		t.Errorf("Rows = %d, want 9 to 11", tr.Rows)
	}
}

func testTrendTruncated(t *testing.T, s store.Store) {
	now := base
	q := store.NewTrendQuery("T1", "S1", now, 1, 4) // four 15-minute buckets
	for i := range 4 {
		for _, p := range []string{"P1", "P2"} {
			nr := trendReading(p, "T1", "S1", q.From.Add(time.Duration(i)*q.Bucket+time.Minute),
				reading.Vitals{HeartRate: ptr(float64(60 + i))})
			scoredTrend(t, s, nr, i)
		}
	}
	for _, tc := range []struct {
		max       int
		truncated bool
		want      series // both patients' heart rate
	}{
		{0, false, series{0: 60, 1: 61, 2: 62, 3: 63}},
		{8, false, series{0: 60, 1: 61, 2: 62, 3: 63}},
		{7, true, series{1: 61, 2: 62, 3: 63}},
		{4, true, series{2: 62, 3: 63}},
	} {
		t.Run(fmt.Sprintf("max %d", tc.max), func(t *testing.T) {
			q := q
			q.MaxRows = tc.max
			tr, err := s.Trends(t.Context(), q)
			if err != nil {
				t.Fatalf("Trends: %v", err)
			}
			if tr.Truncated != tc.truncated {
				t.Errorf("Truncated = %v, want %v", tr.Truncated, tc.truncated)
			}
			if want := min(8, q.Limit()-1); tr.Rows != want {
				t.Errorf("Rows = %d, want %d", tr.Rows, want)
			}
			if len(tr.Patients) != 2 {
				t.Fatalf("%d patients, want 2", len(tr.Patients))
			}
			// The newest readings are read first: a cut drops the oldest
			// buckets. With 7, P1's and P2's bucket-0 readings tie on
			// measured_at, so exactly one of them is left out.
			if tc.max == 7 {
				got := 0
				for _, p := range tr.Patients {
					if !math.IsNaN(p.Series[store.TrendHeartRate][0]) {
						got++
					}
				}
				if got != 1 {
					t.Errorf("bucket 0 has a reading of %d patients, want 1", got)
				}
				return
			}
			for _, p := range tr.Patients {
				checkSeries(t, p.PatientID+" heart_rate", p.Series[store.TrendHeartRate], 4, tc.want)
			}
		})
	}
}

func testTrendEmpty(t *testing.T, s store.Store) {
	mustInsert(t, s, newReading("P1", "T1", "S1", base.Add(-48*time.Hour)))
	tr, err := s.Trends(t.Context(), store.NewTrendQuery("T1", "S1", base, 24, 48))
	if err != nil {
		t.Fatalf("Trends: %v", err)
	}
	if tr.Patients == nil || len(tr.Patients) != 0 || tr.Truncated || tr.Rows != 0 {
		t.Errorf("trend of a window without readings: %d patients (nil %v), truncated %v, rows %d; want an empty list",
			len(tr.Patients), tr.Patients == nil, tr.Truncated, tr.Rows)
	}
}

// SeedTrendSite stores a site's day for trend benchmarks: patients (P0000…)
// of T008/S01 with a scored reading every 15 minutes in the 24 hours before
// end, and returns the query of that day in 30-minute buckets.
func SeedTrendSite(tb testing.TB, s store.Store, patients int, end time.Time) store.TrendQuery {
	tb.Helper()
	q := store.NewTrendQuery("T008", "S01", end, 24, 48)
	const per = 96
	errs := make(chan error, 1)
	parallel(16, func(w int) {
		for i := w; i < patients*per; i += 16 {
			p, k := i%patients, i/patients
			at := q.From.Add(time.Duration(k)*15*time.Minute + time.Duration(p)*time.Second)
			nr := newReading(fmt.Sprintf("P%04d", p), "T008", "S01", at)
			nr.Reading.Vitals.HeartRate = ptr(70 + float64((p+k)%30))
			nr = withContent(nr)
			if _, err := s.InsertReading(tb.Context(), nr); err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
			sc := newScore(nr.Reading, scoring.RiskLow, "r1")
			sc.NEWS2.Total = k % 7
			if _, err := s.SaveScore(tb.Context(), sc); err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
		}
	})
	select {
	case err := <-errs:
		tb.Fatalf("seed: %v", err)
	default:
	}
	return q
}
