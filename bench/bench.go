//go:build linux

// Package bench owns `vigil bench`: the load generator (readings posted over
// keep-alive HTTP connections, thousands of staff WebSocket sessions timing
// every event they receive) and its scenarios — Ward, a realistic day of
// many sites, and Broadcast, one room of 10,000 sessions — with the bare
// Fiber echo server they are compared with, the tables they print and the
// entry they append to docs/BENCHMARKS.md.
//
// It talks to Vigil only as an outside client does: over HTTP, WebSocket and
// /metrics, against a `vigil serve` it starts as a child process (or one at
// a given URL). It imports auth (to mint tokens), reading (the echo server
// decodes with Vigil's decoder) and nothing of the server, hub or scoring.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"vigil/auth"
)

// Options configure a run; DefaultOptions has the documented defaults.
type Options struct {
	Scenario string // ward, broadcast or all

	// URL, if set, is a running server to measure instead of starting one;
	// JWTSecret must then be its secret. PprofAddr is that server's pprof
	// listener, for --profile.
	URL       string
	PprofAddr string
	// JWTSecret signs the bench's tokens (generated when the bench starts
	// its own server); JWTIssuer and JWTAudience are the server's.
	JWTSecret, JWTIssuer, JWTAudience string
	// Executable is the vigil binary the bench runs as `serve` and as the
	// echo server.
	Executable string
	// Options of the server the bench starts.
	RedisURL, PostgresURL, PredictorAddr string

	// Ward.
	Sessions, Sites, TrialSessions, Patients int
	Duration                                 time.Duration
	Rate                                     float64 // paced phase; 0: half the open-loop maximum
	Workers                                  int
	Critical                                 float64

	// Broadcast.
	BroadcastSessions int
	BroadcastRate     float64
	BroadcastWorkers  int
	Ramp              []float64 // events/s of the ramp's steps
	RampStep          time.Duration

	Idle            time.Duration // sessions idle before memory is measured
	Drain           time.Duration // longest wait for a phase's stragglers
	ConnectTimeout  time.Duration
	ConnectParallel int
	Deadline        time.Duration // the whole run
	MaxReadings     int           // per scenario

	Profile string // directory for CPU and heap profiles; empty: none
	Out     string // Markdown file to append to; empty: none
	Command string // the command line, for the report

	Stdout, Stderr io.Writer
}

// DefaultOptions returns the defaults of `vigil bench`.
func DefaultOptions() Options {
	return Options{
		Scenario:          "all",
		JWTIssuer:         "vigil",
		JWTAudience:       "vigil",
		Sessions:          10_000,
		Sites:             1_000,
		TrialSessions:     100,
		Patients:          20_000,
		Duration:          10 * time.Second,
		Workers:           256,
		Critical:          0.02,
		BroadcastSessions: 10_000,
		BroadcastRate:     5,
		BroadcastWorkers:  16,
		Ramp:              []float64{10, 15, 20, 25, 50, 100},
		RampStep:          4 * time.Second,
		Idle:              2 * time.Second,
		Drain:             5 * time.Second,
		ConnectTimeout:    15 * time.Second,
		ConnectParallel:   64,
		Deadline:          15 * time.Minute,
		MaxReadings:       4_000_000,
		Stdout:            os.Stdout,
		Stderr:            os.Stderr,
	}
}

func (o *Options) validate() error {
	switch o.Scenario {
	case "ward", "broadcast", "all":
	default:
		return fmt.Errorf("bench: --scenario must be ward, broadcast or all, not %q", o.Scenario)
	}
	if o.URL != "" {
		if _, err := checkURL(o.URL); err != nil {
			return err
		}
	}
	if o.URL != "" && o.JWTSecret == "" {
		return errors.New("bench: with --url, set --jwt-secret or VIGIL_JWT_SECRET (the server's secret)")
	}
	if o.Executable == "" && (o.URL == "" || o.Scenario != "broadcast") {
		return errors.New("bench: no vigil executable to run (the server, and the echo baseline of the ward scenario)")
	}
	if o.Sessions < 0 || o.TrialSessions < 0 || o.Sites < 1 || o.Patients < o.Sites {
		return fmt.Errorf("bench: need sites ≥ 1, patients ≥ sites, sessions ≥ 0 (got %d sites, %d patients, %d sessions)",
			o.Sites, o.Patients, o.Sessions)
	}
	if o.Duration <= 0 || o.Workers < 1 || o.BroadcastWorkers < 1 || o.RampStep <= 0 {
		return errors.New("bench: --duration, --workers, --broadcast-workers and --ramp-step must be positive")
	}
	if o.Critical < 0 || o.Critical > 1 {
		return errors.New("bench: --critical is a fraction between 0 and 1")
	}
	if o.BroadcastSessions < 1 || o.BroadcastRate <= 0 {
		return errors.New("bench: --broadcast-sessions and --broadcast-rate must be positive")
	}
	if o.MaxReadings < 1 {
		return errors.New("bench: --max-readings must be positive")
	}
	return nil
}

