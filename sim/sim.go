// Package sim owns the simulated cohort: patients with plausible, noisy
// vitals, a few of whom deteriorate over minutes, posting readings to a Vigil
// server over HTTP exactly as ePRO apps do. It backs `vigil simulate` and the
// demo. It imports auth (to mint patient tokens) and reading.
package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"vigil/auth"
	"vigil/reading"
)

// Config describes a cohort and how hard it drives the server.
type Config struct {
	URL string // server base URL, e.g. http://127.0.0.1:8080
	// PostURLs, if set, are the nodes readings are posted to, each worker
	// keeping to one (several nodes without a load balancer).
	PostURLs []string
	Trial    string
	Sites    int
	Patients int
	// Rate is readings per second across the cohort.
	Rate float64
	// Duration bounds the run; 0 runs until ctx is done.
	Duration time.Duration
	// Deteriorating is the share of patients who worsen over minutes.
	Deteriorating float64
	// Workers bounds concurrent requests.
	Workers int
	Issuer  auth.Issuer
	Seed    uint64
	Client  *http.Client
	// Watcher, if set, measures post-to-board latency of accepted readings.
	Watcher *Watcher
}

// SiteIDs returns the site ids of a cohort with n sites: S01, S02, …
func SiteIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("S%02d", i+1)
	}
	return out
}

// Patient is one simulated participant.
type Patient struct {
	ID, Site string
	token    string
	base     baseline
	// worsening patients drift from baseline to a NEWS2-high state over
	// period, then recover and start again.
	worsening bool
	period    time.Duration
	start     time.Time
}

type baseline struct {
	rr, spo2, sbp, dbp, hr, temp float64
}

// Result counts what a run did.
type Result struct {
	Sent      int64
	Accepted  int64
	ByStatus  map[int]int64
	Errors    int64
	Elapsed   time.Duration
	Latencies []time.Duration // POST round trips, sorted
	// Board holds post-to-board latencies (from sending the POST to the score
	// event reaching the watcher), sorted; Unseen counts accepted readings
	// whose event never arrived.
	Board  []time.Duration
	Unseen int
}

// Quantile returns the q-quantile of sorted durations.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// Cohort builds the patients of cfg and mints their tokens.
func Cohort(cfg Config, now time.Time) ([]*Patient, error) {
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	sites := SiteIDs(max(1, cfg.Sites))
	ps := make([]*Patient, cfg.Patients)
	for i := range ps {
		p := &Patient{
			ID:   fmt.Sprintf("P%04d", 1001+i),
			Site: sites[i%len(sites)],
			base: baseline{
				rr: 12 + rng.Float64()*6, spo2: 95 + rng.Float64()*4, sbp: 112 + rng.Float64()*28,
				dbp: 66 + rng.Float64()*20, hr: 58 + rng.Float64()*30, temp: 36.3 + rng.Float64()*1.0,
			},
			worsening: rng.Float64() < cfg.Deteriorating,
			period:    time.Duration(3+rng.IntN(6)) * time.Minute,
			start:     now.Add(-time.Duration(rng.Int64N(int64(3 * time.Minute)))),
		}
		tok, err := cfg.Issuer.Mint(auth.Claims{Role: auth.RolePatient, Trial: cfg.Trial, Site: p.Site,
			RegisteredClaims: registered(p.ID)}, 24*time.Hour)
		if err != nil {
			return nil, err
		}
		p.token = tok
		ps[i] = p
	}
	return ps, nil
}

