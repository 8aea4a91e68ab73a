//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Targets the results are compared with (the performance work item's).
const (
	targetEchoShare     = 0.5
	targetWardP99       = 50 * time.Millisecond
	targetWardP999      = 200 * time.Millisecond
	targetBroadcastP99  = 100 * time.Millisecond
	targetBroadcastRate = 250_000.0
	targetSessionBytes  = 12 << 10
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// table renders a Markdown table; align holds "l" or "r" per column.
func table(header []string, align string, rows [][]string) string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for i := range header {
		if i < len(align) && align[i] == 'r' {
			b.WriteString(" ---: |")
		} else {
			b.WriteString(" --- |")
		}
	}
	b.WriteString("\n")
	for _, row := range rows {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return b.String()
}

// commas formats n with thousands separators: 12,345.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fcommas(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "n/a"
	}
	return commas(int64(math.Round(f)))
}

func itoa(n int) string { return strconv.Itoa(n) }

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func trimFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// fmtDur prints a latency in milliseconds with three significant digits.
func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case d == 0:
		return "—"
	case ms < 1:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 10_000:
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.1f s", ms/1000)
}

func fmtBytes(b float64) string {
	switch {
	case math.IsNaN(b):
		return "n/a"
	case math.Abs(b) >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case math.Abs(b) >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case math.Abs(b) >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

func fmtCores(c float64) string {
	if math.IsNaN(c) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", c)
}

func fmtFloat(f float64, prec int) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(f, 'f', prec, 64)
}

func pct(a, b float64) string {
	if b <= 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "n/a"
	}
	return fmt.Sprintf("%.0f %%", 100*a/b)
}

func passFail(ok bool) string {
	if ok {
		return "**PASS**"
	}
	return "**FAIL**"
}

// statuses renders a phase's replies: "50,000 · 429: 0 · 503: 12 · other: 0 · errors: 0".
func statuses(l loadResult) string {
	return fmt.Sprintf("%s sent: %s 2xx · %s × 429 · %s × 503 · %s other · %s errors",
		commas(l.Sent), commas(l.Accepted), commas(l.Status429), commas(l.Status503), commas(l.Other), commas(l.Errors))
}

func latencyCells(l latency) string {
	if l.Count == 0 {
		return "—"
	}
	return fmt.Sprintf("%s / %s / %s / %s / %s", fmtDur(l.P50), fmtDur(l.P90), fmtDur(l.P99), fmtDur(l.P999), fmtDur(l.Max))
}

