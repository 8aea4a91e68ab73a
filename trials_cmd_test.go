package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"vigil/admin"
	"vigil/auth"
	"vigil/problem"
	"vigil/store"
	"vigil/store/sqlite"
	"vigil/trial"
)

const trialsSecret = "0123456789abcdef0123456789abcdef-trials-cmd"

// trialsServer runs the admin API on a loopback port and returns its URL,
// the store and a counter of requests.
func trialsServer(t *testing.T) (string, *sqlite.Store, *atomic.Int32) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	v, err := auth.NewVerifier(auth.VerifierConfig{Secret: []byte(trialsSecret), Issuer: "vigil", Audience: "vigil"})
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int32
	app := fiber.New(fiber.Config{ErrorHandler: problem.ErrorHandler, DisableStartupMessage: true})
	app.Use(func(c *fiber.Ctx) error { requests.Add(1); return c.Next() })
	admin.New(v, st, nil, slog.New(slog.NewTextHandler(io.Discard, nil))).Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	return "http://" + ln.Addr().String(), st, &requests
}

func trialsToken(t *testing.T, role string, trials ...string) string {
	t.Helper()
	tok, err := auth.Issuer{Secret: []byte(trialsSecret), Issuer: "vigil", Audience: "vigil"}.Mint(
		auth.Claims{Role: role, Name: "Dr Test", Trials: trials, RegisteredClaims: subject("u-" + role)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func runTrials(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := trialsCmd(t.Context(), args, &out)
	return out.String(), err
}

const example = "docs/examples/trial-T008.yaml"

func TestTrialsApplyAndGet(t *testing.T) {
	url, st, _ := trialsServer(t)
	tok := trialsToken(t, auth.RoleAdmin, "T008")

	out, err := runTrials(t, "apply", "--url", url, "--token", tok, example, "--reason", "protocol v3 approved")
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	t.Logf("apply:\n%s", out)
	for _, want := range []string{
		"protocol T008: version 1, 4 site(s), updated ",
		"patient S01/P1001: version 1, enrolled, spo2 scale 1",
		"patient S02/P2001: version 1, enrolled, spo2 scale 2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	recs, err := st.AuditRecords(t.Context(), store.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("audit records: %d, want 3", len(recs))
	}
	for _, r := range recs {
		if r.Reason != "protocol v3 approved" || r.Actor != "u-admin" {
			t.Errorf("audit record %+v", r)
		}
	}

	// Applying again makes new versions.
	t.Setenv("VIGIL_TOKEN", tok)
	out, err = runTrials(t, "apply", "--url", url, example)
	if err != nil || !strings.Contains(out, "protocol T008: version 2") {
		t.Fatalf("second apply: %v\n%s", err, out)
	}

	// get prints YAML that decodes to the applied protocol.
	out, err = runTrials(t, "get", "--url", url, "T008")
	if err != nil {
		t.Fatalf("get: %v\n%s", err, out)
	}
	t.Logf("get:\n%s", out)
	if !strings.HasPrefix(out, "# trial T008, protocol version 2, updated ") {
		t.Errorf("get header: %s", out)
	}
	got, err := trial.DecodeProtocol([]byte(out))
	if err != nil {
		t.Fatalf("get output does not decode: %v\n%s", err, out)
	}
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	want, err := trial.DecodeFile(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want.Protocol) {
		t.Errorf("get:\n got %+v\nwant %+v", got, want.Protocol)
	}
}

func TestTrialsApplyInvalidFileSendsNothing(t *testing.T) {
	url, _, requests := trialsServer(t)
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	doc := "trial_id: T1\nsites: [S01]\nschedule: {every: 8h}\nthresholds:\n  vitals:\n    - {vital: pulse, op: '=>', value: 1, grade: 3}\n" +
		"escalation:\n  tiers: []\npatients:\n  - {site: S09, id: P1, status: enrolled}\n"
	if err := os.WriteFile(bad, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runTrials(t, "apply", "--url", url, "--token", "x", bad)
	if err == nil {
		t.Fatalf("no error:\n%s", out)
	}
	for _, want := range []string{
		"thresholds.vitals[0].vital: must be one of",
		"thresholds.vitals[0].op: must be one of",
		"escalation.tiers: at least one tier",
		"patients[0].site: must be one of the trial's sites",
	} {
		if !strings.Contains(out, bad+": "+want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(err.Error(), "4 problem(s); nothing was sent") {
		t.Errorf("error: %v", err)
	}

	unknown := filepath.Join(t.TempDir(), "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("trial_id: T1\nsitez: [S01]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runTrials(t, "apply", "--url", url, "--token", "x", unknown); err == nil ||
		!strings.Contains(out, "sitez: unknown field") {
		t.Errorf("unknown field: %v\n%s", err, out)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests sent for invalid files", n)
	}

	// --dry-run checks without a token or a server.
	out, err = runTrials(t, "apply", "--dry-run", "--url", "http://127.0.0.1:1", example)
	if err != nil || !strings.Contains(out, "trial T008 and 2 patient(s) are valid") {
		t.Errorf("dry run: %v\n%s", err, out)
	}
}

func TestTrialsApplyServerProblems(t *testing.T) {
	url, _, _ := trialsServer(t)

	// Not an admin of the trial: the server's problem is printed.
	out, err := runTrials(t, "apply", "--url", url, "--token", trialsToken(t, auth.RolePI, "T008"), example)
	if !errors.Is(err, errTrialsFailed) || !strings.Contains(out, "protocol T008: 403 Forbidden: only an admin of trial T008") {
		t.Errorf("pi token: %v\n%s", err, out)
	}
	if strings.Contains(out, "patient ") {
		t.Errorf("patients sent after the protocol failed:\n%s", out)
	}

	out, err = runTrials(t, "get", "--url", url, "--token", trialsToken(t, auth.RoleAdmin, "T009"), "T009")
	if !errors.Is(err, errTrialsFailed) || !strings.Contains(out, "trial T009: 404 Not found: trial T009 has no protocol") {
		t.Errorf("get of a trial without protocol: %v\n%s", err, out)
	}

	t.Setenv("VIGIL_TOKEN", "")
	if _, err := runTrials(t, "apply", "--url", url, example); err == nil || !strings.Contains(err.Error(), "token is required") {
		t.Errorf("no token: %v", err)
	}
}

func TestTrialsUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"remove"}, {"apply"}, {"apply", "a.yaml", "b.yaml"}, {"get"}} {
		if _, err := runTrials(t, args...); err == nil || errors.Is(err, errTrialsFailed) {
			t.Errorf("%q: err = %v, want a usage error", args, err)
		}
	}
	if out, err := runTrials(t, "-h"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out, "vigil trials apply") {
		t.Errorf("-h: %v\n%s", err, out)
	}
}
