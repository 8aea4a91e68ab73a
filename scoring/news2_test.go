package scoring

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"vigil/reading"
)

func ptr[T any](v T) *T { return &v }

// scoreOne scores vitals holding a single item and returns that item's points.
func scoreOne(t *testing.T, v reading.Vitals, scale int, param string) int {
	t.Helper()
	n := ScoreNEWS2(v, scale)
	points, ok := n.Parameters[param]
	if !ok {
		t.Fatalf("parameter %s not scored: %+v", param, n)
	}
	return points
}

type edge struct {
	value  float64
	points int
}

func testEdges(t *testing.T, param string, set func(float64) reading.Vitals, scale int, edges []edge) {
	t.Helper()
	for _, e := range edges {
		t.Run(fmt.Sprintf("%s=%v", param, e.value), func(t *testing.T) {
			if got := scoreOne(t, set(e.value), scale, param); got != e.points {
				t.Errorf("%s %v scored %d, want %d", param, e.value, got, e.points)
			}
		})
	}
}

func TestRespiratoryRate(t *testing.T) {
	testEdges(t, ParamRespiratoryRate, func(f float64) reading.Vitals {
		return reading.Vitals{RespiratoryRate: &f}
	}, 1, []edge{
		{1, 3}, {8, 3}, {9, 1}, {11, 1}, {12, 0}, {20, 0}, {21, 2}, {24, 2}, {25, 3}, {80, 3},
		// Fractions, which Validate refuses, round to the nearest breath.
		{8.4, 3}, {8.5, 1}, {20.4, 0}, {20.5, 2},
	})
}

func TestSpO2Scale1(t *testing.T) {
	edges := []edge{{40, 3}, {91, 3}, {92, 2}, {93, 2}, {94, 1}, {95, 1}, {96, 0}, {100, 0}}
	for _, oxygen := range []*bool{nil, ptr(false), ptr(true)} {
		// On scale 1 oxygen scores only on its own row, never on the SpO2 row.
		testEdges(t, ParamSpO2, func(f float64) reading.Vitals {
			return reading.Vitals{SpO2: &f, OnOxygen: oxygen}
		}, 1, edges)
	}
}

func TestSpO2Scale2(t *testing.T) {
	values := []float64{40, 83, 84, 85, 86, 87, 88, 92, 93, 94, 95, 96, 97, 100}
	onAir := []int{3, 3, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}
	onOxygen := []int{3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3}
	for i, v := range values {
		for _, tc := range []struct {
			name   string
			oxygen *bool
			want   int
		}{
			{"air", ptr(false), onAir[i]},
			{"oxygen", ptr(true), onOxygen[i]},
			{"oxygen unknown, scored as air", nil, onAir[i]},
		} {
			t.Run(fmt.Sprintf("%s/%v", tc.name, v), func(t *testing.T) {
				n := ScoreNEWS2(reading.Vitals{SpO2: ptr(v), OnOxygen: tc.oxygen}, 2)
				if got := n.Parameters[ParamSpO2]; got != tc.want {
					t.Errorf("SpO2 %v on scale 2 (%s) scored %d, want %d", v, tc.name, got, tc.want)
				}
				if n.SpO2Scale != 2 {
					t.Errorf("SpO2Scale = %d, want 2", n.SpO2Scale)
				}
				_, scored := n.Parameters[ParamOnOxygen]
				if scored != (tc.oxygen != nil) || slices.Contains(n.Missing, ParamOnOxygen) == scored {
					t.Errorf("on_oxygen scored=%v, missing=%v", scored, n.Missing)
				}
			})
		}
	}
}

