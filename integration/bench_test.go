//go:build linux

package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBenchSmall runs `vigil bench` end to end with tiny parameters: it
// starts the real binary as its server (and as the echo baseline), connects
// sessions, posts readings, and must report every delivery made, with its
// tables, and append the report to --out.
func TestBenchSmall(t *testing.T) {
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vigilBin, "bench",
		"--sessions", "40", "--sites", "5", "--trial-sessions", "4", "--patients", "100",
		"--duration", "1s", "--workers", "8", "--critical", "0.1",
		"--broadcast-sessions", "50", "--broadcast-rate", "20", "--ramp", "40", "--ramp-step", "1s",
		"--idle", "200ms", "--drain", "10s", "--out", out)
	cmd.Env = os.Environ()
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("vigil bench: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout)
	}
	s := string(stdout)
	for _, want := range []string{
		"### Ward",
		"### Broadcast",
		"| **lost deliveries** | — | **0** | **0** |",
		"closed by the server: none",
		"unexpected deliveries (more than a reading's audience, or an alert for a reading that was not critical): 0;",
		"| 44 | 0 |", // every ward session connected (40 site, 4 trial)
		"| 50 | 0 |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// Scores: 40 site sessions over 5 sites = 8 per reading; some alerts
	// (10 % critical) reached their 8 + 4 sessions.
	m := regexp.MustCompile(`score deliveries received / expected \| — \| ([\d,]+) / ([\d,]+) \| ([\d,]+) / ([\d,]+) \|`).FindStringSubmatch(s)
	if m == nil || m[1] != m[2] || m[3] != m[4] || m[1] == "0" {
		t.Errorf("score deliveries: %q", m)
	}
	m = regexp.MustCompile(`alert deliveries received / expected \(critical readings accepted\) \| — \| ([\d,]+) / ([\d,]+) \(([\d,]+)\)`).FindStringSubmatch(s)
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Errorf("alert deliveries: %q", m)
	}
	// The broadcast rows: every event to all 50 sessions, nothing lost.
	for _, rate := range []string{"20", "40"} {
		row := regexp.MustCompile(`\| ` + rate + ` events/s \| [^|]+ \| 0 \| [^|]+ \|(?: [^|]+ \|){8} 0 \| 0 / 0 \|`)
		if !row.MatchString(s) {
			t.Errorf("no loss-free broadcast row at %s events/s:\n%s", rate, s)
		}
	}
	report, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"— vigil bench (ward + broadcast; SQLite, in-process bus, predictor off)", "Command: `", "Machine: ", "### Ward", "### Broadcast"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
