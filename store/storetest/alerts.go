package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"vigil/scoring"
	"vigil/store"
)

var severityRank = map[string]int{"medium": 1, "high": 2, "critical": 3}

func candidate(patient, trial, site, severity string, minute int) scoring.Alert {
	return scoring.Alert{
		Kind:      "alert",
		PatientID: patient,
		TrialID:   trial,
		SiteID:    site,
		Severity:  severity,
		Status:    scoring.StatusOpen,
		Reasons:   []string{scoring.ReasonNEWS2High},
		ReadingID: uuid.NewString(),
		OpenedAt:  at(minute),
		UpdatedAt: at(minute),
	}
}

// raise is a small stand-in for the scoring package's merge: it opens the
// candidate when there is no alert and otherwise only ever raises severity.
func raise(cur *scoring.Alert, cand scoring.Alert) (scoring.Alert, bool) {
	if cur == nil {
		return cand, true
	}
	if severityRank[cand.Severity] <= severityRank[cur.Severity] {
		return *cur, false
	}
	next := *cur
	next.Severity = cand.Severity
	next.ReadingID = cand.ReadingID
	next.UpdatedAt = cand.UpdatedAt
	next.Reasons = append(slices.Clone(cur.Reasons), cand.Reasons...)
	slices.Sort(next.Reasons)
	next.Reasons = slices.Compact(next.Reasons)
	return next, true
}

// resolve closes the current alert, so that the next candidate opens a new one.
func resolve(cur *scoring.Alert, cand scoring.Alert) (scoring.Alert, bool) {
	if cur == nil {
		return scoring.Alert{}, false
	}
	next := *cur
	next.Status = scoring.StatusResolved
	next.UpdatedAt = cand.UpdatedAt
	return next, true
}

func mustApply(t *testing.T, s store.Store, cand scoring.Alert, merge scoring.MergeFunc) scoring.Alert {
	t.Helper()
	a, changed, err := s.ApplyAlert(t.Context(), cand, merge)
	if err != nil {
		t.Fatalf("ApplyAlert(%s): %v", cand.PatientID, err)
	}
	if !changed {
		t.Fatalf("ApplyAlert(%s): changed = false, want true", cand.PatientID)
	}
	return a
}

func mustAudit(t *testing.T, s store.Store, alertID string) []store.AuditRecord {
	t.Helper()
	recs, err := s.Audit(t.Context(), alertID)
	if err != nil {
		t.Fatalf("Audit(%s): %v", alertID, err)
	}
	return recs
}

func isNull(v json.RawMessage) bool { return len(v) == 0 || string(v) == "null" }

func decodeAlert(t *testing.T, v json.RawMessage) scoring.Alert {
	t.Helper()
	var a scoring.Alert
	if err := json.Unmarshal(v, &a); err != nil {
		t.Fatalf("audit value %s: %v", v, err)
	}
	return a
}