// wardReport renders the Ward section.
func (r *runner) wardReport(co *cohort, aud audience, w wardResult) string {
	o := r.o
	var b strings.Builder
	fmt.Fprintf(&b, "### Ward\n\n%s staff sessions on %s site rooms (about %d each: PIs and CRAs of one site) and %s safety/on-call sessions on the trial room; %s patients posting over %d keep-alive HTTP connections; %s per phase; %s of readings critical (each for a patient with no alert yet in this run, so each opens an alert). Every reading has its own id; latency is from sending its POST to a session receiving its event.\n\n",
		commas(int64(o.Sessions)), commas(int64(len(co.sites))), o.Sessions/max(1, len(co.sites)), commas(aud.trial),
		commas(int64(len(co.ids))), o.Workers, o.Duration, fmt.Sprintf("%.3g %%", 100*o.Critical))
	cols := []phaseStats{w.echo, w.open}
	head := []string{"", "echo (bare Fiber: decode + validate)", "Vigil, open loop", "Vigil, paced"}
	if w.pacedSkipped == "" {
		cols = append(cols, w.paced)
	} else {
		head = head[:3]
	}
	row := func(name string, f func(p phaseStats) string) []string {
		out := []string{name}
		for _, p := range cols {
			out = append(out, f(p))
		}
		return out
	}
	vigil := func(f func(p phaseStats) string) func(p phaseStats) string {
		return func(p phaseStats) string {
			if p.Echo {
				return "—"
			}
			return f(p)
		}
	}
	echoRate := w.echo.readingsPerSec()
	rows := [][]string{
		row("offered load", func(p phaseStats) string { return p.Offered }),
		row("**readings/s accepted (2xx)**", func(p phaseStats) string { return "**" + fcommas(p.readingsPerSec()) + "**" }),
		row("… as a share of the echo's", vigil(func(p phaseStats) string { return pct(p.readingsPerSec(), echoRate) })),
		row("replies", func(p phaseStats) string { return statuses(p.Load) }),
		row("pacer slots missed (every worker busy)", func(p phaseStats) string {
			if p.Load.Rate == 0 {
				return "—"
			}
			return commas(p.Load.Missed)
		}),
		row("POST round trip p50 / p99 / max", func(p phaseStats) string {
			return fmt.Sprintf("%s / %s / %s", fmtDur(p.Load.Post.P50), fmtDur(p.Load.Post.P99), fmtDur(p.Load.Post.Max))
		}),
		row("**score: post → board p50**", vigil(func(p phaseStats) string { return fmtDur(p.Score.P50) })),
		row("p90", vigil(func(p phaseStats) string { return fmtDur(p.Score.P90) })),
		row("**p99**", vigil(func(p phaseStats) string { return "**" + fmtDur(p.Score.P99) + "**" })),
		row("**p99.9**", vigil(func(p phaseStats) string { return "**" + fmtDur(p.Score.P999) + "**" })),
		row("max", vigil(func(p phaseStats) string { return fmtDur(p.Score.Max) })),
		row("score deliveries received / expected", vigil(func(p phaseStats) string {
			return commas(p.D.ScoreGot) + " / " + commas(p.D.ScoreExpected)
		})),
		row("alert: post → board p50 / p90 / p99 / p99.9 / max", vigil(func(p phaseStats) string { return latencyCells(p.Alert) })),
		row("alert deliveries received / expected (critical readings accepted)", vigil(func(p phaseStats) string {
			return fmt.Sprintf("%s / %s (%s)", commas(p.D.AlertGot), commas(p.D.AlertExpected), commas(p.D.CriticalAccepted))
		})),
		row("**lost deliveries**", vigil(func(p phaseStats) string { return "**" + commas(p.D.lost()) + "**" })),
		row("deliveries/s (scores + alerts)", vigil(func(p phaseStats) string { return fcommas(p.DeliveriesPerSec) })),
		row("server CPU (cores, average)", func(p phaseStats) string { return fmtCores(p.Use.serverCPU) }),
		row("load generator CPU (cores, average)", func(p phaseStats) string { return fmtCores(p.Use.benchCPU) }),
		row("other processes' CPU (cores, average)", func(p phaseStats) string { return fmtCores(p.Use.otherCPU) }),
		row("server RSS at the end", func(p phaseStats) string { return fmtBytes(p.Use.rss) }),
		row("allocations per reading (whole server: Δ go_memstats_mallocs_total / 2xx)", func(p phaseStats) string {
			return fmtFloat(p.allocsPerReading(), 0)
		}),
		row("sessions closed by the server / reconnected", vigil(func(p phaseStats) string {
			return fmt.Sprintf("%d / %d", p.Closed, p.Reconnects)
		})),
	}
	b.WriteString(table(head, "lrrr", rows))
	if w.pacedSkipped != "" {
		fmt.Fprintf(&b, "\nPaced phase %s.\n", w.pacedSkipped)
	}
	b.WriteString("\n" + memoryTable(w.mem))
	b.WriteString("\n" + hubNotes(w.hub, w.serverLog))

	// Targets.
	open, paced := w.open, w.paced
	share := open.readingsPerSec() / echoRate
	var tr [][]string
	tr = append(tr, []string{
		fmt.Sprintf("Ward: open-loop readings/s ≥ %.0f %% of the echo's, with every delivery made", 100*targetEchoShare),
		fmt.Sprintf("%s of %s/s = %s; %s lost", fcommas(open.readingsPerSec()), fcommas(echoRate), pct(open.readingsPerSec(), echoRate), commas(open.D.lost())),
		passFail(share >= targetEchoShare && open.D.lost() == 0 && open.D.Accepted > 0),
	})
	if w.pacedSkipped == "" {
		tr = append(tr,
			[]string{fmt.Sprintf("Ward: at half that rate (%s), p99 post → board ≤ %s", paced.Offered, fmtDur(targetWardP99)),
				fmt.Sprintf("%s (%s lost)", fmtDur(paced.Score.P99), commas(paced.D.lost())),
				passFail(paced.Score.Count > 0 && paced.Score.P99 <= targetWardP99 && paced.D.lost() == 0)},
			[]string{fmt.Sprintf("Ward: at half that rate, p99.9 post → board ≤ %s", fmtDur(targetWardP999)),
				fmtDur(paced.Score.P999),
				passFail(paced.Score.Count > 0 && paced.Score.P999 <= targetWardP999 && paced.D.lost() == 0)})
	}
	tr = append(tr, memoryTarget(w.mem))
	b.WriteString("\n" + table([]string{"target", "measured", "result"}, "lll", tr))
	return b.String()
}