func TestSpO2ScaleOtherThan2IsScale1(t *testing.T) {
	for _, scale := range []int{-1, 0, 1, 3, 99} {
		n := ScoreNEWS2(reading.Vitals{SpO2: ptr(88.0), OnOxygen: ptr(true)}, scale)
		if n.SpO2Scale != 1 || n.Parameters[ParamSpO2] != 3 {
			t.Errorf("scale %d: SpO2Scale %d, SpO2 points %d; want scale 1, 3 points",
				scale, n.SpO2Scale, n.Parameters[ParamSpO2])
		}
	}
	// The scale is reported even when SpO2 was not measured.
	if n := ScoreNEWS2(reading.Vitals{HeartRate: ptr(80.0)}, 2); n.SpO2Scale != 2 {
		t.Errorf("SpO2Scale = %d, want 2", n.SpO2Scale)
	}
}

func TestOnOxygen(t *testing.T) {
	for _, scale := range []int{1, 2} {
		if got := scoreOne(t, reading.Vitals{OnOxygen: ptr(true)}, scale, ParamOnOxygen); got != 2 {
			t.Errorf("scale %d: oxygen scored %d, want 2", scale, got)
		}
		if got := scoreOne(t, reading.Vitals{OnOxygen: ptr(false)}, scale, ParamOnOxygen); got != 0 {
			t.Errorf("scale %d: air scored %d, want 0", scale, got)
		}
	}
	// Oxygen scores on its own row on top of SpO2: 2 + 3 on scale 2 at 97 %.
	n := ScoreNEWS2(reading.Vitals{SpO2: ptr(97.0), OnOxygen: ptr(true)}, 2)
	if n.Total != 5 {
		t.Errorf("SpO2 97 on oxygen, scale 2: total %d, want 5", n.Total)
	}
}

func TestSystolicBP(t *testing.T) {
	testEdges(t, ParamSystolicBP, func(f float64) reading.Vitals {
		return reading.Vitals{SystolicBP: &f}
	}, 1, []edge{
		{40, 3}, {90, 3}, {91, 2}, {100, 2}, {101, 1}, {110, 1}, {111, 0}, {219, 0}, {220, 3}, {300, 3},
	})
}

func TestHeartRate(t *testing.T) {
	testEdges(t, ParamHeartRate, func(f float64) reading.Vitals {
		return reading.Vitals{HeartRate: &f}
	}, 1, []edge{
		{20, 3}, {40, 3}, {41, 1}, {50, 1}, {51, 0}, {90, 0}, {91, 1}, {110, 1},
		{111, 2}, {130, 2}, {131, 3}, {300, 3},
		{40.4, 3}, {40.5, 1},
	})
}

func TestTemperature(t *testing.T) {
	testEdges(t, ParamTemperature, func(f float64) reading.Vitals {
		return reading.Vitals{Temperature: &f}
	}, 1, []edge{
		{25.0, 3}, {35.0, 3}, {35.04, 3}, {35.05, 1}, {35.1, 1},
		{36.0, 1}, {36.04, 1}, {36.05, 0}, {36.1, 0},
		{37.2, 0},
		{38.0, 0}, {38.04, 0}, {38.05, 1}, {38.1, 1},
		{39.0, 1}, {39.04, 1}, {39.05, 2}, {39.1, 2}, {45.0, 2},
	})
}

func TestConsciousness(t *testing.T) {
	for c, want := range map[string]int{
		reading.Alert:        0,
		reading.NewConfusion: 3,
		reading.Voice:        3,
		reading.Pain:         3,
		reading.Unresponsive: 3,
		// Validate refuses these; if one slips through it must not pass as alert.
		"sleepy": 3,
		"":       3,
		"Alert":  3,
	} {
		if got := scoreOne(t, reading.Vitals{Consciousness: ptr(c)}, 1, ParamConsciousness); got != want {
			t.Errorf("consciousness %q scored %d, want %d", c, got, want)
		}
	}
}

