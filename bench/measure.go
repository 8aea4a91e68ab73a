//go:build linux

package bench

import (
	"context"
	"io"
	"math"
	"net/http"
	"time"
)

var nan = math.NaN()

// audience is who should receive a reading's events: the sessions
// subscribed to each site room (by site index), and to the trial room.
type audience struct {
	site  []int64
	trial int64
}

// delivery compares what the sessions received with what they should have:
// every session of a reading's site room gets its score event, and, for a
// critical reading, its alert; the trial room's sessions get the alert too.
// Counts are per reading and session, so a reading delivered twice to one
// session cannot hide one never delivered to another.
type delivery struct {
	Accepted, CriticalAccepted int64
	ScoreExpected, ScoreGot    int64
	AlertExpected, AlertGot    int64
	Extra                      int64 // deliveries beyond the expected ones
	// Unacked counts deliveries of readings that got no 2xx: the server
	// stored them but the reply was lost (a transport error or timeout).
	Unacked int64
}

func (d delivery) lost() int64 { return d.ScoreExpected - d.ScoreGot + d.AlertExpected - d.AlertGot }
func (d delivery) got() int64  { return d.ScoreGot + d.AlertGot }

// count tallies readings [first, end). It runs after the phase's workers
// have returned, so patient, written before each POST, is settled.
func (t *tracker) count(first, end uint64, co *cohort, aud audience) delivery {
	var d delivery
	for seq := first; seq < end; seq++ {
		f := t.flags[seq].Load()
		if f&flagAccepted == 0 {
			d.Unacked += int64(t.scores[seq].Load() + t.alerts[seq].Load())
			continue
		}
		d.Accepted++
		e := aud.site[co.siteOf[t.patient[seq]]]
		got := int64(t.scores[seq].Load())
		d.ScoreExpected += e
		d.ScoreGot += min(got, e)
		d.Extra += max(0, got-e)
		if f&flagCritical == 0 {
			// An alert for an ordinary reading: the cohort's baselines
			// score NEWS2 0, so this is unexpected.
			d.Extra += int64(t.alerts[seq].Load())
		} else {
			d.CriticalAccepted++
			e += aud.trial
			got = int64(t.alerts[seq].Load())
			d.AlertExpected += e
			d.AlertGot += min(got, e)
			d.Extra += max(0, got-e)
		}
	}
	return d
}

