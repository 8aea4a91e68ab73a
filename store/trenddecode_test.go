package store

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"vigil/reading"
	"vigil/scoring"
)

// slowValues decodes with encoding/json alone: what decode must agree with.
func slowValues(t *testing.T, readingDoc, scoreDoc []byte) trendValues {
	t.Helper()
	var tv trendValues
	var r reading.Reading
	if err := json.Unmarshal(readingDoc, &r); err != nil {
		t.Fatalf("reference decode of %s: %v", readingDoc, err)
	}
	for i, p := range [...]*float64{r.Vitals.RespiratoryRate, r.Vitals.SpO2, r.Vitals.SystolicBP,
		r.Vitals.HeartRate, r.Vitals.Temperature} {
		if p != nil {
			tv.v[i], tv.has[i] = *p, true
		}
	}
	if scoreDoc != nil {
		var sc scoring.Score
		if err := json.Unmarshal(scoreDoc, &sc); err != nil {
			t.Fatalf("reference decode of %s: %v", scoreDoc, err)
		}
		tv.v[TrendNEWS2], tv.has[TrendNEWS2] = float64(sc.NEWS2.Total), true
	}
	return tv
}

// The stores' own documents, whatever their ids and vitals hold, take the
// fast path and agree with encoding/json.
func TestTrendDecodeStoredDocuments(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	odd := []string{"P1", `"vitals":{"heart_rate":1}`, `x\"vitals\":{`, "<&>", "é\u2028", `"news2":{"total":9}`, ""}
	pick := func() string { return odd[rng.IntN(len(odd))] }
	maybe := func(v float64) *float64 {
		if rng.IntN(3) == 0 {
			return nil
		}
		return &v
	}
	for i := range 2000 {
		c := []string{reading.Alert, `new"confusion`}[rng.IntN(2)]
		r := reading.Reading{ReadingID: pick(), PatientID: pick(), TrialID: pick(), SiteID: pick(),
			MeasuredAt: time.Unix(rng.Int64N(2e9), rng.Int64N(1e9)),
			Vitals: reading.Vitals{RespiratoryRate: maybe(float64(rng.IntN(60))), SpO2: maybe(70 + rng.Float64()*30),
				SpO2Scale: []*int{nil, new(2)}[rng.IntN(2)], OnOxygen: []*bool{nil, new(true)}[rng.IntN(2)],
				SystolicBP: maybe(float64(60 + rng.IntN(200))), DiastolicBP: maybe(80),
				HeartRate: maybe(float64(20 + rng.IntN(250))), Consciousness: []*string{nil, &c}[rng.IntN(2)],
				Temperature: maybe(34 + float64(rng.IntN(80))/10)},
			Symptoms: []reading.Symptom{{Term: pick(), Grade: 2}},
		}
		rdoc, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var sdoc []byte
		if rng.IntN(2) == 0 {
			sc := scoring.Score{Kind: "score", ReadingID: r.ReadingID, PatientID: pick(), TrialID: pick(),
				NEWS2: scoring.NEWS2{Total: rng.IntN(20), Band: scoring.BandMedium, Partial: rng.IntN(2) == 0,
					Missing: []string{"spo2"}, Parameters: scoring.Parameters{scoring.ParamSpO2: 3}},
				Model: &scoring.Model{Probability: 0.3, Version: pick()}, Risk: scoring.RiskHigh}
			if sdoc, err = json.Marshal(sc); err != nil {
				t.Fatal(err)
			}
		}
		var fast trendValues
		if !fast.scanVitals(rdoc) {
			t.Fatalf("doc %d: the fast path refused a stored reading: %s", i, rdoc)
		}
		if sdoc != nil {
			if _, ok := scanNEWS2Total(sdoc); !ok {
				t.Fatalf("doc %d: the fast path refused a stored score: %s", i, sdoc)
			}
		}
		var got trendValues
		if err := got.decode(rdoc, sdoc); err != nil {
			t.Fatalf("doc %d: %v", i, err)
		}
		if want := slowValues(t, rdoc, sdoc); got != want {
			t.Fatalf("doc %d: %s %s\n got %+v\nwant %+v", i, rdoc, sdoc, got, want)
		}
	}
}

// Documents in any other form (spacing, key order, nesting, nulls) are
// decoded properly, and broken ones are errors.
func TestTrendDecodeOtherForms(t *testing.T) {
	score := []byte(`{"kind":"score","news2":{"band":"low","total":4}}`)
	for _, doc := range []string{
		`{"reading_id":"a","vitals": {"heart_rate": 80, "spo2": 97.5}}`,
		`{"vitals":{"heart_rate":80,"spo2":97.5,"temperature":null}}`,
		`{"vitals":{"extra":{"heart_rate":1},"heart_rate":80,"spo2":97.5}}`,
		`{"vitals":{"extra":[1,2],"heart_rate":80,"spo2":975e-1}}`,
		` {"vitals":{"heart_rate":80,"spo2":97.5}}`,
		`{"vitals":{"heart_rate":80,"spo2":97.5,"consciousness":"a\"b,}"}}`,
	} {
		var got trendValues
		if err := got.decode([]byte(doc), score); err != nil {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		want := trendValues{}
		want.v[TrendHeartRate], want.has[TrendHeartRate] = 80, true
		want.v[TrendSpO2], want.has[TrendSpO2] = 97.5, true
		want.v[TrendNEWS2], want.has[TrendNEWS2] = 4, true
		if got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", doc, got, want)
		}
	}

	var tv trendValues
	if err := tv.decode([]byte(`{"vitals":{}}`), []byte(`{"news2":{}}`)); err != nil || tv != (trendValues{}) {
		t.Errorf("no vitals, a score without a total: %+v, %v; want nothing", tv, err)
	}
	for _, bad := range [][2]string{
		{`{"vitals":{"heart_rate":"fast"}}`, ""},
		{`{"vitals":{"heart_rate":80`, ""},
		{`not json`, ""},
		{`{"vitals":{"heart_rate":80}}`, `{"news2":{"total":"x"}}`},
		{`{"vitals":{"heart_rate":80}}`, `{"news2":`},
	} {
		var sdoc []byte
		if bad[1] != "" {
			sdoc = []byte(bad[1])
		}
		if err := tv.decode([]byte(bad[0]), sdoc); err == nil {
			t.Errorf("decode(%s, %s): no error", bad[0], bad[1])
		}
	}
}

func BenchmarkTrendDecode(b *testing.B) {
	rows := trendRows(1, time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	r := rows[3]
	if !bytes.Contains(r.Reading, vitalsKey) || !strings.Contains(string(r.Score), string(news2Key)) {
		b.Fatal("fixture is not in the stored form")
	}
	var tv trendValues
	b.ReportAllocs()
	for b.Loop() {
		if err := tv.decode(r.Reading, r.Score); err != nil {
			b.Fatal(err)
		}
	}
}