func TestNonFiniteScoresRed(t *testing.T) {
	nan := math.NaN()
	n := ScoreNEWS2(reading.Vitals{
		RespiratoryRate: &nan, SpO2: &nan, SystolicBP: &nan, HeartRate: &nan, Temperature: &nan,
	}, 1)
	for _, p := range []string{ParamRespiratoryRate, ParamSpO2, ParamSystolicBP, ParamHeartRate, ParamTemperature} {
		if n.Parameters[p] != 3 {
			t.Errorf("NaN %s scored %d, want 3", p, n.Parameters[p])
		}
	}
	for _, inf := range []float64{math.Inf(1), math.Inf(-1)} {
		if got := scoreOne(t, reading.Vitals{HeartRate: &inf}, 1, ParamHeartRate); got != 3 {
			t.Errorf("%v heart rate scored %d, want 3", inf, got)
		}
	}
}

func TestScoreNEWS2Full(t *testing.T) {
	v := reading.Vitals{
		RespiratoryRate: ptr(18.0),
		SpO2:            ptr(96.0),
		SpO2Scale:       ptr(1),
		OnOxygen:        ptr(false),
		SystolicBP:      ptr(118.0),
		DiastolicBP:     ptr(76.0),
		HeartRate:       ptr(88.0),
		Consciousness:   ptr(reading.Alert),
		Temperature:     ptr(37.2),
	}
	got := ScoreNEWS2(v, 1)
	want := NEWS2{
		Total: 0, Band: BandLow, Partial: false, Missing: nil, SpO2Scale: 1,
		Parameters: map[string]int{
			ParamRespiratoryRate: 0, ParamSpO2: 0, ParamOnOxygen: 0, ParamSystolicBP: 0,
			ParamHeartRate: 0, ParamConsciousness: 0, ParamTemperature: 0,
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}

	// The worst of every row: 3+3+2+3+3+3+3.
	worst := reading.Vitals{
		RespiratoryRate: ptr(30.0), SpO2: ptr(85.0), OnOxygen: ptr(true), SystolicBP: ptr(80.0),
		HeartRate: ptr(140.0), Consciousness: ptr(reading.Unresponsive), Temperature: ptr(34.0),
	}
	if n := ScoreNEWS2(worst, 1); n.Total != 20 || n.Band != BandHigh || n.Partial {
		t.Errorf("worst case: %+v, want total 20, high, complete", n)
	}
}

func TestScoreNEWS2Partial(t *testing.T) {
	tests := []struct {
		name    string
		v       reading.Vitals
		missing []string
		total   int
	}{
		{"nothing", reading.Vitals{}, params, 0},
		{"diastolic only, not a NEWS2 item", reading.Vitals{DiastolicBP: ptr(70.0)}, params, 0},
		{"spo2_scale only", reading.Vitals{SpO2Scale: ptr(2)}, params, 0},
		{"heart rate only", reading.Vitals{HeartRate: ptr(120.0)},
			[]string{ParamRespiratoryRate, ParamSpO2, ParamOnOxygen, ParamSystolicBP, ParamConsciousness, ParamTemperature}, 2},
		{"no oxygen or temperature", reading.Vitals{
			RespiratoryRate: ptr(22.0), SpO2: ptr(95.0), SystolicBP: ptr(105.0),
			HeartRate: ptr(95.0), Consciousness: ptr(reading.Alert),
		}, []string{ParamOnOxygen, ParamTemperature}, 5},
		{"temperature and respiratory rate", reading.Vitals{Temperature: ptr(39.5), RespiratoryRate: ptr(8.0)},
			[]string{ParamSpO2, ParamOnOxygen, ParamSystolicBP, ParamHeartRate, ParamConsciousness}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := ScoreNEWS2(tt.v, 1)
			if !n.Partial || !reflect.DeepEqual(n.Missing, tt.missing) || n.Total != tt.total {
				t.Errorf("got partial=%v missing=%v total=%d, want partial, %v, %d",
					n.Partial, n.Missing, n.Total, tt.missing, tt.total)
			}
			if len(n.Parameters)+len(n.Missing) != len(params) {
				t.Errorf("parameters %v and missing %v do not cover the chart", n.Parameters, n.Missing)
			}
			for _, m := range n.Missing {
				if _, ok := n.Parameters[m]; ok {
					t.Errorf("%s both scored and missing", m)
				}
			}
		})
	}
	if n := ScoreNEWS2(reading.Vitals{}, 1); n.Parameters == nil {
		t.Error("Parameters is nil; it must encode as {} not null")
	}
}

