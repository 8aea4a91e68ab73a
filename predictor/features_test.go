package predictor_test

import (
	"encoding/json"
	"math"
	"os"
	"testing"
	"time"

	"vigil/predictor"
	"vigil/reading"
)

// golden is predictor-py/testdata/features_golden.json: worked cases that
// predictor-py's own feature code is tested against too, so the features
// the model was trained on and the ones Vigil sends cannot drift apart.
type golden struct {
	Cases []struct {
		Name     string `json:"name"`
		Readings []struct {
			MeasuredAt time.Time       `json:"measured_at"`
			Vitals     json.RawMessage `json:"vitals"`
		} `json:"readings"`
		Current    int                `json:"current"`
		NEWS2Total int                `json:"news2_total"`
		AgeBand    *int               `json:"age_band"`
		Expected   map[string]float64 `json:"expected"`
	} `json:"cases"`
}

func TestFeaturesMatchPredictorGolden(t *testing.T) {
	data, err := os.ReadFile("../predictor-py/testdata/features_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) < 5 {
		t.Fatalf("%d golden cases: the file lost its cases", len(g.Cases))
	}
	for _, tc := range g.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			obs := make([]predictor.Observation, len(tc.Readings))
			for i, r := range tc.Readings {
				var v reading.Vitals
				if err := json.Unmarshal(r.Vitals, &v); err != nil {
					t.Fatalf("reading %d: %v", i, err)
				}
				obs[i] = predictor.Observation{MeasuredAt: r.MeasuredAt, Vitals: v}
			}
			age := -1
			if tc.AgeBand != nil {
				age = *tc.AgeBand
			}
			got := predictor.Features(obs, tc.Current, tc.NEWS2Total, age)
			for name, want := range tc.Expected {
				v, ok := got[name]
				if !ok {
					t.Errorf("%s missing, want %v", name, want)
					continue
				}
				if math.Abs(float64(v)-want) > 1e-4*math.Max(1, math.Abs(want)) {
					t.Errorf("%s = %v, want %v", name, v, want)
				}
			}
			for name, v := range got {
				if _, ok := tc.Expected[name]; !ok {
					t.Errorf("%s = %v sent, but the golden case leaves it out", name, v)
				}
			}
		})
	}
}

// TestFeaturesUseTheLastReadingsOfTheWindow: a patient reporting every
// minute; only the 100 most recent readings count (FEATURES.md).
func TestFeaturesUseTheLastReadingsOfTheWindow(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	var obs []predictor.Observation
	for i := range 150 {
		hr := float64(60 + i)
		obs = append(obs, predictor.Observation{MeasuredAt: t0.Add(time.Duration(i) * time.Minute),
			Vitals: reading.Vitals{HeartRate: &hr}})
	}
	f := predictor.Features(obs, 149, 0, -1)
	if f["heart_rate"] != 209 || f["heart_rate_delta_24h"] != 209-110 {
		t.Fatalf("heart_rate %v, delta %v; want 209 and 99 (from the 100th reading before)", f["heart_rate"], f["heart_rate_delta_24h"])
	}
}
