package lifecycle

import (
	"errors"
	"testing"
	"time"

	"vigil/scoring"
	"vigil/trial"
)

var t0 = time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)

func alert(status string, tier int, due *time.Time) scoring.Alert {
	return scoring.Alert{AlertID: "A1", PatientID: "P1", TrialID: "T1", SiteID: "S1", Severity: scoring.RiskCritical,
		Status: status, Reasons: []string{scoring.ReasonNEWS2High}, OpenedAt: t0, UpdatedAt: t0, Tier: tier, NextEscalationAt: due}
}

func at(d time.Duration) *time.Time { t := t0.Add(d); return &t }

func TestTransitions(t *testing.T) {
	sig := scoring.Signature{Sub: "u1", Name: "Dr A", Role: "pi", At: t0.Add(time.Minute), Reason: "seen"}
	cases := []struct {
		name    string
		status  string
		do      func(scoring.Alert) (scoring.Alert, error)
		allowed bool
		want    string
	}{
		{"ack open", scoring.StatusOpen, func(a scoring.Alert) (scoring.Alert, error) { return Acknowledge(a, sig, 0) }, true, scoring.StatusAcknowledged},
		{"ack escalated", scoring.StatusEscalated, func(a scoring.Alert) (scoring.Alert, error) { return Acknowledge(a, sig, 0) }, true, scoring.StatusAcknowledged},
		{"ack acknowledged", scoring.StatusAcknowledged, func(a scoring.Alert) (scoring.Alert, error) { return Acknowledge(a, sig, 0) }, false, ""},
		{"ack resolved", scoring.StatusResolved, func(a scoring.Alert) (scoring.Alert, error) { return Acknowledge(a, sig, 0) }, false, ""},
		{"escalate open", scoring.StatusOpen, func(a scoring.Alert) (scoring.Alert, error) { return Escalate(a, sig, 0) }, true, scoring.StatusEscalated},
		{"escalate acknowledged", scoring.StatusAcknowledged, func(a scoring.Alert) (scoring.Alert, error) { return Escalate(a, sig, 0) }, true, scoring.StatusEscalated},
		{"escalate resolved", scoring.StatusResolved, func(a scoring.Alert) (scoring.Alert, error) { return Escalate(a, sig, 0) }, false, ""},
		{"resolve open", scoring.StatusOpen, func(a scoring.Alert) (scoring.Alert, error) { return Resolve(a, sig, scoring.OutcomeAE) }, true, scoring.StatusResolved},
		{"resolve acknowledged", scoring.StatusAcknowledged, func(a scoring.Alert) (scoring.Alert, error) { return Resolve(a, sig, scoring.OutcomeSAE) }, true, scoring.StatusResolved},
		{"resolve escalated", scoring.StatusEscalated, func(a scoring.Alert) (scoring.Alert, error) { return Resolve(a, sig, scoring.OutcomeNotAE) }, true, scoring.StatusResolved},
		{"resolve resolved", scoring.StatusResolved, func(a scoring.Alert) (scoring.Alert, error) { return Resolve(a, sig, scoring.OutcomeAE) }, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next, err := tc.do(alert(tc.status, 0, at(time.Hour)))
			if !tc.allowed {
				if !errors.Is(err, ErrTransition) {
					t.Fatalf("err %v, want ErrTransition", err)
				}
				return
			}
			if err != nil || next.Status != tc.want || !next.UpdatedAt.Equal(sig.At) {
				t.Fatalf("got %s (err %v), want %s", next.Status, err, tc.want)
			}
			switch tc.want {
			case scoring.StatusAcknowledged:
				if next.NextEscalationAt != nil || next.Acknowledged == nil || next.Acknowledged.Name != "Dr A" {
					t.Fatalf("acknowledgement must stop escalation and carry the signature: %+v", next)
				}
			case scoring.StatusEscalated:
				if next.NextEscalationAt == nil || !next.NextEscalationAt.Equal(sig.At) {
					t.Fatalf("a manual escalation is due at once: %+v", next.NextEscalationAt)
				}
			case scoring.StatusResolved:
				if next.NextEscalationAt != nil || next.Resolved == nil || next.Outcome == "" {
					t.Fatalf("resolution: %+v", next)
				}
			}
		})
	}
	if _, err := Resolve(alert(scoring.StatusOpen, 0, nil), sig, "maybe"); err == nil || errors.Is(err, ErrTransition) {
		t.Fatalf("unknown outcome: %v", err)
	}
}