// settle waits, at most drain, for the phase's last deliveries, and
// returns the tally. What has not arrived by then is lost.
func (r *runner) settle(ctx context.Context, t *tracker, res loadResult, co *cohort, aud audience) delivery {
	deadline := time.Now().Add(r.o.Drain)
	for {
		d := t.count(res.First, res.End, co, aud)
		if d.lost() <= 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return d
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// lastSession is the latency of each reading's score to the last session
// that should receive it, over the readings every such session received.
func (t *tracker) lastSession(first, end uint64, co *cohort, aud audience) latency {
	h := newHDR()
	for seq := first; seq < end; seq++ {
		if t.flags[seq].Load()&flagAccepted == 0 {
			continue
		}
		e := aud.site[co.siteOf[t.patient[seq]]]
		if e == 0 || int64(t.scores[seq].Load()) < e {
			continue
		}
		_ = h.RecordValue(clampMicros(time.Duration(t.last[seq].Load() - t.sent[seq].Load())))
	}
	return summarize(h)
}

// phaseStats is one column (Ward) or row (Broadcast) of a table.
type phaseStats struct {
	Name    string
	Offered string // "as fast as accepted", "2,000/s"
	Load    loadResult
	D       delivery
	Score   latency
	Alert   latency
	Last    latency
	// DeliveriesPerSec: events received over the time from the phase's
	// start to its last arrival.
	DeliveriesPerSec float64
	AlertUpdates     int64
	Use              usage
	Closed           int   // sessions the server closed during the phase
	Reconnects       int64 // and that reconnected
	Gaps             int64 // events missing from a session's offsets
	Echo             bool  // the echo server, not Vigil
}

func (t *tracker) deliveryRate(ph *phase, d delivery) float64 {
	span := time.Duration(ph.lastArrival.Load() - ph.startNs)
	if span <= 0 || d.got() == 0 {
		return 0
	}
	return float64(d.got()) / span.Seconds()
}

// readingsPerSec is the accepted rate of a phase.
func (p phaseStats) readingsPerSec() float64 {
	if p.Load.Elapsed <= 0 {
		return 0
	}
	return float64(p.Load.Accepted) / p.Load.Elapsed.Seconds()
}

// allocsPerReading is the whole server's allocations over the phase divided
// by the readings it accepted.
func (p phaseStats) allocsPerReading() float64 {
	if p.Load.Accepted == 0 {
		return nan
	}
	return p.Use.mallocs / float64(p.Load.Accepted)
}

// memory is the cost of idle sessions: the server's RSS, heap and stacks
// after they connected, authenticated and subscribed, less before.
type memory struct {
	Sessions, Failed             int
	ConnectTime                  time.Duration
	RSS, Heap, Stack, Goroutines float64 // per session; NaN without the metric
	// Allocated is what the server allocated while the sessions connected,
	// per session: garbage included, which RSS shows until it is collected.
	Allocated           float64
	RSSBefore, RSSAfter float64
	// The same after the server collected its garbage (forced through its
	// loopback pprof listener, twice, a second apart, so that stacks shrink
	// and freed pages are returned): the steady state of a server whose
	// sessions sit idle, as its periodic GC leaves it. NaN without pprof.
	RSSGC, HeapGC, StackGC float64
	RSSAfterGC             float64
	FirstError             string
}

func perSession(before, after samples, name string, n int) float64 {
	a, ok1 := before.get(name)
	b, ok2 := after.get(name)
	if !ok1 || !ok2 || n == 0 {
		return nan
	}
	return (b - a) / float64(n)
}

// idleBaseline scrapes an idle server twice, a second apart, and keeps the
// second: the first scrape's own allocations and a start-up GC cycle settle
// in between. With the server's pprof listener, garbage is collected first.
func (r *runner) idleBaseline(ctx context.Context, s *server) samples {
	r.collectGarbage(ctx, s)
	_ = r.mark(ctx, s.base)
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	return r.mark(ctx, s.base).m
}

// collectGarbage makes the server run its GC twice, a second apart
// (/debug/pprof/heap?gc=1 on its loopback pprof listener). It reports false
// when the server has no pprof listener.
func (r *runner) collectGarbage(ctx context.Context, s *server) bool {
	if s.pprofAddr == "" {
		return false
	}
	for i := range 2 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.pprofAddr+"/debug/pprof/heap?gc=1", nil)
		if err != nil {
			return false
		}
		resp, err := r.http.Do(req)
		if err != nil {
			r.logf("forcing a GC: %v", err)
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if i == 0 {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(time.Second):
			}
		}
	}
	return true
}