func TestBands(t *testing.T) {
	tests := []struct {
		name  string
		v     reading.Vitals
		total int
		band  string
	}{
		{"total 0", reading.Vitals{HeartRate: ptr(70.0)}, 0, BandLow},
		{"total 1", reading.Vitals{HeartRate: ptr(95.0)}, 1, BandLow},
		{"total 4 without a 3", reading.Vitals{RespiratoryRate: ptr(22.0), HeartRate: ptr(115.0)}, 4, BandLow},
		{"total 3 from a single 3", reading.Vitals{RespiratoryRate: ptr(8.0)}, 3, BandLowMedium},
		{"total 4 with a single 3", reading.Vitals{RespiratoryRate: ptr(25.0), HeartRate: ptr(95.0)}, 4, BandLowMedium},
		{"red from consciousness", reading.Vitals{Consciousness: ptr(reading.NewConfusion)}, 3, BandLowMedium},
		{"total 5 with a 3", reading.Vitals{RespiratoryRate: ptr(25.0), OnOxygen: ptr(true)}, 5, BandMedium},
		{"total 5 without a 3", reading.Vitals{RespiratoryRate: ptr(22.0), HeartRate: ptr(115.0), Temperature: ptr(38.5)}, 5, BandMedium},
		{"total 6", reading.Vitals{RespiratoryRate: ptr(22.0), HeartRate: ptr(115.0), OnOxygen: ptr(true)}, 6, BandMedium},
		{"total 6 with two 3s", reading.Vitals{RespiratoryRate: ptr(25.0), HeartRate: ptr(135.0)}, 6, BandMedium},
		{"total 7", reading.Vitals{RespiratoryRate: ptr(22.0), HeartRate: ptr(115.0), OnOxygen: ptr(true), Temperature: ptr(38.5)}, 7, BandHigh},
		{"total 7 with a 3", reading.Vitals{RespiratoryRate: ptr(25.0), HeartRate: ptr(115.0), OnOxygen: ptr(true)}, 7, BandHigh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := ScoreNEWS2(tt.v, 1)
			if n.Total != tt.total || n.Band != tt.band {
				t.Errorf("got total %d band %s, want %d %s (%v)", n.Total, n.Band, tt.total, tt.band, n.Parameters)
			}
		})
	}
}

func TestBandTable(t *testing.T) {
	for total := 0; total <= 20; total++ {
		for _, red := range []bool{false, true} {
			want := BandLow
			switch {
			case total >= 7:
				want = BandHigh
			case total >= 5:
				want = BandMedium
			case red:
				want = BandLowMedium
			}
			if got := band(total, red); got != want {
				t.Errorf("band(%d, %v) = %s, want %s", total, red, got, want)
			}
		}
	}
}

