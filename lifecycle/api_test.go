package lifecycle

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"vigil/auth"
	"vigil/problem"
	"vigil/scoring"
	"vigil/store"
	"vigil/store/sqlite"
	"vigil/trial"
)

const apiSecret = "lifecycle-test-secret-0123456789abcdef"

// staticProtocols serves one protocol for every trial.
type staticProtocols struct{ p trial.Protocol }

func (s staticProtocols) Protocol(_ context.Context, trialID string) (trial.Protocol, bool, error) {
	p := s.p
	p.TrialID = trialID
	return p, true, nil
}

// recorder is a Publisher that keeps what it was given.
type recorder struct {
	mu        sync.Mutex
	published []scoring.Alert
}

func (r *recorder) PublishAlert(_ context.Context, a scoring.Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.published = append(r.published, a)
}

func (r *recorder) ApplyAlert(context.Context, scoring.Alert, bool) error { return nil }

func (r *recorder) last() (scoring.Alert, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.published) == 0 {
		return scoring.Alert{}, 0
	}
	return r.published[len(r.published)-1], len(r.published)
}

// clock is a settable clock, safe to read from handlers.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

// apiEnv is the lifecycle API over a real SQLite store.
type apiEnv struct {
	app   *fiber.App
	store *sqlite.Store
	pub   *recorder
	clock *clock
}

