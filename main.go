// Command vigil is a real-time safety monitoring hub for clinical trials:
// `vigil serve` runs a node, `vigil demo` runs one with a simulated cohort,
// `vigil token` mints development tokens, `vigil simulate` drives a server
// with synthetic readings and `vigil bench` measures one. See README.md and
// docs/.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigil/auth"
	"vigil/config"
	"vigil/server"
	"vigil/sim"
	"vigil/tracing"
)

const usage = `usage: vigil <command> [flags]

commands:
  serve      run ingest API, hub and board on one node
  demo       serve with embedded defaults and a simulated cohort
  token      print a signed JWT (development and tests)
  simulate   drive a running server with synthetic readings
  audit      verify the audit trail's hash chain
  trials     apply a trial's protocol and registry file (YAML); print a protocol
  probe URL  exit 0 if GET URL answers 200 (container healthchecks without a shell)
  bench      load and latency benchmark: readings over HTTP to thousands of
             WebSocket sessions, against a bare Fiber baseline (docs/BENCHMARKS.md)

Run 'vigil <command> -h' for a command's flags. Every flag can also be set by
the environment variable in docs (VIGIL_ADDR for --addr, …).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = serve(ctx, args, false)
	case "demo":
		err = serve(ctx, args, true)
	case "token":
		err = token(args, os.Stdout)
	case "simulate":
		err = simulate(ctx, args, os.Stdout)
	case "audit":
		err = auditCmd(ctx, args, os.Stdout)
	case "trials":
		err = trialsCmd(ctx, args, os.Stdout)
	case "bench":
		err = benchCmd(ctx, args, os.Stdout, os.Stderr)
	case "probe":
		err = probe(ctx, args)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "vigil: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil:", err)
		os.Exit(1)
	}
}

// newLogger logs JSON lines; a record logged with a context carrying a span
// gets its trace and span ids.
func newLogger() *slog.Logger {
	return slog.New(tracing.LogHandler{Handler: slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})})
}

// buildVersion is set at link time by deploy/Dockerfile (-X main.buildVersion),
// where the VCS information is not in the build context.
var buildVersion string

// version is the build's version or VCS revision, for traces.
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "dev"
}

func serve(ctx context.Context, args []string, demo bool) error {
	name := "serve"
	if demo {
		name = "demo"
	}
	cfg, _, err := config.Load(name, args)
	if err != nil {
		return err
	}
	log := newLogger()
	if demo {
		if cfg.JWTSecret == "" && cfg.JWTPublicKeys == "" {
			secret, err := demoSecret(cfg)
			if err != nil {
				return err
			}
			cfg.JWTSecret = secret
		}
	}
	if err := prepareDB(cfg); err != nil {
		return err
	}
	stopTracing, err := tracing.Setup(ctx, tracing.Config{Endpoint: cfg.OTLPEndpoint, Insecure: cfg.OTLPInsecure,
		Ratio: cfg.TraceRatio, Version: version()})
	if err != nil {
		return err
	}
	defer func() {
		tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stopTracing(tctx)
	}()
	if cfg.PprofAddr != "" {
		if err := servePprof(ctx, cfg.PprofAddr, log); err != nil {
			return err
		}
	}
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	base := "http://" + ln.Addr().String()
	log.Info("vigil listening", "addr", ln.Addr().String(), "demo", demo)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if demo {
		if err := startDemo(ctx, cfg, base, os.Stdout, log); err != nil {
			_ = srv.Shutdown(context.Background())
			return err
		}
	}
	select {
	case err := <-errc:
		// Serving stopped on its own: still drain the pipeline and close the
		// store, so admitted readings are scored and the database is clean.
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		return errors.Join(err, srv.Shutdown(sctx))
	case <-ctx.Done():
	}
	// A second signal ends the process at once (the default handling).
	signal.Reset(os.Interrupt, syscall.SIGTERM)
	// SIGTERM (Kubernetes, compose): stop being ready at once, keep serving
	// for the drain delay while load balancers take the node out, then shut
	// down: finish requests, close sessions 1001 (clients reconnect to
	// another node and recover with since), score what was admitted.
	srv.Drain()
	log.Info("draining", "delay", cfg.DrainDelay.String(), "timeout", cfg.ShutdownTimeout.String())
	if cfg.DrainDelay > 0 {
		select {
		case <-time.After(cfg.DrainDelay):
		case err := <-errc:
			log.Error("serving stopped while draining", "err", err)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return srv.Shutdown(sctx)
}

// prepareDB creates the directory of an embedded database.
func prepareDB(cfg config.Config) error {
	if p := cfg.SQLitePath(); p != "" {
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return fmt.Errorf("create database directory: %w", err)
		}
	}
	return nil
}

// demoSecret keeps the demo's generated secret beside its database, so tokens
// printed by one demo run still work after a restart.
func demoSecret(cfg config.Config) (string, error) {
	dir := "data"
	if p := cfg.SQLitePath(); p != "" {
		dir = filepath.Dir(p)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "demo-jwt-secret")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write demo secret: %w", err)
	}
	return secret, nil
}

// modelLine tells the demo's user where the risk model is, and what they see
// without it.
func modelLine(cfg config.Config) string {
	if cfg.PredictorAddr == "" {
		return "No risk model is configured (VIGIL_PREDICTOR_ADDR): scores come from the\nrules alone."
	}
	return "Risk model: predictor-py at " + cfg.PredictorAddr + ". While it is down, scores are\ndegraded (rules alone) and the board says the model is unavailable."
}

const (
	demoTrial    = "T008"
	demoSites    = 4
	demoPatients = 240
)

func startDemo(ctx context.Context, cfg config.Config, base string, out io.Writer, log *slog.Logger) error {
	iss := auth.Issuer{Secret: []byte(cfg.JWTSecret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience}
	sites := sim.SiteIDs(demoSites)
	var err error
	var all []string
	for _, s := range sites {
		all = append(all, demoTrial+"/"+s)
	}
	// Each demo user has just signed in (auth_time now), as with an identity
	// provider; the demo trial asks for a sign-in within 12 hours to sign.
	now := jwt.NewNumericDate(time.Now())
	people := []auth.Claims{
		{Role: auth.RolePI, Name: "Dr Ada Okafor", Trials: []string{demoTrial}, Sites: []string{demoTrial + "/" + sites[0]},
			RegisteredClaims: subject("u-pi-01")},
		{Role: auth.RoleCRA, Name: "Sam Lindqvist", Trials: []string{demoTrial},
			Sites: []string{demoTrial + "/" + sites[0], demoTrial + "/" + sites[1]}, RegisteredClaims: subject("u-cra-07")},
		{Role: auth.RoleSafety, Name: "Dr Priya Raman", Trials: []string{demoTrial}, Sites: all, RegisteredClaims: subject("u-safety-02")},
		{Role: auth.RoleOnCall, Name: "Li Wei", Trials: []string{demoTrial}, RegisteredClaims: subject("u-oncall-05")},
	}
	tokens := make([]string, len(people))
	for i, c := range people {
		c.AuthTime = now
		if tokens[i], err = iss.Mint(c, 12*time.Hour); err != nil {
			return err
		}
	}
	if err := applyDemoTrial(ctx, base, iss, sites); err != nil {
		return err
	}
	fmt.Fprintf(out, `
