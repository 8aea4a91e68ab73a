package scoring

import (
	"slices"
	"testing"
	"time"

	"vigil/reading"
	"vigil/trial"
)

func TestCandidateRules(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	f := func(v float64) *float64 { return &v }
	normal := func() reading.Vitals {
		return reading.Vitals{RespiratoryRate: f(16), SpO2: f(97), SystolicBP: f(120), DiastolicBP: f(78),
			HeartRate: f(72), Temperature: f(36.8)}
	}
	protocol := trial.Protocol{Thresholds: trial.Thresholds{Vitals: []trial.VitalLimit{
		{Vital: "systolic_bp", Op: ">=", Value: 160, Grade: 3},
		{Vital: "temperature", Op: ">=", Value: 39.0, Grade: 2},
		{Vital: "heart_rate", Op: ">", Value: 130, Grade: 4},
		{Vital: "spo2", Op: "<", Value: 92, Grade: 3},
	}}}
	cases := []struct {
		name     string
		edit     func(r *reading.Reading)
		p        trial.Protocol
		raised   bool
		severity string
		reasons  []string
		finding  Finding // one finding that must be there (Reason empty: none)
	}{
		{"normal raises nothing", nil, protocol, false, "", nil, Finding{}},
		{"systolic at the limit: grade 3 is high", func(r *reading.Reading) { r.Vitals.SystolicBP = f(160) }, protocol,
			true, RiskHigh, []string{ReasonVitalLimit}, Finding{Reason: ReasonVitalLimit, Parameter: "systolic_bp", Grade: 3}},
		{"systolic just below: nothing", func(r *reading.Reading) { r.Vitals.SystolicBP = f(159) }, protocol, false, "", nil, Finding{}},
		{"fever grade 2 is medium", func(r *reading.Reading) { r.Vitals.Temperature = f(39.0) }, protocol,
			true, RiskMedium, []string{ReasonVitalLimit}, Finding{Reason: ReasonVitalLimit, Parameter: "temperature", Grade: 2}},
		{"strict > at the value: nothing (HR 130 scores 2, not red)", func(r *reading.Reading) { r.Vitals.HeartRate = f(130) }, protocol,
			false, "", nil, Finding{}},
		{"grade 4 is critical", func(r *reading.Reading) { r.Vitals.HeartRate = f(131) }, protocol,
			true, RiskCritical, []string{ReasonSingleParameterRed, ReasonVitalLimit}, Finding{Reason: ReasonVitalLimit, Parameter: "heart_rate", Grade: 4}},
		{"< limit", func(r *reading.Reading) { r.Vitals.SpO2 = f(91) }, protocol,
			true, RiskHigh, []string{ReasonSingleParameterRed, ReasonVitalLimit}, Finding{Reason: ReasonVitalLimit, Parameter: "spo2", Grade: 3}},
		{"missing vital never crosses", func(r *reading.Reading) { r.Vitals.SystolicBP = nil }, protocol, false, "", nil, Finding{}},
		{"symptom grade 3 (default threshold)", func(r *reading.Reading) {
			r.Symptoms = []reading.Symptom{{Term: "nausea", Grade: 3}}
		}, protocol, true, RiskMedium, []string{ReasonSymptomSevere}, Finding{Reason: ReasonSymptomSevere, Parameter: "nausea", Grade: 3}},
		{"symptom grade 2 below default", func(r *reading.Reading) {
			r.Symptoms = []reading.Symptom{{Term: "nausea", Grade: 2}}
		}, protocol, false, "", nil, Finding{}},
		{"symptom grade 2 at a protocol threshold of 2", func(r *reading.Reading) {
			r.Symptoms = []reading.Symptom{{Term: "nausea", Grade: 2}}
		}, trial.Protocol{Thresholds: trial.Thresholds{SymptomGrade: 2}}, true, RiskMedium, []string{ReasonSymptomSevere}, Finding{}},
		{"very severe symptom is high", func(r *reading.Reading) {
			r.Symptoms = []reading.Symptom{{Term: "dyspnoea", Grade: 4}}
		}, protocol, true, RiskHigh, []string{ReasonSymptomSevere}, Finding{}},
		{"NEWS2 medium band at default band", func(r *reading.Reading) {
			r.Vitals.RespiratoryRate, r.Vitals.HeartRate, r.Vitals.Temperature = f(22), f(112), f(38.5) // 2+2+1
		}, trial.Protocol{}, true, RiskHigh, []string{ReasonNEWS2High}, Finding{Reason: ReasonNEWS2High, Parameter: "news2"}},
		{"NEWS2 medium band below a protocol band of high", func(r *reading.Reading) {
			r.Vitals.RespiratoryRate, r.Vitals.HeartRate, r.Vitals.Temperature = f(22), f(112), f(38.5)
		}, trial.Protocol{Thresholds: trial.Thresholds{NEWS2Band: BandHigh}}, false, "", nil, Finding{}},
		{"low_medium band counts when the protocol says so", func(r *reading.Reading) {
			c := reading.Voice
			r.Vitals.Consciousness = &c
		}, trial.Protocol{Thresholds: trial.Thresholds{NEWS2Band: BandLowMedium}}, true, RiskMedium,
			[]string{ReasonNEWS2High, ReasonSingleParameterRed}, Finding{Reason: ReasonSingleParameterRed, Parameter: ParamConsciousness}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := reading.Reading{ReadingID: "r1", PatientID: "P1", TrialID: "T1", SiteID: "S1", MeasuredAt: t0, Vitals: normal()}
			if tc.edit != nil {
				tc.edit(&r)
			}
			s := EvaluateIn(r, Context{Protocol: tc.p, Configured: true}, t0)
			a, ok := Candidate(s, r, tc.p)
			if ok != tc.raised {
				t.Fatalf("raised %v, want %v (%+v)", ok, tc.raised, a)
			}
			if !ok {
				return
			}
			if a.Severity != tc.severity || !slices.Equal(a.Reasons, tc.reasons) {
				t.Fatalf("severity %s reasons %v, want %s %v", a.Severity, a.Reasons, tc.severity, tc.reasons)
			}
			if tc.finding.Reason != "" && !slices.ContainsFunc(a.Findings, func(f Finding) bool {
				return f.Reason == tc.finding.Reason && f.Parameter == tc.finding.Parameter && f.Grade == tc.finding.Grade
			}) {
				t.Fatalf("findings %+v lack %+v", a.Findings, tc.finding)
			}
		})
	}
}

