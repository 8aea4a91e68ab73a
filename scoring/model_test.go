package scoring_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"vigil/bus"
	"vigil/predictor"
	"vigil/reading"
	"vigil/scoring"
	"vigil/trial"
)

// stubModel answers every prediction with prob, or fails with err, and keeps
// the requests it saw.
type stubModel struct {
	mu   sync.Mutex
	prob float64
	err  error
	seen []predictor.Request
}

func (m *stubModel) Predict(_ context.Context, r predictor.Request) (predictor.Prediction, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen = append(m.seen, r)
	if m.err != nil {
		return predictor.Prediction{}, m.err
	}
	return predictor.Prediction{Probability: m.prob, Version: "lr-stub",
		Contributions: []predictor.Contribution{{Feature: "spo2", Value: 91, Logit: 0.8}}}, nil
}

// listHistory is a patient's earlier readings, as the store would give them.
type listHistory struct {
	obs []predictor.Observation
	ids []string
	err error
}

func (h listHistory) Recent(context.Context, string, string, string, time.Time, time.Time) ([]predictor.Observation, []string, error) {
	return h.obs, h.ids, h.err
}

type staticProfiles struct{ p trial.Protocol }

func (s staticProfiles) Protocol(context.Context, string) (trial.Protocol, bool, error) {
	return s.p, true, nil
}

func (staticProfiles) Patient(_ context.Context, trialID, siteID, patientID string) (trial.PatientRecord, bool, error) {
	return trial.PatientRecord{TrialID: trialID, SiteID: siteID, PatientID: patientID, Status: trial.Enrolled, AgeBand: "65-79"}, true, nil
}

func TestPipelineModel(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	normal := vitals(16, 97, 120, 72, 36.8, "alert")
	earlier := vitals(14, 98, 124, 64, 36.6, "alert")
	history := listHistory{
		obs: []predictor.Observation{{MeasuredAt: t0.Add(-6 * time.Hour), Vitals: earlier}, {MeasuredAt: t0, Vitals: normal}},
		ids: []string{"r0", "r1"},
	}
	cases := []struct {
		name         string
		model        *stubModel
		history      listHistory
		wantModel    bool
		wantDegraded bool
		wantAlert    bool
	}{
		{"model answers below threshold", &stubModel{prob: 0.2}, history, true, false, false},
		{"model answers at the protocol's threshold", &stubModel{prob: 0.4}, history, true, false, true},
		{"model fails: degraded, rules alone", &stubModel{err: predictor.ErrUnavailable}, history, false, true, false},
		{"history unreadable: degraded", &stubModel{prob: 0.9}, listHistory{err: errors.New("database is locked")}, false, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newMemStore()
			p, err := scoring.NewPipeline(st, bus.NewMemory(10), scoring.PipelineConfig{Workers: 1,
				Profiles: staticProfiles{trial.Protocol{TrialID: "T1", Thresholds: trial.Thresholds{ModelProbability: 0.4}}},
				Model:    tc.model, History: tc.history, Now: func() time.Time { return t0 }})
			if err != nil {
				t.Fatal(err)
			}
			r := reading.Reading{ReadingID: "r1", PatientID: "P1", TrialID: "T1", SiteID: "S1", MeasuredAt: t0, Vitals: normal}
			if err := p.Process(context.Background(), scoring.Input{Reading: r, ReceivedAt: t0}); err != nil {
				t.Fatal(err)
			}
			s := st.scores["r1"]
			if (s.Model != nil) != tc.wantModel || s.Degraded != tc.wantDegraded {
				t.Fatalf("model %+v degraded %v; want model %v degraded %v", s.Model, s.Degraded, tc.wantModel, tc.wantDegraded)
			}
			if tc.wantModel && (s.Model.Version != "lr-stub" || len(s.Model.Contributions) != 1) {
				t.Fatalf("model output not carried: %+v", s.Model)
			}
			_, alerted := st.alerts["P1"]
			if alerted != tc.wantAlert {
				t.Fatalf("alert opened %v, want %v", alerted, tc.wantAlert)
			}
			if tc.wantAlert && (s.Risk != scoring.RiskHigh || st.alerts["P1"].Reasons[0] != scoring.ReasonModelSAERisk) {
				t.Fatalf("risk %s alert %+v: a model alert is high, reason model_sae_risk", s.Risk, st.alerts["P1"])
			}
			if tc.history.err == nil {
				f := tc.model.seen[0].Features
				// The features come from the history and the registry: two
				// readings make a trend, and the record's age band is sent.
				if f["heart_rate_delta_24h"] != 8 || f["age_band"] != 2 || f["news2_total"] != float32(s.NEWS2.Total) {
					t.Fatalf("features %v", f)
				}
			}
		})
	}
}

