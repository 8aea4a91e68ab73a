package sqlite

import (
	"strings"
	"testing"
	"time"

	"vigil/store"
	"vigil/store/storetest"
)

func TestTrendsConformance(t *testing.T) {
	storetest.RunTrends(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return s
	})
}

// The trend is one range scan of readings_site_measured, in its order: no
// walk through every patient's history, no sort of the window.
func TestTrendsQueryPlan(t *testing.T) {
	s, _ := openTemp(t)
	q := store.NewTrendQuery("T1", "S1", time.Now(), 24, 48)
	plan := queryPlan(t, s, trendsSQL, q.TrialID, q.SiteID, formatTime(q.From), formatTime(q.To()), q.Limit())
	all := strings.Join(plan, "\n")
	if !strings.Contains(all, "readings_site_measured (trial_id=? AND site_id=? AND measured_at>? AND measured_at<?)") ||
		strings.Contains(all, "TEMP B-TREE") {
		t.Errorf("query plan:\n%s\nwant a range scan of readings_site_measured without a sort", all)
	}
}

// BenchmarkTrends is the board's one trend request of a 500-patient site's
// day: 48,000 scored readings read, bucketed and encoded.
func BenchmarkTrends(b *testing.B) {
	s, _ := openTemp(b)
	q := storetest.SeedTrendSite(b, s, 500, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	var buf []byte
	b.ResetTimer()
	for b.Loop() {
		tr, err := s.Trends(b.Context(), q)
		if err != nil || tr.Rows != 48_000 || len(tr.Patients) != 500 {
			b.Fatalf("%d rows, %d patients, %v", tr.Rows, len(tr.Patients), err)
		}
		buf = tr.AppendJSON(buf[:0])
	}
}