Vigil demo is running: trial %s, %d sites, %d simulated patients (a few deteriorating).

  Board (PI, site %s):         %s/#token=%s

  Board (CRA, sites %s, %s):  %s/#token=%s

  Board (safety physician):     %s/#token=%s

  Board (on-call):              %s/#token=%s

The trial's protocol (limits, escalation through the board) and 12 registry
records were applied through the admin API; see docs/examples/trial-T008.yaml
for a full protocol file.

%s

Press Ctrl-C to stop. Data is kept in %s.
`, demoTrial, demoSites, demoPatients, sites[0], base, tokens[0], sites[0], sites[1], base, tokens[1], base, tokens[2],
		base, tokens[3], modelLine(cfg), server.RedactDSN(cfg.DB))
	simCfg := sim.Config{URL: base, Trial: demoTrial, Sites: demoSites, Patients: demoPatients,
		Rate: 20, Deteriorating: 0.04, Workers: 8, Issuer: iss, Seed: uint64(time.Now().UnixNano())}
	patients, err := sim.Cohort(simCfg, time.Now())
	if err != nil {
		return err
	}
	// A new demo database gets a day of history (a reading every two hours),
	// so sparklines and charts have something to show: once every patient
	// has reported live, or the silence before would raise missed-readings
	// alerts for the whole cohort.
	fresh := !demoHasHistory(ctx, base, tokens[2])
	go func() {
		if _, err := sim.Run(ctx, simCfg, patients); err != nil {
			log.Error("demo simulator stopped", "err", err)
		}
	}()
	if fresh {
		go func() {
			select {
			case <-time.After(20 * time.Second):
			case <-ctx.Done():
				return
			}
			if err := sim.Backfill(ctx, simCfg, patients, 24*time.Hour, 2*time.Hour, time.Now()); err != nil && ctx.Err() == nil {
				log.Error("demo history", "err", err)
			}
		}()
	}
	return nil
}
