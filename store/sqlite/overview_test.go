package sqlite

import (
	"strings"
	"testing"
)

// TestOverviewUsesIndexes: the trial overview's queries reach their rows
// through indexes, never by scanning a table, so its cost follows the
// number of patients and unresolved alerts, not the length of the history.
func TestOverviewUsesIndexes(t *testing.T) {
	s, _ := openTemp(t)
	tests := []struct {
		name  string
		query string
		args  []any
		want  []string
	}{
		{"latest readings", overviewLatestSQL, []any{"T"}, []string{"readings_patient_measured"}},
		{"unresolved alerts", overviewAlertsSQL, []any{"T"}, []string{"alerts_unresolved_patient"}},
		{"acknowledgements", overviewAckSQL, []any{"T", "2026-11-26T08:00:00.000000000Z", "alert.acknowledged"},
			[]string{"alerts_trial_opened", "audit_entity"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			plan := queryPlan(t, s, tc.query, tc.args...)
			joined := strings.Join(plan, "; ")
			for _, idx := range tc.want {
				if !strings.Contains(joined, idx) {
					t.Errorf("plan %q: want index %s", joined, idx)
				}
			}
			for _, p := range plan {
				if strings.HasPrefix(p, "SCAN readings") || strings.HasPrefix(p, "SCAN alerts") ||
					strings.HasPrefix(p, "SCAN audit") || strings.HasPrefix(p, "SCAN a ") || strings.HasPrefix(p, "SCAN r ") {
					t.Errorf("plan %q: a full scan (%s)", joined, p)
				}
			}
			t.Log(joined)
		})
	}
}
