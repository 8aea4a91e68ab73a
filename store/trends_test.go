package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"vigil/reading"
	"vigil/scoring"
)

func TestNewTrendQuery(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		now            string
		hours, buckets int
		from, to       string
		bucket         time.Duration
	}{
		{"2026-11-27T09:41:12.5Z", 24, 48, "2026-11-26T10:00:00Z", "2026-11-27T10:00:00Z", 30 * time.Minute},
		// On a boundary, the window ends with the bucket that starts there.
		{"2026-11-27T10:00:00Z", 24, 48, "2026-11-26T10:30:00Z", "2026-11-27T10:30:00Z", 30 * time.Minute},
		{"2026-11-27T09:59:59.999999999Z", 24, 48, "2026-11-26T10:00:00Z", "2026-11-27T10:00:00Z", 30 * time.Minute},
		{"2026-11-27T09:41:12+02:00", 168, 96, "2026-11-20T09:15:00Z", "2026-11-27T09:15:00Z", 105 * time.Minute},
		// 3600/7 is not whole: the bucket rounds up to 515 s and the
		// window is a little longer than an hour.
		{"2026-11-27T09:41:12Z", 1, 7, "2026-11-27T08:42:30Z", "2026-11-27T09:42:35Z", 515 * time.Second},
	}
	for _, tc := range tests {
		q := NewTrendQuery("T", "S", at(tc.now), tc.hours, tc.buckets)
		if !q.From.Equal(at(tc.from)) || !q.To().Equal(at(tc.to)) || q.Bucket != tc.bucket || q.Buckets != tc.buckets {
			t.Errorf("NewTrendQuery(%s, %d, %d) = [%v, %v) by %v ×%d, want [%s, %s) by %v",
				tc.now, tc.hours, tc.buckets, q.From, q.To(), q.Bucket, q.Buckets, tc.from, tc.to, tc.bucket)
		}
		if now := at(tc.now); now.Before(q.To().Add(-q.Bucket)) || !now.Before(q.To()) {
			t.Errorf("NewTrendQuery(%s): now is not in the last bucket", tc.now)
		}
		if q.From.Location() != time.UTC {
			t.Errorf("From %v is not UTC", q.From)
		}
	}
}

// rowsOf supplies rows to CollectTrends, counting the calls.
func rowsOf(rows []TrendRow, calls *int) func(*TrendRow) (bool, error) {
	i := 0
	return func(r *TrendRow) (bool, error) {
		*calls++
		if i == len(rows) {
			return false, nil
		}
		*r = rows[i]
		i++
		return true, nil
	}
}

// row is a reading of patient at t with the given values of the series
// (NaN: missing; a sixth value: scored with that NEWS2 total), as a store
// would supply it.
func row(patient string, at time.Time, vals ...float64) TrendRow {
	var v reading.Vitals
	ptrs := [...]**float64{&v.RespiratoryRate, &v.SpO2, &v.SystolicBP, &v.HeartRate, &v.Temperature}
	for i, x := range vals {
		if i < len(ptrs) && !math.IsNaN(x) {
			*ptrs[i] = &x
		}
	}
	r := reading.Reading{ReadingID: "r-" + patient + at.Format(time.RFC3339Nano), PatientID: patient,
		TrialID: "T", SiteID: "S", MeasuredAt: at, Vitals: v, Symptoms: []reading.Symptom{{Term: "nausea", Grade: 1}}}
	doc, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	tr := TrendRow{PatientID: []byte(patient), MeasuredAt: at, Reading: doc}
	if len(vals) > TrendNEWS2 && !math.IsNaN(vals[TrendNEWS2]) {
		sc := scoring.Score{Kind: "score", ReadingID: r.ReadingID, PatientID: patient, MeasuredAt: at,
			NEWS2: scoring.NEWS2{Total: int(vals[TrendNEWS2]), Band: scoring.BandLow,
				Parameters: scoring.Parameters{scoring.ParamHeartRate: 1}},
			Model: &scoring.Model{Probability: 0.2, Version: "m"}, Risk: scoring.RiskLow}
		if tr.Score, err = json.Marshal(sc); err != nil {
			panic(err)
		}
	}
	return tr
}