func testApplyAlert(t *testing.T, s store.Store) {
	var (
		seen    []*scoring.Alert // what merge was shown as current, per step
		created scoring.Alert
	)
	recording := func(cur *scoring.Alert, cand scoring.Alert) (scoring.Alert, bool) {
		if cur != nil {
			c := *cur
			seen = append(seen, &c)
		} else {
			seen = append(seen, nil)
		}
		return raise(cur, cand)
	}

	tests := []struct {
		name        string
		cand        scoring.Alert
		wantChanged bool
		wantSev     string
		wantAudit   []string // actions, oldest first
		wantCurrent bool     // merge was shown the stored alert
	}{
		{"no alert: opens one", candidate("P1", "T1", "S1", "medium", 1), true, "medium", []string{"opened"}, false},
		{"higher severity: updates it", candidate("P1", "T1", "S1", "high", 2), true, "high", []string{"opened", "updated"}, true},
		{"lower severity: no change", candidate("P1", "T1", "S1", "medium", 3), false, "high", []string{"opened", "updated"}, true},
		{"same severity: no change", candidate("P1", "T1", "S1", "high", 4), false, "high", []string{"opened", "updated"}, true},
		{"critical: updates it again", candidate("P1", "T1", "S1", "critical", 5), true, "critical", []string{"opened", "updated", "updated"}, true},
	}
	var stored scoring.Alert // what the store should hold after each step
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, err := s.ApplyAlert(t.Context(), tc.cand, recording)
			if err != nil {
				t.Fatalf("ApplyAlert: %v", err)
			}
			if changed != tc.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if len(seen) != i+1 {
				t.Fatalf("merge called %d times in all, want %d", len(seen), i+1)
			}
			switch cur := seen[i]; {
			case tc.wantCurrent && cur == nil:
				t.Errorf("merge was shown no current alert")
			case tc.wantCurrent:
				sameAlert(t, "current shown to merge", *cur, stored)
			case cur != nil:
				t.Errorf("merge was shown %+v, want no current alert", *cur)
			}

			if i == 0 {
				created = got
				if got.AlertID == "" {
					t.Fatal("new alert has no AlertID")
				}
			}
			if got.AlertID != created.AlertID {
				t.Errorf("AlertID = %q, want %q (one alert per patient)", got.AlertID, created.AlertID)
			}
			if got.Kind != "alert" || got.Severity != tc.wantSev || got.Status != scoring.StatusOpen ||
				got.PatientID != "P1" || got.TrialID != "T1" || got.SiteID != "S1" {
				t.Errorf("alert = %+v, want kind alert, severity %s, open, P1 T1 S1", got, tc.wantSev)
			}
			if changed {
				stored = got
			} else {
				sameAlert(t, "unchanged result is the stored alert", got, stored)
			}
			fromStore, err := s.Alert(t.Context(), created.AlertID)
			if err != nil {
				t.Fatalf("Alert: %v", err)
			}
			sameAlert(t, "Alert()", fromStore, stored)

			audit := mustAudit(t, s, created.AlertID)
			var actions []string
			for _, r := range audit {
				actions = append(actions, r.Action)
			}
			if !slices.Equal(actions, tc.wantAudit) {
				t.Fatalf("audit actions = %v, want %v", actions, tc.wantAudit)
			}
			last := audit[len(audit)-1]
			if last.Actor != "system" || last.AlertID != created.AlertID || last.At.IsZero() {
				t.Errorf("audit record = %+v, want actor system, alert %s, a time", last, created.AlertID)
			}
			if changed {
				sameAlert(t, "audit new value", decodeAlert(t, last.NewValue), got)
				if last.Action == "opened" && !isNull(last.OldValue) {
					t.Errorf("opened: old value = %s, want null", last.OldValue)
				}
				if last.Action == "updated" {
					prev := decodeAlert(t, audit[len(audit)-2].NewValue)
					sameAlert(t, "audit old value", decodeAlert(t, last.OldValue), prev)
				}
			}
		})
	}

	t.Run("another patient gets its own alert", func(t *testing.T) {
		other := mustApply(t, s, candidate("P2", "T1", "S1", "medium", 6), raise)
		if other.AlertID == created.AlertID || other.AlertID == "" {
			t.Errorf("P2's AlertID = %q, P1's = %q: want distinct", other.AlertID, created.AlertID)
		}
	})

	t.Run("no alert and no change stores nothing", func(t *testing.T) {
		_, changed, err := s.ApplyAlert(t.Context(), candidate("P3", "T1", "S1", "medium", 7), resolve)
		if err != nil || changed {
			t.Fatalf("ApplyAlert = changed %v, err %v; want false, nil", changed, err)
		}
		got, err := s.Alerts(t.Context(), store.AlertQuery{Visible: store.Visibility{Trials: []string{"T1"}}})
		if err != nil {
			t.Fatalf("Alerts: %v", err)
		}
		if len(got) != 2 {
			t.Errorf("%d alerts, want 2 (P1, P2)", len(got))
		}
	})
}