// TestPipelineWithoutModel: with no predictor configured the score has no
// model output and is not degraded (DESIGN.md: empty address, rules only).
func TestPipelineWithoutModel(t *testing.T) {
	st := newMemStore()
	p, err := scoring.NewPipeline(st, bus.NewMemory(10), scoring.PipelineConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := reading.Reading{ReadingID: "r1", PatientID: "P1", TrialID: "T1", SiteID: "S1", MeasuredAt: time.Now(),
		Vitals: vitals(16, 97, 120, 72, 36.8, "alert")}
	if err := p.Process(context.Background(), scoring.Input{Reading: r}); err != nil {
		t.Fatal(err)
	}
	if s := st.scores["r1"]; s.Model != nil || s.Degraded {
		t.Fatalf("rules-only score: model %+v degraded %v", s.Model, s.Degraded)
	}
}

// TestLessInformedScoresNeverLowerAnOpenAlert: after a model alert, a score
// made without the model, or from a partial NEWS2, may not lower the alert's
// current risk; a full score may.
func TestLessInformedScoresNeverLowerAnOpenAlert(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	normal := vitals(16, 97, 120, 72, 36.8, "alert")
	partial := normal
	partial.Temperature = nil
	steps := []struct {
		name    string
		model   *stubModel
		vitals  reading.Vitals
		current string // the alert's current risk after the step
	}{
		{"the model alerts", &stubModel{prob: 0.9}, normal, scoring.RiskHigh},
		{"degraded normal reading: unchanged", &stubModel{err: predictor.ErrUnavailable}, normal, scoring.RiskHigh},
		{"partial NEWS2 with the model low: unchanged", &stubModel{prob: 0.1}, partial, scoring.RiskHigh},
		{"full score with the model low: lowered", &stubModel{prob: 0.1}, normal, scoring.RiskNone},
	}
	st := newMemStore()
	m := &switchModel{}
	p, err := scoring.NewPipeline(st, bus.NewMemory(10), scoring.PipelineConfig{Workers: 1, Model: m,
		History: listHistory{}, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	for i, step := range steps {
		m.use(step.model)
		r := reading.Reading{ReadingID: "r" + string(rune('a'+i)), PatientID: "P1", TrialID: "T1", SiteID: "S1",
			MeasuredAt: t0.Add(time.Duration(i) * time.Hour), Vitals: step.vitals}
		if err := p.Process(context.Background(), scoring.Input{Reading: r, ReceivedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if got := st.alerts["P1"].CurrentRisk; got != step.current {
			t.Fatalf("%s: current risk %q, want %q", step.name, got, step.current)
		}
	}
}

// switchModel delegates to the stub a step sets.
type switchModel struct {
	mu sync.Mutex
	m  *stubModel
}

func (s *switchModel) use(m *stubModel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = m
}

func (s *switchModel) Predict(ctx context.Context, r predictor.Request) (predictor.Prediction, error) {
	s.mu.Lock()
	m := s.m
	s.mu.Unlock()
	return m.Predict(ctx, r)
}

func TestModelNeedsHistory(t *testing.T) {
	if _, err := scoring.NewPipeline(newMemStore(), bus.NewMemory(10), scoring.PipelineConfig{Model: &stubModel{}}); err == nil {
		t.Fatal("a model without a history was accepted: its first reading would panic")
	}
}