func newAPIEnv(t *testing.T, p trial.Protocol) *apiEnv {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	v, err := auth.NewVerifier(auth.VerifierConfig{Secret: []byte(apiSecret), Issuer: "vigil", Audience: "vigil"})
	if err != nil {
		t.Fatal(err)
	}
	e := &apiEnv{store: st, pub: &recorder{}, clock: &clock{now: t0.Add(time.Hour)}}
	svc := New(Config{Store: st, Protocols: staticProtocols{p}, Publisher: e.pub, Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	e.app = fiber.New(fiber.Config{ErrorHandler: problem.ErrorHandler})
	NewAPI(svc, v).Register(e.app)
	return e
}

var boardPolicy = trial.Escalation{Tiers: []trial.Tier{
	{Name: "site", After: trial.Duration(15 * time.Minute), Channels: []trial.Channel{{Kind: trial.ChannelBoard}}},
	{Name: "safety", After: trial.Duration(15 * time.Minute), Channels: []trial.Channel{{Kind: trial.ChannelBoard}}},
}}

// open opens an alert for the patient at t0 (due for escalation at once).
func (e *apiEnv) open(t *testing.T, patient, trialID, site string) scoring.Alert {
	t.Helper()
	a, changed, err := e.store.ApplyAlert(t.Context(), scoring.Alert{Kind: "alert", PatientID: patient, TrialID: trialID,
		SiteID: site, Severity: scoring.RiskHigh, Reasons: []string{scoring.ReasonNEWS2High}, ReadingID: uuid.NewString(),
		OpenedAt: t0, UpdatedAt: t0, CurrentRisk: scoring.RiskHigh}, scoring.Merge)
	if err != nil || !changed {
		t.Fatalf("ApplyAlert: %v %v", changed, err)
	}
	return a
}

func mint(t *testing.T, c auth.Claims) string {
	t.Helper()
	if c.Subject == "" {
		c.RegisteredClaims = jwt.RegisteredClaims{Subject: "u-" + c.Role}
	}
	tok, err := auth.Issuer{Secret: []byte(apiSecret), Issuer: "vigil", Audience: "vigil"}.Mint(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// post sends body to path with token; a 200 is decoded into the alert, any
// other status into the problem.
func (e *apiEnv) post(t *testing.T, token, path string, body any) (int, scoring.Alert, problem.Details) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var (
		a scoring.Alert
		p problem.Details
	)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(out, &a); err != nil {
			t.Fatalf("decode %s: %v", out, err)
		}
		return resp.StatusCode, a, p
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, problem.ContentType) {
		t.Errorf("%d reply has Content-Type %q, want a problem", resp.StatusCode, ct)
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("decode problem %s: %v", out, err)
	}
	return resp.StatusCode, a, p
}

var (
	craS1    = auth.Claims{Role: auth.RoleCRA, Name: "Cam CRA", Trials: []string{"T1"}, Sites: []string{"T1/S1"}}
	piS1     = auth.Claims{Role: auth.RolePI, Name: "Dr Pia PI", Trials: []string{"T1"}, Sites: []string{"T1/S1"}}
	piS2     = auth.Claims{Role: auth.RolePI, Name: "Dr Sam PI", Trials: []string{"T1"}, Sites: []string{"T1/S2"}}
	safetyT1 = auth.Claims{Role: auth.RoleSafety, Name: "Dr Sol Safety", Trials: []string{"T1"}}
	safetyT2 = auth.Claims{Role: auth.RoleSafety, Name: "Dr Tay Safety", Trials: []string{"T2"}}
)

func TestPossibleSAEEndpoint(t *testing.T) {
	e := newAPIEnv(t, trial.Protocol{Escalation: boardPolicy})
	now := e.clock.Now()
	reason := map[string]any{"reason": "admitted overnight"}
	acked := e.open(t, "P2", "T1", "S1")
	if code, _, p := e.post(t, mint(t, piS1), "/v1/alerts/"+acked.AlertID+"/ack", reason); code != 200 {
		t.Fatalf("ack: %d %+v", code, p)
	}
	resolved := e.open(t, "P3", "T1", "S1")
	if code, _, p := e.post(t, mint(t, piS1), "/v1/alerts/"+resolved.AlertID+"/resolve",
		map[string]any{"reason": "fine", "outcome": scoring.OutcomeNotAE}); code != 200 {
		t.Fatalf("resolve: %d %+v", code, p)
	}
	marked := e.open(t, "P4", "T1", "S1")
	if code, _, p := e.post(t, mint(t, piS1), "/v1/alerts/"+marked.AlertID+"/possible-sae", reason); code != 200 {
		t.Fatalf("first mark: %d %+v", code, p)
	}
	s2 := e.open(t, "P5", "T1", "S2")

	cases := []struct {
		name   string
		claims *auth.Claims
		alert  func() scoring.Alert
		body   any
		code   int
		class  string // the problem's class
		field  string // the problem's field
	}{
		{"a CRA marks an open alert", &craS1, func() scoring.Alert { return e.open(t, "P1", "T1", "S1") }, reason, 200, "", ""},
		{"a PI marks an acknowledged alert", &piS1, func() scoring.Alert { return acked }, reason, 200, "", ""},
		{"safety marks another site's alert", &safetyT1, func() scoring.Alert { return s2 }, reason, 200, "", ""},
		{"already marked", &safetyT1, func() scoring.Alert { return marked }, reason, 409, "transition", ""},
		{"resolved", &piS1, func() scoring.Alert { return resolved }, reason, 409, "transition", ""},
		{"another site's PI", &piS2, func() scoring.Alert { return e.open(t, "P6", "T1", "S1") }, reason, 404, "not-found", ""},
		{"another trial's safety", &safetyT2, func() scoring.Alert { return e.open(t, "P7", "T1", "S1") }, reason, 404, "not-found", ""},
		{"unknown alert", &safetyT1, func() scoring.Alert { return scoring.Alert{AlertID: uuid.NewString()} }, reason, 404, "not-found", ""},
		{"no name to sign with", &auth.Claims{Role: auth.RoleCRA, Trials: []string{"T1"}, Sites: []string{"T1/S1"}},
			func() scoring.Alert { return e.open(t, "P8", "T1", "S1") }, reason, 403, "forbidden", ""},
		{"no reason", &piS1, func() scoring.Alert { return e.open(t, "P9", "T1", "S1") },
			map[string]any{"reason": "  "}, 422, "validation", "reason"},
		{"an outcome", &piS1, func() scoring.Alert { return e.open(t, "P10", "T1", "S1") },
			map[string]any{"reason": "r", "outcome": "sae"}, 422, "validation", "outcome"},
		{"an unknown field", &piS1, func() scoring.Alert { return e.open(t, "P11", "T1", "S1") },
			map[string]any{"reason": "r", "urgent": true}, 400, "bad-request", ""},
		{"not JSON", &piS1, func() scoring.Alert { return e.open(t, "P12", "T1", "S1") }, "reason", 400, "bad-request", ""},
		{"a patient token", &auth.Claims{Role: auth.RolePatient, Trial: "T1", Site: "S1"},
			func() scoring.Alert { return e.open(t, "P13", "T1", "S1") }, reason, 403, "forbidden", ""},
		{"no token", nil, func() scoring.Alert { return e.open(t, "P14", "T1", "S1") }, reason, 401, "unauthorized", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.alert()
			if before.AlertID != "" && before.TrialID != "" {
				var err error
				if before, err = e.store.Alert(t.Context(), before.AlertID); err != nil {
					t.Fatal(err)
				}
			}
			token := ""
			if tc.claims != nil {
				token = mint(t, *tc.claims)
			}
			_, published := e.pub.last()
			trailBefore, _ := e.store.Audit(t.Context(), before.AlertID)
			code, got, p := e.post(t, token, "/v1/alerts/"+before.AlertID+"/possible-sae", tc.body)
			if code != tc.code {
				t.Fatalf("status %d (%+v), want %d", code, p, tc.code)
			}
			trail, _ := e.store.Audit(t.Context(), before.AlertID)
			if code != 200 {
				if !strings.HasSuffix(p.Type, "/"+tc.class) || p.Status != code {
					t.Errorf("problem %+v, want class %s", p, tc.class)
				}
				if tc.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tc.field) {
					t.Errorf("problem errors %+v, want field %s", p.Errors, tc.field)
				}
				if len(trail) != len(trailBefore) {
					t.Errorf("a refused mark left an audit record: %d → %d", len(trailBefore), len(trail))
				}
				if _, n := e.pub.last(); n != published {
					t.Errorf("a refused mark was published")
				}
				return
			}
			sig := got.PossibleSAE
			if sig == nil || sig.Sub != "u-"+tc.claims.Role || sig.Name != tc.claims.Name || sig.Role != tc.claims.Role ||
				!sig.At.Equal(now) || sig.Meaning != MeaningPossibleSAE || sig.Reason != "admitted overnight" {
				t.Errorf("possible_sae %+v", sig)
			}
			if got.ReportDueAt == nil || !got.ReportDueAt.Equal(now.Add(24*time.Hour)) {
				t.Errorf("report_due_at %v, want %v", got.ReportDueAt, now.Add(24*time.Hour))
			}
			// Not an acknowledgement: status and escalation as they were.
			if got.Status != before.Status || got.Tier != before.Tier || !sameTime(got.NextEscalationAt, before.NextEscalationAt) ||
				(got.Acknowledged == nil) != (before.Acknowledged == nil) {
				t.Errorf("the mark changed the lifecycle:\n got %+v\n was %+v", got, before)
			}
			stored, err := e.store.Alert(t.Context(), before.AlertID)
			if err != nil || stored.PossibleSAE == nil || !sameTime(stored.ReportDueAt, got.ReportDueAt) {
				t.Errorf("stored alert %+v %v", stored, err)
			}
			if pub, n := e.pub.last(); n != published+1 || pub.AlertID != before.AlertID || pub.PossibleSAE == nil {
				t.Errorf("published %d alerts, last %+v; want the marked alert", n-published, pub)
			}
			if len(trail) != len(trailBefore)+1 {
				t.Fatalf("audit: %d records, want %d", len(trail), len(trailBefore)+1)
			}
			rec := trail[len(trail)-1]
			if rec.Action != "alert.possible_sae" || rec.Actor != sig.Sub || rec.ActorName != tc.claims.Name ||
				rec.ActorRole != tc.claims.Role || rec.Meaning != MeaningPossibleSAE || rec.Reason != "admitted overnight" ||
				!rec.At.Equal(now) {
				t.Errorf("audit record %+v", rec)
			}
		})
	}
}