// TestScoreNEWS2Properties checks, over random readings, that the total is
// the sum of its parts, that the band follows from them, and that leaving
// out any item never raises the total: missingness can only under-estimate.
func TestScoreNEWS2Properties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(lo, hi int) *float64 {
		if rng.IntN(5) == 0 {
			return nil
		}
		return ptr(float64(lo + rng.IntN(hi-lo+1)))
	}
	states := []string{reading.Alert, reading.NewConfusion, reading.Voice, reading.Pain, reading.Unresponsive}
	for i := 0; i < 20000; i++ {
		v := reading.Vitals{
			RespiratoryRate: pick(1, 80),
			SpO2:            pick(40, 100),
			SystolicBP:      pick(40, 300),
			HeartRate:       pick(20, 300),
		}
		if rng.IntN(5) != 0 {
			v.OnOxygen = ptr(rng.IntN(2) == 0)
		}
		if rng.IntN(5) != 0 {
			v.Consciousness = ptr(states[rng.IntN(len(states))])
		}
		if rng.IntN(5) != 0 {
			v.Temperature = ptr(25 + float64(rng.IntN(2001))/100)
		}
		scale := 1 + rng.IntN(2)
		n := ScoreNEWS2(v, scale)

		sum, red := 0, false
		for _, p := range n.Parameters {
			if p < 0 || p > 3 {
				t.Fatalf("%+v: points %d out of 0..3", v, p)
			}
			sum += p
			red = red || p == 3
		}
		if sum != n.Total || n.Band != band(sum, red) || n.Partial != (len(n.Missing) > 0) {
			t.Fatalf("%+v: inconsistent %+v", v, n)
		}
		for _, drop := range []func(*reading.Vitals){
			func(v *reading.Vitals) { v.RespiratoryRate = nil },
			func(v *reading.Vitals) { v.SpO2 = nil },
			func(v *reading.Vitals) { v.OnOxygen = nil },
			func(v *reading.Vitals) { v.SystolicBP = nil },
			func(v *reading.Vitals) { v.HeartRate = nil },
			func(v *reading.Vitals) { v.Consciousness = nil },
			func(v *reading.Vitals) { v.Temperature = nil },
		} {
			w := v
			drop(&w)
			if m := ScoreNEWS2(w, scale); m.Total > n.Total {
				t.Fatalf("dropping an item raised the total from %d to %d: %+v", n.Total, m.Total, v)
			}
		}
	}
}

func TestRiskOf(t *testing.T) {
	tests := []struct {
		n    NEWS2
		want string
	}{
		{NEWS2{Total: 0, Band: BandLow}, RiskNone},
		{NEWS2{Total: 0, Band: BandLow, Partial: true}, RiskNone},
		{NEWS2{Total: 1, Band: BandLow}, RiskLow},
		{NEWS2{Total: 4, Band: BandLow}, RiskLow},
		{NEWS2{Total: 3, Band: BandLowMedium}, RiskMedium},
		{NEWS2{Total: 4, Band: BandLowMedium}, RiskMedium},
		{NEWS2{Total: 5, Band: BandMedium}, RiskHigh},
		{NEWS2{Total: 6, Band: BandMedium}, RiskHigh},
		{NEWS2{Total: 7, Band: BandHigh}, RiskCritical},
		{NEWS2{Total: 20, Band: BandHigh}, RiskCritical},
	}
	for _, tt := range tests {
		if got := RiskOf(tt.n); got != tt.want {
			t.Errorf("RiskOf(total %d, %s) = %s, want %s", tt.n.Total, tt.n.Band, got, tt.want)
		}
	}
}

func TestRulesVersion(t *testing.T) {
	if RulesVersion != "news2-rcp2017/1" {
		t.Errorf("RulesVersion = %q", RulesVersion)
	}
}

var (
	t0 = time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Hour)
)

func scoreOf(v reading.Vitals) Score {
	n := ScoreNEWS2(v, 1)
	return Score{
		Kind:         "score",
		ReadingID:    "6f1c2b1e-0a4b-4c5d-8e9f-0123456789ab",
		PatientID:    "P1001",
		TrialID:      "T008",
		SiteID:       "S01",
		MeasuredAt:   t0.Add(-time.Minute),
		ScoredAt:     t0,
		NEWS2:        n,
		Risk:         RiskOf(n),
		RulesVersion: RulesVersion,
	}
}

