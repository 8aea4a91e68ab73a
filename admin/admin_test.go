package admin_test

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"vigil/admin"
	"vigil/auth"
	"vigil/problem"
	"vigil/store"
	"vigil/store/sqlite"
	"vigil/trial"
)

const secret = "0123456789abcdef0123456789abcdef-admin-test"

type fixture struct {
	t     *testing.T
	app   *fiber.App
	st    *sqlite.Store
	cache *trial.Cache
	iss   auth.Issuer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	v, err := auth.NewVerifier(auth.VerifierConfig{Secret: []byte(secret), Issuer: "vigil", Audience: "vigil"})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := trial.NewCache(trial.CacheConfig{Source: st,
		IsNotFound: func(err error) bool { return errors.Is(err, store.ErrNotFound) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	app := fiber.New(fiber.Config{ErrorHandler: problem.ErrorHandler})
	admin.New(v, st, cache, slog.New(slog.NewTextHandler(io.Discard, nil))).Register(app)
	return &fixture{t: t, app: app, st: st, cache: cache,
		iss: auth.Issuer{Secret: []byte(secret), Issuer: "vigil", Audience: "vigil"}}
}

func (f *fixture) token(role string, trials []string, sites ...string) string {
	f.t.Helper()
	c := auth.Claims{Role: role, Name: "Dr Test", Trials: trials, Sites: sites,
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-" + role}}
	if role == auth.RolePatient {
		c = auth.Claims{Role: role, Trial: trials[0], Site: "S01", RegisteredClaims: jwt.RegisteredClaims{Subject: "P1001"}}
	}
	tok, err := f.iss.Mint(c, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) problem(t *testing.T) problem.Details {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, problem.ContentType) {
		t.Fatalf("status %d: content type %q, want %s; body %s", r.status, ct, problem.ContentType, r.body)
	}
	var p problem.Details
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem: %v: %s", err, r.body)
	}
	if p.Status != r.status || p.Type == "" || p.Title == "" {
		t.Errorf("problem %+v for status %d", p, r.status)
	}
	return p
}

func (f *fixture) do(method, path, token, body string, header ...string) reply {
	f.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.app.Test(req, -1)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func protocolJSON(t *testing.T, mutate func(m map[string]any)) string {
	t.Helper()
	m := map[string]any{
		"trial_id": "T008",
		"sites":    []string{"S01", "S02"},
		"schedule": map[string]any{"every": "8h", "grace": "1h"},
		"thresholds": map[string]any{"vitals": []any{
			map[string]any{"vital": "systolic_bp", "op": ">=", "value": 160, "grade": 3},
		}},
		"escalation": map[string]any{
			"tiers": []any{map[string]any{"name": "site", "after": "15m",
				"channels": []any{map[string]any{"kind": "board"}}}},
			"repeat": "10m",
		},
	}
	if mutate != nil {
		mutate(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fields(p problem.Details) []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Field)
	}
	return out
}

func auditOf(t *testing.T, st store.Store, entityType, id string) []store.AuditRecord {
	t.Helper()
	recs, err := st.AuditRecords(t.Context(), store.AuditQuery{EntityType: entityType, EntityID: id})
	if err != nil {
		t.Fatalf("AuditRecords: %v", err)
	}
	return recs
}

func TestPutProtocol(t *testing.T) {
	f := newFixture(t)
	adminTok := f.token(auth.RoleAdmin, []string{"T008"})

	// The cache has seen the trial without a protocol.
	if _, configured, err := f.cache.Protocol(t.Context(), "T008"); err != nil || configured {
		t.Fatalf("cache before: configured=%v err=%v", configured, err)
	}

	r := f.do("PUT", "/v1/trials/T008", adminTok, protocolJSON(t, nil))
	if r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	var got trial.Protocol
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.TrialID != "T008" || got.Version != 1 || got.UpdatedAt.IsZero() || len(got.Sites) != 2 ||
		got.Schedule.Every.Std() != 8*time.Hour {
		t.Errorf("stored: %+v", got)
	}
	// Seen at once on this node, without waiting for the cache's TTL.
	if p, configured, err := f.cache.Protocol(t.Context(), "T008"); err != nil || !configured || p.Version != 1 {
		t.Errorf("cache after PUT: configured=%v version=%d err=%v", configured, p.Version, err)
	}

	// trial_id may be left out; the reason comes from the header or query.
	body := protocolJSON(t, func(m map[string]any) { delete(m, "trial_id"); m["sites"] = []string{"S01", "S02", "S03"} })
	r = f.do("PUT", "/v1/trials/T008", adminTok, body, admin.ReasonHeader, "site S03 opened")
	if r.status != 200 || !strings.Contains(string(r.body), `"version":2`) {
		t.Fatalf("second PUT: %d %s", r.status, r.body)
	}
	r = f.do("PUT", "/v1/trials/T008?reason="+url.QueryEscape("DSMB request"), adminTok, body)
	if r.status != 200 {
		t.Fatalf("third PUT: %d %s", r.status, r.body)
	}

	recs := auditOf(t, f.st, store.EntityProtocol, "T008")
	if len(recs) != 3 {
		t.Fatalf("audit records: %d, want 3", len(recs))
	}
	for i, reason := range []string{admin.DefaultProtocolReason, "site S03 opened", "DSMB request"} {
		rec := recs[i]
		if rec.Action != admin.ActionProtocolPut || rec.Reason != reason || rec.Actor != "u-admin" ||
			rec.ActorRole != auth.RoleAdmin || rec.ActorName != "Dr Test" {
			t.Errorf("audit record %d: %+v", i, rec)
		}
	}
	if string(recs[0].OldValue) != "" && string(recs[0].OldValue) != "null" {
		t.Errorf("first record's old value: %s", recs[0].OldValue)
	}
	if len(recs[1].OldValue) == 0 || !strings.Contains(string(recs[1].NewValue), `"S03"`) {
		t.Errorf("second record: old %s new %s", recs[1].OldValue, recs[1].NewValue)
	}

	// YAML is accepted too, as `vigil trials apply` reads it.
	yamlBody := "sites: [S01]\nschedule: {every: 12h}\nescalation:\n  tiers:\n    - {name: site, after: 15m, channels: [{kind: board}]}\n"
	r = f.do("PUT", "/v1/trials/T008", adminTok, yamlBody, "Content-Type", "application/yaml")
	if r.status != 200 || !strings.Contains(string(r.body), `"every":"12h"`) {
		t.Errorf("YAML PUT: %d %s", r.status, r.body)
	}
}

func TestPutProtocolRefused(t *testing.T) {
	f := newFixture(t)
	adminTok := f.token(auth.RoleAdmin, []string{"T008"})
	valid := protocolJSON(t, nil)

	cases := []struct {
		name, path, token, body string
		header                  []string
		status                  int
		fields                  []string
	}{
		{"no token", "/v1/trials/T008", "", valid, nil, 401, nil},
		{"bad token", "/v1/trials/T008", "x.y.z", valid, nil, 401, nil},
		{"patient token", "/v1/trials/T008", f.token(auth.RolePatient, []string{"T008"}), valid, nil, 403, nil},
		{"pi", "/v1/trials/T008", f.token(auth.RolePI, []string{"T008"}, "T008/S01"), valid, nil, 403, nil},
		{"safety", "/v1/trials/T008", f.token(auth.RoleSafety, []string{"T008"}), valid, nil, 403, nil},
		{"admin of another trial", "/v1/trials/T008", f.token(auth.RoleAdmin, []string{"T009"}), valid, nil, 403, nil},
		{"not JSON", "/v1/trials/T008", adminTok, `{"trial_id": `, nil, 400, []string{""}},
		{"unknown fields", "/v1/trials/T008", adminTok,
			protocolJSON(t, func(m map[string]any) { m["sitez"] = 1; m["reason"] = "x" }), nil, 400, []string{"reason", "sitez"}}, // map keys marshal sorted
		{"wrong type", "/v1/trials/T008", adminTok,
			protocolJSON(t, func(m map[string]any) { m["schedule"] = map[string]any{"every": 3600} }), nil, 400, []string{"schedule.every"}},
		{"bad reason", "/v1/trials/T008", adminTok, valid, []string{admin.ReasonHeader, strings.Repeat("r", admin.MaxReason+1)}, 400, []string{"reason"}},
		{"too large", "/v1/trials/T008", adminTok, `{"title": "` + strings.Repeat("x", trial.MaxDocument) + `"}`, nil, 413, nil},
		{"invalid", "/v1/trials/T008", adminTok, protocolJSON(t, func(m map[string]any) {
			m["sites"] = []string{}
			m["escalation"] = map[string]any{"tiers": []any{map[string]any{"name": "x", "after": "5m",
				"channels": []any{map[string]any{"kind": "webhook", "url": "ftp://x"}}}}}
		}), nil, 422, []string{"sites", "escalation.tiers[0].channels[0].url", "escalation.tiers[0].channels[0].secret_ref"}},
		{"trial id mismatch", "/v1/trials/T008", adminTok,
			protocolJSON(t, func(m map[string]any) { m["trial_id"] = "T009" }), nil, 422, []string{"trial_id"}},
		{"bad trial id in path", "/v1/trials/T%20008", f.token(auth.RoleAdmin, []string{"T%20008"}),
			protocolJSON(t, func(m map[string]any) { delete(m, "trial_id") }), nil, 422, []string{"trial_id"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do("PUT", tc.path, tc.token, tc.body, tc.header...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			p := r.problem(t)
			if tc.fields != nil && !slices.Equal(fields(p), tc.fields) {
				t.Errorf("error fields %q, want %q (%s)", fields(p), tc.fields, r.body)
			}
		})
	}
	if _, err := f.st.Protocol(t.Context(), "T008"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused PUT stored a protocol: %v", err)
	}
	if recs := auditOf(t, f.st, "", ""); len(recs) != 0 {
		t.Errorf("refused PUTs left %d audit records", len(recs))
	}
}

func TestGetProtocol(t *testing.T) {
	f := newFixture(t)
	adminTok := f.token(auth.RoleAdmin, []string{"T008"})
	pi := f.token(auth.RolePI, []string{"T008"}, "T008/S02")

	r := f.do("GET", "/v1/trials/T008", pi, "")
	if r.status != 404 {
		t.Fatalf("before PUT: %d %s", r.status, r.body)
	}
	r.problem(t)
	if r = f.do("PUT", "/v1/trials/T008", adminTok, protocolJSON(t, nil)); r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	for name, tok := range map[string]string{
		"pi of a site": pi,
		"safety":       f.token(auth.RoleSafety, []string{"T008"}),
		"admin":        adminTok,
	} {
		r = f.do("GET", "/v1/trials/T008", tok, "")
		var p trial.Protocol
		if r.status != 200 || json.Unmarshal(r.body, &p) != nil || p.Version != 1 || p.TrialID != "T008" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	for name, tok := range map[string]string{
		"pi of another trial": f.token(auth.RolePI, []string{"T009"}, "T009/S02"),
		"safety elsewhere":    f.token(auth.RoleSafety, []string{"T009"}),
		"patient":             f.token(auth.RolePatient, []string{"T008"}),
	} {
		if r = f.do("GET", "/v1/trials/T008", tok, ""); r.status != 403 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
		r.problem(t)
	}
}

func TestPatients(t *testing.T) {
	f := newFixture(t)
	adminTok := f.token(auth.RoleAdmin, []string{"T008"})
	path := "/v1/trials/T008/sites/S01/patients/P1001"

	// Without a protocol, any valid site is accepted.
	r := f.do("PUT", "/v1/trials/T008/sites/S07/patients/P7", adminTok, `{"status": "enrolled"}`)
	if r.status != 200 {
		t.Fatalf("PUT without protocol: %d %s", r.status, r.body)
	}
	if r = f.do("PUT", "/v1/trials/T008", adminTok, protocolJSON(t, nil)); r.status != 200 {
		t.Fatalf("PUT protocol: %d %s", r.status, r.body)
	}

	if _, registered, _ := f.cache.Patient(t.Context(), "T008", "S01", "P1001"); registered {
		t.Fatal("registered before PUT")
	}
	r = f.do("PUT", path, adminTok, `{"status": "enrolled", "spo2_scale": 2, "baseline": {"spo2": 90}}`,
		admin.ReasonHeader, "COPD with hypercapnia confirmed by Dr Okafor")
	if r.status != 200 {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	var rec trial.PatientRecord
	if err := json.Unmarshal(r.body, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.TrialID != "T008" || rec.SiteID != "S01" || rec.PatientID != "P1001" || rec.Status != trial.Enrolled ||
		rec.SpO2Scale != 2 || rec.Version != 1 || rec.CreatedAt.IsZero() || rec.Baseline == nil {
		t.Errorf("stored: %+v", rec)
	}
	if got, registered, err := f.cache.Patient(t.Context(), "T008", "S01", "P1001"); err != nil || !registered || got.SpO2Scale != 2 {
		t.Errorf("cache after PUT: %+v %v %v", got, registered, err)
	}
	recs := auditOf(t, f.st, store.EntityPatient, "T008/S01/P1001")
	if len(recs) != 1 || recs[0].Action != admin.ActionPatientPut || recs[0].Reason != "COPD with hypercapnia confirmed by Dr Okafor" ||
		recs[0].Actor != "u-admin" {
		t.Errorf("audit: %+v", recs)
	}

	// Ids in the body may repeat the path.
	r = f.do("PUT", path, adminTok, `{"trial_id": "T008", "site_id": "S01", "patient_id": "P1001", "status": "withdrawn"}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"version":2`) || !strings.Contains(string(r.body), `"withdrawn"`) {
		t.Errorf("withdraw: %d %s", r.status, r.body)
	}
	if got, _, _ := f.cache.Patient(t.Context(), "T008", "S01", "P1001"); got.Status != trial.Withdrawn {
		t.Errorf("cache after withdrawal: %+v", got)
	}

	// GET …/record.
	cra := f.token(auth.RoleCRA, []string{"T008"}, "T008/S01")
	r = f.do("GET", path+"/record", cra, "")
	if r.status != 200 || !strings.Contains(string(r.body), `"withdrawn"`) {
		t.Errorf("GET record: %d %s", r.status, r.body)
	}
	for name, c := range map[string]struct {
		path, token string
		status      int
	}{
		"other site's CRA":   {path + "/record", f.token(auth.RoleCRA, []string{"T008"}, "T008/S02"), 403},
		"unknown patient":    {"/v1/trials/T008/sites/S01/patients/P9/record", cra, 404},
		"safety of trial":    {path + "/record", f.token(auth.RoleSafety, []string{"T008"}), 200},
		"no token":           {path + "/record", "", 401},
		"patient own record": {path + "/record", f.token(auth.RolePatient, []string{"T008"}), 403},
	} {
		r := f.do("GET", c.path, c.token, "")
		if r.status != c.status {
			t.Errorf("%s: %d, want %d: %s", name, r.status, c.status, r.body)
		}
		if c.status != 200 {
			r.problem(t)
		}
	}
}

func TestPutPatientRefused(t *testing.T) {
	f := newFixture(t)
	adminTok := f.token(auth.RoleAdmin, []string{"T008"})
	if r := f.do("PUT", "/v1/trials/T008", adminTok, protocolJSON(t, nil)); r.status != 200 {
		t.Fatalf("PUT protocol: %d %s", r.status, r.body)
	}
	path := "/v1/trials/T008/sites/S01/patients/P1001"
	cases := []struct {
		name, path, token, body string
		status                  int
		fields                  []string
	}{
		{"pi", path, f.token(auth.RolePI, []string{"T008"}, "T008/S01"), `{"status": "enrolled"}`, 403, nil},
		{"admin of another trial", path, f.token(auth.RoleAdmin, []string{"T1"}), `{"status": "enrolled"}`, 403, nil},
		{"not JSON", path, adminTok, `{"status"`, 400, []string{""}},
		{"unknown field", path, adminTok, `{"status": "enrolled", "site": "S01"}`, 400, []string{"site"}},
		{"site outside the protocol", "/v1/trials/T008/sites/S09/patients/P1", adminTok, `{"status": "enrolled"}`, 422, []string{"site_id"}},
		{"every problem at once", "/v1/trials/T008/sites/S09/patients/P1", adminTok,
			`{"status": "active", "spo2_scale": 3, "baseline": {"heart_rate": 400}}`, 422,
			[]string{"status", "spo2_scale", "baseline.heart_rate", "site_id"}},
		{"body id mismatch", path, adminTok, `{"patient_id": "P2", "status": "enrolled"}`, 422, []string{"patient_id"}},
		{"no status", path, adminTok, `{}`, 422, []string{"status"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do("PUT", tc.path, tc.token, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			p := r.problem(t)
			if tc.fields != nil && !slices.Equal(fields(p), tc.fields) {
				t.Errorf("error fields %q, want %q (%s)", fields(p), tc.fields, r.body)
			}
		})
	}
	if recs := auditOf(t, f.st, store.EntityPatient, ""); len(recs) != 0 {
		t.Errorf("refused PUTs left %d audit records", len(recs))
	}
}
