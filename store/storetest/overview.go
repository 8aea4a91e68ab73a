package storetest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"vigil/scoring"
	"vigil/store"
	"vigil/trial"
)

// testAlertSAEFields: the possible-SAE mark and the reporting clock are part
// of the alert document, so every read path returns them, the trail records
// them, and a later system update (a worse reading) keeps them.
func testAlertSAEFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	opened := mustApply(t, s, candidate("P1", "T1", "S1", "high", 1), scoring.Merge)
	markedAt := at(5).Add(123456789 * time.Nanosecond)
	due := markedAt.Add(24 * time.Hour)
	sig := scoring.Signature{Sub: "u-cra", Name: "Cam CRA", Role: "cra", At: markedAt,
		Meaning: "marked possible SAE", Reason: "admitted overnight"}
	marked, err := s.UpdateAlert(ctx, opened.AlertID, func(cur scoring.Alert) (store.AlertChange, error) {
		next := cur
		next.PossibleSAE = &sig
		next.ReportDueAt = &due
		next.UpdatedAt = markedAt
		return store.AlertChange{Alert: next}, nil
	}, store.Change{Actor: store.Actor{Sub: "u-cra", Name: "Cam CRA", Role: "cra"}, Action: "alert.possible_sae", At: markedAt})
	if err != nil {
		t.Fatalf("UpdateAlert: %v", err)
	}
	check := func(what string, a scoring.Alert) {
		t.Helper()
		if a.PossibleSAE == nil || a.ReportDueAt == nil {
			t.Fatalf("%s: possible_sae %v report_due_at %v, want both", what, a.PossibleSAE, a.ReportDueAt)
		}
		if got := *a.PossibleSAE; got.Sub != sig.Sub || got.Name != sig.Name || got.Role != sig.Role ||
			!got.At.Equal(sig.At) || got.Meaning != sig.Meaning || got.Reason != sig.Reason {
			t.Errorf("%s: possible_sae %+v, want %+v", what, got, sig)
		}
		if !a.ReportDueAt.Equal(due) {
			t.Errorf("%s: report_due_at %v, want %v", what, a.ReportDueAt, due)
		}
	}
	check("UpdateAlert's result", marked)
	got, err := s.Alert(ctx, opened.AlertID)
	if err != nil {
		t.Fatal(err)
	}
	check("Alert", got)
	list, err := s.Alerts(ctx, store.AlertQuery{Visible: store.Visibility{Trials: []string{"T1"}}})
	if err != nil || len(list) != 1 {
		t.Fatalf("Alerts: %v %v", list, err)
	}
	check("Alerts", list[0])
	if got, err = s.UnresolvedAlert(ctx, "T1", "S1", "P1"); err != nil {
		t.Fatal(err)
	}
	check("UnresolvedAlert", got)
	trail := mustAudit(t, s, opened.AlertID)
	last := trail[len(trail)-1]
	check("audit new value", decodeAlert(t, last.NewValue))
	if last.Action != "alert.possible_sae" || last.Actor != "u-cra" {
		t.Errorf("audit record %s by %s, want alert.possible_sae by u-cra", last.Action, last.Actor)
	}
	if old := decodeAlert(t, last.OldValue); old.PossibleSAE != nil || old.ReportDueAt != nil {
		t.Errorf("audit old value carries the mark: %s", last.OldValue)
	}

	// A worse reading updates the alert through the merge: the mark stays.
	worse, changed, err := s.ApplyAlert(ctx, candidate("P1", "T1", "S1", "critical", 6), scoring.Merge)
	if err != nil || !changed || worse.Severity != "critical" {
		t.Fatalf("ApplyAlert: %+v %v %v", worse, changed, err)
	}
	check("after a worse reading", worse)
	if got, err = s.Alert(ctx, opened.AlertID); err != nil {
		t.Fatal(err)
	}
	check("Alert after a worse reading", got)

	// An alert never marked has neither field, as JSON too.
	plain := mustApply(t, s, candidate("P2", "T1", "S1", "high", 1), scoring.Merge)
	if got, err = s.Alert(ctx, plain.AlertID); err != nil {
		t.Fatal(err)
	}
	if got.PossibleSAE != nil || got.ReportDueAt != nil {
		t.Errorf("unmarked alert: %+v %+v", got.PossibleSAE, got.ReportDueAt)
	}
	doc, _ := json.Marshal(got)
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"possible_sae", "report_due_at"} {
		if _, ok := m[k]; ok {
			t.Errorf("unmarked alert's JSON has %q: %s", k, doc)
		}
	}
}