func testApplyAlertResolved(t *testing.T, s store.Store) {
	first := mustApply(t, s, candidate("P1", "T1", "S1", "high", 1), raise)
	resolved := mustApply(t, s, candidate("P1", "T1", "S1", "high", 2), resolve)
	if resolved.AlertID != first.AlertID || resolved.Status != scoring.StatusResolved {
		t.Fatalf("resolve gave %+v, want %s resolved", resolved, first.AlertID)
	}
	var shown *scoring.Alert
	second, changed, err := s.ApplyAlert(t.Context(), candidate("P1", "T1", "S1", "medium", 3),
		func(cur *scoring.Alert, cand scoring.Alert) (scoring.Alert, bool) {
			shown = cur
			return raise(cur, cand)
		})
	if err != nil || !changed {
		t.Fatalf("ApplyAlert after resolve: changed %v, err %v", changed, err)
	}
	if shown != nil {
		t.Errorf("merge was shown the resolved alert %+v, want none", *shown)
	}
	if second.AlertID == first.AlertID {
		t.Errorf("new alert reuses the resolved alert's id %s", first.AlertID)
	}
	old, err := s.Alert(t.Context(), first.AlertID)
	if err != nil {
		t.Fatalf("Alert: %v", err)
	}
	if old.Status != scoring.StatusResolved {
		t.Errorf("resolved alert is now %s", old.Status)
	}
	if n := len(mustAudit(t, s, first.AlertID)); n != 2 {
		t.Errorf("resolved alert has %d audit records, want 2", n)
	}
	if n := len(mustAudit(t, s, second.AlertID)); n != 1 {
		t.Errorf("new alert has %d audit records, want 1", n)
	}
}

func testApplyAlertConcurrent(t *testing.T, s store.Store) {
	severities := []string{"medium", "high", "critical"}

	t.Run("one patient", func(t *testing.T) {
		const n = 50
		var (
			changes atomic.Int32
			mu      sync.Mutex
			ids     = map[string]bool{}
		)
		parallel(n, func(i int) {
			a, changed, err := s.ApplyAlert(t.Context(), candidate("P1", "T1", "S1", severities[i%3], i), raise)
			if err != nil {
				t.Errorf("ApplyAlert %d: %v", i, err)
				return
			}
			if changed {
				changes.Add(1)
				mu.Lock()
				ids[a.AlertID] = true
				mu.Unlock()
			}
		})
		if len(ids) != 1 {
			t.Fatalf("changed calls returned %d alert ids, want 1", len(ids))
		}
		alerts, err := s.Alerts(t.Context(), store.AlertQuery{Visible: store.Visibility{Trials: []string{"T1"}}})
		if err != nil {
			t.Fatalf("Alerts: %v", err)
		}
		if len(alerts) != 1 {
			t.Fatalf("%d alerts for one patient, want exactly 1", len(alerts))
		}
		if alerts[0].Severity != "critical" {
			t.Errorf("severity = %s, want critical (it only rises)", alerts[0].Severity)
		}
		audit := mustAudit(t, s, alerts[0].AlertID)
		if len(audit) != int(changes.Load()) {
			t.Errorf("%d audit records for %d changes", len(audit), changes.Load())
		}
		for i, r := range audit {
			want := "updated"
			if i == 0 {
				want = "opened"
			}
			if r.Action != want {
				t.Errorf("audit[%d].Action = %s, want %s", i, r.Action, want)
			}
		}
	})

	t.Run("many patients", func(t *testing.T) {
		const patients, each = 20, 5
		parallel(patients*each, func(i int) {
			p := fmt.Sprintf("Q%02d", i%patients)
			if _, _, err := s.ApplyAlert(t.Context(), candidate(p, "T2", "S1", severities[i%3], i), raise); err != nil {
				t.Errorf("ApplyAlert %d: %v", i, err)
			}
		})
		alerts, err := s.Alerts(t.Context(), store.AlertQuery{Visible: store.Visibility{Trials: []string{"T2"}}, Limit: 1000})
		if err != nil {
			t.Fatalf("Alerts: %v", err)
		}
		perPatient := map[string]int{}
		for _, a := range alerts {
			perPatient[a.PatientID]++
		}
		if len(alerts) != patients || len(perPatient) != patients {
			t.Errorf("%d alerts over %d patients, want one for each of %d", len(alerts), len(perPatient), patients)
		}
	})
}

