//go:build linux

package bench

import (
	"context"
	"fmt"
	"time"
)

// rampLimit is the p99 past which the ramp stops: the Broadcast target is
// the highest rate of deliveries sustained before p99 passes it.
const rampLimit = 200 * time.Millisecond

// broadcastResult is what the Broadcast scenario measured.
type broadcastResult struct {
	steady    phaseStats
	ramp      []phaseStats
	mem       memory
	hub       hubSummary
	serverLog string
	sessions  int64
}

// broadcast runs the hub's worst case: every session in one room, events at
// a fixed rate, then a ramp of rates.
func (r *runner) broadcast(ctx context.Context) (string, error) {
	o := r.o
	t := newTracker(r.tag^0xb0ad, o.MaxReadings)
	co, err := newCohort(r.iss, r.tag, "B"+tagString(r.tag), 1, max(1, min(o.Patients, 500)), false, tokenTTL)
	if err != nil {
		return "", err
	}
	var res broadcastResult
	s, err := r.startVigil(ctx, "broadcast")
	if err != nil {
		return "", err
	}
	defer s.close()
	hub := newHubClient(s.base, t, o.ConnectTimeout)
	defer hub.stop()
	specs := make([]sessionSpec, o.BroadcastSessions)
	for i := range specs {
		tok, err := co.staffToken(r.iss, i, 0, tokenTTL)
		if err != nil {
			return "", err
		}
		specs[i] = sessionSpec{room: co.room(0), token: tok}
	}
	if res.mem, err = r.connectSessions(ctx, s, hub, specs, "broadcast"); err != nil {
		return "", err
	}
	res.sessions = int64(res.mem.Sessions)
	aud := audience{site: []int64{res.sessions}}

	lg := newLoadGen(s.addr, o.BroadcastWorkers, t, co, 0, r.tag)
	res.steady = r.runPhase(ctx, s, hub, lg, co, aud, phaseRun{index: 0, name: "broadcast steady",
		offered: fmt.Sprintf("%s events/s", trimFloat(o.BroadcastRate)), d: o.Duration, rate: o.BroadcastRate})
	if err := ctx.Err(); err != nil {
		return "", err
	}
	wait := r.profileCPU(ctx, s, "broadcast-cpu.pprof", time.Duration(len(o.Ramp))*o.RampStep)
	for i, rate := range o.Ramp {
		ps := r.runPhase(ctx, s, hub, lg, co, aud, phaseRun{index: 1 + i, name: fmt.Sprintf("broadcast ramp %s/s", trimFloat(rate)),
			offered: fmt.Sprintf("%s events/s", trimFloat(rate)), d: o.RampStep, rate: rate})
		res.ramp = append(res.ramp, ps)
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if ps.Score.P99 > rampLimit || ps.D.lost() > 0 {
			break // past the limit: higher rates only pile up
		}
	}
	wait()
	res.hub = summarizeHub(hub, t, append([]phaseStats{res.steady}, res.ramp...)...)
	hub.stop()
	if s.child != nil {
		s.close()
		res.serverLog = s.child.logs.summary()
	}
	return r.broadcastReport(res), nil
}