func TestAlertCandidate(t *testing.T) {
	tests := []struct {
		name     string
		v        reading.Vitals
		risk     string // overrides Score.Risk when set
		raised   bool
		severity string
		reasons  []string
	}{
		{"total 0", reading.Vitals{HeartRate: ptr(70.0)}, "", false, "", nil},
		{"total 4 without a 3", reading.Vitals{RespiratoryRate: ptr(22.0), HeartRate: ptr(115.0)}, "", false, "", nil},
		{"single 3", reading.Vitals{RespiratoryRate: ptr(8.0)}, "", true, RiskMedium, []string{ReasonSingleParameterRed}},
		{"total 4 with a 3", reading.Vitals{RespiratoryRate: ptr(25.0), HeartRate: ptr(95.0)}, "", true, RiskMedium, []string{ReasonSingleParameterRed}},
		{"total 5 without a 3", reading.Vitals{RespiratoryRate: ptr(22.0), HeartRate: ptr(115.0), Temperature: ptr(38.5)}, "", true, RiskHigh, []string{ReasonNEWS2High}},
		{"total 5 with a 3", reading.Vitals{RespiratoryRate: ptr(25.0), OnOxygen: ptr(true)}, "", true, RiskHigh, []string{ReasonNEWS2High, ReasonSingleParameterRed}},
		{"total 7", reading.Vitals{RespiratoryRate: ptr(22.0), HeartRate: ptr(115.0), OnOxygen: ptr(true), Temperature: ptr(38.5)}, "", true, RiskCritical, []string{ReasonNEWS2High}},
		{"total 7 with a 3", reading.Vitals{RespiratoryRate: ptr(25.0), HeartRate: ptr(115.0), OnOxygen: ptr(true)}, "", true, RiskCritical, []string{ReasonNEWS2High, ReasonSingleParameterRed}},
		{"risk raised above NEWS2", reading.Vitals{RespiratoryRate: ptr(8.0)}, RiskCritical, true, RiskCritical, []string{ReasonSingleParameterRed}},
		{"risk unset", reading.Vitals{RespiratoryRate: ptr(25.0), OnOxygen: ptr(true)}, "unset", true, RiskHigh, []string{ReasonNEWS2High, ReasonSingleParameterRed}},
		{"risk below NEWS2", reading.Vitals{RespiratoryRate: ptr(25.0), OnOxygen: ptr(true)}, RiskLow, true, RiskHigh, []string{ReasonNEWS2High, ReasonSingleParameterRed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := scoreOf(tt.v)
			switch tt.risk {
			case "":
			case "unset":
				s.Risk = ""
			default:
				s.Risk = tt.risk
			}
			a, ok := AlertCandidate(s)
			if ok != tt.raised {
				t.Fatalf("raised = %v, want %v (%+v)", ok, tt.raised, s.NEWS2)
			}
			if !ok {
				if !reflect.DeepEqual(a, Alert{}) {
					t.Errorf("no alert, but got %+v", a)
				}
				return
			}
			want := Alert{
				Kind:      "alert",
				PatientID: "P1001",
				TrialID:   "T008",
				SiteID:    "S01",
				Severity:  tt.severity,
				Status:    StatusOpen,
				Reasons:   tt.reasons,
				ReadingID: s.ReadingID,
				OpenedAt:  t0,
				UpdatedAt: t0,
			}
			// Findings and CurrentRisk are covered by the rules tests.
			a.Findings, a.CurrentRisk = nil, ""
			if !reflect.DeepEqual(a, want) {
				t.Errorf("got  %+v\nwant %+v", a, want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	current := Alert{
		Kind: "alert", AlertID: "A1", PatientID: "P1001", TrialID: "T008", SiteID: "S01",
		Severity: RiskHigh, Status: StatusOpen, Reasons: []string{ReasonNEWS2High},
		ReadingID: "r1", OpenedAt: t0, UpdatedAt: t0,
	}
	candidate := func(severity string, reasons ...string) Alert {
		return Alert{
			Kind: "alert", PatientID: "P1001", TrialID: "T008", SiteID: "S01",
			Severity: severity, Status: StatusOpen, Reasons: reasons,
			ReadingID: "r2", OpenedAt: t1, UpdatedAt: t1,
		}
	}
	with := func(a Alert, change func(*Alert)) *Alert { change(&a); return &a }

	tests := []struct {
		name      string
		current   *Alert
		candidate Alert
		want      Alert
		changed   bool
	}{
		{"no current alert: due for escalation at once", nil, candidate(RiskMedium, ReasonSingleParameterRed),
			*with(candidate(RiskMedium, ReasonSingleParameterRed), func(a *Alert) { a.Tier, a.NextEscalationAt = -1, &t1 }), true},
		{"severity rises: the current tier is told again now", &current, candidate(RiskCritical, ReasonNEWS2High),
			*with(current, func(a *Alert) {
				a.Severity, a.ReadingID, a.UpdatedAt = RiskCritical, "r2", t1
				a.Tier, a.NextEscalationAt = -1, &t1
			}), true},
		{"severity does not fall", &current, candidate(RiskMedium, ReasonNEWS2High), current, false},
		{"same severity, same reasons", &current, candidate(RiskHigh, ReasonNEWS2High), current, false},
		{"same severity, fewer reasons", with(current, func(a *Alert) {
			a.Reasons = []string{ReasonNEWS2High, ReasonSingleParameterRed}
		}), candidate(RiskHigh, ReasonSingleParameterRed), *with(current, func(a *Alert) {
			a.Reasons = []string{ReasonNEWS2High, ReasonSingleParameterRed}
		}), false},
		{"reason added at lower severity", &current, candidate(RiskMedium, ReasonSingleParameterRed),
			*with(current, func(a *Alert) {
				a.Reasons = []string{ReasonNEWS2High, ReasonSingleParameterRed}
				a.ReadingID, a.UpdatedAt = "r2", t1
			}), true},
		{"reasons union is sorted", with(current, func(a *Alert) {
			a.Reasons = []string{ReasonSingleParameterRed}
		}), candidate(RiskHigh, ReasonNEWS2High, ReasonModelSAERisk), *with(current, func(a *Alert) {
			a.Reasons = []string{ReasonModelSAERisk, ReasonNEWS2High, ReasonSingleParameterRed}
			a.ReadingID, a.UpdatedAt = "r2", t1
		}), true},
		{"acknowledged, severity rises: re-opened, escalation restarts", with(current, func(a *Alert) { a.Status = StatusAcknowledged }),
			candidate(RiskCritical, ReasonNEWS2High), *with(current, func(a *Alert) {
				a.Severity, a.ReadingID, a.UpdatedAt = RiskCritical, "r2", t1
				a.Tier, a.NextEscalationAt = -1, &t1
			}), true},
		{"acknowledged, reason added: stays acknowledged", with(current, func(a *Alert) { a.Status = StatusAcknowledged }),
			candidate(RiskHigh, ReasonSingleParameterRed), *with(current, func(a *Alert) {
				a.Status = StatusAcknowledged
				a.Reasons = []string{ReasonNEWS2High, ReasonSingleParameterRed}
				a.ReadingID, a.UpdatedAt = "r2", t1
			}), true},
		{"acknowledged, no worse", with(current, func(a *Alert) { a.Status = StatusAcknowledged }),
			candidate(RiskHigh, ReasonNEWS2High), *with(current, func(a *Alert) { a.Status = StatusAcknowledged }), false},
		{"escalated, severity rises: stays escalated", with(current, func(a *Alert) { a.Status = StatusEscalated }),
			candidate(RiskCritical, ReasonNEWS2High), *with(current, func(a *Alert) {
				a.Status, a.Severity, a.ReadingID, a.UpdatedAt = StatusEscalated, RiskCritical, "r2", t1
				a.Tier, a.NextEscalationAt = -1, &t1
			}), true},
		{"medium to high", with(current, func(a *Alert) { a.Severity = RiskMedium }),
			candidate(RiskHigh, ReasonNEWS2High), *with(current, func(a *Alert) {
				a.Severity, a.ReadingID, a.UpdatedAt = RiskHigh, "r2", t1
				a.Tier, a.NextEscalationAt = -1, &t1
			}), true},
		{"critical stays critical", with(current, func(a *Alert) { a.Severity = RiskCritical }),
			candidate(RiskHigh, ReasonNEWS2High), *with(current, func(a *Alert) { a.Severity = RiskCritical }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before Alert
			if tt.current != nil {
				before = *tt.current
				before.Reasons = slices.Clone(tt.current.Reasons)
			}
			got, changed := Merge(tt.current, tt.candidate)
			if changed != tt.changed || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v, %v\nwant %+v, %v", got, changed, tt.want, tt.changed)
			}
			if tt.current != nil && !reflect.DeepEqual(*tt.current, before) {
				t.Errorf("Merge modified current: %+v", *tt.current)
			}
		})
	}
}

// TestMergeSequence follows one patient through a run of readings: the alert
// only ever rises, keeps its identity, and comes back to a person when a
// worse reading follows an acknowledgement.
func TestMergeSequence(t *testing.T) {
	var cur *Alert
	step := func(v reading.Vitals, at time.Time, id string) (Alert, bool) {
		s := scoreOf(v)
		s.ReadingID, s.ScoredAt = id, at
		cand, ok := AlertCandidate(s)
		if !ok {
			return Alert{}, false
		}
		next, changed := Merge(cur, cand)
		if cur == nil {
			next.AlertID = "A1" // what the store does
		}
		cur = &next
		return next, changed
	}

	a, changed := step(reading.Vitals{RespiratoryRate: ptr(8.0)}, t0, "r1")
	if !changed || a.Severity != RiskMedium || a.Status != StatusOpen {
		t.Fatalf("first: %+v %v", a, changed)
	}
	cur.Status = StatusAcknowledged

	// A better but still red reading does not lower or re-open it.
	a, changed = step(reading.Vitals{RespiratoryRate: ptr(8.0), HeartRate: ptr(95.0)}, t0.Add(time.Minute), "r2")
	if changed || a.Severity != RiskMedium || a.Status != StatusAcknowledged || a.ReadingID != "r1" {
		t.Fatalf("second: %+v %v", a, changed)
	}

	// A partial reading that misses the red item raises nothing.
	if _, ok := AlertCandidate(scoreOf(reading.Vitals{HeartRate: ptr(70.0)})); ok {
		t.Fatal("normal partial reading raised an alert")
	}

	a, changed = step(reading.Vitals{
		RespiratoryRate: ptr(25.0), HeartRate: ptr(115.0), OnOxygen: ptr(true),
	}, t1, "r3")
	want := []string{ReasonNEWS2High, ReasonSingleParameterRed}
	if !changed || a.Severity != RiskCritical || a.Status != StatusOpen || a.AlertID != "A1" ||
		!a.OpenedAt.Equal(t0) || !a.UpdatedAt.Equal(t1) || a.ReadingID != "r3" || !slices.Equal(a.Reasons, want) {
		t.Fatalf("third: %+v %v", a, changed)
	}
}

// Merge must be usable wherever a MergeFunc is expected.
var _ MergeFunc = Merge

func TestParametersEncodeAsAMap(t *testing.T) {
	tests := []Parameters{
		{},
		{ParamSpO2: 3},
		{ParamRespiratoryRate: 0, ParamSpO2: 1, ParamOnOxygen: 2, ParamSystolicBP: 3, ParamHeartRate: -1,
			ParamConsciousness: 3, ParamTemperature: 1},
		{"odd \"key\"<": 1, "b": 2},
		nil,
	}
	for _, p := range tests {
		got, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(map[string]int(p))
		if string(got) != string(want) {
			t.Errorf("Parameters %v encodes as %s, a map as %s", map[string]int(p), got, want)
		}
	}
}
