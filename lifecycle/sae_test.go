package lifecycle

import (
	"errors"
	"testing"
	"time"

	"vigil/scoring"
)

func TestMarkPossibleSAE(t *testing.T) {
	sig := scoring.Signature{Sub: "u-cra", Name: "Cam CRA", Role: "cra", At: t0.Add(10 * time.Minute),
		Meaning: MeaningPossibleSAE, Reason: "admitted overnight"}
	earlier := scoring.Signature{Sub: "u-pi", Name: "Dr A", Role: "pi", At: t0.Add(time.Minute)}
	marked := func(a scoring.Alert) scoring.Alert {
		a.PossibleSAE = &earlier
		a.ReportDueAt = at(time.Minute + ReportWithin)
		return a
	}
	acked := alert(scoring.StatusAcknowledged, 0, nil)
	acked.Acknowledged = &earlier
	cases := []struct {
		name    string
		cur     scoring.Alert
		allowed bool
	}{
		{"open", alert(scoring.StatusOpen, 0, at(time.Hour)), true},
		{"not yet notified", alert(scoring.StatusOpen, -1, at(0)), true},
		{"acknowledged", acked, true},
		{"escalated", alert(scoring.StatusEscalated, 1, at(5*time.Minute)), true},
		{"resolved", alert(scoring.StatusResolved, 0, nil), false},
		{"already marked", marked(alert(scoring.StatusOpen, 0, at(time.Hour))), false},
		{"already marked and acknowledged", marked(acked), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next, err := MarkPossibleSAE(tc.cur, sig)
			if !tc.allowed {
				if !errors.Is(err, ErrTransition) {
					t.Fatalf("err %v, want ErrTransition", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if next.PossibleSAE == nil || *next.PossibleSAE != sig {
				t.Errorf("possible_sae %+v, want %+v", next.PossibleSAE, sig)
			}
			if next.ReportDueAt == nil || !next.ReportDueAt.Equal(sig.At.Add(24*time.Hour)) {
				t.Errorf("report due %v, want 24 h after the mark", next.ReportDueAt)
			}
			if !next.UpdatedAt.Equal(sig.At) {
				t.Errorf("updated_at %v, want %v", next.UpdatedAt, sig.At)
			}
			// A mark is not an acknowledgement: status, acknowledgement and
			// escalation are what they were.
			if next.Status != tc.cur.Status || next.Tier != tc.cur.Tier || next.Acknowledged != tc.cur.Acknowledged ||
				!sameTime(next.NextEscalationAt, tc.cur.NextEscalationAt) {
				t.Errorf("mark changed the lifecycle: %+v, was %+v", next, tc.cur)
			}
			if tc.cur.PossibleSAE != nil || tc.cur.ReportDueAt != nil {
				t.Errorf("the current alert was modified: %+v", tc.cur)
			}
		})
	}
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func TestResolveReportClock(t *testing.T) {
	markedAt := t0.Add(time.Minute)
	mark := scoring.Signature{Sub: "u-cra", Name: "Cam CRA", Role: "cra", At: markedAt, Meaning: MeaningPossibleSAE, Reason: "r"}
	resolvedAt := t0.Add(3 * time.Hour)
	sig := scoring.Signature{Sub: "u-pi", Name: "Dr A", Role: "pi", At: resolvedAt, Reason: "reviewed"}
	open := alert(scoring.StatusAcknowledged, 0, nil)
	marked, err := MarkPossibleSAE(open, mark)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		cur     scoring.Alert
		outcome string
		due     *time.Time // nil: no report due
	}{
		{"sae, never marked: awareness at the resolution at the latest", open, scoring.OutcomeSAE, ptrTime(resolvedAt.Add(24 * time.Hour))},
		{"sae, marked: the earlier clock stays", marked, scoring.OutcomeSAE, ptrTime(markedAt.Add(24 * time.Hour))},
		{"ae, marked: not serious, no report due", marked, scoring.OutcomeAE, nil},
		{"not_ae, marked: no report due", marked, scoring.OutcomeNotAE, nil},
		{"ae, never marked", open, scoring.OutcomeAE, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next, err := Resolve(tc.cur, sig, tc.outcome)
			if err != nil {
				t.Fatal(err)
			}
			if !sameTime(next.ReportDueAt, tc.due) {
				t.Errorf("report due %v, want %v", next.ReportDueAt, tc.due)
			}
			// The mark itself stays, as a record of who was aware when.
			if (tc.cur.PossibleSAE == nil) != (next.PossibleSAE == nil) {
				t.Errorf("possible_sae %+v, was %+v", next.PossibleSAE, tc.cur.PossibleSAE)
			}
			if next.Status != scoring.StatusResolved || next.Outcome != tc.outcome {
				t.Errorf("resolution %+v", next)
			}
		})
	}
}

func ptrTime(t time.Time) *time.Time { return &t }