// Reading returns the patient's reading at now.
func (p *Patient) Reading(trial string, now time.Time, rng *rand.Rand) reading.Reading {
	sev := 0.0
	if p.worsening {
		// Progress through the cycle: stable for the first third, then worse.
		x := float64(now.Sub(p.start)%p.period) / float64(p.period)
		sev = math.Max(0, (x-0.33)/0.67)
	}
	noise := func(sd float64) float64 { return rng.NormFloat64() * sd }
	clamp := func(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
	b := p.base
	rr := math.Round(clamp(b.rr+12*sev+noise(1), 6, 45))
	spo2 := math.Round(clamp(b.spo2-9*sev+noise(0.8), 75, 100))
	sbp := math.Round(clamp(b.sbp-38*sev+noise(4), 60, 220))
	dbp := math.Round(clamp(math.Min(b.dbp-20*sev+noise(3), sbp-15), 35, 130))
	hr := math.Round(clamp(b.hr+48*sev+noise(3), 35, 190))
	temp := math.Round(clamp(b.temp+2.4*sev+noise(0.15), 34, 42)*10) / 10
	cons := reading.Alert
	if sev > 0.85 {
		cons = reading.NewConfusion
	}
	onO2 := false
	scale := 1
	v := reading.Vitals{RespiratoryRate: &rr, SpO2: &spo2, SpO2Scale: &scale, OnOxygen: &onO2,
		SystolicBP: &sbp, DiastolicBP: &dbp, HeartRate: &hr, Consciousness: &cons, Temperature: &temp}
	// Home devices miss readings now and then: a partial set.
	if rng.Float64() < 0.05 {
		v.Temperature = nil
	}
	var syms []reading.Symptom
	if sev > 0.5 {
		syms = []reading.Symptom{{Term: "shortness of breath", Grade: min(4, int(1+sev*3))}}
	}
	return reading.Reading{ReadingID: uuid.NewString(), PatientID: p.ID, TrialID: trial, SiteID: p.Site,
		MeasuredAt: now.UTC().Truncate(time.Millisecond), Vitals: v, Symptoms: syms}
}

// Run posts readings at cfg.Rate until cfg.Duration passes or ctx is done.
func Run(ctx context.Context, cfg Config, patients []*Patient) (Result, error) {
	if len(patients) == 0 {
		return Result{}, errors.New("sim: no patients")
	}
	if cfg.Rate <= 0 {
		return Result{}, errors.New("sim: rate must be positive")
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: max(cfg.Workers, 16), MaxConnsPerHost: max(cfg.Workers, 16)}}
	}
	workers := max(cfg.Workers, 1)
	jobs := make(chan reading.Reading, workers)
	tokens := make(map[string]string, len(patients))
	for _, p := range patients {
		tokens[p.ID] = p.token
	}
	var (
		res   = Result{ByStatus: map[int]int64{}}
		sends = map[string]time.Time{} // accepted reading id → when its POST was sent
		mu    sync.Mutex
		sent  atomic.Int64
		acc   atomic.Int64
		nerr  atomic.Int64
		wg    sync.WaitGroup
		start = time.Now()
	)
	for w := range workers {
		target := cfg.URL
		if len(cfg.PostURLs) > 0 {
			target = cfg.PostURLs[w%len(cfg.PostURLs)]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range jobs {
				t0 := time.Now()
				status, err := post(context.WithoutCancel(ctx), client, target, tokens[r.PatientID], r)
				d := time.Since(t0)
				sent.Add(1)
				mu.Lock()
				if err != nil {
					nerr.Add(1)
				} else {
					res.ByStatus[status]++
					// An unbounded run (the demo) keeps counts only, so its
					// memory does not grow with every reading.
					if cfg.Duration > 0 {
						res.Latencies = append(res.Latencies, d)
					}
				}
				mu.Unlock()
				if status == http.StatusAccepted {
					acc.Add(1)
					if cfg.Watcher != nil && cfg.Duration > 0 {
						mu.Lock()
						sends[r.ReadingID] = t0
						mu.Unlock()
					}
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(cfg.Seed+1, 7))
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	next := time.Now()
	i := 0
loop:
	for {
		if wait := time.Until(next); wait > 0 {
			select {
			case <-ctx.Done():
				break loop
			case <-time.After(wait):
			}
		} else if ctx.Err() != nil {
			break
		}
		p := patients[rng.IntN(len(patients))]
		if i < len(patients) {
			// Everyone reports once first, so the board fills quickly.
			p = patients[i]
		}
		i++
		select {
		case jobs <- p.Reading(cfg.Trial, time.Now(), rng):
		case <-ctx.Done():
			break loop
		}
		next = next.Add(interval)
	}
	close(jobs)
	wg.Wait()
	res.Sent, res.Accepted, res.Errors = sent.Load(), acc.Load(), nerr.Load()
	res.Elapsed = time.Since(start)
	slices.Sort(res.Latencies)
	if cfg.Watcher != nil {
		res.Board, res.Unseen = boardLatencies(cfg.Watcher, sends)
	}
	return res, nil
}

// boardLatencies waits briefly for the last events, then pairs each accepted
// reading with its arrival.
func boardLatencies(w *Watcher, sends map[string]time.Time) ([]time.Duration, int) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		missing := 0
		for id := range sends {
			if _, ok := w.Arrival(id); !ok {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out []time.Duration
	unseen := 0
	for id, sent := range sends {
		if at, ok := w.Arrival(id); ok {
			out = append(out, at.Sub(sent))
		} else {
			unseen++
		}
	}
	slices.Sort(out)
	return out, unseen
}

func post(ctx context.Context, c *http.Client, base, token string, r reading.Reading) (int, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/readings", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// Backfill posts each patient's history: a reading every `every` over the
// `span` before now, as one batch per patient (POST /v1/readings/batch),
// so that a fresh demo opens on a day of trends rather than an empty chart.
// The history is the patients' baselines: deterioration begins after now.
func Backfill(ctx context.Context, cfg Config, patients []*Patient, span, every time.Duration, now time.Time) error {
	if every <= 0 || span < every {
		return errors.New("sim: backfill needs 0 < every <= span")
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed^0x5bd1e995, cfg.Seed))
	for _, p := range patients {
		var batch struct {
			Readings []reading.Reading `json:"readings"`
		}
		// Each patient's history is offset by a few minutes, as real
		// reports are, and stops one step before now.
		offset := time.Duration(rng.Int64N(int64(every)))
		for at := now.Add(-span).Add(offset); at.Before(now.Add(-every / 2)); at = at.Add(every) {
			r := p.Reading(cfg.Trial, at, rng)
			r.Symptoms = nil
			batch.Readings = append(batch.Readings, r)
		}
		if len(batch.Readings) == 0 {
			continue
		}
		body, err := json.Marshal(batch)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL+"/v1/readings/batch", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+p.token)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("sim: backfill %s: %w", p.ID, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("sim: backfill %s: %s", p.ID, resp.Status)
		}
	}
	return nil
}
