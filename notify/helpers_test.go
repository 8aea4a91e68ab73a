package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vigil/notify"
	"vigil/scoring"
	"vigil/store"
	"vigil/store/sqlite"
	"vigil/trial"
)

// phi are strings the test alert holds in places a notification must never
// copy from: a vital's value, a symptom, a signer's name and free-text
// reasons.
var phi = []string{"39.7", "haemoptysis", "Roe", "gave a history", "confusion"}

// testAlert is an alert carrying personal health information beside the
// identifiers a notification may use.
func testAlert(id, severity string) scoring.Alert {
	v := 39.7
	return scoring.Alert{
		Kind: "alert", AlertID: id, PatientID: "P-0042", TrialID: "T008", SiteID: "S01",
		Severity: severity, Status: scoring.StatusEscalated,
		// The last reason is not a rule code and must be dropped.
		Reasons:   []string{scoring.ReasonNEWS2High, scoring.ReasonSymptomSevere, "new confusion, haemoptysis"},
		ReadingID: "R-1",
		OpenedAt:  time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC),
		UpdatedAt: time.Date(2026, 11, 26, 8, 5, 0, 0, time.UTC),
		Findings: []scoring.Finding{
			{Reason: scoring.ReasonVitalLimit, Parameter: "temperature", Value: &v, Grade: 2},
			{Reason: scoring.ReasonSymptomSevere, Parameter: "haemoptysis", Grade: 3},
		},
		CurrentRisk: scoring.RiskHigh,
		Tier:        1,
		Acknowledged: &scoring.Signature{Sub: "u1", Name: "Dr Jane Roe", Role: "investigator",
			At: time.Date(2026, 11, 26, 8, 6, 0, 0, time.UTC), Meaning: "reviewed", Reason: "patient gave a history of"},
	}
}

func notificationFor(t *testing.T, a scoring.Alert, tier int, ch trial.Channel) store.Notification {
	t.Helper()
	payload, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return store.Notification{AlertID: a.AlertID, TrialID: a.TrialID, Tier: tier, Channel: ch, Payload: payload}
}

// assertNoPHI fails if text contains any of phi.
func assertNoPHI(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range phi {
		if strings.Contains(text, s) {
			t.Errorf("%s contains %q:\n%s", what, s, text)
		}
	}
}

// openOutbox is the real SQLite store on a temporary file.
func openOutbox(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func enqueue(t *testing.T, s store.Outbox, ns ...store.Notification) {
	t.Helper()
	if err := s.EnqueueNotifications(t.Context(), ns); err != nil {
		t.Fatalf("EnqueueNotifications: %v", err)
	}
}

// fastConfig retries quickly so that tests take milliseconds.
func fastConfig() notify.DispatcherConfig {
	return notify.DispatcherConfig{
		Interval:    5 * time.Millisecond,
		BaseBackoff: 5 * time.Millisecond,
		MaxBackoff:  20 * time.Millisecond,
		BaseURL:     "https://vigil.example.org/",
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// start runs d until the test ends, and makes sure Run returns.
func start(t *testing.T, d *notify.Dispatcher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		d.Run(ctx)
		close(done)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

// settled waits until the alert's notifications have all left pending and
// returns them, newest first.
func settled(t *testing.T, s store.Outbox, alertID string, want int) []store.Notification {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ns, err := s.Notifications(context.Background(), store.NotificationQuery{AlertID: alertID})
		if err != nil {
			t.Fatalf("Notifications: %v", err)
		}
		done := len(ns) == want
		for _, n := range ns {
			if n.Status == store.NotifyPending {
				done = false
			}
		}
		if done {
			return ns
		}
		if time.Now().After(deadline) {
			t.Fatalf("notifications of %s did not settle: %+v", alertID, ns)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func secrets(m map[string]string) notify.SecretLookup {
	return func(ref string) (string, bool) {
		v, ok := m[ref]
		return v, ok
	}
}
