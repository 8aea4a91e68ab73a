//go:build linux

package bench

import (
	"math"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.34
go_memstats_mallocs_total 1.234567e+06
go_goroutines 10112
vigil_readings_rejected_total{reason="rate_ip"} 3
vigil_readings_rejected_total{reason="odd } {value",x="a\"b c"} 4 1700000000000
vigil_scoring_latency_seconds_bucket{le="+Inf"} 99
weird_inf +Inf
weird_nan NaN

`
	s, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{"process_cpu_seconds_total", 12.34},
		{"go_memstats_mallocs_total", 1234567},
		{"go_goroutines", 10112},
		{`vigil_readings_rejected_total{reason="rate_ip"}`, 3},
		{`vigil_readings_rejected_total{reason="odd } {value",x="a\"b c"}`, 4},
		{`vigil_scoring_latency_seconds_bucket{le="+Inf"}`, 99},
		{"weird_inf", math.Inf(1)},
	} {
		if got, ok := s.get(tc.series); !ok || got != tc.want {
			t.Errorf("%s = %v, %v; want %v", tc.series, got, ok, tc.want)
		}
	}
	if v, ok := s.get("weird_nan"); !ok || !math.IsNaN(v) {
		t.Errorf("weird_nan = %v, %v", v, ok)
	}
	if _, ok := s.get("missing"); ok {
		t.Error("missing series found")
	}
}

func TestParseMetricsMalformed(t *testing.T) {
	for _, text := range []string{
		"no_value\n",
		"name{unterminated=\"x} 1\n",
		"name not_a_number\n",
		"name 1 2 3\n",
	} {
		if _, err := parseMetrics(strings.NewReader(text)); err == nil {
			t.Errorf("parseMetrics(%q): no error", text)
		}
	}
}

func TestBetween(t *testing.T) {
	a := mark{m: samples{mCPU: 10, mMallocs: 1000, mRSS: 1 << 20}}
	b := mark{m: samples{mCPU: 13, mMallocs: 61000, mRSS: 2 << 20}}
	a.at = a.at.Add(0)
	b.at = a.at.Add(2e9)
	u := between(a, b)
	if u.serverCPU != 1.5 || u.mallocs != 60000 || u.rss != 2<<20 {
		t.Errorf("between = %+v", u)
	}
	u = between(mark{}, mark{at: b.at})
	if !math.IsNaN(u.serverCPU) || !math.IsNaN(u.mallocs) || !math.IsNaN(u.rss) {
		t.Errorf("without metrics: %+v, want NaNs", u)
	}
}

func TestMachineTicks(t *testing.T) {
	busy, total, ok := machineTicks()
	if !ok {
		t.Skip("no /proc/stat")
	}
	if total == 0 || busy > total {
		t.Errorf("busy %d, total %d", busy, total)
	}
}