// testAlertsByPatient: the patient filter selects one patient's alerts of
// every status, and never widens what Visible allows.
func testAlertsByPatient(t *testing.T, s store.Store) {
	mustApply(t, s, candidate("P1", "T1", "S1", "high", 1), raise)
	first := mustApply(t, s, candidate("P1", "T1", "S1", "high", 2), resolve)
	second := mustApply(t, s, candidate("P1", "T1", "S1", "medium", 3), raise)
	otherSite := mustApply(t, s, candidate("P1", "T1", "S2", "high", 4), raise) // the same pseudonym elsewhere
	otherTrial := mustApply(t, s, candidate("P1", "T2", "S1", "high", 5), raise)
	mustApply(t, s, candidate("P2", "T1", "S1", "critical", 6), raise)
	all := store.Visibility{Trials: []string{"T1", "T2"}}

	tests := []struct {
		name string
		q    store.AlertQuery
		want []scoring.Alert
	}{
		{"every status, newest first", store.AlertQuery{TrialID: "T1", SiteID: "S1", PatientID: "P1", Visible: all},
			[]scoring.Alert{second, first}},
		{"open only", store.AlertQuery{TrialID: "T1", SiteID: "S1", PatientID: "P1", Status: scoring.StatusOpen, Visible: all},
			[]scoring.Alert{second}},
		{"resolved only", store.AlertQuery{TrialID: "T1", SiteID: "S1", PatientID: "P1", Status: scoring.StatusResolved, Visible: all},
			[]scoring.Alert{first}},
		{"another site", store.AlertQuery{TrialID: "T1", SiteID: "S2", PatientID: "P1", Visible: all},
			[]scoring.Alert{otherSite}},
		{"another trial", store.AlertQuery{TrialID: "T2", SiteID: "S1", PatientID: "P1", Visible: all},
			[]scoring.Alert{otherTrial}},
		{"unknown patient", store.AlertQuery{TrialID: "T1", SiteID: "S1", PatientID: "P9", Visible: all}, nil},
		{"not visible", store.AlertQuery{TrialID: "T1", SiteID: "S1", PatientID: "P1",
			Visible: store.Visibility{Sites: [][2]string{{"T1", "S2"}}}}, nil},
		{"a page of one", store.AlertQuery{TrialID: "T1", SiteID: "S1", PatientID: "P1", Visible: all, Limit: 1},
			[]scoring.Alert{second}},
		{"the next page", store.AlertQuery{TrialID: "T1", SiteID: "S1", PatientID: "P1", Visible: all, Limit: 1, AfterID: second.AlertID},
			[]scoring.Alert{first}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Alerts(t.Context(), tc.q)
			if err != nil {
				t.Fatalf("Alerts: %v", err)
			}
			if g, w := alertIDs(got), alertIDs(tc.want); !slices.Equal(g, w) {
				t.Fatalf("got %v, want %v", g, w)
			}
			for i := range got {
				sameAlert(t, "alert", got[i], tc.want[i])
			}
		})
	}
}

// setStatus moves an alert to status at the given time, with the audit
// action a person's change would record.
func setStatus(t *testing.T, s store.Store, id, status, action string, when time.Time) {
	t.Helper()
	_, err := s.UpdateAlert(t.Context(), id, func(cur scoring.Alert) (store.AlertChange, error) {
		next := cur
		next.Status = status
		next.UpdatedAt = when
		return store.AlertChange{Alert: next}, nil
	}, store.Change{Actor: store.Actor{Sub: "u-pi", Name: "Dr P", Role: "pi"}, Action: action, At: when})
	if err != nil {
		t.Fatalf("UpdateAlert(%s → %s): %v", id, status, err)
	}
}

