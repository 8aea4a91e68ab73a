//go:build linux

package bench

import (
	"math/rand/v2"
	"testing"
	"time"

	"vigil/reading"
)

// TestReadingBodyDecodes checks the hand-built bodies against Vigil's own
// strict decoder and plausibility checks: a body the server refused would
// make every figure of the bench meaningless.
func TestReadingBodyDecodes(t *testing.T) {
	ids := newIDCodec(7)
	now := time.Date(2026, 11, 27, 8, 0, 5, 123e6, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	b := newBaseline(rng)
	partial := b.normal(rng)
	partial.temp10 = 0
	for _, tc := range []struct {
		name string
		v    vitals
	}{
		{"normal", b.normal(rng)},
		{"partial", partial},
		{"critical", critical()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := appendReading(nil, &ids, 99, "P00001-00000007", "W00000007", "S0001", now, tc.v)
			r, err := reading.Decode(body)
			if err != nil {
				t.Fatalf("Decode(%s): %v", body, err)
			}
			if err := r.Validate(now.Add(time.Second)); err != nil {
				t.Fatalf("Validate(%s): %v", body, err)
			}
			if r.ReadingID != ids.id(99) || r.PatientID != "P00001-00000007" || r.TrialID != "W00000007" ||
				r.SiteID != "S0001" || !r.MeasuredAt.Equal(now) {
				t.Errorf("ids or time changed: %+v", r)
			}
			v := r.Vitals
			if *v.RespiratoryRate != float64(tc.v.rr) || *v.SpO2 != float64(tc.v.spo2) || *v.SystolicBP != float64(tc.v.sbp) ||
				*v.DiastolicBP != float64(tc.v.dbp) || *v.HeartRate != float64(tc.v.hr) || *v.Consciousness != tc.v.consciousness {
				t.Errorf("vitals changed: %s", body)
			}
			if tc.v.temp10 == 0 && v.Temperature != nil || tc.v.temp10 != 0 && (v.Temperature == nil || *v.Temperature != float64(tc.v.temp10)/10) {
				t.Errorf("temperature: got %v, want %d tenths", v.Temperature, tc.v.temp10)
			}
			if (tc.v.symptom != "") != (len(r.Symptoms) == 1) {
				t.Errorf("symptoms: %+v", r.Symptoms)
			}
		})
	}
}

// TestNormalReadingsScoreZero keeps ordinary readings inside the ranges where
// every NEWS2 parameter scores 0 (Royal College of Physicians, 2017), so
// that they never raise an alert and every alert in a run comes from a
// critical reading.
func TestNormalReadingsScoreZero(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		b := newBaseline(rng)
		for range 50 {
			v := b.normal(rng)
			in := func(name string, x, lo, hi int) {
				if x < lo || x > hi {
					t.Fatalf("%s %d outside %d–%d: %+v", name, x, lo, hi, v)
				}
			}
			in("respiratory_rate", v.rr, 12, 20)
			in("spo2", v.spo2, 96, 100)
			in("systolic_bp", v.sbp, 111, 219)
			in("heart_rate", v.hr, 51, 90)
			in("diastolic_bp", v.dbp, 20, v.sbp-1)
			if v.temp10 != 0 {
				in("temperature (tenths)", v.temp10, 361, 380)
			}
			if v.consciousness != reading.Alert || v.symptom != "" {
				t.Fatalf("not an ordinary reading: %+v", v)
			}
		}
	}
}

func BenchmarkAppendReading(b *testing.B) {
	ids := newIDCodec(7)
	rng := rand.New(rand.NewPCG(1, 2))
	base := newBaseline(rng)
	buf := make([]byte, 0, 1024)
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = appendReading(buf[:0], &ids, uint64(i), "P00001-00000007", "W00000007", "S0001", now, base.normal(rng))
	}
}