func TestPossibleSAERequiresRecentAuth(t *testing.T) {
	e := newAPIEnv(t, trial.Protocol{Escalation: boardPolicy, RequireAuthWithin: trial.Duration(5 * time.Minute)})
	now := e.clock.Now()
	withAuth := func(at time.Time) auth.Claims {
		c := craS1
		c.AuthTime = jwt.NewNumericDate(at)
		return c
	}
	cases := []struct {
		name   string
		claims auth.Claims
		code   int
	}{
		{"no auth_time", craS1, 401},
		{"an old auth_time", withAuth(now.Add(-time.Hour)), 401},
		{"an auth_time in the future", withAuth(now.Add(time.Hour)), 401},
		{"a fresh auth_time", withAuth(now.Add(-time.Minute)), 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := e.open(t, "P-"+strings.ReplaceAll(tc.name, " ", "-"), "T1", "S1")
			code, _, p := e.post(t, mint(t, tc.claims), "/v1/alerts/"+a.AlertID+"/possible-sae", map[string]any{"reason": "r"})
			if code != tc.code {
				t.Fatalf("status %d (%+v), want %d", code, p, tc.code)
			}
			if code == 401 && !strings.HasSuffix(p.Type, "/reauthentication-required") {
				t.Errorf("problem %+v, want reauthentication-required", p)
			}
		})
	}
}