// checkURL parses --url, which must be a loopback http:// base URL: the
// bench loads its target to saturation, so it keeps to this machine, never a
// shared or production server by mistake.
func checkURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Scheme != "http" {
		return nil, fmt.Errorf("bench: --url %q: not an http:// base URL", s)
	}
	if h := u.Hostname(); h != "localhost" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("bench: --url %q: the bench drives loopback servers only (127.0.0.1, ::1, localhost)", s)
		}
	}
	return u, nil
}

// runner is one run of the bench.
type runner struct {
	o       Options
	tag     uint32 // this run's tag, in reading, patient and trial ids
	iss     auth.Issuer
	http    *http.Client
	mach    machine
	started time.Time
	notes   []string // what the report should say about how it ran
}

// Run runs the scenarios of o, prints their tables on o.Stdout as each
// completes (progress goes to o.Stderr) and appends the report to o.Out.
func Run(ctx context.Context, o Options) error {
	if err := o.validate(); err != nil {
		return err
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, o.Deadline)
	defer cancel()
	r := &runner{o: o, mach: describeMachine(), started: time.Now(),
		http: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	var tb [4]byte
	if _, err := rand.Read(tb[:]); err != nil {
		return err
	}
	r.tag = binary.BigEndian.Uint32(tb[:])
	if r.o.URL == "" && r.o.JWTSecret == "" {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return err
		}
		r.o.JWTSecret = hex.EncodeToString(secret)
	}
	r.o.URL = strings.TrimRight(r.o.URL, "/")
	r.iss = auth.Issuer{Secret: []byte(r.o.JWTSecret), Issuer: r.o.JWTIssuer, Audience: r.o.JWTAudience}
	if n, err := raiseFileLimit(); err != nil {
		r.logf("cannot raise the open-file limit: %v", err)
	} else if need := uint64(max(o.Sessions+o.TrialSessions, o.BroadcastSessions) + o.Workers + 256); n < need {
		r.logf("warning: the open-file limit is %d, and this run needs about %d (ulimit -n)", n, need)
	}
	if r.o.Profile != "" {
		if err := os.MkdirAll(r.o.Profile, 0o755); err != nil {
			return fmt.Errorf("bench: --profile: %w", err)
		}
	}
	r.logf("run %s on %s", tagString(r.tag), r.mach)

	head := r.header(ctx)
	fmt.Fprintln(r.o.Stdout, head)
	var sections []string
	emit := func(s string) {
		sections = append(sections, s)
		fmt.Fprintln(r.o.Stdout, s)
	}
	for _, sc := range []struct {
		name string
		run  func(context.Context) (string, error)
	}{{"ward", r.ward}, {"broadcast", r.broadcast}} {
		if o.Scenario != sc.name && o.Scenario != "all" {
			continue
		}
		s, err := sc.run(ctx)
		switch {
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
			return fmt.Errorf("bench: %s: the run passed its --deadline (%s)", sc.name, o.Deadline)
		case ctx.Err() != nil:
			return fmt.Errorf("bench: %s: stopped (%v); nothing was appended", sc.name, context.Cause(ctx))
		case err != nil:
			return fmt.Errorf("bench: %s: %w", sc.name, err)
		}
		emit(s)
	}
	foot := r.footer()
	fmt.Fprintln(r.o.Stdout, foot)
	if r.o.Out != "" {
		doc := head + "\n" + strings.Join(sections, "\n") + "\n" + foot
		if err := appendReport(r.o.Out, doc); err != nil {
			return err
		}
		r.logf("appended the report to %s", r.o.Out)
	}
	return nil
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.o.Stderr, "bench %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// server is the Vigil a scenario measures.
type server struct {
	base      string // http://host:port
	addr      string // host:port
	pprofAddr string
	child     *child // nil with --url
	cleanup   []func()
}

// startVigil starts `vigil serve` for one scenario, on a free loopback
// port, with a fresh database, no rate limits and the run's secret; or
// returns the --url server.
func (r *runner) startVigil(ctx context.Context, scenario string) (*server, error) {
	if r.o.URL != "" {
		u, err := checkURL(r.o.URL)
		if err != nil {
			return nil, err
		}
		r.note("The server at --url runs with its own configuration: its rate limits (VIGIL_RATE_PER_IP, VIGIL_RATE_PER_PATIENT; 0 for a benchmark) apply, its database is not fresh, and both scenarios share it.")
		s := &server{base: r.o.URL, addr: u.Host, pprofAddr: r.o.PprofAddr}
		return s, waitReady(ctx, r.http, s.base, 30*time.Second)
	}
	s := &server{}
	dir, err := os.MkdirTemp("", "vigil-bench-")
	if err != nil {
		return nil, err
	}
	s.cleanup = append(s.cleanup, func() { _ = os.RemoveAll(dir) })
	db := "sqlite://" + filepath.Join(dir, "vigil.db")
	if r.o.PostgresURL != "" {
		pg, drop, err := freshDatabase(ctx, r.o.PostgresURL, "vigil_bench_"+tagString(r.tag)+"_"+scenario)
		if err != nil {
			s.close()
			return nil, err
		}
		if drop != nil {
			s.cleanup = append(s.cleanup, drop)
		} else {
			r.note("PostgreSQL: could not create a database per scenario; both used " + redactURL(pg))
		}
		db = pg
	}
	env := []string{
		"VIGIL_ADDR=127.0.0.1:0",
		"VIGIL_DB=" + db,
		"VIGIL_JWT_SECRET=" + r.o.JWTSecret,
		"VIGIL_JWT_ISSUER=" + r.o.JWTIssuer,
		"VIGIL_JWT_AUDIENCE=" + r.o.JWTAudience,
		"VIGIL_RATE_PER_IP=0",
		"VIGIL_RATE_PER_PATIENT=0",
		"VIGIL_REDIS_URL=" + r.o.RedisURL,
		"VIGIL_PREDICTOR_ADDR=" + r.o.PredictorAddr,
		// Loopback only: profiles with --profile, and forcing a GC before
		// memory is measured.
		"VIGIL_PPROF_ADDR=127.0.0.1:0",
	}
	c, err := startChild(ctx, "vigil serve", r.o.Executable, []string{"serve"}, env, "vigil listening", time.Minute)
	if err != nil {
		s.close()
		return nil, err
	}
	s.child, s.addr, s.pprofAddr, s.base = c, c.addr, c.pprofAddr, "http://"+c.addr
	if err := waitReady(ctx, r.http, s.base, time.Minute); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// close stops the server the bench started and removes its data.
func (s *server) close() {
	s.child.stop()
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
	s.cleanup = nil
}

func (r *runner) note(s string) {
	for _, n := range r.notes {
		if n == s {
			return
		}
	}
	r.notes = append(r.notes, s)
}

// mark is a measurement point: the server's metrics and the bench's own CPU.
type mark struct {
	at          time.Time
	m           samples
	cpu         time.Duration
	busy, total uint64 // the machine's CPU ticks; total 0 when unknown
}

func (r *runner) mark(ctx context.Context, base string) mark {
	m, err := scrape(ctx, r.http, base+"/metrics")
	if err != nil && ctx.Err() == nil {
		r.logf("warning: %v", err)
	}
	busy, total, _ := machineTicks()
	return mark{at: time.Now(), m: m, cpu: selfCPU(), busy: busy, total: total}
}

// usage is what happened between two marks.
type usage struct {
	wall      time.Duration
	serverCPU float64 // cores, averaged; NaN without the metric
	benchCPU  float64 // cores
	otherCPU  float64 // cores used by everything else on the machine; NaN when unknown
	rss       float64 // bytes at the end; NaN without the metric
	mallocs   float64 // NaN without the metric
}

func between(a, b mark) usage {
	u := usage{wall: b.at.Sub(a.at), serverCPU: nan, rss: nan, mallocs: nan, otherCPU: nan}
	if u.wall <= 0 {
		return u
	}
	u.benchCPU = (b.cpu - a.cpu).Seconds() / u.wall.Seconds()
	if c0, ok := a.m.get(mCPU); ok {
		if c1, ok := b.m.get(mCPU); ok {
			u.serverCPU = (c1 - c0) / u.wall.Seconds()
		}
	}
	if v, ok := b.m.get(mRSS); ok {
		u.rss = v
	}
	if a.total > 0 && b.total > a.total && !math.IsNaN(u.serverCPU) {
		machine := float64(b.busy-a.busy) / float64(b.total-a.total) * float64(runtime.NumCPU())
		u.otherCPU = max(0, machine-u.serverCPU-u.benchCPU)
	}
	if m0, ok := a.m.get(mMallocs); ok {
		if m1, ok := b.m.get(mMallocs); ok {
			u.mallocs = m1 - m0
		}
	}
	return u
}

// profileCPU fetches a CPU profile of the server over the next d into
// DIR/name, in the background; wait for it with the returned function.
func (r *runner) profileCPU(ctx context.Context, s *server, name string, d time.Duration) func() {
	if r.o.Profile == "" || s.pprofAddr == "" {
		return func() {}
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.fetchProfile(ctx, s, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), name)
	}()
	return func() { <-done }
}

func (r *runner) fetchProfile(ctx context.Context, s *server, path, name string) {
	if r.o.Profile == "" || s.pprofAddr == "" {
		return
	}
	file := filepath.Join(r.o.Profile, name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.pprofAddr+path, nil)
	if err != nil {
		r.logf("profile %s: %v", name, err)
		return
	}
	resp, err := r.http.Do(req)
	if err != nil {
		r.logf("profile %s: %v", name, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r.logf("profile %s: %s", name, resp.Status)
		return
	}
	f, err := os.Create(file)
	if err != nil {
		r.logf("profile %s: %v", name, err)
		return
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		r.logf("profile %s: %v", name, err)
	}
	if err := f.Close(); err != nil {
		r.logf("profile %s: %v", name, err)
		return
	}
	bin := r.o.Executable
	if bin == "" {
		bin = "bin/vigil"
	}
	r.note(fmt.Sprintf("profile: `go tool pprof -top %s %s`", bin, file))
}