func TestStep(t *testing.T) {
	policy := trial.Escalation{
		Tiers: []trial.Tier{
			{Name: "site", After: trial.Duration(15 * time.Minute)},
			{Name: "safety", After: trial.Duration(10 * time.Minute)},
		},
		Repeat: trial.Duration(5 * time.Minute),
	}
	noRepeat := policy
	noRepeat.Repeat = 0
	cases := []struct {
		name      string
		a         scoring.Alert
		p         trial.Escalation
		now       time.Time
		ok        bool
		tier      int
		action    string
		status    string
		nextDueIn time.Duration // 0: no next escalation
	}{
		{"new alert: tier 0 now", alert(scoring.StatusOpen, -1, at(0)), policy, t0, true, 0, "notified", scoring.StatusOpen, 15 * time.Minute},
		{"not yet due", alert(scoring.StatusOpen, 0, at(15*time.Minute)), policy, t0.Add(14 * time.Minute), false, 0, "", "", 0},
		{"due: tier 1", alert(scoring.StatusOpen, 0, at(15*time.Minute)), policy, t0.Add(15 * time.Minute), true, 1, "escalated", scoring.StatusEscalated, 10 * time.Minute},
		{"past the last tier: repeat it", alert(scoring.StatusEscalated, 1, at(25*time.Minute)), policy, t0.Add(25 * time.Minute), true, 1, "renotified", scoring.StatusEscalated, 5 * time.Minute},
		{"past the last tier, no repeat: stop", alert(scoring.StatusEscalated, 1, at(25*time.Minute)), noRepeat, t0.Add(25 * time.Minute), true, 0, "", scoring.StatusEscalated, 0},
		{"acknowledged, nothing scheduled: never", alert(scoring.StatusAcknowledged, 0, nil), policy, t0.Add(time.Hour), false, 0, "", "", 0},
		{"acknowledged, ack timeout passed: re-opened, tier 0 again", alert(scoring.StatusAcknowledged, 1, at(time.Hour)), policy, t0.Add(time.Hour), true, 0, "reopened", scoring.StatusOpen, 15 * time.Minute},
		{"resolved: never", alert(scoring.StatusResolved, 0, at(0)), policy, t0.Add(time.Hour), false, 0, "", "", 0},
		{"nothing scheduled", alert(scoring.StatusOpen, 0, nil), policy, t0.Add(time.Hour), false, 0, "", "", 0},
		{"manual escalation from acknowledged goes on from its tier", alert(scoring.StatusEscalated, 0, at(time.Minute)), policy, t0.Add(time.Minute), true, 1, "escalated", scoring.StatusEscalated, 10 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next, tier, action, ok := Step(tc.a, tc.p, tc.now)
			if ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if tier != tc.tier || action != tc.action || next.Status != tc.status {
				t.Fatalf("tier %d action %q status %s, want %d %q %s", tier, action, next.Status, tc.tier, tc.action, tc.status)
			}
			switch {
			case tc.nextDueIn == 0 && next.NextEscalationAt != nil:
				t.Fatalf("next escalation %v, want none", next.NextEscalationAt)
			case tc.nextDueIn != 0 && (next.NextEscalationAt == nil || !next.NextEscalationAt.Equal(tc.now.Add(tc.nextDueIn))):
				t.Fatalf("next escalation %v, want %v", next.NextEscalationAt, tc.now.Add(tc.nextDueIn))
			}
			if action != "" {
				ns, err := notifications(next, tier, policy)
				if err != nil || len(ns) != len(policy.Tiers[tier].Channels) {
					t.Fatalf("notifications %v %v", ns, err)
				}
			}
		})
	}
}

func TestAcknowledgeSchedulesTheAckTimeout(t *testing.T) {
	sig := scoring.Signature{Sub: "u1", Name: "Dr A", At: t0}
	a, err := Acknowledge(alert(scoring.StatusOpen, 0, at(time.Minute)), sig, 2*time.Hour)
	if err != nil || a.NextEscalationAt == nil || !a.NextEscalationAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("ack with a timeout: %+v %v", a.NextEscalationAt, err)
	}
	a, _ = Acknowledge(alert(scoring.StatusOpen, 0, at(time.Minute)), sig, 0)
	if a.NextEscalationAt != nil {
		t.Fatalf("ack without a timeout keeps a timer: %v", a.NextEscalationAt)
	}
}

func TestStepFloor(t *testing.T) {
	fast := trial.Escalation{Tiers: []trial.Tier{{Name: "site", After: trial.Duration(time.Millisecond)}},
		Repeat: trial.Duration(time.Second)}
	next, _, _, ok := step(alert(scoring.StatusOpen, -1, at(0)), fast, t0, time.Minute)
	if !ok || !next.NextEscalationAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("a 1 ms tier paged again at %v, want the 1 minute floor", next.NextEscalationAt)
	}
	next, _, _, _ = step(next, fast, t0.Add(time.Minute), time.Minute)
	if !next.NextEscalationAt.Equal(t0.Add(2 * time.Minute)) {
		t.Fatalf("a 1 s repeat paged again at %v, want the floor", next.NextEscalationAt)
	}
}