// alertFixture stores alerts over three trials. In the order Alerts must
// return them (updated_at desc, then alert id): p2, p4, p3, the tie of p5 and
// p6 by id, p1. p2 is resolved.
type alertFixture struct {
	p1, p2, p3, p4, p5, p6 scoring.Alert
	all                    []scoring.Alert
}

func newAlertFixture(t *testing.T, s store.Store) alertFixture {
	var f alertFixture
	f.p1 = mustApply(t, s, candidate("P1", "T1", "S1", "medium", 1), raise)
	mustApply(t, s, candidate("P2", "T1", "S1", "high", 5), raise)
	f.p2 = mustApply(t, s, candidate("P2", "T1", "S1", "high", 6), resolve)
	f.p3 = mustApply(t, s, candidate("P3", "T1", "S2", "critical", 3), raise)
	f.p4 = mustApply(t, s, candidate("P4", "T2", "S1", "high", 4), raise)
	f.p5 = mustApply(t, s, candidate("P5", "T3", "S1", "high", 2), raise)
	f.p6 = mustApply(t, s, candidate("P6", "T3", "S1", "high", 2), raise)
	tie := []scoring.Alert{f.p5, f.p6}
	if tie[1].AlertID < tie[0].AlertID {
		tie[0], tie[1] = tie[1], tie[0]
	}
	f.all = []scoring.Alert{f.p2, f.p4, f.p3, tie[0], tie[1], f.p1}
	return f
}

func testAlerts(t *testing.T, s store.Store) {
	f := newAlertFixture(t, s)
	without := func(drop ...scoring.Alert) []scoring.Alert {
		return slices.DeleteFunc(slices.Clone(f.all), func(a scoring.Alert) bool {
			return slices.ContainsFunc(drop, func(d scoring.Alert) bool { return d.AlertID == a.AlertID })
		})
	}
	all := store.Visibility{Trials: []string{"T1", "T2", "T3"}}

	tests := []struct {
		name string
		q    store.AlertQuery
		want []scoring.Alert
	}{
		{"empty visibility sees nothing", store.AlertQuery{}, nil},
		{"empty visibility with filters sees nothing", store.AlertQuery{TrialID: "T1", SiteID: "S1", Status: "open"}, nil},
		{"everything, most recently updated first", store.AlertQuery{Visible: all}, f.all},
		{"one trial", store.AlertQuery{Visible: store.Visibility{Trials: []string{"T1"}}}, []scoring.Alert{f.p2, f.p3, f.p1}},
		{"one site", store.AlertQuery{Visible: store.Visibility{Sites: [][2]string{{"T1", "S1"}}}}, []scoring.Alert{f.p2, f.p1}},
		{"a site and a trial", store.AlertQuery{Visible: store.Visibility{Trials: []string{"T2"}, Sites: [][2]string{{"T1", "S2"}}}}, []scoring.Alert{f.p4, f.p3}},
		{"same site id in another trial is not visible", store.AlertQuery{Visible: store.Visibility{Sites: [][2]string{{"T2", "S2"}}}}, nil},
		{"trial filter cannot widen visibility", store.AlertQuery{TrialID: "T2", Visible: store.Visibility{Sites: [][2]string{{"T1", "S1"}}}}, nil},
		{"trial filter narrows", store.AlertQuery{TrialID: "T1", Visible: all}, []scoring.Alert{f.p2, f.p3, f.p1}},
		{"trial and site filter", store.AlertQuery{TrialID: "T1", SiteID: "S2", Visible: all}, []scoring.Alert{f.p3}},
		{"status open", store.AlertQuery{Status: scoring.StatusOpen, Visible: all}, without(f.p2)},
		{"status resolved", store.AlertQuery{Status: scoring.StatusResolved, Visible: all}, []scoring.Alert{f.p2}},
		{"status acknowledged", store.AlertQuery{Status: scoring.StatusAcknowledged, Visible: all}, nil},
		{"limit", store.AlertQuery{Limit: 2, Visible: all}, f.all[:2]},
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
				sameAlert(t, fmt.Sprintf("alert %d", i), got[i], tc.want[i])
			}
		})
	}
}