func TestResolveSAEReportClock(t *testing.T) {
	e := newAPIEnv(t, trial.Protocol{Escalation: boardPolicy})
	markedAt := e.clock.Now()
	resolvedAt := markedAt.Add(3 * time.Hour)
	cases := []struct {
		name    string
		mark    bool
		outcome string
		due     *time.Time
	}{
		{"sae, never marked: the clock starts at the resolution", false, scoring.OutcomeSAE, ptrTime(resolvedAt.Add(24 * time.Hour))},
		{"sae, marked: the earlier clock stays", true, scoring.OutcomeSAE, ptrTime(markedAt.Add(24 * time.Hour))},
		{"ae, marked: no report due", true, scoring.OutcomeAE, nil},
		{"not_ae, never marked", false, scoring.OutcomeNotAE, nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Set(markedAt)
			a := e.open(t, "P"+string(rune('A'+i)), "T1", "S1")
			if tc.mark {
				if code, _, p := e.post(t, mint(t, craS1), "/v1/alerts/"+a.AlertID+"/possible-sae", map[string]any{"reason": "r"}); code != 200 {
					t.Fatalf("mark: %d %+v", code, p)
				}
			}
			e.clock.Set(resolvedAt)
			code, got, p := e.post(t, mint(t, piS1), "/v1/alerts/"+a.AlertID+"/resolve",
				map[string]any{"reason": "reviewed", "outcome": tc.outcome})
			if code != 200 {
				t.Fatalf("resolve: %d %+v", code, p)
			}
			if !sameTime(got.ReportDueAt, tc.due) || (got.PossibleSAE != nil) != tc.mark {
				t.Errorf("resolved: report_due_at %v possible_sae %+v; want %v, marked %v", got.ReportDueAt, got.PossibleSAE, tc.due, tc.mark)
			}
			stored, err := e.store.Alert(t.Context(), a.AlertID)
			if err != nil || !sameTime(stored.ReportDueAt, tc.due) {
				t.Errorf("stored: report_due_at %v (%v), want %v", stored.ReportDueAt, err, tc.due)
			}
		})
	}
}

// TestAckAuditAction: the overview measures time to acknowledge from the
// audit records the acknowledgement writes.
func TestAckAuditAction(t *testing.T) {
	e := newAPIEnv(t, trial.Protocol{Escalation: boardPolicy})
	a := e.open(t, "P1", "T1", "S1")
	if code, _, p := e.post(t, mint(t, piS1), "/v1/alerts/"+a.AlertID+"/ack", map[string]any{"reason": "seen"}); code != 200 {
		t.Fatalf("ack: %d %+v", code, p)
	}
	trail, err := e.store.Audit(t.Context(), a.AlertID)
	if err != nil || len(trail) == 0 || trail[len(trail)-1].Action != store.ActionAlertAcknowledged {
		t.Fatalf("audit %+v %v, want the last record %s", trail, err, store.ActionAlertAcknowledged)
	}
	sites, err := e.store.TrialOverview(t.Context(), "T1", e.clock.Now())
	if err != nil || len(sites) != 1 || sites[0].Ack.Count != 1 || *sites[0].Ack.MaxSeconds != int64(time.Hour/time.Second) {
		t.Fatalf("overview %+v %v, want one acknowledgement an hour after opening", sites, err)
	}
}
