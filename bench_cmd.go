//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"vigil/bench"
	"vigil/config"
)

const benchOutDefault = "docs/BENCHMARKS.md"

// benchCmd runs `vigil bench` (see bench.Options and docs/BENCHMARKS.md), or
// its hidden `echo-server` child, the baseline the Ward scenario compares
// Vigil with.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "echo-server" {
		fs := flag.NewFlagSet("bench echo-server", flag.ContinueOnError)
		addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return bench.ServeEcho(ctx, *addr, stderr)
	}
	cfg, _, err := config.Load("bench-env", nil)
	if err != nil {
		return err
	}
	o := bench.DefaultOptions()
	o.Stdout, o.Stderr = stdout, stderr
	o.JWTIssuer, o.JWTAudience = cfg.JWTIssuer, cfg.JWTAudience
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: vigil bench [flags]

Starts Vigil (vigil serve, a fresh SQLite database, in-process bus, no rate
limits) on a free loopback port for each scenario, or drives the one at --url,
and measures it:

  ward       staff sessions over many site rooms plus trial sessions, while
             patients post readings: a bare Fiber echo baseline, Vigil open
             loop, then Vigil paced at half its open-loop rate
  broadcast  every session in one room; events at a fixed rate, then a ramp

It prints one table per scenario with the targets (PASS/FAIL) and appends them,
with the command, commit and machine, to --out.

flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.Scenario, "scenario", o.Scenario, "ward, broadcast or all")
	fs.StringVar(&o.URL, "url", "", "measure the server at this base URL instead of starting one (needs --jwt-secret)")
	secret := fs.String("jwt-secret", "", "with --url: the server's HS256 secret (default VIGIL_JWT_SECRET)")
	fs.StringVar(&o.PprofAddr, "pprof-addr", "", "with --url and --profile: the server's pprof listener (VIGIL_PPROF_ADDR)")
	fs.StringVar(&o.RedisURL, "redis-url", "", "run the server with the Redis bus at this URL (VIGIL_REDIS_URL)")
	fs.StringVar(&o.PostgresURL, "postgres-url", "", "run the server on PostgreSQL: a postgres:// URL of a role that may create databases (one fresh database per scenario)")
	fs.StringVar(&o.PredictorAddr, "predictor-addr", "", "run the server with the risk model at this gRPC address (VIGIL_PREDICTOR_ADDR)")
	fs.IntVar(&o.Sessions, "sessions", o.Sessions, "ward: staff sessions spread over the site rooms")
	fs.IntVar(&o.Sites, "sites", o.Sites, "ward: sites (one room each)")
	fs.IntVar(&o.TrialSessions, "trial-sessions", o.TrialSessions, "ward: safety and on-call sessions in the trial room")
	fs.IntVar(&o.Patients, "patients", o.Patients, "ward: patients (spread over the sites); broadcast uses up to 500 of them")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "length of each measured phase (echo, open loop, paced, broadcast steady)")
	fs.Float64Var(&o.Rate, "rate", 0, "ward: readings/s of the paced phase (default: half the open-loop rate measured just before)")
	fs.IntVar(&o.Workers, "workers", o.Workers, "ward: concurrent HTTP keep-alive connections posting readings")
	fs.Float64Var(&o.Critical, "critical", o.Critical, "ward: fraction of readings that are critical (each opens an alert)")
	fs.IntVar(&o.BroadcastSessions, "broadcast-sessions", o.BroadcastSessions, "broadcast: sessions in the one room")
	fs.Float64Var(&o.BroadcastRate, "broadcast-rate", o.BroadcastRate, "broadcast: events/s of the steady phase")
	fs.IntVar(&o.BroadcastWorkers, "broadcast-workers", o.BroadcastWorkers, "broadcast: HTTP connections posting its readings")
	ramp := fs.String("ramp", joinFloats(o.Ramp), "broadcast: events/s of the ramp's steps, comma-separated (empty: no ramp)")
	fs.DurationVar(&o.RampStep, "ramp-step", o.RampStep, "broadcast: length of each ramp step")
	fs.DurationVar(&o.Idle, "idle", o.Idle, "how long sessions stay idle before their memory is measured")
	fs.DurationVar(&o.Drain, "drain", o.Drain, "longest wait after a phase for its last deliveries; later ones count as lost")
	fs.DurationVar(&o.ConnectTimeout, "connect-timeout", o.ConnectTimeout, "bound on one session's connect, auth and subscribe")
	fs.IntVar(&o.ConnectParallel, "connect-parallel", o.ConnectParallel, "session handshakes in flight at once")
	fs.DurationVar(&o.Deadline, "deadline", o.Deadline, "bound on the whole run")
	fs.IntVar(&o.MaxReadings, "max-readings", o.MaxReadings, "bound on the readings of one scenario")
	fs.StringVar(&o.Profile, "profile", "", "save CPU and heap profiles of the server in this directory")
	out := fs.String("out", "", "append the report to this Markdown file; '' for none (default "+benchOutDefault+" when it exists)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	outSet := false
	fs.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
	o.Out = *out
	if !outSet {
		if _, err := os.Stat(benchOutDefault); err == nil {
			o.Out = benchOutDefault
		}
	}
	if o.Ramp, err = parseFloats(*ramp); err != nil {
		return fmt.Errorf("bench: --ramp: %w", err)
	}
	o.JWTSecret = *secret
	if o.URL != "" && o.JWTSecret == "" {
		o.JWTSecret = cfg.JWTSecret
	}
	// The bench runs this binary as the echo baseline, and as the server
	// unless --url names one.
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: cannot find the vigil executable to start: %w", err)
	}
	o.Executable = exe
	o.Command = commandLine(os.Args)
	return bench.Run(ctx, o)
}

func joinFloats(fs []float64) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strings.Join(s, ",")
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 {
			return nil, errors.New("want positive numbers separated by commas, such as 10,25,50")
		}
		out = append(out, v)
	}
	return out, nil
}

// commandLine renders the command for the report, quoting what needs it and
// hiding secrets: the JWT secret, and passwords in URLs.
func commandLine(args []string) string {
	out := make([]string, 0, len(args))
	hideNext := false
	for _, a := range args {
		switch {
		case hideNext:
			a, hideNext = "…", false
		case a == "--jwt-secret" || a == "-jwt-secret":
			hideNext = true
		case strings.HasPrefix(a, "--jwt-secret=") || strings.HasPrefix(a, "-jwt-secret="):
			a = a[:strings.Index(a, "=")+1] + "…"
		}
		if i := strings.Index(a, "://"); i >= 0 {
			if at := strings.Index(a[i:], "@"); at >= 0 {
				if colon := strings.Index(a[i+3:i+at], ":"); colon >= 0 {
					a = a[:i+3+colon] + ":…" + a[i+at:]
				}
			}
		}
		if !shellSafe(a) {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}

// shellSafe reports whether a shell takes a as one word, unchanged.
func shellSafe(a string) bool {
	if a == "" {
		return false
	}
	for _, c := range a {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80:
		case strings.ContainsRune("_@%+=:,./-", c):
		default:
			return false
		}
	}
	return true
}