func memoryTable(m memory) string {
	rows := [][]string{{
		"idle " + "after connecting", commas(int64(m.Sessions)), commas(int64(m.Failed)), m.ConnectTime.Round(time.Millisecond).String(),
		fmtBytes(m.RSSBefore) + " → " + fmtBytes(m.RSSAfter),
		fmtBytes(m.RSS), fmtBytes(m.Heap), fmtBytes(m.Stack), fmtFloat(m.Goroutines, 1), fmtBytes(m.Allocated),
	}}
	if !math.IsNaN(m.RSSGC) {
		rows = append(rows, []string{
			"after the server's GC", commas(int64(m.Sessions)), "", "",
			fmtBytes(m.RSSBefore) + " → " + fmtBytes(m.RSSAfterGC),
			fmtBytes(m.RSSGC), fmtBytes(m.HeapGC), fmtBytes(m.StackGC), "", "",
		})
	}
	return "Idle sessions (connected, authenticated, subscribed, then idle; server metrics before and after; \"after the server's GC\" is the steady state its periodic GC reaches, forced through its loopback pprof listener):\n\n" +
		table([]string{"when", "sessions", "failed", "connect time", "server RSS", "RSS Δ per session", "Go heap in use Δ per session",
			"Go stacks Δ per session", "goroutines per session", "allocated while connecting, per session"}, "lrrrrrrrrr", rows)
}

// steadyRSS is the per-session RSS the memory target is judged on: after
// the server's GC when it could be forced, else right after connecting.
func steadyRSS(m memory) (float64, string) {
	if !math.IsNaN(m.RSSGC) {
		return m.RSSGC, "after the server's GC"
	}
	return m.RSS, "right after connecting"
}

func memoryTarget(m memory) []string {
	rss, when := steadyRSS(m)
	return []string{
		fmt.Sprintf("Memory: ≤ %s RSS per idle authenticated session", fmtBytes(targetSessionBytes)),
		fmt.Sprintf("%s %s (%s right after connecting; %s sessions)", fmtBytes(rss), when, fmtBytes(m.RSS), commas(int64(m.Sessions))),
		passFail(!math.IsNaN(rss) && m.Sessions > 0 && rss <= targetSessionBytes),
	}
}

func hubNotes(h hubSummary, serverLog string) string {
	var b strings.Builder
	closes := "none"
	if h.closed > 0 {
		closes = h.closes
	}
	fmt.Fprintf(&b, "Sessions over the scenario: closed by the server: %s; reconnected %s (%s could not be replayed, %s gave up); events missing from a room's offsets: %s; duplicate events: %s; unexpected deliveries (more than a reading's audience, or an alert for a reading that was not critical): %s; events of readings that got no 2xx: %s; events of other runs: %s; other frames after subscribing: %s; alert events re-published for an alert a session already had (not counted as deliveries): %s.",
		closes, commas(h.reconnects), commas(h.unrecovered), commas(h.gaveUp), commas(h.gaps), commas(h.dups), commas(h.extra),
		commas(h.unacked), commas(h.foreign), commas(h.slowFrames), commas(h.alertUpdates))
	if h.firstError != "" {
		fmt.Fprintf(&b, " First session error: %s.", truncate(h.firstError, 200))
	}
	if serverLog != "" {
		fmt.Fprintf(&b, " Server log warnings and errors: %s.", truncate(serverLog, 600))
	}
	return b.String() + "\n"
}

