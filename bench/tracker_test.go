//go:build linux

package bench

import (
	"testing"
	"time"
)

// TestTrackerCount checks the delivery tally: expected deliveries come from
// each accepted reading's audience, received ones are counted per reading
// and capped, so a reading delivered twice cannot hide one never delivered.
func TestTrackerCount(t *testing.T) {
	tr := newTracker(1, 16)
	co := &cohort{siteOf: []int32{0, 1, 2}}
	aud := audience{site: []int64{3, 2, 0}, trial: 4}
	ph := tr.startPhase(1, "test")
	type reading struct {
		patient  int32
		flags    uint32
		scores   int
		alerts   int
		wantLost int64
	}
	readings := []reading{
		{patient: 0, flags: flagAccepted, scores: 3},                           // all delivered
		{patient: 0, flags: flagAccepted, scores: 1, wantLost: 2},              // two sessions missed it
		{patient: 1, flags: flagAccepted, scores: 3},                           // one extra, nothing lost
		{patient: 1, flags: flagAccepted | flagCritical, scores: 2, alerts: 6}, // site 2 + trial 4
		{patient: 1, flags: flagAccepted | flagCritical, scores: 2, alerts: 5, wantLost: 1},
		{patient: 2, flags: flagAccepted},                         // a site nobody watches
		{patient: 0, flags: 0, scores: 3},                         // no 2xx: not expected
		{patient: 0, flags: flagAccepted, alerts: 1, wantLost: 3}, // alert for an ordinary reading
	}
	var wantLost int64
	for _, r := range readings {
		seq, ok := tr.take()
		if !ok {
			t.Fatal("tracker full")
		}
		tr.patient[seq] = r.patient
		tr.flags[seq].Store(flagSent | uint32(ph.index))
		tr.sent[seq].Store(tr.now())
		for range r.scores {
			tr.deliverScore(seq, tr.now()+int64(time.Millisecond), int(seq))
		}
		for range r.alerts {
			tr.deliverAlert(seq, tr.now()+int64(time.Millisecond), int(seq))
		}
		tr.flags[seq].Or(r.flags)
		wantLost += r.wantLost
	}
	d := tr.count(ph.first, tr.next.Load(), co, aud)
	want := delivery{Accepted: 7, CriticalAccepted: 2, ScoreExpected: 3 + 3 + 2 + 2 + 2 + 0 + 3, ScoreGot: 3 + 1 + 2 + 2 + 2 + 0 + 0,
		AlertExpected: 12, AlertGot: 11, Extra: 1 + 1, Unacked: 3}
	if d != want {
		t.Errorf("count = %+v\nwant    %+v", d, want)
	}
	if d.lost() != wantLost {
		t.Errorf("lost = %d, want %d", d.lost(), wantLost)
	}
	if got := summarize(ph.score.merged()).Count; got != 14 {
		t.Errorf("score latencies recorded: %d, want 14", got)
	}
	last := tr.lastSession(ph.first, tr.next.Load(), co, aud)
	if last.Count != 4 { // readings 0, 2, 3, 4: all of their site's sessions got the score
		t.Errorf("last-session latencies: %d, want 4", last.Count)
	}
}

func TestTrackerForeignAndFull(t *testing.T) {
	tr := newTracker(1, 2)
	tr.deliverScore(0, 1, 0) // never sent
	tr.deliverScore(5, 1, 0) // beyond capacity
	if tr.foreign.Load() != 2 {
		t.Errorf("foreign = %d, want 2", tr.foreign.Load())
	}
	for range 2 {
		if _, ok := tr.take(); !ok {
			t.Fatal("take failed below capacity")
		}
	}
	if _, ok := tr.take(); ok {
		t.Error("take beyond capacity succeeded")
	}
}
