package scoring_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"vigil/bus"
	"vigil/reading"
	"vigil/scoring"
)

// memStore is an in-memory stand-in for the store's scoring methods; the real
// stores are tested against the same contract in store/storetest.
type memStore struct {
	mu     sync.Mutex
	scores map[string]scoring.Score
	alerts map[string]scoring.Alert // patient → unresolved alert
	fail   error
}

func newMemStore() *memStore {
	return &memStore{scores: map[string]scoring.Score{}, alerts: map[string]scoring.Alert{}}
}

func (m *memStore) SaveScore(_ context.Context, s scoring.Score) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return false, m.fail
	}
	if _, ok := m.scores[s.ReadingID]; ok {
		return false, nil
	}
	m.scores[s.ReadingID] = s
	return true, nil
}

func (m *memStore) ApplyAlert(_ context.Context, c scoring.Alert, merge scoring.MergeFunc) (scoring.Alert, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var cur *scoring.Alert
	if a, ok := m.alerts[c.PatientID]; ok {
		cur = &a
	}
	next, changed := merge(cur, c)
	if changed {
		if next.AlertID == "" {
			next.AlertID = "A-" + c.PatientID
		}
		m.alerts[c.PatientID] = next
	}
	return next, changed, nil
}

func (m *memStore) UnresolvedAlert(_ context.Context, _, _, patientID string) (scoring.Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.alerts[patientID]; ok {
		return a, nil
	}
	return scoring.Alert{}, errors.New("not found")
}

func vitals(rr, spo2, sbp, hr, temp float64, cons string) reading.Vitals {
	onO2 := false
	return reading.Vitals{RespiratoryRate: &rr, SpO2: &spo2, OnOxygen: &onO2, SystolicBP: &sbp,
		HeartRate: &hr, Consciousness: &cons, Temperature: &temp}
}

