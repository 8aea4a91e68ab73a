//go:build linux

package bench

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// loadGen posts readings over keep-alive connections: a fixed number of
// workers, each with its own connection (fasthttp.HostClient with MaxConns =
// workers), request, response and body buffer, so that a request costs the
// load generator no allocation and no reflection.
type loadGen struct {
	hc       *fasthttp.HostClient
	uri      string
	workers  int
	t        *tracker
	co       *cohort
	critical float64 // fraction of readings that are critical
	tag      uint32
}

func newLoadGen(addr string, workers int, t *tracker, co *cohort, critical float64, tag uint32) *loadGen {
	return &loadGen{
		hc: &fasthttp.HostClient{
			Addr:                          addr,
			MaxConns:                      workers,
			ReadTimeout:                   30 * time.Second,
			WriteTimeout:                  30 * time.Second,
			MaxIdleConnDuration:           time.Minute,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			MaxConnWaitTimeout:            30 * time.Second,
		},
		uri:      "http://" + addr + "/v1/readings",
		workers:  workers,
		t:        t,
		co:       co,
		critical: critical,
		tag:      tag,
	}
}

// loadResult is what one phase of posting did.
type loadResult struct {
	Sent, Accepted                      int64
	Status429, Status503, Other, Errors int64
	CriticalSent, CriticalSkipped       int64
	Missed                              int64 // pacer slots not taken: every worker was busy
	Elapsed                             time.Duration
	Post                                latency
	FirstError                          string
	First, End                          uint64 // the phase's sequence numbers: [First, End)
	Rate                                float64
}

// run posts readings for d: back to back on every worker (open loop, rate
// 0: "as fast as accepted"), or at rate readings/s handed out by a pacer. A
// slot the pacer cannot hand out because every worker is still waiting for
// a reply is counted as missed, not queued: the offered load then falls
// below the target, which the table shows, rather than a backlog building
// up that would be sent in a burst later.
func (g *loadGen) run(ctx context.Context, ph *phase, d time.Duration, rate float64) loadResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		res    = loadResult{First: ph.first, Rate: rate}
		post   = newShardedHist()
		mu     sync.Mutex
		wg     sync.WaitGroup
		slots  chan struct{}
		missed atomic.Int64
		start  = time.Now()
	)
	if rate > 0 {
		slots = make(chan struct{}, g.workers)
		go func() {
			defer close(slots)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			var issued int64
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				due := int64(rate * time.Since(start).Seconds())
				for ; issued < due; issued++ {
					select {
					case slots <- struct{}{}:
					default:
						missed.Add(1)
					}
				}
			}
		}()
	}
	for w := range g.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := g.worker(ctx, w, ph, slots, post)
			mu.Lock()
			res.add(r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = min(time.Since(start), d)
	res.End = min(g.t.next.Load(), uint64(len(g.t.sent)))
	res.Missed = missed.Load()
	res.Post = summarize(post.merged())
	return res
}

func (r *loadResult) add(o loadResult) {
	r.Sent += o.Sent
	r.Accepted += o.Accepted
	r.Status429 += o.Status429
	r.Status503 += o.Status503
	r.Other += o.Other
	r.Errors += o.Errors
	r.CriticalSent += o.CriticalSent
	r.CriticalSkipped += o.CriticalSkipped
	if r.FirstError == "" {
		r.FirstError = o.FirstError
	}
}

// worker sends readings until ctx is done (open loop) or slots closes
// (paced). It returns its own counts.
func (g *loadGen) worker(ctx context.Context, w int, ph *phase, slots <-chan struct{}, post *shardedHist) loadResult {
	var res loadResult
	t, co := g.t, g.co
	rng := rand.New(rand.NewPCG(uint64(g.tag)<<16|uint64(w), uint64(ph.index)))
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(g.uri)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	body := make([]byte, 0, 1024)
	for {
		if slots != nil {
			if _, ok := <-slots; !ok {
				return res
			}
		} else if ctx.Err() != nil {
			return res
		}
		seq, ok := t.take()
		if !ok {
			return res
		}
		var p int32
		crit := false
		if g.critical > 0 && rng.Float64() < g.critical {
			if p, crit = co.takeReserved(); !crit {
				res.CriticalSkipped++
			}
		}
		if !crit {
			p = co.normal[rng.IntN(len(co.normal))]
		}
		var v vitals
		if crit {
			v = critical()
			res.CriticalSent++
		} else {
			v = co.baseline[p].normal(rng)
		}
		body = appendReading(body[:0], &t.ids, seq, co.ids[p], co.trial, co.sites[co.siteOf[p]], time.Now(), v)
		t.patient[seq] = p
		f := uint32(flagSent | ph.index)
		if crit {
			f |= flagCritical
		}
		t.flags[seq].Store(f)
		req.SetBodyRaw(body)
		req.Header.SetBytesV(fasthttp.HeaderAuthorization, co.bearer[p])
		t0 := t.now()
		t.sent[seq].Store(t0)
		err := g.hc.Do(req, resp)
		post.record(w, time.Duration(t.now()-t0))
		res.Sent++
		if err != nil {
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = err.Error()
			}
			continue
		}
		switch code := resp.StatusCode(); {
		case code >= 200 && code < 300:
			res.Accepted++
			t.flags[seq].Or(flagAccepted)
		case code == fasthttp.StatusTooManyRequests:
			res.Status429++
		case code == fasthttp.StatusServiceUnavailable:
			res.Status503++
		default:
			res.Other++
			if res.FirstError == "" {
				res.FirstError = "HTTP " + itoa(code) + ": " + truncate(string(resp.Body()), 200)
			}
		}
	}
}
