//go:build linux

package bench

import (
	"context"
	"fmt"
	"time"
)

// tokenTTL outlives any run (the overall deadline is far shorter), so no
// session is closed for an expired token mid-run.
const tokenTTL = 24 * time.Hour

// wardResult is what the Ward scenario measured.
type wardResult struct {
	echo, open, paced phaseStats
	pacedSkipped      string
	mem               memory
	hub               hubSummary
	serverLog         string
}

// hubSummary is what happened to the sessions over a scenario.
type hubSummary struct {
	closed                      int
	closes                      string
	reconnects, unrecovered     int64
	gaveUp, gaps, dups, foreign int64
	unacked, slowFrames         int64
	alertUpdates, extra         int64
	firstError                  string
}

func summarizeHub(h *hubClient, t *tracker, phases ...phaseStats) hubSummary {
	n, s := h.closeSummary()
	h.mu.Lock()
	fe := h.firstError
	h.mu.Unlock()
	hs := hubSummary{closed: n, closes: s, reconnects: h.reconnects.Load(), unrecovered: h.unrecovered.Load(),
		gaveUp: h.gaveUp.Load(), gaps: h.gaps.Load(), dups: h.duplicates.Load(), foreign: t.foreign.Load(),
		slowFrames: h.slowFrames.Load(), firstError: fe}
	for _, p := range phases {
		hs.unacked += p.D.Unacked
		hs.alertUpdates += p.AlertUpdates
		hs.extra += p.D.Extra
	}
	return hs
}

// ward runs the realistic day: an echo baseline, then Vigil open loop and
// paced, with the staff sessions of every site connected throughout.
func (r *runner) ward(ctx context.Context) (string, error) {
	o := r.o
	t := newTracker(r.tag, o.MaxReadings)
	co, err := newCohort(r.iss, r.tag, "W"+tagString(r.tag), o.Sites, o.Patients, true, tokenTTL)
	if err != nil {
		return "", err
	}
	var res wardResult

	// (1) The machine's ceiling: the bare echo server, open loop, before
	// Vigil starts, so that nothing else is running.
	echo, err := startChild(ctx, "echo server", o.Executable, []string{"bench", "echo-server", "--addr", "127.0.0.1:0"}, nil, "echo listening", 30*time.Second)
	if err != nil {
		return "", err
	}
	echoSrv := &server{base: "http://" + echo.addr, addr: echo.addr, child: echo}
	if err := waitReady(ctx, r.http, echoSrv.base, 30*time.Second); err != nil {
		echoSrv.close()
		return "", err
	}
	// Ordinary readings only: the echo does not score, and critical
	// readings would use up the patients reserved for Vigil's alerts.
	lgEcho := newLoadGen(echo.addr, o.Workers, t, co, 0, r.tag)
	res.echo = r.runPhase(ctx, echoSrv, nil, lgEcho, co, audience{}, phaseRun{index: 0, name: "ward echo",
		offered: "as fast as accepted", d: o.Duration})
	echoSrv.close()
	if err := ctx.Err(); err != nil {
		return "", err
	}

	// (2) Vigil with every session connected and idle: memory per session.
	s, err := r.startVigil(ctx, "ward")
	if err != nil {
		return "", err
	}
	defer s.close()
	hub := newHubClient(s.base, t, o.ConnectTimeout)
	defer hub.stop()
	specs := make([]sessionSpec, 0, o.Sessions+o.TrialSessions)
	aud := audience{site: make([]int64, len(co.sites))}
	siteOf := make([]int, 0, cap(specs))
	for i := range o.Sessions {
		site := i % len(co.sites)
		tok, err := co.staffToken(r.iss, i, site, tokenTTL)
		if err != nil {
			return "", err
		}
		specs = append(specs, sessionSpec{room: co.room(site), token: tok})
		siteOf = append(siteOf, site)
	}
	for i := range o.TrialSessions {
		tok, err := co.staffToken(r.iss, o.Sessions+i, -1, tokenTTL)
		if err != nil {
			return "", err
		}
		specs = append(specs, sessionSpec{room: co.trialRoom(), token: tok})
		siteOf = append(siteOf, -1)
	}
	res.mem, err = r.connectSessions(ctx, s, hub, specs, "ward")
	if err != nil {
		return "", err
	}
	for i, sess := range hub.sessions {
		if !sess.subscribed {
			continue
		}
		if siteOf[i] < 0 {
			aud.trial++
		} else {
			aud.site[siteOf[i]]++
		}
	}

	// (3) Vigil open loop: its ceiling. (4) Paced at half of it (or
	// --rate), where the latency targets apply.
	lg := newLoadGen(s.addr, o.Workers, t, co, o.Critical, r.tag)
	res.open = r.runPhase(ctx, s, hub, lg, co, aud, phaseRun{index: 1, name: "ward open loop",
		offered: "as fast as accepted", d: o.Duration, profile: "ward-cpu.pprof"})
	if err := ctx.Err(); err != nil {
		return "", err
	}
	rate := o.Rate
	if rate <= 0 {
		rate = res.open.readingsPerSec() / 2
	}
	if rate >= 1 {
		res.paced = r.runPhase(ctx, s, hub, lg, co, aud, phaseRun{index: 2, name: "ward paced",
			offered: fmt.Sprintf("%s/s", commas(int64(rate+0.5))), d: o.Duration, rate: rate})
	} else {
		res.pacedSkipped = "skipped: the open-loop phase accepted no readings"
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	res.hub = summarizeHub(hub, t, res.open, res.paced)
	hub.stop()
	if s.child != nil {
		s.close()
		res.serverLog = s.child.logs.summary()
	}
	return r.wardReport(co, aud, res), nil
}