func TestModelRule(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	f := func(v float64) *float64 { return &v }
	r := reading.Reading{ReadingID: "r1", PatientID: "P1", TrialID: "T1", SiteID: "S1", MeasuredAt: t0,
		Vitals: reading.Vitals{RespiratoryRate: f(16), SpO2: f(97), SystolicBP: f(120), HeartRate: f(72), Temperature: f(36.8)}}
	cases := []struct {
		name      string
		prob      float64
		threshold float64 // the protocol's; 0: default 0.5
		raised    bool
	}{
		{"at the default threshold: high", 0.5, 0, true},
		{"just below the default", 0.499, 0, false},
		{"below a protocol threshold of 0.6", 0.5, 0.6, false},
		{"at a protocol threshold of 0.3", 0.3, 0.3, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := trial.Protocol{Thresholds: trial.Thresholds{ModelProbability: tc.threshold}}
			s := EvaluateIn(r, Context{Protocol: p, Configured: true}, t0)
			s.Model = &Model{Probability: tc.prob, Version: "lr-test"}
			a, ok := Candidate(s, r, p)
			if ok != tc.raised {
				t.Fatalf("raised %v, want %v", ok, tc.raised)
			}
			if ok && (a.Severity != RiskHigh || !slices.Equal(a.Reasons, []string{ReasonModelSAERisk}) ||
				a.Findings[0].Parameter != "model_probability" || *a.Findings[0].Value != tc.prob) {
				t.Fatalf("alert %+v: want severity high, reason model_sae_risk, the probability as finding", a)
			}
		})
	}
	// Without model output (no predictor, or degraded) the rule is silent.
	s := EvaluateIn(r, Context{}, t0)
	if _, ok := Candidate(s, r, trial.Protocol{}); ok {
		t.Fatal("an alert without model output")
	}
}

