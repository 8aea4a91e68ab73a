package store

import (
	"encoding/json"
	"testing"
	"time"
)

func TestSummariseAck(t *testing.T) {
	s := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Second
		}
		return out
	}
	tests := []struct {
		name             string
		in               []time.Duration
		count            int
		median, p90, max int64
	}{
		{"one", s(340), 1, 340, 340, 340},
		{"two: the median between them", s(100, 300), 2, 200, 280, 300},
		{"unordered", s(900, 60, 300), 3, 300, 780, 900},
		{"ten", s(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 10, 6, 9, 10}, // 5.5 and 9.1, rounded
		{"clock skew counts as 0", s(-5, 10), 2, 5, 9, 10},
		{"sub-second times round", []time.Duration{1400 * time.Millisecond, 1600 * time.Millisecond}, 2, 2, 2, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SummariseAck(tc.in)
			if got.Count != tc.count || got.MedianSeconds == nil || got.P90Seconds == nil || got.MaxSeconds == nil {
				t.Fatalf("%+v, want count %d and figures", got, tc.count)
			}
			if *got.MedianSeconds != tc.median || *got.P90Seconds != tc.p90 || *got.MaxSeconds != tc.max {
				t.Errorf("median %d p90 %d max %d, want %d %d %d", *got.MedianSeconds, *got.P90Seconds, *got.MaxSeconds,
					tc.median, tc.p90, tc.max)
			}
		})
	}
	b, err := json.Marshal(SummariseAck(nil))
	if err != nil || string(b) != `{"count":0,"median_seconds":null,"p90_seconds":null,"max_seconds":null}` {
		t.Errorf("no acknowledgements: %s %v", b, err)
	}
}

func TestOverviewBuilder(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	b := NewOverviewBuilder()
	b.AddLatest("S2", "low", 2, t0)
	b.AddLatest("S1", "", 1, t0.Add(time.Minute))
	b.AddLatest("S1", "critical", 3, t0.Add(-time.Hour))
	b.AddLatest("S1", "unknown-risk", 1, t0.Add(2*time.Minute))
	b.AddAlerts("S1", "open", "high", 2)
	b.AddAlerts("S1", "escalated", "critical", 1)
	b.AddAlerts("S3", "acknowledged", "medium", 1)
	b.AddAck("S4", t0, t0.Add(90*time.Second))
	got := b.Sites()
	ids := []string{}
	for _, s := range got {
		ids = append(ids, s.SiteID)
	}
	if len(got) != 4 || ids[0] != "S1" || ids[1] != "S2" || ids[2] != "S3" || ids[3] != "S4" {
		t.Fatalf("sites %v, want S1..S4 in order", ids)
	}
	s1 := got[0]
	if s1.Patients != 4 || s1.Risk != (RiskCounts{Critical: 3, Pending: 1}) || !s1.LastReadingAt.Equal(t0.Add(2*time.Minute)) ||
		s1.Alerts != (AlertCounts{Open: 2, Escalated: 1, High: 2, Critical: 1}) || s1.Ack.Count != 0 {
		t.Errorf("S1 %+v", s1)
	}
	if s3 := got[2]; s3.Patients != 0 || s3.LastReadingAt != nil || s3.Alerts != (AlertCounts{Acknowledged: 1, Medium: 1}) {
		t.Errorf("S3 %+v", s3)
	}
	if s4 := got[3]; s4.Ack.Count != 1 || *s4.Ack.MedianSeconds != 90 {
		t.Errorf("S4 %+v", s4.Ack)
	}
}
