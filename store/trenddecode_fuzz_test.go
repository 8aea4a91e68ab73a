package store

import (
	"encoding/json"
	"testing"

	"vigil/reading"
)

// FuzzTrendDecode: the trend's direct scan of stored documents never panics
// and, on any valid JSON document, agrees with encoding/json (it either
// finds the same values or hands the document to encoding/json).
func FuzzTrendDecode(f *testing.F) {
	f.Add([]byte(`{"reading_id":"r","vitals":{"respiratory_rate":18,"spo2":96,"heart_rate":88,"temperature":37.2}}`),
		[]byte(`{"news2":{"total":7,"band":"high"}}`))
	f.Add([]byte(`{"vitals":{"spo2":9.6e1,"systolic_bp":-0}}`), []byte(`{"news2":{"total":0}}`))
	f.Add([]byte(`{"patient_id":"\"vitals\":{","vitals":{}}`), []byte(nil))
	f.Add([]byte(`{"vitals":{"heart_rate":1,"heart_rate":2}}`), []byte(`{"news2":{"partial":true,"total":3}}`))
	f.Fuzz(func(t *testing.T, readingDoc, scoreDoc []byte) {
		var got trendValues
		err := got.decode(readingDoc, scoreDoc)
		var r struct {
			Vitals reading.Vitals `json:"vitals"`
		}
		if json.Unmarshal(readingDoc, &r) != nil {
			return
		}
		var sc struct {
			NEWS2 struct {
				Total *float64 `json:"total"`
			} `json:"news2"`
		}
		if scoreDoc != nil && json.Unmarshal(scoreDoc, &sc) != nil {
			return
		}
		if err != nil {
			t.Fatalf("decode failed on documents encoding/json reads: %v", err)
		}
		var want trendValues
		for i, p := range [...]*float64{r.Vitals.RespiratoryRate, r.Vitals.SpO2, r.Vitals.SystolicBP,
			r.Vitals.HeartRate, r.Vitals.Temperature} {
			if p != nil {
				want.v[i], want.has[i] = *p, true
			}
		}
		if scoreDoc != nil && sc.NEWS2.Total != nil {
			want.v[TrendNEWS2], want.has[TrendNEWS2] = *sc.NEWS2.Total, true
		}
		if got != want {
			t.Fatalf("reading %s score %s: scan %+v, encoding/json %+v", readingDoc, scoreDoc, got, want)
		}
	})
}