// broadcastReport renders the Broadcast section.
func (r *runner) broadcastReport(br broadcastResult) string {
	o := r.o
	var b strings.Builder
	fmt.Fprintf(&b, "### Broadcast\n\n%s sessions in one site room; each accepted reading's score event goes to all of them. %s at %s events/s, then a ramp (%s each) until p99 passes %s. \"Last session\" is, per event, the latency to the last session that received it.\n\n",
		commas(br.sessions), o.Duration, trimFloat(o.BroadcastRate), o.RampStep, fmtDur(rampLimit))
	rows := [][]string{}
	all := append([]phaseStats{br.steady}, br.ramp...)
	best := 0.0
	for _, p := range all {
		rows = append(rows, []string{
			p.Offered, fcommas(p.readingsPerSec()), commas(p.Load.Status503 + p.Load.Status429 + p.Load.Other + p.Load.Errors),
			fcommas(p.DeliveriesPerSec),
			fmtDur(p.Score.P50), fmtDur(p.Score.P90), fmtDur(p.Score.P99), fmtDur(p.Score.P999), fmtDur(p.Score.Max),
			fmtDur(p.Last.P50), fmtDur(p.Last.P99), fmtDur(p.Last.Max),
			commas(p.D.lost()), fmt.Sprintf("%d / %d", p.Closed, p.Reconnects),
			fmtCores(p.Use.serverCPU), fmtCores(p.Use.benchCPU), fmtCores(p.Use.otherCPU), fmtFloat(p.allocsPerReading(), 0),
		})
		if p.Score.Count > 0 && p.Score.P99 <= rampLimit && p.D.lost() == 0 {
			best = math.Max(best, p.DeliveriesPerSec)
		}
	}
	b.WriteString(table([]string{"events/s offered", "accepted/s", "refused", "deliveries/s", "p50", "p90", "p99", "p99.9", "max",
		"last session p50", "last session p99", "last session max", "lost", "closed / reconnected", "server CPU", "load gen CPU", "other CPU", "allocs per reading"},
		"lrrrrrrrrrrrrrrrrr", rows))
	b.WriteString("\n" + memoryTable(br.mem))
	b.WriteString("\n" + hubNotes(br.hub, br.serverLog))
	st := br.steady
	tr := [][]string{
		{fmt.Sprintf("Broadcast: p99 ≤ %s to all sessions at %s events/s (latency to the last session)", fmtDur(targetBroadcastP99), trimFloat(o.BroadcastRate)),
			fmt.Sprintf("%s (every delivery: %s; %s lost)", fmtDur(st.Last.P99), fmtDur(st.Score.P99), commas(st.D.lost())),
			passFail(st.Last.Count > 0 && st.Last.P99 <= targetBroadcastP99 && st.D.lost() == 0 && br.sessions >= 10_000)},
		{fmt.Sprintf("Broadcast: ≥ %s deliveries/s sustained before p99 passes %s", fcommas(targetBroadcastRate), fmtDur(rampLimit)),
			fmt.Sprintf("%s deliveries/s", fcommas(best)),
			passFail(best >= targetBroadcastRate)},
		memoryTarget(br.mem),
	}
	if br.sessions < 10_000 {
		tr[0][1] += fmt.Sprintf(" — with %s sessions, not the 10,000 of the target", commas(br.sessions))
	}
	b.WriteString("\n" + table([]string{"target", "measured", "result"}, "lll", tr))
	return b.String()
}

// header is the report's heading: date, options, command, commit, machine.
func (r *runner) header(ctx context.Context) string {
	o := r.o
	store := "SQLite"
	if o.PostgresURL != "" {
		store = "PostgreSQL"
	}
	bus := "in-process bus"
	if o.RedisURL != "" {
		bus = "Redis bus"
	}
	pred := "predictor off"
	if o.PredictorAddr != "" {
		pred = "predictor on"
	}
	target := store + ", " + bus + ", " + pred
	if o.URL != "" {
		target = "server at " + o.URL
	}
	return fmt.Sprintf("\n## %s — vigil bench (%s; %s)\n\nCommand: `%s`  \nCommit: %s  \nMachine: %s; load generator and server on the same machine (loopback)  \n",
		r.started.Format("2006-01-02"), scenarioName(o.Scenario), target, o.Command, commit(ctx), r.mach)
}

func scenarioName(s string) string {
	if s == "all" {
		return "ward + broadcast"
	}
	return s
}

// footer says how the run went: wall time, the bench's own cost, notes.
func (r *runner) footer() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run: %s wall time; load generator peak RSS %s. Server CPU is `process_cpu_seconds_total` from its /metrics; the load generator's is its own getrusage, on the same cores: when the two add up to the machine's cores, the machine, not the server alone, was the limit. \"Other\" is the rest of the machine's busy CPU (/proc/stat) over the phase: other processes, and the kernel's work not charged to either; well above zero, something else was running.\n",
		time.Since(r.started).Round(time.Second), fmtBytes(float64(selfMaxRSS())))
	for _, n := range r.notes {
		b.WriteString("\n- " + n)
	}
	if len(r.notes) > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// appendReport appends doc to the Markdown file path.
func appendReport(path, doc string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("bench: --out: %w", err)
	}
	_, werr := f.WriteString(doc)
	return errors.Join(werr, f.Close())
}
