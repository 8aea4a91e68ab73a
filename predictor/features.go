// Package predictor owns Vigil's side of the risk model: the features it
// computes from a patient's recent readings (predictor-py/FEATURES.md) and the
// gRPC client of predictor-py, which gathers concurrent predictions into
// batch calls, bounds each by a deadline, and stops calling a failing service
// (a circuit breaker) so that scoring carries on with the rules alone. It
// imports reading, metrics and the generated predictionpb, nothing else of
// Vigil's.
package predictor

import (
	"slices"
	"time"

	"vigil/reading"
)

//go:generate bash ../scripts/genproto.sh

// Window is how far back the features look, and MaxWindowReadings how many
// of the window's most recent readings they use at most: it bounds the work
// of one prediction for a patient reporting far more often than any
// schedule asks (FEATURES.md).
const (
	Window            = 24 * time.Hour
	MaxWindowReadings = 100
	// MinSlopeSpan is the least time a trend's readings must span.
	MinSlopeSpan = time.Hour
)

// Observation is one reading as the features see it.
type Observation struct {
	MeasuredAt time.Time
	Vitals     reading.Vitals
}

// trend vitals, in FEATURES.md's order.
var trendVitals = []struct {
	name string
	get  func(reading.Vitals) *float64
}{
	{"respiratory_rate", func(v reading.Vitals) *float64 { return v.RespiratoryRate }},
	{"spo2", func(v reading.Vitals) *float64 { return v.SpO2 }},
	{"systolic_bp", func(v reading.Vitals) *float64 { return v.SystolicBP }},
	{"heart_rate", func(v reading.Vitals) *float64 { return v.HeartRate }},
	{"temperature", func(v reading.Vitals) *float64 { return v.Temperature }},
}

// Features computes FEATURES.md's features for readings[current], given the
// patient's readings in store order (the current one among them), the
// current reading's NEWS2 total and the registry's age band (-1: unknown).
// A feature that cannot be computed is left out: the model imputes it, which
// a zero would silently defeat.
func Features(readings []Observation, current int, news2Total, ageBand int) map[string]float32 {
	cur := readings[current]
	from := cur.MeasuredAt.Add(-Window)
	var win []Observation
	for _, o := range readings {
		if !o.MeasuredAt.Before(from) && !o.MeasuredAt.After(cur.MeasuredAt) {
			win = append(win, o)
		}
	}
	slices.SortStableFunc(win, func(a, b Observation) int { return a.MeasuredAt.Compare(b.MeasuredAt) })
	if len(win) > MaxWindowReadings {
		win = win[len(win)-MaxWindowReadings:]
	}

	f := make(map[string]float32, 20)
	f["news2_total"] = float32(news2Total)
	if ageBand >= 0 {
		f["age_band"] = float32(ageBand)
	}
	for _, tv := range trendVitals {
		var xs, ys []float64
		var latest *float64
		for _, o := range win {
			if v := tv.get(o.Vitals); v != nil {
				xs = append(xs, o.MeasuredAt.Sub(win[0].MeasuredAt).Hours())
				ys = append(ys, *v)
				latest = v
			}
		}
		if v := tv.get(cur.Vitals); v != nil {
			latest = v
		}
		if latest == nil {
			continue
		}
		f[tv.name] = float32(*latest)
		if len(ys) < 2 {
			continue
		}
		f[tv.name+"_delta_24h"] = float32(*latest - ys[0])
		if s, ok := slope(xs, ys); ok {
			f[tv.name+"_slope_24h"] = float32(s)
		}
	}
	// Consciousness and oxygen: the most recent answer, the current
	// reading's first.
	var level *string
	var oxygen *bool
	for _, o := range win {
		if o.Vitals.Consciousness != nil {
			level = o.Vitals.Consciousness
		}
		if o.Vitals.OnOxygen != nil {
			oxygen = o.Vitals.OnOxygen
		}
	}
	if cur.Vitals.Consciousness != nil {
		level = cur.Vitals.Consciousness
	}
	if cur.Vitals.OnOxygen != nil {
		oxygen = cur.Vitals.OnOxygen
	}
	if level != nil {
		f["not_alert"] = boolFloat(*level != reading.Alert)
	}
	if oxygen != nil {
		f["on_oxygen"] = boolFloat(*oxygen)
	}
	return f
}

// slope is the least-squares slope of ys against xs (hours, ascending); ok
// is false when they span less than MinSlopeSpan: a per-hour rate from
// readings minutes apart is noise scaled up by the short interval.
func slope(xs, ys []float64) (float64, bool) {
	if xs[len(xs)-1]-xs[0] < MinSlopeSpan.Hours() {
		return 0, false
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	n := float64(len(xs))
	mx, my = mx/n, my/n
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	return sxy / sxx, true
}

func boolFloat(b bool) float32 {
	if b {
		return 1
	}
	return 0
}