func testAlertsPaging(t *testing.T, s store.Store) {
	f := newAlertFixture(t, s)
	all := store.Visibility{Trials: []string{"T1", "T2", "T3"}}
	tests := []struct {
		name string
		q    store.AlertQuery
		want []scoring.Alert
	}{
		{"pages of 1", store.AlertQuery{Limit: 1, Visible: all}, f.all},
		{"pages of 2", store.AlertQuery{Limit: 2, Visible: all}, f.all},
		{"pages of 4", store.AlertQuery{Limit: 4, Visible: all}, f.all},
		{"pages of 1, open only", store.AlertQuery{Limit: 1, Status: scoring.StatusOpen, Visible: all}, f.all[1:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			var got []scoring.Alert
			for pages := 0; ; pages++ {
				if pages > 20 {
					t.Fatal("paging does not end")
				}
				page, err := s.Alerts(t.Context(), q)
				if err != nil {
					t.Fatalf("Alerts page %d: %v", pages, err)
				}
				if len(page) == 0 {
					break
				}
				if len(page) > q.Limit {
					t.Fatalf("page of %d, limit %d", len(page), q.Limit)
				}
				got = append(got, page...)
				q.AfterID = page[len(page)-1].AlertID
			}
			if g, w := alertIDs(got), alertIDs(tc.want); !slices.Equal(g, w) {
				t.Errorf("got %v, want %v", g, w)
			}
		})
	}
}

func testAlert(t *testing.T, s store.Store) {
	a := mustApply(t, s, candidate("P1", "T1", "S1", "high", 1), raise)
	got, err := s.Alert(t.Context(), a.AlertID)
	if err != nil {
		t.Fatalf("Alert: %v", err)
	}
	sameAlert(t, "Alert", got, a)
	if _, err := s.Alert(t.Context(), uuid.NewString()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Alert(unknown): err = %v, want ErrNotFound", err)
	}
}

func testAudit(t *testing.T, s store.Store) {
	a := mustApply(t, s, candidate("P1", "T1", "S1", "medium", 1), raise)
	mustApply(t, s, candidate("P2", "T1", "S1", "medium", 1), raise) // interleaved
	mustApply(t, s, candidate("P1", "T1", "S1", "high", 2), raise)
	mustApply(t, s, candidate("P1", "T1", "S1", "critical", 3), raise)
	mustApply(t, s, candidate("P1", "T1", "S1", "critical", 4), resolve)

	recs := mustAudit(t, s, a.AlertID)
	want := []struct{ action, severity, status string }{
		{"opened", "medium", "open"},
		{"updated", "high", "open"},
		{"updated", "critical", "open"},
		{"updated", "critical", "resolved"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d audit records, want %d", len(recs), len(want))
	}
	for i, w := range want {
		r := recs[i]
		nv := decodeAlert(t, r.NewValue)
		if r.Action != w.action || nv.Severity != w.severity || nv.Status != w.status || r.AlertID != a.AlertID || r.Actor != "system" {
			t.Errorf("audit[%d] = %s %s/%s by %s, want %s %s/%s by system", i, r.Action, nv.Severity, nv.Status, r.Actor, w.action, w.severity, w.status)
		}
		if i > 0 {
			if r.ID <= recs[i-1].ID || r.At.Before(recs[i-1].At) {
				t.Errorf("audit[%d] (id %d, at %v) is not after audit[%d] (id %d, at %v)", i, r.ID, r.At, i-1, recs[i-1].ID, recs[i-1].At)
			}
			// Each record's old value is the previous record's new value:
			// the trail never loses a state.
			ov := decodeAlert(t, r.OldValue)
			sameAlert(t, fmt.Sprintf("audit[%d] old value", i), ov, decodeAlert(t, recs[i-1].NewValue))
		}
	}

	got, err := s.Audit(t.Context(), uuid.NewString())
	if err != nil {
		t.Fatalf("Audit(unknown): %v", err)
	}
	if len(got) != 0 {
		t.Errorf("Audit(unknown) = %d records, want none", len(got))
	}
}
