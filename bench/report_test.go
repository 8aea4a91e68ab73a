//go:build linux

package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestTable(t *testing.T) {
	got := table([]string{"", "a", "b"}, "lrr", [][]string{{"x", "1", "2"}, {"y", "3", "4"}})
	want := "|  | a | b |\n| --- | ---: | ---: |\n| x | 1 | 2 |\n| y | 3 | 4 |\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{commas(0), "0"},
		{commas(999), "999"},
		{commas(1000), "1,000"},
		{commas(1234567), "1,234,567"},
		{commas(-1234), "-1,234"},
		{fcommas(math.NaN()), "n/a"},
		{fcommas(2499.5), "2,500"},
		{fmtDur(0), "—"},
		{fmtDur(250 * time.Microsecond), "0.25 ms"},
		{fmtDur(4940 * time.Microsecond), "4.94 ms"},
		{fmtDur(38900 * time.Microsecond), "38.9 ms"},
		{fmtDur(583 * time.Millisecond), "583 ms"},
		{fmtDur(12 * time.Second), "12.0 s"},
		{fmtBytes(12.9 * 1024), "12.9 KiB"},
		{fmtBytes(321.1 * 1024 * 1024), "321.1 MiB"},
		{fmtBytes(math.NaN()), "n/a"},
		{pct(1, 4), "25 %"},
		{pct(1, 0), "n/a"},
		{trimFloat(2.5), "2.5"},
		{truncate("  abcdef ", 3), "abc…"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestWardReport renders a Ward section from made-up figures and checks the
// targets' verdicts.
func TestWardReport(t *testing.T) {
	r := &runner{o: DefaultOptions()}
	co := &cohort{sites: make([]string, 1000), ids: make([]string, 20000)}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	w := wardResult{
		echo: phaseStats{Echo: true, Offered: "as fast as accepted", Load: loadResult{Accepted: 100000, Elapsed: 10 * time.Second}},
		open: phaseStats{Offered: "as fast as accepted", Load: loadResult{Accepted: 60000, Elapsed: 10 * time.Second},
			D: delivery{Accepted: 60000, ScoreExpected: 600000, ScoreGot: 600000}, Score: latency{Count: 1, P99: ms(400)}},
		paced: phaseStats{Offered: "3,000/s", Load: loadResult{Accepted: 30000, Elapsed: 10 * time.Second, Rate: 3000},
			D: delivery{Accepted: 30000, ScoreExpected: 300000, ScoreGot: 299999}, Score: latency{Count: 1, P99: ms(40), P999: ms(150)}},
		mem: memory{Sessions: 10100, RSS: 13 * 1024, RSSGC: 11 * 1024, HeapGC: 5 * 1024, StackGC: 4 * 1024, RSSAfterGC: 150 << 20},
	}
	out := r.wardReport(co, audience{trial: 100}, w)
	for _, want := range []string{
		"### Ward",
		"| **readings/s accepted (2xx)** | **10,000** | **6,000** | **3,000** |",
		"| … as a share of the echo's | — | 60 % | 30 % |",
		"| **lost deliveries** | — | **0** | **1** |",
		"= 60 %; 0 lost | **PASS** |",
		// One lost delivery fails the latency targets too.
		"| 40.0 ms (1 lost) | **FAIL** |",
		"after the server's GC (13.0 KiB right after connecting; 10,100 sessions) | **PASS** |",
		"| after the server's GC | 10,100 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://localhost:8080", true},
		{"http://[::1]:8080", true},
		{"http://127.0.0.2:8080/", true},
		{"http://10.0.0.1:8080", false},
		{"http://vigil.example.org", false},
		{"https://127.0.0.1:8443", false},
		{"127.0.0.1:8080", false},
	} {
		if _, err := checkURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("checkURL(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}
}