// connectSessions opens the sessions of specs, waits o.Idle, and measures
// what they cost the server.
func (r *runner) connectSessions(ctx context.Context, s *server, hub *hubClient, specs []sessionSpec, scenario string) (memory, error) {
	before := r.idleBaseline(ctx, s)
	r.logf("%s: connecting %s sessions", scenario, commas(int64(len(specs))))
	start := time.Now()
	failed := hub.connectAll(ctx, specs, r.o.ConnectParallel)
	m := memory{Sessions: len(specs) - failed, Failed: failed, ConnectTime: time.Since(start),
		RSSGC: nan, HeapGC: nan, StackGC: nan, RSSAfterGC: nan}
	hub.mu.Lock()
	m.FirstError = hub.firstError
	hub.mu.Unlock()
	if ctx.Err() != nil {
		return m, ctx.Err()
	}
	r.logf("%s: %s sessions subscribed in %s (%d failed)", scenario, commas(int64(m.Sessions)), m.ConnectTime.Round(time.Millisecond), failed)
	if m.Sessions == 0 && len(specs) > 0 {
		return m, errorf("no session could connect: %s", m.FirstError)
	}
	select {
	case <-ctx.Done():
		return m, ctx.Err()
	case <-time.After(r.o.Idle):
	}
	after := r.mark(ctx, s.base).m
	m.RSS = perSession(before, after, mRSS, m.Sessions)
	m.Heap = perSession(before, after, mHeapInuse, m.Sessions)
	m.Stack = perSession(before, after, mStackInuse, m.Sessions)
	m.Goroutines = perSession(before, after, mGoroutines, m.Sessions)
	m.Allocated = perSession(before, after, mAllocBytes, m.Sessions)
	m.RSSBefore, _ = before.get(mRSS)
	m.RSSAfter, _ = after.get(mRSS)
	if r.collectGarbage(ctx, s) {
		gc := r.mark(ctx, s.base).m
		m.RSSGC = perSession(before, gc, mRSS, m.Sessions)
		m.HeapGC = perSession(before, gc, mHeapInuse, m.Sessions)
		m.StackGC = perSession(before, gc, mStackInuse, m.Sessions)
		m.RSSAfterGC, _ = gc.get(mRSS)
	}
	r.fetchProfile(ctx, s, "/debug/pprof/heap", scenario+"-heap.pprof")
	return m, nil
}

// phaseRun describes one measured phase.
type phaseRun struct {
	index   int
	name    string
	offered string
	d       time.Duration
	rate    float64 // 0: open loop
	profile string  // CPU profile file name, if any
}

// runPhase posts readings for one phase, waits for its deliveries and
// measures it. hub may be nil (the echo server has no sessions).
func (r *runner) runPhase(ctx context.Context, s *server, hub *hubClient, lg *loadGen, co *cohort, aud audience, pr phaseRun) phaseStats {
	t := lg.t
	ps := phaseStats{Name: pr.name, Offered: pr.offered, Echo: hub == nil}
	var closed0 int
	var rec0, gaps0 int64
	if hub != nil {
		closed0, _ = hub.closeSummary()
		rec0, gaps0 = hub.reconnects.Load(), hub.gaps.Load()
	}
	before := r.mark(ctx, s.base)
	ph := t.startPhase(pr.index, pr.name)
	wait := func() {}
	if pr.profile != "" {
		wait = r.profileCPU(ctx, s, pr.profile, pr.d)
	}
	r.logf("%s: %s for %s", pr.name, pr.offered, pr.d)
	ps.Load = lg.run(ctx, ph, pr.d, pr.rate)
	if hub != nil {
		ps.D = r.settle(ctx, t, ps.Load, co, aud)
		ps.Score = summarize(ph.score.merged())
		ps.Alert = summarize(ph.alert.merged())
		ps.Last = t.lastSession(ps.Load.First, ps.Load.End, co, aud)
		ps.DeliveriesPerSec = t.deliveryRate(ph, ps.D)
		ps.AlertUpdates = ph.alertUpdates.Load()
		closed1, _ := hub.closeSummary()
		ps.Closed = closed1 - closed0
		ps.Reconnects = hub.reconnects.Load() - rec0
		ps.Gaps = hub.gaps.Load() - gaps0
	} else {
		ps.D.Accepted = ps.Load.Accepted
	}
	ps.Use = between(before, r.mark(ctx, s.base))
	wait()
	if ctx.Err() != nil {
		return ps
	}
	r.logf("%s: %.0f readings/s accepted, %s lost deliveries, score p99 %s", pr.name, ps.readingsPerSec(),
		commas(ps.D.lost()), fmtDur(ps.Score.P99))
	return ps
}
