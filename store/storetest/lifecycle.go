package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"vigil/scoring"
	"vigil/store"
	"vigil/trial"
)

// testUpdateAlert covers the lifecycle store: a person's or the scheduler's
// change to an alert, atomically with its audit record and notifications.
func testUpdateAlert(t *testing.T, s store.Store) {
	ctx := context.Background()
	opened, changed, err := s.ApplyAlert(ctx, candidate("P1", "T1", "S1", "high", 1), scoring.Merge)
	if err != nil || !changed {
		t.Fatalf("open: %v %v", changed, err)
	}
	if _, err := s.UnresolvedAlert(ctx, "T1", "S1", "P1"); err != nil {
		t.Fatalf("unresolved alert: %v", err)
	}
	if _, err := s.UnresolvedAlert(ctx, "T1", "S1", "P2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no alert: %v, want ErrNotFound", err)
	}
	// Merge made the new alert due at once.
	due, err := s.DueEscalations(ctx, opened.UpdatedAt, 10)
	if err != nil || len(due) != 1 || due[0].AlertID != opened.AlertID {
		t.Fatalf("due escalations: %v %v", due, err)
	}

	boom := errors.New("not allowed")
	if _, err := s.UpdateAlert(ctx, opened.AlertID, func(scoring.Alert) (store.AlertChange, error) {
		return store.AlertChange{}, boom
	}, store.Change{Actor: store.System, Action: "x"}); !errors.Is(err, boom) {
		t.Fatalf("fn's error: %v", err)
	}
	if _, err := s.UpdateAlert(ctx, "no-such-alert", func(cur scoring.Alert) (store.AlertChange, error) {
		return store.AlertChange{Alert: cur}, nil
	}, store.Change{Actor: store.System, Action: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown alert: %v", err)
	}

	// A change whose clock reading is older than the stored alert's (it lost
	// the race for the writer) still moves updated_at forward.
	ch := trial.Channel{Kind: trial.ChannelBoard}
	acked, err := s.UpdateAlert(ctx, opened.AlertID, func(cur scoring.Alert) (store.AlertChange, error) {
		next := cur
		next.Status = scoring.StatusAcknowledged
		next.NextEscalationAt = nil
		next.UpdatedAt = cur.UpdatedAt.Add(-time.Hour)
		next.PatientID = "someone-else" // identity is the store's
		return store.AlertChange{Alert: next, Action: "alert.acknowledged", Reason: "seen",
			Notify: []store.Notification{{AlertID: cur.AlertID, TrialID: cur.TrialID, Channel: ch,
				Payload: []byte(`{}`), Status: store.NotifyPending}}}, nil
	}, store.Change{Actor: store.Actor{Sub: "u1", Name: "Dr A", Role: "pi"}, Action: "ignored", Meaning: "acknowledged"})
	if err != nil {
		t.Fatal(err)
	}
	if acked.Status != scoring.StatusAcknowledged || acked.PatientID != "P1" || !acked.UpdatedAt.After(opened.UpdatedAt) {
		t.Fatalf("updated alert %+v", acked)
	}
	if due, _ := s.DueEscalations(ctx, acked.UpdatedAt.Add(time.Hour), 10); len(due) != 0 {
		t.Fatalf("an acknowledged alert without a timer is due: %v", due)
	}
	trail, err := s.Audit(ctx, opened.AlertID)
	if err != nil || len(trail) != 2 {
		t.Fatalf("audit %v %v", trail, err)
	}
	last := trail[1]
	if last.Action != "alert.acknowledged" || last.Actor != "u1" || last.ActorName != "Dr A" || last.Reason != "seen" ||
		last.Meaning != "acknowledged" || len(last.OldValue) == 0 {
		t.Fatalf("audit record %+v", last)
	}
	ns, err := s.Notifications(ctx, store.NotificationQuery{AlertID: opened.AlertID})
	if err != nil || len(ns) != 1 {
		t.Fatalf("notifications enqueued with the change: %v %v", ns, err)
	}

	// Resolution: recorded, and visible to ResolvedSince from its time on.
	resolved, err := s.UpdateAlert(ctx, opened.AlertID, func(cur scoring.Alert) (store.AlertChange, error) {
		next := cur
		next.Status = scoring.StatusResolved
		next.UpdatedAt = base.Add(48 * time.Hour)
		return store.AlertChange{Alert: next}, nil
	}, store.Change{Actor: store.Actor{Sub: "u1", Role: "pi"}, Action: "alert.resolved"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		reason string
		since  time.Time
		want   bool
	}{
		{scoring.ReasonNEWS2High, resolved.UpdatedAt.Add(-time.Minute), true},
		{scoring.ReasonNEWS2High, resolved.UpdatedAt.Add(time.Minute), false},
		{scoring.ReasonMissedReadings, resolved.UpdatedAt.Add(-time.Minute), false},
	} {
		got, err := s.ResolvedSince(ctx, "T1", "S1", "P1", tc.reason, tc.since)
		if err != nil || got != tc.want {
			t.Fatalf("ResolvedSince(%s, %v) = %v %v, want %v", tc.reason, tc.since, got, err, tc.want)
		}
	}
}