func TestCollectTrends(t *testing.T) {
	from := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	q := TrendQuery{TrialID: "T", SiteID: "S", From: from, Bucket: time.Hour, Buckets: 4}
	nan := math.NaN()
	// Newest first, as a backend supplies them; the patient id buffer is
	// reused between rows, as a backend's may be.
	rows := []TrendRow{
		row("P2", from.Add(4*time.Hour), 99),                           // the end: excluded
		row("P2", from.Add(4*time.Hour-1), 20, 97, nan, nan, 37.25, 3), // last bucket
		row("P1", from.Add(90*time.Minute), 18, nan, nan, 80, nan, 2),
		row("P1", from.Add(61*time.Minute), 17, nan, nan, 81, nan, nan),
		row("P1", from.Add(time.Hour), 16, nan, nan, 83),
		row("P1", from, nan, 95),                  // the start: bucket 0
		row("P1", from.Add(-1), 1, 1, 1, 1, 1, 1), // before: excluded
	}
	buf := make([]byte, 0, 8)
	calls := 0
	src := rowsOf(rows, &calls)
	tr, err := CollectTrends(q, func(r *TrendRow) (bool, error) {
		ok, err := src(r)
		buf = append(buf[:0], r.PatientID...)
		r.PatientID = buf
		return ok, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Rows != 7 || tr.Truncated || calls != 8 {
		t.Errorf("rows %d truncated %v calls %d, want 7, false, 8", tr.Rows, tr.Truncated, calls)
	}
	got, err := json.Marshal(tr)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"trial_id":"T","site_id":"S","from":"2026-11-26T10:00:00Z","to":"2026-11-26T14:00:00Z",` +
		`"bucket_seconds":3600,"vitals":["respiratory_rate","spo2","systolic_bp","heart_rate","temperature","news2"],` +
		`"patients":{` +
		`"P1":{"respiratory_rate":[null,17,null,null],"spo2":[95,null,null,null],"systolic_bp":[null,null,null,null],` +
		`"heart_rate":[null,81.3,null,null],"temperature":[null,null,null,null],"news2":[null,2,null,null]},` +
		`"P2":{"respiratory_rate":[null,null,null,20],"spo2":[null,null,null,97],"systolic_bp":[null,null,null,null],` +
		`"heart_rate":[null,null,null,null],"temperature":[null,null,null,37.3],"news2":[null,null,null,3]}},` +
		`"truncated":false}`
	if string(got) != want {
		t.Errorf("reply\n got %s\nwant %s", got, want)
	}
}

func TestCollectTrendsCap(t *testing.T) {
	from := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	var rows []TrendRow
	for i := range 10 {
		rows = append(rows, row("P1", from.Add(time.Duration(9-i)*time.Minute), float64(i)))
	}
	for _, tc := range []struct {
		max, rows, calls int
		truncated        bool
	}{
		{10, 10, 11, false},
		{11, 10, 11, false},
		{9, 9, 10, true},
		{1, 1, 2, true},
	} {
		calls := 0
		q := TrendQuery{From: from, Bucket: time.Minute, Buckets: 10, MaxRows: tc.max}
		tr, err := CollectTrends(q, rowsOf(rows, &calls))
		if err != nil {
			t.Fatal(err)
		}
		if tr.Rows != tc.rows || tr.Truncated != tc.truncated || calls != tc.calls || calls > q.Limit() {
			t.Errorf("max %d: rows %d truncated %v calls %d (limit %d), want %d %v %d",
				tc.max, tr.Rows, tr.Truncated, calls, q.Limit(), tc.rows, tc.truncated, tc.calls)
		}
	}
}

func TestCollectTrendsErrors(t *testing.T) {
	boom := errors.New("boom")
	q := TrendQuery{From: time.Now(), Bucket: time.Minute, Buckets: 4}
	if _, err := CollectTrends(q, func(*TrendRow) (bool, error) { return false, boom }); !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	q.Buckets = 0
	if _, err := CollectTrends(q, func(*TrendRow) (bool, error) { return false, nil }); err == nil {
		t.Error("no buckets: no error")
	}
}

func TestTrendsJSONEscapesIDs(t *testing.T) {
	tr := Trends{TrialID: `T"1`, SiteID: "S<1>", From: time.Unix(0, 0), To: time.Unix(60, 0), Bucket: time.Minute,
		Patients: []PatientTrend{{PatientID: "Pé\n"}}}
	b := tr.AppendJSON(nil)
	var back struct {
		TrialID  string                    `json:"trial_id"`
		SiteID   string                    `json:"site_id"`
		Patients map[string]map[string]any `json:"patients"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if back.TrialID != tr.TrialID || back.SiteID != tr.SiteID || back.Patients["Pé\n"] == nil {
		t.Errorf("round trip of %s: %+v", b, back)
	}
}

// trendRows is a site's day: patients' readings every 15 minutes over 24
// hours, newest first, each scored, one vital in ten missing.
func trendRows(patients int, from time.Time) []TrendRow {
	const per = 96
	rows := make([]TrendRow, 0, patients*per)
	for k := per - 1; k >= 0; k-- {
		for p := range patients {
			at := from.Add(time.Duration(k)*15*time.Minute + time.Duration(p)*time.Second)
			vals := []float64{16 + float64(k%5), 95, 120, 80 + float64(p%20), 37.1, float64(k % 7)}
			if i := (k + p) % 10; i < TrendTemperature {
				vals[i] = math.NaN()
			}
			rows = append(rows, row(fmt.Sprintf("P%04d", p), at, vals...))
		}
	}
	return rows
}

// BenchmarkCollectTrends takes the values out of a 500-patient site's day
// (48,000 scored readings), buckets them into 48 buckets and encodes the
// reply: what the board's one request costs beyond the database.
func BenchmarkCollectTrends(b *testing.B) {
	from := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	rows := trendRows(500, from)
	q := TrendQuery{TrialID: "T008", SiteID: "S01", From: from, Bucket: 30 * time.Minute, Buckets: 48}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		i := 0
		tr, err := CollectTrends(q, func(r *TrendRow) (bool, error) {
			if i == len(rows) {
				return false, nil
			}
			*r = rows[i]
			i++
			return true, nil
		})
		if err != nil || len(tr.Patients) != 500 {
			b.Fatalf("%d patients, %v", len(tr.Patients), err)
		}
		buf = tr.AppendJSON(buf[:0])
	}
	b.ReportMetric(float64(len(rows)), "readings/op")
	b.ReportMetric(float64(len(buf)), "reply-bytes")
}

func TestAppendTenths(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 16: "16", 37.3: "37.3", 81.3: "81.3", 0.5: "0.5", -2.5: "-2.5", -0.4: "-0.4",
		96.3: "96.3", 1e20: "100000000000000000000", math.NaN(): "null", math.Inf(1): "null",
	} {
		if got := string(appendTenths(nil, v)); got != want {
			t.Errorf("appendTenths(%v) = %s, want %s", v, got, want)
		}
	}
}