func TestSpO2ScaleSource(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	two, one := 2, 1
	air := false
	cases := []struct {
		name        string
		readingSc   *int
		c           Context
		wantScale   int
		wantSource  string
		wantSpO2Pts int
	}{
		// SpO2 88 on air: 3 points on scale 1, 0 on scale 2.
		{"registry scale 2 wins over the app's 1", &one, Context{Registered: true, Patient: trial.PatientRecord{SpO2Scale: 2}}, 2, ScaleFromRegistry, 0},
		{"registry scale 1 wins over the app's 2", &two, Context{Registered: true, Patient: trial.PatientRecord{SpO2Scale: 1}}, 1, ScaleFromRegistry, 3},
		{"registered without a scale: the app cannot choose", &two, Context{Registered: true}, 1, ScaleDefault, 3},
		{"unregistered: the app's scale", &two, Context{}, 2, ScaleFromReading, 0},
		{"unregistered, none given", nil, Context{}, 1, ScaleDefault, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := reading.Reading{Vitals: reading.Vitals{SpO2: f(88), SpO2Scale: tc.readingSc, OnOxygen: &air}}
			s := EvaluateIn(r, tc.c, time.Now())
			if s.NEWS2.SpO2Scale != tc.wantScale || s.NEWS2.SpO2ScaleSource != tc.wantSource ||
				s.NEWS2.Parameters[ParamSpO2] != tc.wantSpO2Pts || s.Registered != tc.c.Registered {
				t.Fatalf("scale %d from %s, spo2 %d points, registered %v", s.NEWS2.SpO2Scale, s.NEWS2.SpO2ScaleSource,
					s.NEWS2.Parameters[ParamSpO2], s.Registered)
			}
		})
	}
}

func TestMergeRiskUpdatesAndMissedReadings(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	open := Alert{AlertID: "A1", PatientID: "P1", TrialID: "T1", SiteID: "S1", Severity: RiskCritical, Status: StatusOpen,
		Reasons: []string{ReasonNEWS2High}, ReadingID: "r1", OpenedAt: t0, UpdatedAt: t0, CurrentRisk: RiskCritical}

	if _, changed := Merge(nil, RiskUpdate(Score{PatientID: "P1", Risk: RiskLow, ScoredAt: t1})); changed {
		t.Fatal("a risk update opened an alert")
	}
	got, changed := Merge(&open, RiskUpdate(Score{PatientID: "P1", ReadingID: "r2", Risk: RiskLow, ScoredAt: t1}))
	if !changed || got.Severity != RiskCritical || got.CurrentRisk != RiskLow || got.ReadingID != "r1" || !got.UpdatedAt.Equal(t1) {
		t.Fatalf("risk update: %+v changed=%v", got, changed)
	}
	if _, changed := Merge(&got, RiskUpdate(Score{PatientID: "P1", Risk: RiskLow, ScoredAt: t1})); changed {
		t.Fatal("the same risk again is no change")
	}

	missed := MissedReadings("T1", "S1", "P1", t0, t1)
	got, changed = Merge(&open, missed)
	if !changed || !slices.Equal(got.Reasons, []string{ReasonMissedReadings, ReasonNEWS2High}) || got.ReadingID != "r1" {
		t.Fatalf("missed readings on an open alert: %+v", got)
	}
	if _, changed := Merge(&got, MissedReadings("T1", "S1", "P1", t0, t1.Add(time.Minute))); changed {
		t.Fatal("still silent is no change")
	}
	fresh, changed := Merge(nil, missed)
	if !changed || fresh.Severity != RiskMedium || fresh.Tier != -1 || fresh.NextEscalationAt == nil {
		t.Fatalf("missed readings alert: %+v", fresh)
	}
}

func TestVitalLadderKeepsTheHighestGrade(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	p := trial.Protocol{Thresholds: trial.Thresholds{Vitals: []trial.VitalLimit{
		{Vital: "systolic_bp", Op: ">=", Value: 120, Grade: 1},
		{Vital: "systolic_bp", Op: ">=", Value: 160, Grade: 3},
		{Vital: "systolic_bp", Op: ">=", Value: 140, Grade: 2},
	}}}
	r := reading.Reading{PatientID: "P1", Vitals: reading.Vitals{SystolicBP: f(165)}}
	a, ok := Candidate(EvaluateIn(r, Context{Protocol: p}, time.Now()), r, p)
	if !ok || len(a.Findings) != 1 || a.Findings[0].Grade != 3 || a.Severity != RiskHigh {
		t.Fatalf("findings %+v severity %s", a.Findings, a.Severity)
	}
}

func TestSeverityRiseRenotifiesTheCurrentTier(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	later := t0.Add(time.Hour)
	cur := Alert{AlertID: "A1", Severity: RiskMedium, Status: StatusEscalated, Reasons: []string{ReasonNEWS2High},
		Tier: 2, UpdatedAt: t0}
	next, changed := Merge(&cur, Alert{Severity: RiskCritical, Reasons: []string{ReasonNEWS2High}, UpdatedAt: later})
	if !changed || next.Tier != 1 || next.NextEscalationAt == nil || !next.NextEscalationAt.Equal(later) ||
		next.Status != StatusEscalated {
		t.Fatalf("after a rise: tier %d due %v status %s", next.Tier, next.NextEscalationAt, next.Status)
	}
}
