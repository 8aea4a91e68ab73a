package postgres

import (
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

// BenchmarkTrends is the board's one trend request of a 500-patient site's
// day: 48,000 scored readings read, bucketed and encoded.
func BenchmarkTrends(b *testing.B) {
	s, _ := openTemp(b)
	q := storetest.SeedTrendSite(b, s, 500, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	if _, err := s.pool.Exec(b.Context(), "ANALYZE readings, scores"); err != nil {
		b.Fatal(err)
	}
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