// testTrialOverview: each site's patients by the risk of their latest
// reading, its newest reading, its unresolved alerts and its times to
// acknowledge, all from one trial, withdrawn patients left out.
func testTrialOverview(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.TrialOverview(ctx, "TO", at(0)); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %+v %v", got, err)
	}
	now := at(24 * 60) // a day after base
	read := func(trialID, site, patient string, when time.Time, risk string) {
		t.Helper()
		nr := newReading(patient, trialID, site, when)
		mustInsert(t, s, nr)
		if risk != "" {
			mustSaveScore(t, s, newScore(nr.Reading, risk, "r1"))
		}
	}
	lastS1 := at(20).Add(123 * time.Nanosecond)
	// S1: P1 latest high; P2 latest low (an older reading uploaded late does
	// not count); P3's latest not scored yet (pending), its scored one
	// older; P5 none; P4 withdrawn, with the site's newest reading, which
	// is left out with its patient.
	read("TO", "S1", "P1", at(0), scoring.RiskLow)
	read("TO", "S1", "P1", at(10), scoring.RiskHigh)
	read("TO", "S1", "P2", at(5), scoring.RiskLow)
	read("TO", "S1", "P2", at(-100), scoring.RiskCritical)
	read("TO", "S1", "P3", at(1), scoring.RiskCritical)
	read("TO", "S1", "P3", lastS1, "")
	read("TO", "S1", "P5", at(3), scoring.RiskNone)
	read("TO", "S1", "P4", at(30), scoring.RiskCritical)
	mustPutPatient(t, s, trialRecord("TO", "S1", "P4", trial.Withdrawn), change(31, "withdrew consent"))
	mustPutPatient(t, s, trialRecord("TO", "S1", "P2", trial.Enrolled), change(31, "enrolled"))
	// S2: the same pseudonym P1 is another patient.
	read("TO", "S2", "P1", at(2), scoring.RiskMedium)
	// Another trial's readings and alerts never count.
	read("TX", "S1", "P1", at(40), scoring.RiskCritical)
	mustApply(t, s, candidate("P1", "TX", "S1", "critical", 40), raise)

	ack := store.ActionAlertAcknowledged
	// S1's alerts. A: acknowledged after 5 minutes, re-opened, acknowledged
	// again: the first acknowledgement counts.
	a := mustApply(t, s, candidate("P1", "TO", "S1", "high", 10), raise)
	setStatus(t, s, a.AlertID, scoring.StatusAcknowledged, ack, at(15))
	setStatus(t, s, a.AlertID, scoring.StatusOpen, "alert.reopened", at(100))
	setStatus(t, s, a.AlertID, scoring.StatusAcknowledged, ack, at(160))
	// B: escalated, never acknowledged.
	b := mustApply(t, s, candidate("P2", "TO", "S1", "critical", 5), raise)
	setStatus(t, s, b.AlertID, scoring.StatusEscalated, "alert.escalated", at(20))
	// C: acknowledged after 15 minutes, then resolved: no longer counted as
	// unresolved, still in the time to acknowledge.
	c := mustApply(t, s, candidate("P3", "TO", "S1", "medium", 20), raise)
	setStatus(t, s, c.AlertID, scoring.StatusAcknowledged, ack, at(35))
	setStatus(t, s, c.AlertID, scoring.StatusResolved, "alert.resolved", at(40))
	// D: opened eight days before now: outside the window.
	d := mustApply(t, s, candidate("P5", "TO", "S1", "high", 24*60-8*24*60), raise)
	setStatus(t, s, d.AlertID, scoring.StatusAcknowledged, ack, at(24*60-8*24*60+1))
	setStatus(t, s, d.AlertID, scoring.StatusResolved, "alert.resolved", at(24*60-8*24*60+2))
	// E: open, of the withdrawn patient: an alert is counted while unresolved.
	mustApply(t, s, candidate("P4", "TO", "S1", "medium", 30), raise)
	// S2: acknowledged after 61 s.
	f := mustApply(t, s, candidate("P1", "TO", "S2", "high", 2), raise)
	setStatus(t, s, f.AlertID, scoring.StatusAcknowledged, ack, at(2).Add(61*time.Second))
	// S3: no readings, an open missed-readings alert.
	g := candidate("P9", "TO", "S3", "medium", 50)
	g.Reasons = []string{scoring.ReasonMissedReadings}
	mustApply(t, s, g, raise)

	secs := func(n int64) *int64 { return &n }
	want := []store.SiteOverview{
		{SiteID: "S1", Patients: 4, Risk: store.RiskCounts{None: 1, Low: 1, High: 1, Pending: 1},
			LastReadingAt: &lastS1,
			Alerts:        store.AlertCounts{Open: 1, Acknowledged: 1, Escalated: 1, Critical: 1, High: 1, Medium: 1},
			Ack:           store.AckSummary{Count: 2, MedianSeconds: secs(600), P90Seconds: secs(840), MaxSeconds: secs(900)}},
		{SiteID: "S2", Patients: 1, Risk: store.RiskCounts{Medium: 1}, LastReadingAt: ptr(at(2)),
			Alerts: store.AlertCounts{Acknowledged: 1, High: 1},
			Ack:    store.AckSummary{Count: 1, MedianSeconds: secs(61), P90Seconds: secs(61), MaxSeconds: secs(61)}},
		{SiteID: "S3", Alerts: store.AlertCounts{Open: 1, Medium: 1}},
	}
	got, err := s.TrialOverview(ctx, "TO", now)
	if err != nil {
		t.Fatalf("TrialOverview: %v", err)
	}
	enc := func(v []store.SiteOverview) string {
		for i := range v {
			if v[i].LastReadingAt != nil {
				v[i].LastReadingAt = ptr(v[i].LastReadingAt.UTC())
			}
		}
		b, err := json.MarshalIndent(v, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if g, w := enc(got), enc(want); g != w {
		t.Errorf("TrialOverview =\n%s\nwant\n%s", g, w)
	}

	// The window is the week before now: at a later now, A, C and F have
	// left it.
	later, err := s.TrialOverview(ctx, "TO", at(8*24*60+3))
	if err != nil {
		t.Fatal(err)
	}
	for _, site := range later {
		if site.Ack.Count != 0 || site.Ack.MedianSeconds != nil {
			t.Errorf("a week later, %s: ack %+v, want none", site.SiteID, site.Ack)
		}
	}
	if len(later) != 3 {
		t.Errorf("a week later: %d sites, want 3 (readings and unresolved alerts stay)", len(later))
	}
}