func TestPipelinePublishesScoresAndAlerts(t *testing.T) {
	st := newMemStore()
	b := bus.NewMemory(100)
	var (
		mu     sync.Mutex
		events = map[string][]bus.Event{}
	)
	b.SetHandler(func(e bus.Event) {
		mu.Lock()
		events[e.Room] = append(events[e.Room], e)
		mu.Unlock()
	})
	for _, room := range []string{"site:T1:S1", "trial:T1"} {
		if err := b.Subscribe(context.Background(), room); err != nil {
			t.Fatal(err)
		}
	}
	p, err := scoring.NewPipeline(st, b, scoring.PipelineConfig{Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	prevEvents := 0
	cases := []struct {
		name       string
		v          reading.Vitals
		risk       string
		alertSev   string // "" for no alert event
		siteEvents int    // cumulative events in the site room
	}{
		{"normal", vitals(16, 97, 120, 72, 36.8, "alert"), scoring.RiskNone, "", 1},
		{"single red", vitals(16, 97, 120, 72, 36.8, "voice"), scoring.RiskMedium, "medium", 3},
		{"worse", vitals(26, 90, 88, 135, 39.5, "voice"), scoring.RiskCritical, "critical", 5},
		// The alert stays critical (only a person closes it), but its current
		// risk follows the patient and is re-published.
		{"better again: alert stays critical, current risk none", vitals(16, 97, 120, 72, 36.8, "alert"), scoring.RiskNone, "critical", 7},
	}
	for i, tc := range cases {
		r := reading.Reading{ReadingID: tc.name, PatientID: "P1", TrialID: "T1", SiteID: "S1",
			MeasuredAt: now.Add(time.Duration(i) * time.Second), Vitals: tc.v}
		if err := p.Process(ctx, scoring.Input{Reading: r, ReceivedAt: now}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		mu.Lock()
		site := events["site:T1:S1"]
		mu.Unlock()
		if len(site) != tc.siteEvents {
			t.Fatalf("%s: %d site events, want %d", tc.name, len(site), tc.siteEvents)
		}
		var score scoring.Score
		for _, e := range site {
			var probe struct {
				Kind      string `json:"kind"`
				ReadingID string `json:"reading_id"`
			}
			_ = json.Unmarshal(e.Data, &probe)
			if probe.Kind == "score" && probe.ReadingID == tc.name {
				_ = json.Unmarshal(e.Data, &score)
			}
		}
		if score.Risk != tc.risk {
			t.Fatalf("%s: risk %q, want %q", tc.name, score.Risk, tc.risk)
		}
		// The step's events: an alert (when raised or raised further), then the score.
		var alerts []scoring.Alert
		for _, e := range site[prevEvents:] {
			var a scoring.Alert
			if json.Unmarshal(e.Data, &a) == nil && a.Kind == "alert" {
				alerts = append(alerts, a)
			}
		}
		prevEvents = len(site)
		switch {
		case tc.alertSev == "" && len(alerts) != 0:
			t.Fatalf("%s: unexpected alert events %+v", tc.name, alerts)
		case tc.alertSev != "" && (len(alerts) != 1 || alerts[0].Severity != tc.alertSev):
			t.Fatalf("%s: alert events %+v, want one of severity %s", tc.name, alerts, tc.alertSev)
		}
	}
	mu.Lock()
	trial := len(events["trial:T1"])
	mu.Unlock()
	if trial != 3 {
		t.Fatalf("trial room has %d events, want the 3 alert events", trial)
	}
	// Scoring the same reading again publishes nothing.
	r := reading.Reading{ReadingID: "normal", PatientID: "P1", TrialID: "T1", SiteID: "S1", MeasuredAt: now,
		Vitals: vitals(16, 97, 120, 72, 36.8, "alert")}
	if err := p.Process(ctx, scoring.Input{Reading: r, ReceivedAt: now}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if n := len(events["site:T1:S1"]); n != 7 {
		t.Fatalf("rescoring published again: %d events", n)
	}
	mu.Unlock()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPipelineAdmission(t *testing.T) {
	p, err := scoring.NewPipeline(newMemStore(), bus.NewMemory(10), scoring.PipelineConfig{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	a, err1 := p.Admit()
	b, err2 := p.Admit()
	if err1 != nil || err2 != nil {
		t.Fatalf("admit within capacity: %v %v", err1, err2)
	}
	if _, err := p.Admit(); !errors.Is(err, scoring.ErrOverloaded) {
		t.Fatalf("admit over capacity: %v, want ErrOverloaded", err)
	}
	a.Release()
	a.Release() // idempotent: must not free a second slot
	c, err := p.Admit()
	if err != nil {
		t.Fatalf("admit after release: %v", err)
	}
	if _, err := p.Admit(); !errors.Is(err, scoring.ErrOverloaded) {
		t.Fatalf("double release freed two slots: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Score(scoring.Input{Reading: reading.Reading{ReadingID: "x", PatientID: "P", TrialID: "T", SiteID: "S",
			Vitals: vitals(16, 97, 120, 72, 36.8, "alert")}, ReceivedAt: time.Now()})
	}()
	<-done
	c.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func TestPipelineStoreFailureIsReported(t *testing.T) {
	st := newMemStore()
	st.fail = errors.New("disk full")
	p, err := scoring.NewPipeline(st, bus.NewMemory(10), scoring.PipelineConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := reading.Reading{ReadingID: "r", PatientID: "P", TrialID: "T", SiteID: "S", Vitals: vitals(16, 97, 120, 72, 36.8, "alert")}
	if err := p.Process(context.Background(), scoring.Input{Reading: r}); err == nil {
		t.Fatal("a failed score write must be reported so the sweep retries it")
	}
}

// flakyAlerts fails ApplyAlert a set number of times.
type flakyAlerts struct {
	*memStore
	failures int
}

func (f *flakyAlerts) ApplyAlert(ctx context.Context, c scoring.Alert, merge scoring.MergeFunc) (scoring.Alert, bool, error) {
	if f.failures > 0 {
		f.failures--
		return scoring.Alert{}, false, errors.New("database is locked")
	}
	return f.memStore.ApplyAlert(ctx, c, merge)
}

// TestAlertStepFailureIsRetried: a failed alert write must leave the reading
// unscored, so the sweep's retry opens the alert; an alert is never lost
// behind a stored score.
func TestAlertStepFailureIsRetried(t *testing.T) {
	st := &flakyAlerts{memStore: newMemStore(), failures: 1}
	b := bus.NewMemory(100)
	var (
		mu     sync.Mutex
		alerts int
	)
	b.SetHandler(func(e bus.Event) {
		var a scoring.Alert
		if json.Unmarshal(e.Data, &a) == nil && a.Kind == "alert" {
			mu.Lock()
			alerts++
			mu.Unlock()
		}
	})
	_ = b.Subscribe(context.Background(), "site:T1:S1")
	p, err := scoring.NewPipeline(st, b, scoring.PipelineConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := reading.Reading{ReadingID: "r1", PatientID: "P1", TrialID: "T1", SiteID: "S1", MeasuredAt: time.Now(),
		Vitals: vitals(26, 90, 88, 135, 39.5, "voice")}
	if err := p.Process(context.Background(), scoring.Input{Reading: r}); err == nil {
		t.Fatal("a failed alert write must fail the scoring")
	}
	if len(st.scores) != 0 {
		t.Fatal("the score was stored although its alert was not: the sweep would never retry the alert")
	}
	if err := p.Process(context.Background(), scoring.Input{Reading: r, Retry: true}); err != nil {
		t.Fatal(err)
	}
	if len(st.scores) != 1 || len(st.alerts) != 1 {
		t.Fatalf("after retry: %d scores, %d alerts", len(st.scores), len(st.alerts))
	}
	// A retry of a reading whose alert was stored but perhaps never published
	// publishes it again.
	st.scores = map[string]scoring.Score{}
	if err := p.Process(context.Background(), scoring.Input{Reading: r, Retry: true}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if alerts != 2 {
		t.Fatalf("%d alert events, want 2 (opened, then republished on retry)", alerts)
	}
}
