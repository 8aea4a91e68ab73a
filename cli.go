package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"vigil/auth"
	"vigil/config"
	"vigil/sim"
)

func subject(sub string) jwt.RegisteredClaims { return jwt.RegisteredClaims{Subject: sub} }

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// token prints a signed JWT. A patient token takes --trial, --site T/S and
// --sub (the patient id); a staff token takes --trial and --site, repeatable.
func token(args []string, out io.Writer) error {
	cfg, _, err := config.Load("token-env", nil)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	role := fs.String("role", "", "patient|pi|cra|safety|oncall|admin")
	var trials, sites multi
	fs.Var(&trials, "trial", "trial id (repeatable for staff)")
	fs.Var(&sites, "site", "site as TRIAL/SITE (repeatable for staff)")
	sub := fs.String("sub", "", "subject: patient id or staff user id")
	name := fs.String("name", "", "staff display name")
	ttl := fs.Duration("ttl", 8*time.Hour, "lifetime")
	authAge := fs.Duration("auth-age", 0, "staff: how long ago the user signed in (the auth_time claim); a trial's require_auth_within refuses signatures from older sign-ins")
	secret := fs.String("jwt-secret", cfg.JWTSecret, "VIGIL_JWT_SECRET: HS256 secret")
	issuer := fs.String("jwt-issuer", cfg.JWTIssuer, "VIGIL_JWT_ISSUER")
	audience := fs.String("jwt-audience", cfg.JWTAudience, "VIGIL_JWT_AUDIENCE")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *secret == "" {
		return errors.New("token: set VIGIL_JWT_SECRET or --jwt-secret")
	}
	c := auth.Claims{Role: *role, Name: *name}
	switch *role {
	case auth.RolePatient:
		if len(trials) != 1 || len(sites) != 1 || *sub == "" {
			return errors.New("token: a patient token needs one --trial, one --site TRIAL/SITE and --sub PATIENT_ID")
		}
		t, s, ok := strings.Cut(sites[0], "/")
		if !ok || t != trials[0] || s == "" {
			return fmt.Errorf("token: --site %q must be %s/SITE", sites[0], trials[0])
		}
		c.Trial, c.Site = t, s
	case auth.RolePI, auth.RoleCRA, auth.RoleSafety, auth.RoleOnCall, auth.RoleAdmin:
		if len(trials) == 0 {
			return errors.New("token: a staff token needs at least one --trial")
		}
		for _, s := range sites {
			t, id, ok := strings.Cut(s, "/")
			if !ok || id == "" || !contains(trials, t) {
				return fmt.Errorf("token: --site %q must be TRIAL/SITE of a --trial", s)
			}
		}
		c.Trials, c.Sites = trials, sites
		if *authAge < 0 {
			return errors.New("token: --auth-age cannot be negative")
		}
		// A token minted here stands for a sign-in that just happened (or
		// --auth-age ago), as an identity provider's would.
		c.AuthTime = jwt.NewNumericDate(time.Now().Add(-*authAge))
		if *sub == "" {
			*sub = "u-" + *role
		}
	default:
		return fmt.Errorf("token: --role must be patient, pi, cra, safety, oncall or admin, not %q", *role)
	}
	c.Subject = *sub
	tok, err := auth.Issuer{Secret: []byte(*secret), Issuer: *issuer, Audience: *audience}.Mint(c, *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(out, tok)
	return err
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func simulate(ctx context.Context, args []string, out io.Writer) error {
	cfg, _, err := config.Load("simulate-env", nil)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	url := fs.String("url", "http://"+cfg.Addr, "server base URL (and the node the watching session connects to)")
	postURLs := fs.String("post-urls", "", "comma-separated base URLs to post readings to, round-robin (several nodes without a load balancer); default --url")
	patients := fs.Int("patients", 200, "patients in the cohort")
	rate := fs.Float64("rate", 50, "readings per second across the cohort")
	duration := fs.Duration("duration", 30*time.Second, "how long to run")
	trial := fs.String("trial", "T008", "trial id")
	sites := fs.Int("sites", 4, "sites (S01, S02, …)")
	workers := fs.Int("workers", 32, "concurrent requests")
	worse := fs.Float64("deteriorating", 0.04, "share of patients who deteriorate")
	secret := fs.String("jwt-secret", cfg.JWTSecret, "VIGIL_JWT_SECRET: to mint patient tokens")
	watch := fs.Bool("watch", true, "measure post-to-board latency with a staff WebSocket session")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *secret == "" {
		return errors.New("simulate: set VIGIL_JWT_SECRET or --jwt-secret (the server's secret)")
	}
	var posts []string
	for _, u := range strings.Split(*postURLs, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			posts = append(posts, u)
		}
	}
	sc := sim.Config{URL: strings.TrimRight(*url, "/"), PostURLs: posts, Trial: *trial, Sites: *sites, Patients: *patients,
		Rate: *rate, Duration: *duration, Deteriorating: *worse, Workers: *workers,
		Issuer: auth.Issuer{Secret: []byte(*secret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience},
		Seed:   uint64(time.Now().UnixNano())}
	cohort, err := sim.Cohort(sc, time.Now())
	if err != nil {
		return err
	}
	if *watch {
		var all []string
		for _, s := range sim.SiteIDs(*sites) {
			all = append(all, *trial+"/"+s)
		}
		tok, err := sc.Issuer.Mint(auth.Claims{Role: auth.RoleSafety, Trials: []string{*trial}, Sites: all,
			RegisteredClaims: subject("u-simulate")}, *duration+time.Hour)
		if err != nil {
			return err
		}
		w, err := sim.Watch(ctx, sc.URL, tok, *trial, sim.SiteIDs(*sites))
		if err != nil {
			return err
		}
		defer w.Close()
		sc.Watcher = w
		time.Sleep(200 * time.Millisecond) // let the subscriptions land
	}
	res, err := sim.Run(ctx, sc, cohort)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sent %d readings in %s: %.1f readings/s, %d accepted, %d transport errors\n",
		res.Sent, res.Elapsed.Round(time.Millisecond), float64(res.Sent)/res.Elapsed.Seconds(), res.Accepted, res.Errors)
	codes := make([]int, 0, len(res.ByStatus))
	for c := range res.ByStatus {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(out, "  HTTP %d: %d\n", c, res.ByStatus[c])
	}
	fmt.Fprintf(out, "POST round trip: p50 %s, p99 %s, max %s\n",
		sim.Quantile(res.Latencies, 0.5), sim.Quantile(res.Latencies, 0.99), sim.Quantile(res.Latencies, 1))
	if sc.Watcher != nil {
		fmt.Fprintf(out, "post to board (score event on a WebSocket): p50 %s, p99 %s, max %s; %d of %d never arrived\n",
			sim.Quantile(res.Board, 0.5), sim.Quantile(res.Board, 0.99), sim.Quantile(res.Board, 1), res.Unseen, len(res.Board)+res.Unseen)
	}
	if res.Accepted < res.Sent {
		fmt.Fprintln(os.Stderr, "simulate: some readings were not accepted")
	}
	return nil
}
